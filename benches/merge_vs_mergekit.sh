#!/usr/bin/env bash
# Merge speed and peak memory of `led merge` against mergekit (PyPI, in the project's venv),
# same synthetic models, same YAML, same run. Prints wall time, peak RSS and the ratios.
#
#   bash benches/merge_vs_mergekit.sh [HIDDEN LAYERS VOCAB]     (default 1024 8 8192: ~130M params)
#
# Needs `make venv` (torch + mergekit). Writes under target/merge-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
HIDDEN=${1:-1024} LAYERS=${2:-8} VOCAB=${3:-8192}
DIR=target/merge-bench
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cargo build --release -q -p led-cli --bin led
cargo run --release -q --example synthetic_family -- "$DIR" "$HIDDEN" "$LAYERS" "$VOCAB" 3
cat > "$DIR/ties.yaml" <<YAML
merge_method: ties
base_model: $DIR/base
models:
  - model: $DIR/model-1
    parameters: {weight: 1.0, density: 0.5}
  - model: $DIR/model-2
    parameters: {weight: 0.7, density: 0.5}
  - model: $DIR/model-3
    parameters: {weight: 0.5, density: 0.5}
dtype: float32
out_dtype: bfloat16
YAML
cat > "$DIR/led.yaml" <<YAML
merge_method: led
base_model: $DIR/base
models:
$(for m in 1 2 3; do printf '  - model: %s/model-%s\n    parameters: {weight: 1.0, density: %s}\n    scores: {model: %s/scores/model-%s.safetensors, base: %s/scores/base-%s.safetensors}\n' "$DIR" $m "0.$((m + 2))" "$DIR" $m "$DIR" $m; done)
out_dtype: bfloat16
YAML
measure() { # label, command...: prints "label seconds peak_kib"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > "$DIR/$label.log" 2>&1 || { cat "$DIR/$label.log"; exit 1; }
  read -r secs kib < "$DIR/time.txt"
  echo "$label $secs $kib"
}
sync
echo "# model: $(du -sh "$DIR/base" | cut -f1) per input (BF16), $(nproc) cores"
R1=$(measure led_ties target/release/led merge "$DIR/ties.yaml" "$DIR/out-led-ties" --force)
R2=$(measure mergekit_ties mergekit-yaml "$DIR/ties.yaml" "$DIR/out-mk-ties" --no-copy-tokenizer --no-write-model-card --quiet)
R3=$(measure led_led target/release/led merge "$DIR/led.yaml" "$DIR/out-led-led" --force)
R4=$(measure led_ties_1_thread target/release/led merge "$DIR/ties.yaml" "$DIR/out-led-ties-1" --force --threads 1)
printf '%-20s %10s %14s\n' run seconds "peak RSS MiB"
for r in "$R1" "$R2" "$R3" "$R4"; do
  set -- $r; printf '%-20s %10.2f %14.0f\n' "$1" "$2" "$(( $3 / 1024 ))"
done
set -- $R1; LS=$2 LM=$3; set -- $R2; MS=$2 MM=$3
python3 -c "print(f'ties: led-merging is {$MS/$LS:.2f}x faster than mergekit, peak RSS ratio (led/mergekit) {$LM/$MM:.2f}')"
