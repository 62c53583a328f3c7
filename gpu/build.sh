#!/usr/bin/env bash
# Build a stripped `led` for a GPU machine whose PyTorch is 2.11 (CUDA 13): tch 0.24 and
# torch-sys 0.24 (the pair made for libtorch 2.11) instead of the workspace's 0.26 (libtorch 2.13).
# Cargo cannot hold two versions of a crate that links libtorch in one resolve, so this builds a
# copy of the working tree whose workspace manifest pins 0.24, with its own lockfile
# (gpu/Cargo.lock, committed; `gpu/build.sh --update-lock` refreshes it). See docs/gpu.md.
#
#   gpu/build.sh VENV OUT_BINARY [--update-lock]
#
# VENV holds PyPI's torch==2.11.0 (with its CUDA libraries, which the linker resolves
# libtorch_cuda against). The binary finds libtorch at run time through LD_LIBRARY_PATH
# (the GPU machine's torch/lib); its RPATH points at VENV, absent there.
set -euo pipefail
venv=$1 out=$2 update=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/target/gpu-build
src=$work/src
rm -rf "$src" && mkdir -p "$src"
# The tracked and new (not ignored) files of the working tree.
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$root" && xargs -0 cp --parents -t "$src" 2>/dev/null || true)
sed -i -e 's/^tch = "0.26"$/tch = "0.24"/' -e 's/^torch-sys = "0.26"$/torch-sys = "0.24"/' "$src/Cargo.toml"
grep -q '^tch = "0.24"$' "$src/Cargo.toml" && grep -q '^torch-sys = "0.24"$' "$src/Cargo.toml" || {
    echo "gpu/build.sh: Cargo.toml's tch/torch-sys lines changed; update this script" >&2
    exit 1
}
locked=--locked
if [[ $update == --update-lock ]]; then
    cp "$root/Cargo.lock" "$src/Cargo.lock"
    (cd "$src" && cargo update -p tch -p torch-sys)
    cp "$src/Cargo.lock" "$root/gpu/Cargo.lock"
else
    cp "$root/gpu/Cargo.lock" "$src/Cargo.lock"
fi
export PATH=$venv/bin:$PATH LIBTORCH_USE_PYTORCH=1
unset LIBTORCH_BYPASS_VERSION_CHECK LIBTORCH LD_LIBRARY_PATH
cd "$src"
CARGO_TARGET_DIR=$work/target cargo build --release $locked -p led-merging-cli --features attribution --bin led
mkdir -p "$(dirname "$out")"
strip -o "$out" "$work/target/release/led"
ls -l "$out"
