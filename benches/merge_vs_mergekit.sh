#!/usr/bin/env bash
# Merge speed and peak memory of `led merge` against mergekit (PyPI, in the project's venv), same
# synthetic models, same YAML, same run, plus the I/O floor measured in that run: reading every
# input once from the page cache, and writing and syncing one output of the merged size.
#
#   [METHODS="ties slerp"] [SHAPES="1024,12,32000 768,2,128256"] bash benches/merge_vs_mergekit.sh
#
# SHAPES: HIDDEN,LAYERS,VOCAB per family (default: the 12-layer, 32000-token family of the
# performance issue, and a Llama-3-sized 128256-token vocabulary on 2 layers). Every method both
# tools have runs on each, then LED (3 tasks, 6 score files) and ties on one thread with `led`
# only. Needs `make venv` (torch + mergekit). Writes under target/merge-bench/.
#
# LED_BASELINE=PATH also times another `led` binary (an earlier commit's release build) on every
# method in the same run: REPEAT (default 5) runs of each binary, alternating, and the medians'
# ratio (this build / baseline): how a refactor is held to "speed within noise".
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
SHAPES=${SHAPES:-1024,12,32000 768,2,128256}
METHODS=${METHODS:-linear task_arithmetic ties dare_linear dare_ties breadcrumbs breadcrumbs_ties della della_linear model_stock slerp}
cargo build --release -q -p led-merging-cli --bin led
LED=target/release/led

models() { # DIR, per-model parameters line or none
  for m in 1 2 3; do
    printf '  - model: %s/model-%s\n' "$1" "$m"
    if [ -n "$2" ]; then printf '    parameters: {%s}\n' "$2"; fi
  done
}
configs() { # DIR: one YAML per method
  local dir=$1 body base
  for method in $METHODS; do
    base="base_model: $dir/base"
    case $method in
      linear) body=$(models "$dir" "weight: 1.0"); base="" ;;
      task_arithmetic) body=$(models "$dir" "weight: 0.5") ;;
      ties|dare_ties|dare_linear) body=$(models "$dir" "weight: 0.7, density: 0.5") ;;
      della|della_linear) body=$(models "$dir" "weight: 0.7, density: 0.5, epsilon: 0.1") ;;
      breadcrumbs|breadcrumbs_ties) body=$(models "$dir" "weight: 0.7, density: 0.9, gamma: 0.01") ;;
      model_stock) body=$(models "$dir" "") ;;
      slerp) body=$(printf '  - model: %s/base\n  - model: %s/model-1\nparameters: {t: 0.4}' "$dir" "$dir") ;;
      *) echo "unknown method $method"; exit 2 ;;
    esac
    printf 'merge_method: %s\n%s\nmodels:\n%s\ndtype: float32\nout_dtype: bfloat16\n' \
      "$method" "$base" "$body" > "$dir/$method.yaml"
  done
  cat > "$dir/led.yaml" <<YAML
