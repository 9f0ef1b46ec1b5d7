"""Benchmark modules run by scripts/bench.py: each exposes ``run(work_dir, shared_dir, quick=False)``."""
