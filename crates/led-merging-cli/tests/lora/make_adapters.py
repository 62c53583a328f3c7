"""Tiny models and PEFT LoRA adapters for tests/lora.rs, with peft's own merge of each
(`merge_and_unload`) as the expected result. Usage: make_adapters.py OUT"""
import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

out = Path(sys.argv[1])
torch.manual_seed(0)


def llama(intermediate=32):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=intermediate, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False))


def adapter(cls, base, name, **kw):
    model = cls.from_pretrained(out / base)
    peft = get_peft_model(model, LoraConfig(init_lora_weights=False, **kw))
    peft.save_pretrained(out / name)
    peft.merge_and_unload().save_pretrained(out / f"{name}-merged")


llama().save_pretrained(out / "base")
llama().save_pretrained(out / "other")
llama(intermediate=48).save_pretrained(out / "wide")
GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=64,
                           n_positions=32)).save_pretrained(out / "gpt2")
# Attention, MLP and embedding targets, a whole lm_head, a per-module alpha.
adapter(LlamaForCausalLM, "base", "lora", r=4, lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj", "embed_tokens"],
        modules_to_save=["lm_head"], alpha_pattern={"down_proj": 16})
# rsLoRA, with a per-module rank.
adapter(LlamaForCausalLM, "base", "rslora", r=2, lora_alpha=4, use_rslora=True,
        target_modules=["k_proj", "o_proj", "up_proj", "gate_proj"], rank_pattern={"o_proj": 3})
# GPT-2's Conv1D stores weights [in, out]: fan_in_fan_out.
adapter(GPT2LMHeadModel, "gpt2", "gpt2-lora", r=2, lora_alpha=2, fan_in_fan_out=True,
        target_modules=["c_attn", "c_fc"])
# A word-level tokenizer for Locate on the llama models.
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

vocab = {f"w{i}": i for i in range(63)} | {"<unk>": 63}
tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
for name in ["base", "lora-merged"]:
    tokenizer.save(str(out / name / "tokenizer.json"))
with open(out / "task.jsonl", "w") as f:
    for i in range(6):
        words = " ".join(f"w{(i * 7 + k) % 63}" for k in range(5))
        f.write(json.dumps({"prompt": words, "answer": f"w{i} w{i + 1}"}) + "\n")
# Refused: DoRA.
adapter(LlamaForCausalLM, "base", "dora", r=2, use_dora=True, target_modules=["q_proj"])
print(json.dumps(sorted(p.name for p in out.iterdir())))
