# `make demo` and `make test` work on a fresh CPU machine: they create .venv and install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU machines: these two lie on local disk (CUDA builds that run on the CPU; controlnet-aux
# needs torchvision). See ../shared/reference/cpu-stack.md. Override for another machine.
TORCH ?= torch==2.14.1 torchvision==0.29.1
VOCAB := .cache/clip/bpe_simple_vocab_16e6.txt.gz

GPU_SITE ?= /tmp/gpu-site
WHEELS ?= gpu-wheels

.PHONY: install demo test lint format bench clean gpu-wheels gpu-test system-packages

install: $(STAMP) $(VOCAB) system-packages

# The trainings API's real services (tests start them; nothing runs as a system service).
system-packages:
	@command -v docker-registry >/dev/null && command -v redis-server >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		docker-registry redis-server >/dev/null; }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,api]'
	touch $@

$(VOCAB): | $(STAMP)
	$(BIN)/python -m buildkit.clip_vocab fetch

demo: install
	$(BIN)/python -m buildkit.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.train $(if $(PEER_SCRIPTS),--peer-script $(PEER_SCRIPTS)/train_dreambooth.py)
	$(BIN)/python -m bench.infer
	$(BIN)/python -m bench.api

# The GPU lane. Here: `make gpu-wheels` downloads what a bare GPU machine lacks. There (torch
# but no diffusers, cog…, no network): `make gpu-test` installs them offline and runs the tests
# marked gpu. See README, "GPU test lane".
gpu-wheels: install
	$(BIN)/python -m buildkit.gpu_wheels fetch $(WHEELS)

gpu-test:
	python3 -m buildkit.gpu_wheels install $(WHEELS) $(GPU_SITE)
	PYTHONPATH=$(GPU_SITE):$(CURDIR) python3 -m pytest -m gpu tests/gpu -v -p no:cacheprovider

clean:
	rm -rf work build demo-output .cog .pytest_cache .ruff_cache
