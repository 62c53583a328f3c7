#!/usr/bin/env bash
# The score write of `led locate` against the disk's sequential write floor, same machine, same
# run: `dd` writes the same number of bytes with conv=fsync; led writes its score file from a
# writer thread while the scores are computed (docs/PERFORMANCE.md, "Locate: the score write").
#
# Two models: SmolLM2-135M-Instruct (`make smollm2`; real SNIP on a few samples) and a synthetic
# Llama of about 1B parameters (random scores: no compute, so the run is the write alone).
#
#   bash benches/locate_write.sh [SAMPLES]   (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${1:-4}
MODEL=${LED_SMOLLM2:-models/SmolLM2-135M-Instruct}
DIR=target/locate-write-bench
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1
cargo build --release -q -p led-merging-cli --features attribution --bin led
rm -rf "$DIR" && mkdir -p "$DIR"
python - "$DIR" "$SAMPLES" <<'EOF'
import json, sys, torch
from safetensors.torch import save_file
sys.path.insert(0, 'experiments/smollm2')
import data
out, samples = sys.argv[1], int(sys.argv[2])
with open(f'{out}/data.jsonl', 'w') as f:
    for r in data.math_problems('train', samples, 0):
        f.write(json.dumps({'prompt': r['prompt'], 'answer': r['answer']}) + '\n')
# A Llama with ~1.0B parameters (zeros: the random scorer reads only names and shapes).
h, inter, layers, vocab = 2048, 5632, 16, 32000
config = dict(architectures=['LlamaForCausalLM'], model_type='llama', hidden_size=h,
              intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=16,
              num_key_value_heads=16, vocab_size=vocab, rms_norm_eps=1e-5,
              max_position_embeddings=2048, torch_dtype='bfloat16', tie_word_embeddings=False)
import os
os.makedirs(f'{out}/big', exist_ok=True)
json.dump(config, open(f'{out}/big/config.json', 'w'))
t = {'model.embed_tokens.weight': torch.zeros(vocab, h, dtype=torch.bfloat16),
     'model.norm.weight': torch.zeros(h, dtype=torch.bfloat16),
     'lm_head.weight': torch.zeros(vocab, h, dtype=torch.bfloat16)}
for i in range(layers):
    p = f'model.layers.{i}.'
    for n in ['q_proj', 'k_proj', 'v_proj', 'o_proj']:
        t[p + f'self_attn.{n}.weight'] = torch.zeros(h, h, dtype=torch.bfloat16)
    for n, s in [('gate_proj', (inter, h)), ('up_proj', (inter, h)), ('down_proj', (h, inter))]:
        t[p + f'mlp.{n}.weight'] = torch.zeros(*s, dtype=torch.bfloat16)
    for n in ['input_layernorm', 'post_attention_layernorm']:
        t[p + f'{n}.weight'] = torch.zeros(h, dtype=torch.bfloat16)
save_file(t, f'{out}/big/model.safetensors', metadata={'format': 'pt'})
EOF

# Bytes per second of a file of BYTES written by dd with fsync.
floor() {
    local bytes=$1 mib=$(( ($1 + 1048575) / 1048576 ))
    local start end
    start=$(date +%s.%N)
    dd if=/dev/zero of="$DIR/floor.bin" bs=1M count="$mib" conv=fsync status=none
    end=$(date +%s.%N)
    rm -f "$DIR/floor.bin"
    python -c "print($mib * 1048576 / ($end - $start))"
}

report() {
    local name=$1 out=$2 line=$3
    local bytes writer drain total
    bytes=$(stat -c %s "$out")
    writer=$(sed -E 's/.*wrote for ([0-9.]+) s in all.*/\1/' <<< "$line")
    drain=$(sed -E 's/.*\(([0-9.]+) s of it waiting.*/\1/' <<< "$line")
    total=$(sed -E 's/^time: ([0-9.]+) s in all.*/\1/' <<< "$line")
    local dd_rate
    dd_rate=$(floor "$bytes")
    python - "$name" "$bytes" "$writer" "$drain" "$total" "$dd_rate" <<'EOF'
import sys
name, b, w, d, t, f = sys.argv[1], *map(float, sys.argv[2:])
# The writer's time: its busy seconds plus the wait at the end (which holds the fsync).
rate = b / (w + d)
print(f"{name}: {b / 1e9:.2f} GB of scores; led's writer {rate / 1e6:.0f} MB/s "
      f"({w:.2f} s writing, {d:.2f} s waited for after the compute, {t:.2f} s in all); "
      f"dd conv=fsync {f / 1e6:.0f} MB/s; led / dd = {rate / f:.2f}")
EOF
}

echo "$(nproc) cores; $(df -h "$DIR" | tail -1 | awk '{print $1}')"
SNIP=$(target/release/led locate --model "$MODEL" --data "$DIR/data.jsonl" --samples "$SAMPLES" \
    --device cpu --out "$DIR/smollm2.safetensors" | grep '^time')
echo "$SNIP"
report "SmolLM2-135M SNIP, $SAMPLES samples" "$DIR/smollm2.safetensors" "$SNIP"
RANDOM_RUN=$(target/release/led locate --scorer random --model "$DIR/big" \
    --out "$DIR/big.safetensors" | grep '^time')
echo "$RANDOM_RUN"
report "synthetic 1.0B random scores" "$DIR/big.safetensors" "$RANDOM_RUN"
