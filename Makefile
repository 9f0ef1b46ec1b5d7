# The workflow's entry points. Everything runs inside .venv (made by `make setup`).
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
# tokenizer directory; unset, the tools look in $$GPT2_BPE_DIR, then the checkout's gpt2_bpe/
GPT2_BPE ?=
BPE_FLAG = $(if $(GPT2_BPE),--gpt2-bpe $(GPT2_BPE))
REAL ?=
DEMO_ARGS ?=
BENCH_ARGS ?=
CORPUS ?=
CORPUS_NAME ?= $(basename $(notdir $(patsubst %/,%,$(firstword $(CORPUS)))))
SPLIT_ARGS ?= --valid-docs 2 --test-docs 1
SQUAD_TRAIN ?= train-v2.0.json
SQUAD_DEV ?= dev-v2.0.json
ROBERTA ?= roberta.base/model.pt
PYTEST_ARGS ?=
# pytest processes (pytest-xdist): the tests are single-threaded, one per core; 0 = in this process
TEST_WORKERS ?= 2
TEST_DATA_DIR ?=
# $(call require,VAR,EXAMPLE): a target needing VAR stops, before any work, saying which variable with an example
require = $(if $($(1)),,$(error make $@ needs $(1)=..., e.g. make $@ $(1)=$(2)))

.PHONY: help setup test lint fuzz test-data demo demo-zh learn-check bench corpus pretrain squad2-data finetune-squad2 predict-squad2 \
	export-hf evaluate-hf import-hf checkpoint pack-env cluster-test check-base gpu-check gpt2-bpe clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "%-16s %s\n", $$1, $$2 }'

setup:  ## create .venv: torch, fairseq (cached wheel), transformers, this project (idempotent)
	@VENV=$(VENV) bash scripts/setup_env.sh
	@$(MAKE) --no-print-directory gpt2-bpe

lint: setup  ## ruff check
	$(VENV)/bin/ruff check .

# One torch thread per process: on 2 cores, oversubscribed threads made training 10-20x slower.
# The test data: $SHARED_DIR, else ../shared, else the user cache (fetched once); it says which.
test: setup lint  ## the test suite (test data: SHARED_DIR, ../shared, else fetched once into a cache)
	@shared_dir=$$($(PY) -m tests.testdata resolve) && \
	  SHARED_DIR="$$shared_dir" OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# Pre-release check: the fuzz test of the command line with FUZZ_EXAMPLES new random examples per command
# (make test runs 10 fixed ones); 100 took 25 s on 2 cores (400: over 15 minutes, docs/outputs-and-errors.md).
FUZZ_EXAMPLES ?= 100
fuzz: setup  ## fuzz every roberta-* command's options (FUZZ_EXAMPLES=N per command, new ones each run)
	@shared_dir=$$($(PY) -m tests.testdata resolve) && \
	  SHARED_DIR="$$shared_dir" OMP_NUM_THREADS=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 \
	  $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal tests/test_cli_fuzz.py -k promise $(PYTEST_ARGS)

test-data:  ## fetch + verify the test data into TEST_DATA_DIR (default ~/.cache/roberta-squad2/test-data)
	bash scripts/get_test_data.sh $(TEST_DATA_DIR)

demo: setup  ## whole workflow on the learnable QA set, tiny model, minutes on 2 cores (REAL=1: real data)
	$(PY) scripts/demo.py --shared-dir $(SHARED) $(if $(REAL),--real) $(DEMO_ARGS)

learn-check: setup  ## learnable QA set: pretrained vs scratch, fairseq vs transformers (3 seeds each), one table
	$(PY) scripts/demo.py --seeds 3 --shared-dir $(SHARED) $(DEMO_ARGS)

demo-zh: setup  ## the Chinese path (SentencePiece, CMRC 2018 metric) on the Chinese learnable set (REAL=1: CMRC trial)
	$(PY) scripts/demo.py --lang zh --shared-dir $(SHARED) $(if $(REAL),--real) $(DEMO_ARGS)

bench: setup  ## ratios ours vs fairseq/transformers, one table -> runs/bench-TIMESTAMP/bench.json
	$(PY) scripts/bench.py --shared-dir $(SHARED) $(BENCH_ARGS)

corpus: setup  ## split CORPUS=FILE|DIR by documents, BPE + binarize into data-bin/CORPUS_NAME (default: its name)
	$(call require,CORPUS,mytexts.txt)
	$(PY) scripts/split_data.py --inputs $(CORPUS) --outdir data/$(CORPUS_NAME) $(SPLIT_ARGS)
	$(PY) scripts/prepare_corpus.py --raw-dir data/$(CORPUS_NAME) $(BPE_FLAG) --destdir data-bin/$(CORPUS_NAME)

