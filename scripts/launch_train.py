"""Checks a fairseq training run, then runs fairseq-hydra-train on it (one process or data-parallel):
see fairseq_ext/training/launch.py, or --help."""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":
    run_cli("fairseq_ext.training.launch:main")
