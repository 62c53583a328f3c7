#!/usr/bin/env bash
# SNIP on CPU on a real pretrained LLM (SmolLM2-135M-Instruct from `make smollm2`), chat template:
# `led locate` against the same pass in PyTorch eager + transformers (same samples, same machine,
# same run). Prints both times and the ratio.
#
#   bash benches/snip_vs_pytorch_real.sh [SAMPLES]   (default 32; data: the experiment's math set)
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${1:-32}
MODEL=${LED_SMOLLM2:-models/SmolLM2-135M-Instruct}
DIR=target/snip-bench-real
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1
cargo build --release -q -p led-merging-cli --features attribution --bin led
rm -rf "$DIR" && mkdir -p "$DIR"
python -c "
import sys; sys.path.insert(0, 'experiments/smollm2'); import data, json
with open('$DIR/data.jsonl', 'w') as f:
    for r in data.math_problems('train', $SAMPLES, 0): f.write(json.dumps({'prompt': r['prompt'], 'answer': r['answer']}) + '\n')"
PY=$(python benches/snip_real_pytorch.py "$MODEL" "$DIR/data.jsonl" "$SAMPLES" | grep '^pytorch')
read -r _ PT_SECS PT_TOKENS <<< "$PY"
OURS=$(target/release/led locate --model "$MODEL" --data "$DIR/data.jsonl" --out "$DIR/scores.safetensors" \
  --samples "$SAMPLES" --chat-template --device cpu --force | grep '^time')
LED_SECS=$(sed -E 's/.*forward\/backward ([0-9.]+) s.*/\1/' <<< "$OURS")
echo "model: $MODEL; $SAMPLES samples, $PT_TOKENS tokens; $(nproc) cores"
echo "pytorch+transformers SNIP loop: ${PT_SECS} s"
echo "led locate SNIP loop:           ${LED_SECS} s   ($OURS)"
python -c "print(f'led locate / pytorch time ratio: {$LED_SECS/$PT_SECS:.2f} (below 1 = faster)')"
