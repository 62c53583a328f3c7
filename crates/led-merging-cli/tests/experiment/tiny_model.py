"""A tiny Llama with SmolLM2's tokenizer and chat template (random weights, seed 0, bf16), for
the experiment's smoke run: the pipeline's every step at a few seconds a model.

usage: python tiny_model.py OUT SMOLLM2_DIR
"""
import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

out, smollm2 = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]:
    if os.path.exists(os.path.join(smollm2, f)):
        shutil.copy(os.path.join(smollm2, f), os.path.join(out, f))
