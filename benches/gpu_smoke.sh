#!/usr/bin/env bash
# GPU smoke test of `led locate --device cuda` (docs/gpu.md): on one H100/H200 in under 10
# minutes, with a `led` built by `make gpu-build` and the machine's own PyTorch + transformers.
#
#   benches/gpu_smoke.sh LED OUT_DIR           # on the GPU machine
#   benches/gpu_smoke.sh LED OUT_DIR --tiny    # anywhere: tiny widths on the CPU (rehearsal)
#
# Stage A, a random bf16 Llama with Llama-3-8B widths and 2 layers (1.5 B parameters), 64 samples
# of 256 tokens: SNIP in one pass, SNIP in forced layer groups (--max-memory), Wanda; the score
# file is reused for the same request and refused for another compute mode; a bad device index
# is a clean error; scores compared with transformers' bf16 SNIP (relative L1 and top-10 %
# overlap per tensor) and one pass with groups. Stage B, the same widths with 32 layers (8.0 B),
# 128 samples of 256 tokens: SNIP in one pass with its peak GPU memory, tokens/s and time split,
# against transformers; then SNIP in forced layer groups (--max-memory 45GB, 32 samples). Models live under $WORK (default /tmp/led-gpu-smoke) and are deleted after each
# stage. Results: OUT_DIR/{log.txt,stage_a.json,stage_b.json}. Exit status: the number of failed
# checks.
set -uo pipefail
led=$(realpath "$1") out=$(realpath -m "$2") tiny=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
work=${WORK:-/tmp/led-gpu-smoke}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
failed=0
check() { # check NAME CONDITION-EXIT-STATUS
    if [[ $2 == 0 ]]; then echo "PASS $1"; else echo "FAIL $1"; failed=$((failed + 1)); fi
}
if [[ $tiny == --tiny ]]; then
    device=cpu size=(--tiny --device cpu) layers_b=4 samples_a=8 samples_b=8 tokens=32 groups_budget=1750KB groups_budget_b=3MB
else
    device=cuda size=(--device cuda) layers_b=32 samples_a=64 samples_b=128 tokens=256 groups_budget=8GB groups_budget_b=45GB
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
fi
"$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
# Peak device memory of a command, polled every 100 ms (nvidia-smi: whole-GPU usage, the CUDA
# context and the caching allocator's reserve included).
peak_run() { # peak_run LOG CMD...
    local log=$1; shift
    if [[ $device == cuda ]]; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$work/mem.log" &
        local poll=$!
    fi
    "$@" > "$log" 2>&1
    local rc=$?
    if [[ $device == cuda ]]; then
        kill $poll; wait $poll 2>/dev/null
        echo "peak GPU memory used: $(sort -n "$work/mem.log" | tail -n 1) MiB"
    fi
    cat "$log"
    return $rc
}
locate() { # locate STAGE_DIR OUT SAMPLES [extra args]
    local d=$1 o=$2 n=$3; shift 3
    "$led" locate --model "$d/model" --data "$d/data.jsonl" --out "$o" --samples "$n" --device "$device" "$@"
}

echo "== stage A: 8B widths, 2 layers, $samples_a samples of $tokens tokens"
rm -rf "$work" && mkdir -p "$work/a"
SECONDS=0
"$py" "$here/gpu_smoke.py" make "$work/a" --layers 2 --samples "$samples_a" --tokens "$tokens" "${size[@]}"
check "A: model written" $?
echo "made in $SECONDS s"
peak_run "$work/a/snip.log" locate "$work/a" "$work/a/snip.safetensors" "$samples_a"
check "A: led locate snip, one pass (budget from CUDA's free memory)" $?
if grep -q "free memory" "$work/a/snip.log"; then
    # Reading CUDA's free memory failed: the rest still runs, under an explicit budget.
    locate "$work/a" "$work/a/snip.safetensors" "$samples_a" --max-memory 100GB