pretrain: setup  ## continue pretraining: DATA=data-bin/x SAVE=runs/pretrain [RESTORE=..] [CONFIG=tiny] [ARGS='k=v']
	$(call require,DATA,data-bin/mycorpus)$(call require,SAVE,runs/pretrain)
	scripts/pretrain.sh --config $(or $(CONFIG),roberta_base_continue) --data $(DATA) --save-dir $(SAVE) \
	  $(if $(RESTORE),--restore $(RESTORE)) $(ARGS)

squad2-data: setup  ## SQuAD v2 features: SQUAD_TRAIN=.. SQUAD_DEV=.. -> data-bin/squad2
	$(PY) scripts/prepare_squad2.py --train $(SQUAD_TRAIN) --valid $(SQUAD_DEV) $(BPE_FLAG) --destdir data-bin/squad2

finetune-squad2: setup  ## fine-tune ROBERTA=model.pt on data-bin/squad2 (configs/finetuning/squad2_base.yaml)
	PYTHON=$(PY) bash scripts/finetune_squad2.sh --config squad2_base --data data-bin/squad2 --restore $(ROBERTA) \
	  --save-dir runs/squad2_base

predict-squad2: setup  ## answers + official metric on SQUAD_DEV from runs/squad2_base/checkpoint_best.pt
	$(PY) scripts/predict_squad2.py --checkpoint runs/squad2_base/checkpoint_best.pt --data $(SQUAD_DEV) \
	  $(BPE_FLAG) --out runs/squad2_base/predictions

export-hf: setup  ## fairseq checkpoint -> verified HF directory: CKPT=... OUT=... [DICT=dict.txt]
	$(call require,CKPT,runs/squad2_base/checkpoint_best.pt)$(call require,OUT,hf/roberta-squad2)
	$(PY) convert/fairseq_to_hf.py --checkpoint $(CKPT) $(BPE_FLAG) --out $(OUT) $(if $(DICT),--dict $(DICT))

evaluate-hf: setup  ## SQuAD evaluation with transformers only: MODEL=... DATA=... OUT=...
	$(call require,MODEL,hf/roberta-squad2)$(call require,DATA,dev-v2.0.json)$(call require,OUT,runs/eval-hf)
	$(PY) convert/evaluate_hf.py --model $(MODEL) --data $(DATA) --out $(OUT)

import-hf: setup  ## HF RoBERTa (directory or cached hub id) -> verified fairseq dir: MODEL=... OUT=...
	$(call require,MODEL,FacebookAI/roberta-base)$(call require,OUT,roberta.base-from-hf)
	$(PY) convert/hf_to_fairseq.py --model $(MODEL) $(BPE_FLAG) --out $(OUT)

# Pre-release check (6 to 12 minutes on a loaded 2-core machine, half of it packing the environment).
cluster-test: setup  ## SLURM for real: a 1-node cluster here runs the sbatch scripts from the packed env (root)
	@shared_dir=$$($(PY) -m tests.testdata resolve) && \
	  OMP_NUM_THREADS=1 $(PY) .ci/cluster_test.py --shared-dir "$$shared_dir"

# Pre-release check (about 10-15 minutes on 2 cores): roberta-base size, random init, every stage on CPU.
check-base: setup  ## base configs, random 125M model, CPU: every stage a few updates; words/s, memory, sizes
	@shared_dir=$$($(PY) -m tests.testdata resolve) && \
	  OMP_NUM_THREADS=1 $(PY) scripts/check_base.py --shared-dir "$$shared_dir"

gpu-check: setup  ## on one GPU: fairseq vs transformers words/s and peak memory, roberta-base size, fp16
	@shared_dir=$$($(PY) -m tests.testdata resolve) && \
	  $(PY) scripts/gpu_check.py --shared-dir "$$shared_dir"

checkpoint:  ## fairseq's released NAME=roberta.base|roberta.large|xlmr.base|xlmr.large -> ./NAME [DEST=..] [COPY_FROM=..]
	bash scripts/get_checkpoint.sh $(or $(NAME),roberta.base) $(if $(DEST),--dest $(DEST)) \
	  $(if $(COPY_FROM),--copy-from $(COPY_FROM))

gpt2-bpe:  ## gpt2_bpe/encoder.json rebuilt offline from the checkout's vocab.bpe; all three sha256-checked
	@test -s gpt2_bpe/encoder.json || $(PY) -m fairseq_ext.commands.gpt2_encoder gpt2_bpe/vocab.bpe gpt2_bpe/encoder.json
	@cd gpt2_bpe && sha256sum --quiet --check SHA256SUMS

pack-env: setup  ## pack .venv (or the active conda env) into roberta-squad2-env.tar.gz for a cluster (CUDA torch; ALLOW_CPU_TORCH=1)
	COMPRESS_LEVEL=$(or $(COMPRESS_LEVEL),4) ALLOW_CPU_TORCH=$(ALLOW_CPU_TORCH) \
	  bash scripts/pack_env.sh roberta-squad2-env.tar.gz

clean:  ## remove caches (keeps .venv, data-bin and runs)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
