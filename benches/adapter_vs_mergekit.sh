#!/usr/bin/env bash
# A merge naming a LoRA adapter (`base+adapter`) with `led merge` and with mergekit (PyPI, in the
# project's venv), same YAML, same run: wall time and peak RSS, against the same merge of peft's
# merged copy with `led` (what applying the adapter costs led), and the largest difference
# between led's two outputs.
#
#   bash benches/adapter_vs_mergekit.sh [HIDDEN,LAYERS,VOCAB]
#
# Uses (or makes) the synthetic family of benches/merge_vs_mergekit.sh; the adapter (rank 16 on
# every attention and MLP projection, random factors) and peft's merged copy of it are made with
# peft. Needs `make venv`. Writes under target/merge-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LED_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH" LIBTORCH_USE_PYTORCH=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
IFS=, read -r HIDDEN LAYERS VOCAB <<< "${1:-1024,12,32000}"
DIR=$PWD/target/merge-bench/h$HIDDEN-l$LAYERS-v$VOCAB
cargo build --release -q -p led-merging-cli --bin led
LED=target/release/led
[ -f "$DIR/base/config.json" ] ||
  cargo run --release -q --example synthetic_family -- "$DIR" "$HIDDEN" "$LAYERS" "$VOCAB" 3
if [ ! -f "$DIR/lora/adapter_config.json" ]; then
  python - "$DIR" <<'PY'
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
d = sys.argv[1]
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(f"{d}/base", dtype=torch.bfloat16)
peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, init_lora_weights=False,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
peft.save_pretrained(f"{d}/lora")
peft.merge_and_unload().save_pretrained(f"{d}/lora-merged")
PY
fi
config() { # first model
  printf 'merge_method: task_arithmetic\nbase_model: %s/base\nmodels:\n' "$DIR"
  for m in "$1" "$DIR/model-2" "$DIR/model-3"; do
    printf '  - model: %s\n    parameters: {weight: 0.7}\n' "$m"
  done
  printf 'dtype: float32\nout_dtype: bfloat16\n'
}
config "$DIR/base+$DIR/lora" > "$DIR/ta-lora.yaml"
config "$DIR/lora-merged" > "$DIR/ta-lora-merged.yaml"
measure() { # label, command...: prints "label seconds peak_MiB"
  local label=$1; shift
  cat "$DIR"/base/*.safetensors "$DIR"/model-*/*.safetensors "$DIR"/lora*/*.safetensors > /dev/null
  /usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > "$DIR/$label.log" 2>&1 || { cat "$DIR/$label.log"; exit 1; }
  read -r secs kib < "$DIR/time.txt"
  printf '%-40s %8.2f s %8d MiB\n' "$label" "$secs" $((kib / 1024))
}
rm -rf "$DIR"/out-adapter-* "$DIR/lora-cache"
echo "# $HIDDEN,$LAYERS,$VOCAB: task arithmetic over base+lora (r 16, every projection) and 2 full models (element-wise: differences are rounding, not selection), $(nproc) cores"
measure "led, base+lora" $LED merge "$DIR/ta-lora.yaml" "$DIR/out-adapter-led" --force
measure "led, peft's merged copy instead" $LED merge "$DIR/ta-lora-merged.yaml" "$DIR/out-adapter-led-copy" --force
measure "mergekit, base+lora" mergekit-yaml "$DIR/ta-lora.yaml" "$DIR/out-adapter-mk" --no-copy-tokenizer \
  --no-write-model-card --quiet --lora-merge-cache "$DIR/lora-cache"
python - "$DIR" <<'PY'
import sys
from safetensors.torch import load_file
from pathlib import Path
d = Path(sys.argv[1])
def load(p):
    out = {}
    for f in sorted(p.glob("*.safetensors")):
        out.update(load_file(f))
    return out
a, b, m = (load(d / n) for n in ["out-adapter-led", "out-adapter-led-copy", "out-adapter-mk"])
def worst(x, y):
    return max(((x[k].float() - y[k].float()).abs().max() / y[k].float().abs().max().clamp_min(1e-12)).item() for k in y)
print(f"largest relative difference: led base+lora vs led on the merged copy {worst(a, b):.1e}; vs mergekit {worst(a, m):.1e}")
PY
rm -rf "$DIR"/out-adapter-* "$DIR/lora-cache"
