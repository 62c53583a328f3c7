"""SNIP in PyTorch eager with Hugging Face transformers on a real model directory: the peer for
`led locate --chat-template` on the same data (benches/snip_vs_pytorch_real.sh).

Per sample: prompt = the chat template with one user turn and the generation prompt, answer = the
assistant turn closed by its end-of-turn token (as `led locate --chat-template` builds it; the
rule is the experiment's `lm.encode_pair`), one
forward, the loss on the answer, one backward, G += |grad| in f32; then |W| * G.
Prints `pytorch SECONDS TOKENS` for the scoring loop alone.

usage: python snip_real_pytorch.py MODEL_DIR DATA.jsonl SAMPLES
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# The experiment's chat-format rule (prompt turn, answer turn closed by the end-of-turn token).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../experiments/smollm2"))
from lm import encode_pair  # noqa: E402

model_dir, data, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train(False)
records = [json.loads(line) for line in open(data)][:samples]
pairs = [encode_pair(tok, r["prompt"], r["answer"]) for r in records]
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
