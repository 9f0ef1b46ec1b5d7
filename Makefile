# The workflow's entry points. Everything runs inside .venv (made by `make setup`).
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
PYTEST_ARGS ?=

.PHONY: help setup test lint demo bench pack-env gpt2-bpe clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

setup:  ## create .venv: torch, fairseq (cached wheel), transformers, this project (idempotent)
	@VENV=$(VENV) bash scripts/setup_env.sh

lint: setup  ## ruff check
	$(VENV)/bin/ruff check .

test: setup lint  ## the test suite (reads ../shared; no network)
	$(PY) -m pytest $(PYTEST_ARGS)

gpt2-bpe:  ## fetch encoder.json, vocab.bpe, dict.txt into gpt2_bpe/
	bash scripts/get_gpt2_bpe.sh gpt2_bpe

pack-env: setup  ## pack .venv into roberta-squad2-env.tar.gz for a cluster
	bash scripts/pack_env.sh roberta-squad2-env.tar.gz

clean:  ## remove caches (keeps .venv, data-bin and runs)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
