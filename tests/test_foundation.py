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
    assert sorted(tracked) == ["data-bin/.gitignore", "data-bin/README.md", "gpt2_bpe/.gitignore",
                               "gpt2_bpe/LICENSE", "gpt2_bpe/README.md", "gpt2_bpe/SHA256SUMS",
                               "gpt2_bpe/dict.txt", "gpt2_bpe/vocab.bpe"]  # encoder.json: rebuilt


def test_setup_is_idempotent_and_fast_the_second_time():
    env = dict(os.environ, VENV=sys.prefix)
    result = subprocess.run(["bash", "scripts/setup_env.sh"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_setup_answers_help_and_refuses_arguments_without_installing():
    env = dict(os.environ, VENV="/nonexistent/venv")  # would be created if the script went on
    shown = subprocess.run(["bash", "scripts/setup_env.sh", "--help"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: scripts/setup_env.sh")
    assert "WHEEL_CACHE=DIR" in shown.stdout
    refused = subprocess.run(["bash", "scripts/setup_env.sh", "--venv", "x"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith("usage: scripts/setup_env.sh")
    assert not Path("/nonexistent/venv").exists()


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


def offline_tools(directory: Path) -> Path:
    """A PATH with the shell tools get_gpt2_bpe.sh needs, and no curl and no npm: nothing can be fetched."""
    directory.mkdir()
    for name in ("cp", "cut", "dirname", "mkdir", "mv", "rm", "sha256sum"):
        (directory / name).symlink_to(shutil.which(name))
    return directory


def test_get_gpt2_bpe_offline_gives_the_official_bytes_from_the_checkout(tmp_path):
    """No network, no registry: the checkout's gpt2_bpe/ gives all three files, encoder.json rebuilt."""
    env = {**os.environ, "PATH": str(offline_tools(tmp_path / "bin")), "PYTHON": sys.executable}
    script = [shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh")]
    result = subprocess.run([*script, str(tmp_path / "dest")], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stderr
    for name in ["encoder.json", "vocab.bpe", "dict.txt"]:
        assert (tmp_path / "dest" / name).read_bytes() == shared_path("gpt2_bpe", name).read_bytes()


def test_the_checkout_carries_the_gpt2_files_with_licence_and_checksums():
    """gpt2_bpe/ holds GPT-2's vocab.bpe and fairseq's dict.txt (both MIT), each equal to the official file
    (SHA256SUMS, also encoder.json's); its encoder.json is rebuilt from vocab.bpe, never committed: the
    rebuild equals the official encoder.json on all 50,257 entries, in order."""
    import json

    from fairseq_ext.tokenizer.gpt2 import encoder_from_merges, read_merges

    checkout = REPO / "gpt2_bpe"
    sums = dict(reversed(line.split()) for line in (checkout / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == ["dict.txt", "encoder.json", "vocab.bpe"]
    for name, digest in sums.items():
        assert hashlib.sha256(shared_path("gpt2_bpe", name).read_bytes()).hexdigest() == digest, name
        if name != "encoder.json":
            assert hashlib.sha256((checkout / name).read_bytes()).hexdigest() == digest, name
    licence = (checkout / "LICENSE").read_text(encoding="utf-8")
    assert "Software Copyright (c) 2019 OpenAI" in licence and "Copyright (c) Facebook, Inc." in licence
    tracked = subprocess.run(["git", "ls-files", "gpt2_bpe"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:  # a git checkout (not an unpacked copy)
        assert "gpt2_bpe/encoder.json" not in tracked.stdout.split()
    official = json.loads(shared_path("gpt2_bpe", "encoder.json").read_text(encoding="utf-8"))
    rebuilt = encoder_from_merges(read_merges(checkout / "vocab.bpe"))
    assert len(rebuilt) == 50257 and list(rebuilt.items()) == list(official.items())
    assert json.dumps(rebuilt).encode() == shared_path("gpt2_bpe", "encoder.json").read_bytes()


def test_get_gpt2_bpe_from_an_existing_directory(tmp_path):
    result = subprocess.run([shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh"), "--copy-from",
                             str(shared_path("gpt2_bpe")), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ["encoder.json", "vocab.bpe", "dict.txt"]:
        assert (tmp_path / name).read_bytes() == shared_path("gpt2_bpe", name).read_bytes()


def test_get_gpt2_bpe_rebuilds_encoder_json_from_vocab_bpe(tmp_path):
    """Offline, with vocab.bpe alone: encoder.json is rebuilt, byte-identical (its sha256 is checked)."""
    only_merges = tmp_path / "copy"
    only_merges.mkdir()
    (only_merges / "vocab.bpe").write_bytes(shared_path("gpt2_bpe", "vocab.bpe").read_bytes())
    env = {**os.environ, "PATH": str(offline_tools(tmp_path / "bin")), "PYTHON": sys.executable}
    script = [shutil.which("bash"), str(REPO / "scripts/get_gpt2_bpe.sh")]
    result = subprocess.run([*script, "--copy-from", str(only_merges), str(tmp_path / "dest")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert (tmp_path / "dest" / "encoder.json").read_bytes() == \
        shared_path("gpt2_bpe", "encoder.json").read_bytes(), result.stderr
