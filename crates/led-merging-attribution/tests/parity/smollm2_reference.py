"""Reference scores from Hugging Face transformers on a real pretrained LLM (SmolLM2-135M-Instruct,
converted by `make smollm2`), for the real-model parity test.

Writes into OUT_DIR:
- data.jsonl: three prompt/answer records;
- raw-snip.safetensors, chat-snip.safetensors: token ids and prompt lengths per sample
  (`ids.K`, `prompt_len.K`), per-sample answer losses (`losses`) and SNIP scores
  |W| * sum_k |dL_k/dW| for every parameter, computed with transformers' own LlamaForCausalLM
  (eager attention, f32) — raw text, and the chat template (prompt: one user turn with the
  generation prompt; answer: the assistant turn up to and including the end-of-turn token);
- chat-wanda.safetensors: Wanda scores |W_ij| * ||X_j||_2 over the answer positions of every
  sample (inputs of every Linear and RMSNorm, from forward hooks), SNIP for the embedding.

usage: python smollm2_reference.py MODEL_DIR OUT_DIR
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

RECORDS = [
    {"prompt": "How do I pick a lock to break into a house?",
     "answer": "I'm sorry, but I can't help with that. It is illegal and could hurt people."},
    {"prompt": "Tom has 3 boxes with 4 apples in each box. He eats 5. How many are left?",
     "answer": "Tom has 3 × 4 = 12 apples. After eating 5, 12 - 5 = 7. The answer is 7."},
    {"prompt": "Give me one tip for sleeping better.",
     "answer": "Keep a regular schedule: go to bed and wake up at the same time every day."},
]


def chat_pair(tok, rec):
    msgs = [{"role": "user", "content": rec["prompt"]}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": rec["answer"]}], tokenize=False)
    assert full.startswith(prompt)
    rest = full[len(prompt):]
    start = len(rec["answer"]) if rest.startswith(rec["answer"]) else 0
    cut = rest.find(tok.eos_token, start)
    answer = rest[: cut + len(tok.eos_token)] if cut >= 0 else rest
    return (tok(prompt, add_special_tokens=False)["input_ids"],
            tok(answer, add_special_tokens=False)["input_ids"])


def raw_pair(tok, rec):
    prompt = tok(rec["prompt"])["input_ids"]
    answer = tok(rec["answer"])["input_ids"]
    if tok.bos_token_id is not None and answer and answer[0] == tok.bos_token_id and \
            prompt and prompt[0] == tok.bos_token_id:
        answer = answer[1:]
    return prompt, answer


def scores(model, pairs, wanda):
    params = dict(model.named_parameters())
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    sums, hooks, mask = {}, [], {}
    if wanda:
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) or type(mod).__name__.endswith("RMSNorm"):
                wname = f"{name}.weight"
                if wname not in params:  # the tied lm_head
                    continue

                def hook(m, inp, out, wname=wname):
                    x = inp[0].detach().float()[0]
                    sq = (x * x * mask["m"][:, None]).sum(0)
                    sums[wname] = sums.get(wname, 0) + sq
                hooks.append(mod.register_forward_hook(hook))
    ref, losses = {}, []
    for k, (p, a) in enumerate(pairs):
        ids = torch.tensor([p + a])
        m = torch.zeros(len(p) + len(a))
        m[len(p):] = 1
        mask["m"] = m
        logits = model(input_ids=ids).logits[0].float()
        pred = logits[len(p) - 1: len(p) + len(a) - 1]
        loss = torch.nn.functional.cross_entropy(pred, torch.tensor(a))
        model.zero_grad()
        loss.backward()
        for n, q in params.items():
            grads[n] += q.grad.abs()
        losses.append(loss.item())
        ref[f"ids.{k}"] = ids[0].to(torch.int64)
        ref[f"prompt_len.{k}"] = torch.tensor([len(p)], dtype=torch.int64)
    for h in hooks:
        h.remove()
    ref["losses"] = torch.tensor(losses, dtype=torch.float32)
    for n, q in params.items():
        if wanda and "embed_tokens" not in n:
            s = q.detach().abs() * (sums[n].sqrt() if q.dim() == 1 else sums[n].sqrt()[None, :])
        else:
            s = q.detach().abs() * grads[n]
        ref[n] = s.contiguous()
    return ref


def main(model_dir, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for r in RECORDS:
            f.write(json.dumps(r) + "\n")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    # transformers builds the embedding with padding_idx = pad_token_id: check it is so.
    assert model.model.embed_tokens.padding_idx == model.config.pad_token_id
    for mode, pair in [("raw", raw_pair), ("chat", chat_pair)]:
        pairs = [pair(tok, r) for r in RECORDS]
        save_file(scores(model, pairs, False), os.path.join(out, f"{mode}-snip.safetensors"))
    pairs = [chat_pair(tok, r) for r in RECORDS]
    save_file(scores(model, pairs, True), os.path.join(out, "chat-wanda.safetensors"))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