merge_method: led
base_model: $dir/base
models:
$(for m in 1 2 3; do printf '  - model: %s/model-%s\n    parameters: {weight: 1.0, density: %s}\n    scores: {model: %s/scores/model-%s.safetensors, base: %s/scores/base-%s.safetensors}\n' "$dir" $m "0.$((m + 2))" "$dir" $m "$dir" $m; done)
out_dtype: bfloat16
YAML
}
measure() { # DIR, label, command...: prints "label seconds peak_kib"
  local dir=$1 label=$2; shift 2
  # Every input page-cached first: mergekit's runs can evict the score files LED reads.
  cat "$dir"/base/*.safetensors "$dir"/model-*/*.safetensors "$dir"/scores/*.safetensors > /dev/null
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" > "$dir/$label.log" 2>&1 || { cat "$dir/$label.log"; exit 1; }
  read -r secs kib < "$dir/time.txt"
  echo "$label $secs $kib"
}
ratio() { python3 -c "print(f'{$1:.2f}')"; }
median() { python3 -c "import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
versus_baseline() { # DIR, label, config: this build and LED_BASELINE alternately, REPEAT times each
  local dir=$1 label=$2 cfg=$3 new=() old=() newm=() oldm=()
  for _ in $(seq "${REPEAT:-5}"); do
    set -- $(measure "$dir" "ab_new_$label" $LED merge "$cfg" "$dir/out-ab" --force); new+=("$2"); newm+=("$3")
    set -- $(measure "$dir" "ab_old_$label" "$LED_BASELINE" merge "$cfg" "$dir/out-ab" --force); old+=("$2"); oldm+=("$3")
  done
  rm -rf "$dir/out-ab"
  local n o
  n=$(median "${new[@]}") o=$(median "${old[@]}")
  printf '  vs baseline, medians of %s alternating runs: %.2f s vs %.2f s (time ratio %s; peak %d vs %d MiB)\n' \
    "${REPEAT:-5}" "$n" "$o" "$(ratio "$n/$o")" $(( $(median "${newm[@]}" | cut -d. -f1) / 1024 )) $(( $(median "${oldm[@]}" | cut -d. -f1) / 1024 ))
}

for shape in $SHAPES; do
  IFS=, read -r HIDDEN LAYERS VOCAB <<< "$shape"
  DIR=target/merge-bench/h$HIDDEN-l$LAYERS-v$VOCAB
  [ -f "$DIR/model-3/model.safetensors.index.json" ] || [ -f "$DIR/model-3/model.safetensors" ] ||
    cargo run --release -q --example synthetic_family -- "$DIR" "$HIDDEN" "$LAYERS" "$VOCAB" 3
  configs "$DIR"
  # The floor, this run: every input read once from the page cache (after a warm-up read), and
  # an output of the merged size written and synced.
  cat "$DIR"/base/*.safetensors "$DIR"/model-*/*.safetensors > /dev/null
  OUT_BYTES=$(du -cb "$DIR"/base/*.safetensors | tail -1 | cut -f1)
  READ=$( { /usr/bin/time -f "%e" cat "$DIR"/base/*.safetensors "$DIR"/model-*/*.safetensors > /dev/null; } 2>&1 )
  WRITE=$( { /usr/bin/time -f "%e" sh -c "head -c $OUT_BYTES /dev/zero > '$DIR/floor.bin' && sync '$DIR/floor.bin'"; } 2>&1 )
  rm -f "$DIR/floor.bin"
  FLOOR=$(python3 -c "print($READ + $WRITE)")
  echo "# $shape: $(du -sh "$DIR/base" | cut -f1) per input (BF16), $(nproc) cores; floor: read ${READ} s + write ${WRITE} s = ${FLOOR} s"
  printf '%-18s %9s %9s %9s %9s %8s %8s %9s\n' method led_s mk_s led_MiB mk_MiB faster mem_ratio vs_floor
  for method in $METHODS; do
    set -- $(measure "$DIR" "led_$method" $LED merge "$DIR/$method.yaml" "$DIR/out-led-$method" --force); LS=$2 LM=$3
    set -- $(measure "$DIR" "mergekit_$method" mergekit-yaml "$DIR/$method.yaml" "$DIR/out-mk-$method" --no-copy-tokenizer --no-write-model-card --quiet); MS=$2 MM=$3
    printf '%-18s %9.2f %9.2f %9d %9d %8s %8s %9s\n' "$method" "$LS" "$MS" $((LM / 1024)) $((MM / 1024)) \
      "$(ratio "$MS/$LS")x" "$(ratio "$LM/$MM")" "$(ratio "$LS/$FLOOR")x"
    [ -z "${LED_BASELINE:-}" ] || versus_baseline "$DIR" "$method" "$DIR/$method.yaml"
    rm -rf "$DIR/out-led-$method" "$DIR/out-mk-$method" "$DIR/out-base-$method"
  done
  set -- $(measure "$DIR" led_led $LED merge "$DIR/led.yaml" "$DIR/out-led-led" --force)
  printf '%-18s %9.2f %9s %9d %9s %8s %8s %9s\n' "led (led only)" "$2" - $(($3 / 1024)) - - - "$(ratio "$2/$FLOOR")x"
  [ -z "${LED_BASELINE:-}" ] || versus_baseline "$DIR" led "$DIR/led.yaml"
  if [ -f "$DIR/ties.yaml" ]; then
    set -- $(measure "$DIR" led_ties_1 $LED merge "$DIR/ties.yaml" "$DIR/out-led-ties-1" --force --threads 1)
    printf '%-18s %9.2f %9s %9d\n' "ties, 1 thread" "$2" - $(($3 / 1024))
  fi
  rm -rf "$DIR"/out-*
done
