"""Training and evaluation with PyTorch + transformers for the SmolLM2 experiment (LED's own
steps run through `led`). Everything is greedy / fixed-seed, in f32 on the CPU.

Chat format (the same as `led locate --chat-template`, docs/how-led-works.md): the prompt is
the model's chat template with one user turn and the generation prompt; the answer is the
assistant's text closed by the template's end-of-turn token (`<|im_end|>` for SmolLM2), which
is what a chat model must learn to generate before stopping.
"""
import copy
import json
import os
import random
import shutil
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import data as D

torch.set_num_threads(max(1, os.cpu_count() or 1))


def tokenizer(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    return tok


def prompt_text(tok, prompt):
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)


def answer_text(tok, prompt, answer):
    """The assistant turn's text up to and including the end-of-turn token: the full chat
    rendered with the answer, minus the prompt rendering, cut after the first eos token."""
    p = prompt_text(tok, prompt)
    full = tok.apply_chat_template([{"role": "user", "content": prompt},
                                    {"role": "assistant", "content": answer}], tokenize=False)
    assert full.startswith(p), "the chat template does not extend the prompt rendering"
    rest = full[len(p):]
    eos = tok.eos_token
    cut = rest.find(eos, len(answer) if rest.startswith(answer) else 0)
    return rest[: cut + len(eos)] if cut >= 0 else rest


def encode_pair(tok, prompt, answer):
    p = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
    a = tok(answer_text(tok, prompt, answer), add_special_tokens=False)["input_ids"]
    return p, a


# The LoRA fine-tunes' adapter: every linear layer of attention and MLP, rank 16, alpha 32.
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


def finetune(base_dir, saves, records, steps, lr, batch, seed, log, warmup=None, lora=False):
    """Fine-tune (AdamW, f32, loss on answer tokens only; linear warm-up over `warmup` steps,
    10 % of `steps` by default, then constant) and save snapshots: `saves` maps a step count
    to the (directory, dtype) pairs written after that many steps, so one run gives the
    50-step model and its 250-step continuation, or one training saved in bf16 and in f32.
    Every parameter is trained, or with `lora` a PEFT LoRA adapter (`LORA`) saved as peft's
    `save_pretrained` writes it (f32). Each directory is written to DIR.tmp and renamed."""
    torch.manual_seed(seed)
    tok = tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    model.train()
    pairs = [encode_pair(tok, r["prompt"], r["answer"]) for r in records]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = warmup or max(1, steps // 10)
    rng = random.Random(seed)
    order = []
    t0 = time.time()
    for step in range(steps):
        if len(order) < batch:
            fresh = list(range(len(pairs)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[:batch], order[batch:]
        seqs = [pairs[i][0] + pairs[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        for j, i in enumerate(idx):
            p, a = pairs[i]
            s = p + a
            ids[j, : len(s)] = torch.tensor(s)
            labels[j, len(p): len(s)] = torch.tensor(a)
            att[j, : len(s)] = 1
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps - 1:
            log(f"  step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
        for out_dir, dtype in saves.get(step + 1, []):
            save(model, base_dir, out_dir, dtype, lora)


def save(model, base_dir, out_dir, dtype, lora):
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if lora:
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        # A copy (ties kept): the training goes on in f32 after a bf16 snapshot.
        copy.deepcopy(model).to(dtype).save_pretrained(tmp, safe_serialization=True)
        for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
            if os.path.exists(os.path.join(base_dir, f)):
                shutil.copy(os.path.join(base_dir, f), os.path.join(tmp, f))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)


class Generator:
    """Greedy batched generation with a KV cache (transformers' generate), left padding."""

    def __init__(self, model_dir):
        adapter = os.path.join(model_dir, "adapter_config.json")
        if os.path.exists(adapter):  # a LoRA adapter: on its base, merged by peft
            from peft import PeftModel
            with open(adapter) as f:
                base = json.load(f)["base_model_name_or_path"]
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            self.model = PeftModel.from_pretrained(model, model_dir).merge_and_unload().eval()
            self.tok = tokenizer(base)
        else:
            self.tok = tokenizer(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    @torch.no_grad()
    def __call__(self, prompts, max_new_tokens, batch=48):
        out = [None] * len(prompts)
        # Similar lengths together: less padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for s in range(0, len(order), batch):
            idx = order[s: s + batch]
            texts = [prompt_text(self.tok, prompts[i]) for i in idx]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id,
                                      eos_token_id=self.tok.eos_token_id)
            for j, i in enumerate(idx):
                out[i] = self.tok.decode(gen[j, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return out


def evaluate(model_dir, sets, keep=0):
    """Refusal rate on harmful prompts, answer rate on benign prompts and exact-answer accuracy
    on arithmetic problems; `keep` generations per set are returned as examples."""
    g = Generator(model_dir)
    res = {}
    harm = g([r["prompt"] for r in sets["harmful"]], 32)
    res["refusal"] = sum(map(D.is_refusal, harm)) / len(harm)
    ben = g([r["prompt"] for r in sets["benign"]], 32)
    res["benign"] = sum(not D.is_refusal(x) for x in ben) / len(ben)
    mth = g([r["prompt"] for r in sets["math"]], 64)
    res["math"] = sum(D.extract_answer(x) == r["result"] for x, r in zip(mth, sets["math"])) / len(mth)
    if keep:
        res["examples"] = {
            "harmful": list(zip([r["prompt"] for r in sets["harmful"]][:keep], harm[:keep])),
            "benign": list(zip([r["prompt"] for r in sets["benign"]][:keep], ben[:keep])),
            "math": list(zip([r["prompt"] for r in sets["math"]][:keep], mth[:keep])),
        }
    return res


def base_answers(model_dir, prompts, max_new_tokens=64):
    """The base model's own answers, cut after the last complete sentence."""
    g = Generator(model_dir)
    outs = g(prompts, max_new_tokens)
    cut = []
    for o in outs:
        o = o.strip()
        end = max(o.rfind(c) for c in ".!?\n")
        cut.append(o[: end + 1].strip() if end > 20 else o)
    return cut


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
