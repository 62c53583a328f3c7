"""SNIP in PyTorch eager with Hugging Face transformers: the peer for `led locate`.

Creates a random Llama with transformers (saved with a word-level tokenizer and a JSONL dataset
for `led locate` to read), then times the same SNIP pass in PyTorch: for each sample one forward
and one backward, G += |grad| in f32, S = |W| * G.

usage: python snip_pytorch.py OUT_DIR [LAYERS HIDDEN SAMPLES TOKENS]
"""
import json
import os
import sys
import time

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, LlamaConfig

out = sys.argv[1]
layers, hidden, samples, tokens = (int(x) for x in (sys.argv[2:6] + ["4", "512", "32", "128"][len(sys.argv[2:6]):]))
vocab = 8000
words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(vocab - 3)]
model_dir = os.path.join(out, "model")
os.makedirs(model_dir, exist_ok=True)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
                  num_attention_heads=hidden // 64, num_key_value_heads=max(1, hidden // 256),
                  max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
model.save_pretrained(model_dir, safe_serialization=True)
tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
tok.save(os.path.join(model_dir, "tokenizer.json"))
g = torch.Generator().manual_seed(1)
records = []
for _ in range(samples):
    ids = torch.randint(3, vocab, (tokens,), generator=g).tolist()
    half = tokens // 2
    records.append({"prompt": " ".join(words[i] for i in ids[:half]), "answer": " ".join(words[i] for i in ids[half:])})
with open(os.path.join(out, "data.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)

model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).train(False)
params = dict(model.named_parameters())
acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
start = time.perf_counter()
n_tokens = 0
for r in records:
    prompt = tok.encode(r["prompt"]).ids
    answer = tok.encode(r["answer"]).ids[1:]
    ids = torch.tensor([prompt + answer])
    logits = model(input_ids=ids).logits[0].float()
    pred = logits[len(prompt) - 1 : len(prompt) + len(answer) - 1]
    loss = torch.nn.functional.cross_entropy(pred, torch.tensor(answer))
    model.zero_grad(set_to_none=False)
    loss.backward()
    with torch.no_grad():
        for n, p in params.items():
            acc[n] += p.grad.abs()
    n_tokens += ids.shape[1]
with torch.no_grad():
    scores = {n: p.detach().abs() * acc[n] for n, p in params.items()}
elapsed = time.perf_counter() - start
print(f"pytorch {elapsed:.3f} {n_tokens}")
