"""scripts/pack_env.sh: the packed .venv, unpacked elsewhere, runs fairseq and our plugin on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path


def test_pack_env_rejects_a_bad_output_name(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts" / "pack_env.sh"), str(tmp_path / "env.zip")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(f"error: OUT must end in .tar.gz: {tmp_path / 'env.zip'}")


@pytest.mark.slow
def test_packed_venv_runs_fairseq_and_the_plugin_elsewhere(tmp_path):
    archive = tmp_path / "out" / "env.tar.gz"
    had_build_dir = (REPO / "build").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    packed = subprocess.run(["bash", str(REPO / "scripts" / "pack_env.sh"), str(archive)],
                            capture_output=True, text=True, env={**env, "VENV": str(Path(sys.prefix)),
                                                                 "COMPRESS_LEVEL": "1"})
    assert packed.returncode == 0, packed.stderr
    assert sorted(p.name for p in archive.parent.iterdir()) == ["env.tar.gz"]  # no work files left

    unpacked = tmp_path / "env"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(unpacked)], check=True)
    site = next(unpacked.glob("lib/python3*/site-packages"))
    assert not list(site.glob("__editable__*"))  # the project is an ordinary install in there

    # a real fairseq command on a tiny slice of the wiki paragraphs, GPT-2 BPE'd by our tokenizer
    from fairseq_ext.tokenizer import Gpt2Bpe

    bpe = Gpt2Bpe.from_dir(shared_path("gpt2_bpe"))
    lines = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text().splitlines()[:20]
    encoded = [" ".join(map(str, ids)) + "\n" for ids in bpe.encode_batch(lines)]
    (tmp_path / "train.bpe").write_text("".join(encoded))
    script = f"""
        source {unpacked}/bin/activate  # (its prompt code reads an unset PS1: before set -u)
        set -euo pipefail
        fairseq-preprocess --only-source --srcdict {shared_path("gpt2_bpe", "dict.txt")} \\
            --trainpref train.bpe --destdir data-bin --workers 1
        fairseq-hydra-train --help > /dev/null
        python -c "import fairseq_ext, fairseq_ext.checkpoints; print(fairseq_ext.__file__)"
    """
    ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip().splitlines()[-1] == str(site / "fairseq_ext" / "__init__.py")
    assert (tmp_path / "data-bin" / "train.bin").stat().st_size > 0
    assert "train.bpe: 20 sents" in ran.stdout + ran.stderr

    # the source environment is untouched (still the editable install of this checkout), and so is the
    # checkout (no build/ left by building the wheel)
    import fairseq_ext

    assert Path(fairseq_ext.__file__).resolve() == REPO / "fairseq_ext" / "__init__.py"
    assert (REPO / "build").exists() == had_build_dir
