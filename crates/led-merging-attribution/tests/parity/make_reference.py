"""Reference outputs from Hugging Face transformers for the attribution parity tests.

For each case this writes a tiny random model with transformers itself (config.json,
model.safetensors, a word-level tokenizer.json), a 3-record data.jsonl, and
reference.safetensors holding the logits of sample 0, the per-sample answer losses, the token ids
used, and SNIP scores |W| * sum_k |dL_k/dW| computed in plain PyTorch (eager attention, f32).

usage: python make_reference.py OUT_DIR
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

VOCAB = 64
WORDS = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(VOCAB - 3)]
RECORDS = [
    {"prompt": "w1 w2 w3 w4", "answer": "w5 w6 w7"},
    {"prompt": "w10 w11", "answer": "w12 w13 w14 w15 w16"},
    {"prompt": "w20 w21 w22 w23 w24 w25", "answer": "w30"},
]

COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)
CASES = {
    "llama_gqa": LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=10000.0),
    "llama3_tied": LlamaConfig(**COMMON, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True,
                               rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "mistral": MistralConfig(**COMMON, num_key_value_heads=2, sliding_window=64, tie_word_embeddings=False),
    "qwen2": Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=False),
}


def tokenizer():
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def sample_ids(tok, rec):
    prompt = tok.encode(rec["prompt"]).ids
    answer = tok.encode(rec["answer"]).ids
    if answer and answer[0] == 1:
        answer = answer[1:]
    return prompt, answer


def main(out):
    tok = tokenizer()
    for name, cfg in CASES.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        torch.manual_seed(0)
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
        # Random init leaves norms at 1 and biases at 0: perturb every parameter so they matter.
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(d, safe_serialization=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "data.jsonl"), "w") as f:
            for r in RECORDS:
                f.write(json.dumps(r) + "\n")
        ref = {}
        grads = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        losses = []
        for k, rec in enumerate(RECORDS):
            prompt, answer = sample_ids(tok, rec)
            ids = torch.tensor([prompt + answer])
            logits = model(input_ids=ids).logits[0].float()
            if k == 0:
                ref["logits"] = logits.detach().clone()
            pred = logits[len(prompt) - 1 : len(prompt) + len(answer) - 1]
            loss = torch.nn.functional.cross_entropy(pred, torch.tensor(answer))
            model.zero_grad()
            loss.backward()
            for n, p in model.named_parameters():
                grads[n] += p.grad.abs()
            losses.append(loss.item())
            ref[f"ids.{k}"] = ids[0].to(torch.int64)
            ref[f"prompt_len.{k}"] = torch.tensor([len(prompt)], dtype=torch.int64)
        ref["losses"] = torch.tensor(losses, dtype=torch.float32)
        for n, p in model.named_parameters():
            ref[f"snip.{n}"] = (p.detach().abs() * grads[n]).contiguous()
        save_file(ref, os.path.join(d, "reference.safetensors"))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
