"""scripts/gpu_check.sh --dry-run: the GPU check's whole path (both stages, fairseq and transformers on the
same batches, the report) on the tiny configs, on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import REPO, shared_path


def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    command = ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path),
               "--shared-dir", str(shared_path("gpt2_bpe").parent)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["setting"]["device"] == "cpu" and not report["setting"]["fp16"]
    rows = report["results"]
    assert [(r["stage"], r["side"]) for r in rows] == [
        ("continued pretraining", "fairseq"), ("continued pretraining", "transformers"),
        ("SQuAD fine-tuning", "fairseq"), ("SQuAD fine-tuning", "transformers")]
    for row in rows:
        assert row["words_per_s"] > 0 and row["peak_mb"] > 0 and row["skipped_updates"] == 0
        assert math.isfinite(row["first_loss"]) and math.isfinite(row["last_loss"])
    # the same batches on both sides: the same tokens, and losses of the same random-init scale
    for stage in ("continued pretraining", "SQuAD fine-tuning"):
        ours, theirs = (r for r in rows if r["stage"] == stage)
        assert ours["tokens"] == theirs["tokens"]
        assert abs(ours["first_loss"] - theirs["first_loss"]) < 0.5
    assert "fairseq / transformers words/s" in done.stdout
