"""SNIP in PyTorch eager with Hugging Face transformers on a real model directory: the peer for
`led locate --chat-template` on the same data (benches/snip_vs_pytorch_real.sh).

Per sample: prompt = the chat template with one user turn and the generation prompt, answer = the
assistant turn closed by its end-of-turn token (as `led locate --chat-template` builds it), one
forward, the loss on the answer, one backward, G += |grad| in f32; then |W| * G.
Prints `pytorch SECONDS TOKENS` for the scoring loop alone.

usage: python snip_real_pytorch.py MODEL_DIR DATA.jsonl SAMPLES
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, data, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train(False)
records = [json.loads(line) for line in open(data)][:samples]
pairs = []
for r in records:
    msgs = [{"role": "user", "content": r["prompt"]}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": r["answer"]}], tokenize=False)
    rest = full[len(prompt):]
    cut = rest.find(tok.eos_token, len(r["answer"]))
    answer = rest[: cut + len(tok.eos_token)]
    pairs.append((tok(prompt, add_special_tokens=False)["input_ids"],
                  tok(answer, add_special_tokens=False)["input_ids"]))
params = dict(model.named_parameters())
acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
start = time.perf_counter()
n_tokens = 0
for p, a in pairs:
    ids = torch.tensor([p + a])
    logits = model(input_ids=ids).logits[0].float()
    loss = torch.nn.functional.cross_entropy(logits[len(p) - 1: len(p) + len(a) - 1], torch.tensor(a))
    model.zero_grad(set_to_none=False)
    loss.backward()
    with torch.no_grad():
        for n, q in params.items():
            acc[n] += q.grad.abs()
    n_tokens += ids.shape[1]
with torch.no_grad():
    scores = {n: q.detach().abs() * acc[n] for n, q in params.items()}
print(f"pytorch {time.perf_counter() - start:.3f} {n_tokens}")
