"""Helpers for the real-model merge test (SmolLM2-135M-Instruct, from `make smollm2`).

  perturb BASE OUT    a "fine-tune": every weight moved by 1 % of its magnitude (seeded
                      noise), saved as transformers saves a model (bf16), with the tokenizer
  check MERGED BASE FT LAMBDA
                      transformers loads MERGED with no missing or unexpected tensor; every
                      element is the base's or bf16(base + LAMBDA (ft - base)) (an LED merge
                      keeps or adds each task-vector element); some elements moved; the merged
                      model generates an answer with the chat template
  same OURS THEIRS    two merges of the same config (led's, mergekit's) hold the same tensors
                      bit for bit and tokenizers with the same vocabulary that encode alike;
                      transformers loads both
"""
import json
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def perturb(base, out):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01 * p.abs())
    m.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copy(f"{base}/{f}", f"{out}/{f}")


def check(merged, base, ft, lam):
    lam = float(lam)
    m, info = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"transformers loading {merged}: {bad}"
    b = dict(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).named_parameters())
    f = dict(AutoModelForCausalLM.from_pretrained(ft, dtype=torch.float32).named_parameters())
    moved = total = 0
    for name, p in m.named_parameters():
        x, xb, xf = p.detach(), b[name].detach(), f[name].detach()
        added = (xb + lam * (xf - xb)).to(torch.bfloat16).float()
        ok = (x == xb) | (x == added)
        assert bool(ok.all()), f"{name}: {int((~ok).sum())} elements are neither base nor base + λτ"
        moved += int(((x != xb) & (xf != xb)).sum())
        total += x.numel()
    assert moved > 0, "nothing was merged"
    tok = AutoTokenizer.from_pretrained(merged)
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = m.eval().generate(**enc, max_new_tokens=12, do_sample=False)
    reply = tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in reply, reply
    print(json.dumps({"moved": moved, "total": total, "reply": reply}))


def same(ours, theirs):
    from safetensors.torch import load_file
    a, b = load_file(f"{ours}/model.safetensors"), load_file(f"{theirs}/model.safetensors")
    assert sorted(a) == sorted(b), (sorted(set(a) ^ set(b)))
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k
    toks = [AutoTokenizer.from_pretrained(d) for d in (ours, theirs)]
    assert toks[0].get_vocab() == toks[1].get_vocab(), "the vocabularies differ"
    text = "hi <|tool|> there <|im_start|>user"
    assert toks[0](text)["input_ids"] == toks[1](text)["input_ids"], text
    models = [AutoModelForCausalLM.from_pretrained(d) for d in (ours, theirs)]
    assert models[0].config.vocab_size == models[1].config.vocab_size
    print(json.dumps({"tensors": len(a), "tokens": len(toks[0]),
                      "rows": models[0].config.vocab_size,
                      "tool": toks[0].get_vocab()["<|tool|>"]}))


if __name__ == "__main__":
    {"perturb": perturb, "check": check, "same": same}[sys.argv[1]](*sys.argv[2:])
