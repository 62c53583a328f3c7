"""GPU: the cost of SNIP's pass structure on an 8B-shaped Llama, in PyTorch.

`led locate` runs one forward + backward per sample with every gradient enabled and f32
accumulators on the device. The authors' code (a fork of Wei et al.'s attribution code) instead
re-runs every sample once per layer, with gradients for that layer only. This script measures
both structures on the same random bf16 model (Llama-3-8B shapes) with PyTorch + transformers,
so the ratio is about the pass structure, independent of the language binding.

usage: python gpu_snip_passes.py OUT_JSON [SAMPLES TOKENS PER_LAYER_SAMPLES LAYERS]
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

out = sys.argv[1]
samples, tokens, per_layer_samples, layers = (int(x) for x in (sys.argv[2:6] + ["128", "256", "8", "32"][len(sys.argv[2:6]):]))
cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                  rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
cfg._attn_implementation = "sdpa"
torch.manual_seed(0)
t0 = time.perf_counter()
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
model.train(False)
init_s = time.perf_counter() - t0
params = dict(model.named_parameters())
n_params = sum(p.numel() for p in params.values())
g = torch.Generator(device="cuda").manual_seed(1)
data = [torch.randint(0, cfg.vocab_size, (1, tokens), device="cuda", generator=g) for _ in range(samples)]
half = tokens // 2


def loss_of(ids):
    logits = model(input_ids=ids).logits[0, half - 1 : tokens - 1].float()
    return torch.nn.functional.cross_entropy(logits, ids[0, half:])


def one_pass(n):
    for p in params.values():
        p.requires_grad_(True)
    acc = {k: torch.zeros(p.shape, dtype=torch.float32, device="cuda") for k, p in params.items()}
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for ids in data[:n]:
        loss_of(ids).backward()
        with torch.no_grad():
            for k, p in params.items():
                acc[k].add_(p.grad.abs())
                p.grad = None
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated()
    del acc
    return secs, peak


def groups():
    yield ["model.embed_tokens.weight"]
    for l in range(layers):
        yield [k for k in params if k.startswith(f"model.layers.{l}.")]
    yield ["model.norm.weight", "lm_head.weight"]


def per_layer(n):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for names in groups():
        for k, p in params.items():
            p.requires_grad_(k in names)
        acc = {k: torch.zeros(params[k].shape, dtype=torch.float32, device="cuda") for k in names}
        for ids in data[:n]:
            loss_of(ids).backward()
            with torch.no_grad():
                for k in names:
                    acc[k].add_(params[k].grad.abs())
                    params[k].grad = None
        del acc
    torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cuda.max_memory_allocated()


one_pass(2)  # warm-up
res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "params": n_params, "tokens_per_sample": tokens,
       "layers": layers, "init_seconds": init_s}
s, peak = one_pass(per_layer_samples)
res["one_pass_small"] = {"samples": per_layer_samples, "seconds": s, "peak_gib": peak / 2**30}
s, peak = per_layer(per_layer_samples)
res["per_layer_small"] = {"samples": per_layer_samples, "seconds": s, "peak_gib": peak / 2**30}
s, peak = one_pass(samples)
res["one_pass_full"] = {"samples": samples, "seconds": s, "tokens_per_s": samples * tokens / s, "peak_gib": peak / 2**30}
res["speedup_same_samples"] = res["per_layer_small"]["seconds"] / res["one_pass_small"]["seconds"]
print(json.dumps(res, indent=2))
with open(out, "w") as f:
    json.dump(res, f, indent=2)
