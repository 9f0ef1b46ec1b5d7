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
                            capture_output=True, text=True,
                            env={**env, "VENV": str(Path(sys.prefix)), "COMPRESS_LEVEL": "1",
                                 "ALLOW_CPU_TORCH": "1"})  # this machine's torch is CPU-only
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


def fake_torch(directory: Path, version: str, cuda: str | None) -> Path:
    """A package named torch that only reports its build (what pack_env.sh's check reads), ahead of the
    real one on PYTHONPATH."""
    (directory / "torch").mkdir(parents=True)
    (directory / "torch" / "__init__.py").write_text(
        f"import types\n__version__ = {version!r}\n"
        f"version = types.SimpleNamespace(cuda={cuda!r}, hip=None)\n")
    return directory


def test_pack_env_refuses_a_cpu_torch_before_any_work(tmp_path):
    import torch

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    if torch.version.cuda is not None:  # this machine's torch is a CUDA build: pack_env.sh sees a CPU one
        env["PYTHONPATH"] = str(fake_torch(tmp_path / "fake", "2.13.0+cpu", None))
    out = tmp_path / "out" / "env.tar.gz"
    result = subprocess.run(["bash", str(REPO / "scripts" / "pack_env.sh"), str(out)], capture_output=True,
                            text=True, env={**env, "VENV": str(Path(sys.prefix))}, timeout=120)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"pack_env.sh: error: {os.path.realpath(sys.prefix)} has a CPU-only torch (")
    assert message.endswith("packed, it would train on CPU on the cluster. Build the environment on a GPU "
                            "node, or with PyPI's default torch wheels (CUDA; see docs/training.md"
                            "#packing-the-environment-for-a-cluster), or pass ALLOW_CPU_TORCH=1 to pack it "
                            "anyway")
    assert not out.parent.exists()  # refused before any work


def test_pack_check_names_the_driver_a_cuda_torch_needs(tmp_path, monkeypatch):
    from fairseq_ext.commands import pack_check

    for version, cuda, driver in (("2.13.0+cu130", "13.0", "580"), ("2.13.0+cu126", "12.6", "525.60.13")):
        monkeypatch.setitem(sys.modules, "torch", None)
        monkeypatch.syspath_prepend(str(fake_torch(tmp_path / cuda, version, cuda)))
        monkeypatch.delitem(sys.modules, "torch")
        assert pack_check.torch_lines(False) == [f"torch {version} (CUDA {cuda}): the nodes need an NVIDIA "
                                                 f"driver >= {driver}"]
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.syspath_prepend(str(fake_torch(tmp_path / "cpu", "2.13.0+cpu", None)))
    monkeypatch.delitem(sys.modules, "torch")
    assert pack_check.torch_lines(True) == ["packing a CPU-only torch (2.13.0+cpu) as asked "
                                            "(ALLOW_CPU_TORCH=1): it will not use the cluster's GPUs"]


def test_pack_check_names_an_interpreter_outside_the_env(tmp_path, monkeypatch):
    from fairseq_ext.commands.pack_check import interpreter_warning

    linked = tmp_path / "linked"
    (linked / "bin").mkdir(parents=True)
    (linked / "bin" / "python").symlink_to(sys.executable)
    target = Path(os.path.realpath(sys.executable))
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: target.parents[1]))
    warning = interpreter_warning(linked)
    assert warning.startswith(f"{linked}/bin/python links to {target}, outside the environment (a home "
                              "directory, which the cluster's nodes usually do not have): the unpacked "
                              "environment runs only where that path exists.")
    assert "PYTHON_PREFIX=DIR" in warning and "conda-pack" in warning

    own = tmp_path / "own"
    (own / "bin").mkdir(parents=True)
    (own / "bin" / "python3.11").write_text("")
    (own / "bin" / "python").symlink_to("python3.11")  # a conda env's (or a copied) interpreter
    assert interpreter_warning(own) == ""
