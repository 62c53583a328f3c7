"""PyTorch-format checkpoints for tests/torch_bin.rs, each beside its safetensors twin, and a
hostile one. Usage: make_checkpoints.py OUT"""
import json
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = Path(sys.argv[1])
torch.manual_seed(0)


def llama(tied, dtype):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied)).to(dtype)


def save_bin(model, path, shards):
    """As transformers 4 saved PyTorch checkpoints (transformers 5 writes safetensors only):
    pytorch_model.bin, or shards and pytorch_model.bin.index.json."""
    path.mkdir(parents=True)
    model.config.save_pretrained(path)
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    if shards == 1:
        torch.save(state, path / "pytorch_model.bin")
        return
    names = sorted(state)
    weight_map = {}
    for i in range(shards):
        part = {n: state[n] for n in names[i::shards]}
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save(part, path / file)
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (path / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}))


for name, tied, dtype in [("f32", False, torch.float32), ("bf16", True, torch.bfloat16),
                          ("other", False, torch.float32)]:
    model = llama(tied, dtype)
    model.save_pretrained(out / f"{name}-st")
    save_bin(model, out / f"{name}-bin", 1)
    save_bin(model, out / f"{name}-bin-sharded", 3)


class WritesAFile:
    """Unpickling this creates a file: what pickle code can do."""

    def __reduce__(self):
        return (open, (str(out / "pwned"), "w"))


torch.save({"model.embed_tokens.weight": torch.zeros(64, 16), "x": WritesAFile()},
           out / "hostile.bin")
# A tensor that is a strided view (a transpose) of its storage.
torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, out / "strided.bin")
