#!/usr/bin/env bash
# Merge speed and peak memory of `led merge` against mergekit (PyPI, in the project's venv),
# same synthetic models, same YAML, same run. Prints wall time, peak RSS and the ratios.
#
#   [METHODS="ties slerp"] bash benches/merge_vs_mergekit.sh [HIDDEN LAYERS VOCAB]
#       (default 1024 8 8192: ~130M params; every method both tools have)
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
# The methods both tools implement (METHODS to pick some), then LED and one thread.
METHODS=${METHODS:-task_arithmetic ties dare_ties breadcrumbs model_stock slerp}
models() { # per-model parameters line, or none
  for m in 1 2 3; do
    printf '  - model: %s/model-%s\n' "$DIR" "$m"
    if [ -n "$1" ]; then printf '    parameters: {%s}\n' "$1"; fi
  done
}
for method in $METHODS; do
  case $method in
    task_arithmetic) body=$(models "weight: 0.5") ;;
    ties|dare_ties) body=$(models "weight: 0.7, density: 0.5") ;;
    breadcrumbs) body=$(models "weight: 0.7, density: 0.9, gamma: 0.01") ;;
    model_stock) body=$(models "") ;;
    slerp) body=$(printf '  - model: %s/base\n  - model: %s/model-1\nparameters: {t: 0.4}' "$DIR" "$DIR") ;;
    *) echo "unknown method $method"; exit 2 ;;
  esac
  printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n%s\ndtype: float32\nout_dtype: bfloat16\n' \
    "$method" "$DIR" "$body" > "$DIR/$method.yaml"
done
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
RUNS=() RATIOS=()
for method in $METHODS; do
  L=$(measure "led_$method" target/release/led merge "$DIR/$method.yaml" "$DIR/out-led-$method" --force)
  M=$(measure "mergekit_$method" mergekit-yaml "$DIR/$method.yaml" "$DIR/out-mk-$method" --no-copy-tokenizer --no-write-model-card --quiet)
  RUNS+=("$L" "$M")
  set -- $L; LS=$2 LM=$3; set -- $M; MS=$2 MM=$3
  RATIOS+=("$(python3 -c "print(f'$method: led-merging is {$MS/$LS:.2f}x faster than mergekit, peak RSS ratio (led/mergekit) {$LM/$MM:.2f}')")")
done
RUNS+=("$(measure led_led target/release/led merge "$DIR/led.yaml" "$DIR/out-led-led" --force)")
if [ -f "$DIR/ties.yaml" ]; then
  RUNS+=("$(measure led_ties_1_thread target/release/led merge "$DIR/ties.yaml" "$DIR/out-led-ties-1" --force --threads 1)")
fi
printf '%-26s %10s %14s\n' run seconds "peak RSS MiB"
for r in "${RUNS[@]}"; do
  set -- $r; printf '%-26s %10.2f %14.0f\n' "$1" "$2" "$(( $3 / 1024 ))"
done
printf '%s\n' "${RATIOS[@]}"
