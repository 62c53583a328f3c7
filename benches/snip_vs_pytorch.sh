#!/usr/bin/env bash
# SNIP on CPU: `led locate` against the same pass in PyTorch eager + transformers (same model,
# same samples, same machine, same run). Prints both times and the ratio.
#
#   bash benches/snip_vs_pytorch.sh [LAYERS HIDDEN SAMPLES TOKENS]   (default 4 512 32 128)
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${1:-4} HIDDEN=${2:-512} SAMPLES=${3:-32} TOKENS=${4:-128}
DIR=target/snip-bench
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1
cargo build --release -q -p led-merging-cli --features attribution --bin led
rm -rf "$DIR" && mkdir -p "$DIR"
PY=$(python benches/snip_pytorch.py "$DIR" "$LAYERS" "$HIDDEN" "$SAMPLES" "$TOKENS" | grep '^pytorch')
read -r _ PT_SECS PT_TOKENS <<< "$PY"
OURS=$(target/release/led locate --model "$DIR/model" --data "$DIR/data.jsonl" --out "$DIR/scores.safetensors" \
  --samples "$SAMPLES" --device cpu --force | grep '^time')
LED_SECS=$(sed -E 's/.*forward\/backward ([0-9.]+) s.*/\1/' <<< "$OURS")
echo "model: $LAYERS layers, hidden $HIDDEN; $SAMPLES samples, $PT_TOKENS tokens; $(nproc) cores"
echo "pytorch+transformers SNIP loop: ${PT_SECS} s"
echo "led locate SNIP loop:           ${LED_SECS} s   ($OURS)"
python -c "print(f'led locate / pytorch time ratio: {$LED_SECS/$PT_SECS:.2f} (below 1 = faster)')"