fi
locate "$work/a" "$work/a/snip.safetensors" "$samples_a" | grep -q reused
check "A: the same request reuses the score file" $?
other=cpu; [[ $device == cpu ]] && other=cuda
msg=$("$led" locate --model "$work/a/model" --data "$work/a/data.jsonl" --out "$work/a/snip.safetensors" --samples "$samples_a" --device $other 2>&1)
echo "$msg" | tail -n 2
if [[ $other == cpu ]]; then
    echo "$msg" | grep -q "option.compute: cuda-bf16 ≠ cpu-f32"
    check "A: a score file from another compute mode is refused, naming it" $?
fi
peak_run "$work/a/groups.log" locate "$work/a" "$work/a/groups.safetensors" "$samples_a" --max-memory "$groups_budget"
rc=$?
grep -q "parameter group(s)" "$work/a/groups.log" && ! grep -q " 1 parameter group(s)" "$work/a/groups.log"
check "A: led locate snip, forced layer groups (--max-memory $groups_budget)" $((rc || $?))
peak_run "$work/a/wanda.log" locate "$work/a" "$work/a/wanda.safetensors" "$samples_a" --scorer wanda
check "A: led locate wanda" $?
if [[ $device == cuda ]]; then
    msg=$("$led" locate --model "$work/a/model" --data "$work/a/data.jsonl" --out "$work/a/bad.safetensors" --device cuda:7 2>&1)
    rc=$?
    echo "$msg" | tail -n 1
    [[ $rc == 1 && ! -e $work/a/bad.safetensors ]] && echo "$msg" | grep -q "cuda:7.*not available"
    check "A: a bad device index is a clean error" $?
fi
"$py" "$here/gpu_smoke.py" compare "$work/a" --samples "$samples_a" --device "$device" --out "$out/stage_a.json" \
    --snip "$work/a/snip.safetensors" --wanda "$work/a/wanda.safetensors" \
    --same "$work/a/snip.safetensors" "$work/a/groups.safetensors"
check "A: scores match transformers and one pass matches groups" $?
echo "stage A took $SECONDS s"
rm -rf "$work/a"

if (( SECONDS < ${STAGE_B_BEFORE:-240} )); then
    echo "== stage B: 8B widths, $layers_b layers, $samples_b samples of $tokens tokens"
    mkdir -p "$work/b"
    SECONDS=0
    "$py" "$here/gpu_smoke.py" make "$work/b" --layers "$layers_b" --samples "$samples_b" --tokens "$tokens" "${size[@]}"
    check "B: model written" $?
    echo "made in $SECONDS s"
    peak_run "$work/b/snip.log" locate "$work/b" "$work/b/snip.safetensors" "$samples_b"
    check "B: led locate snip, one pass" $?
    echo "led done at $SECONDS s"
    "$py" "$here/gpu_smoke.py" compare "$work/b" --samples "$samples_b" --device "$device" --out "$out/stage_b.json" \
        --snip "$work/b/snip.safetensors"
    check "B: scores match transformers" $?
    # Forced layer groups on the full model (a quarter of the samples; the one-pass file is gone
    # first: the disk holds the model and one 32 GB score file).
    rm -f "$work/b/snip.safetensors"
    if (( SECONDS < ${GROUPS_B_BEFORE:-330} )); then
        peak_run "$work/b/groups.log" locate "$work/b" "$work/b/groups.safetensors" $((samples_b / 4)) \
            --max-memory "$groups_budget_b"
        rc=$?
        ! grep -q " 1 parameter group(s)" "$work/b/groups.log"
        check "B: led locate snip, forced layer groups (--max-memory $groups_budget_b)" $((rc || $?))
    fi
    echo "stage B took $SECONDS s"
    rm -rf "$work/b"
else
    echo "SKIP stage B: stage A took $SECONDS s"
fi
echo "$failed check(s) failed"
exit $failed
