"""The README's route works as written: its code blocks, steps 0-6, run one after the other on a corpus the
test builds, offline, from a release-layout archive to an evaluated Hugging Face model, with only the tiny
settings that docs/testing.md ("The README route") lists substituted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path
from tests.pretrain_fixtures import make_release_archive
from tests.squad_fixtures import TRAIN_ARTICLES, VALID_ARTICLES, squad_articles

TINY_WINDOWS = "--max-seq-length 128 --doc-stride 32 --max-query-length 32"
# (step, as written in the README, in the test): docs/testing.md's table
SUBSTITUTIONS = [
    (0, "make setup\n", ""),
    (0, "--dest checkpoints/roberta.base", "--dest checkpoints/roberta.base --copy-from roberta.base.tar.gz"),
    (3, "--config roberta_base_continue", "--config tiny optimization.max_update=6"),
    (4, "--destdir data-bin/squad2", f"--destdir data-bin/squad2 {TINY_WINDOWS}"),
    (4, "--config squad2_base", "--config squad2_tiny optimization.max_update=6"),
]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "http_proxy": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1"}


def readme_steps() -> dict[int, str]:
    """The code block of each numbered step of the README's workflow (indented by four spaces)."""
    workflow = (REPO / "README.md").read_text(encoding="utf-8").split("## The workflow")[1].split("\n## ")[0]
    steps = {}
    for section in re.split(r"^### ", workflow, flags=re.M)[1:]:
        number = re.match(r"(\d+)\. ", section)
        if number:
            lines = [line[4:] for line in section.splitlines() if line.startswith("    ")]
            steps[int(number.group(1))] = "\n".join(lines) + "\n"
    return steps


def test_the_readme_has_one_command_block_per_step_and_the_substitutions_still_apply():
    steps = readme_steps()
    assert sorted(steps) == list(range(7)), sorted(steps)
    for step, written, _ in SUBSTITUTIONS:
        assert written in steps[step], f"step {step} no longer says {written!r}: update docs/testing.md"


def checkout_view(work: Path) -> None:
    """``work`` laid out like a checkout, so that the README's relative paths hold: the command files and
    configs linked, this environment as .venv, and gpt2_bpe/ as a fresh clone has it after make setup
    (the committed files, encoder.json rebuilt from vocab.bpe)."""
    for name in ("scripts", "convert", "configs"):
        (work / name).symlink_to(REPO / name)
    (work / ".venv").symlink_to(Path(sys.prefix))
    bpe = work / "gpt2_bpe"
    bpe.mkdir()
    for name in ("vocab.bpe", "dict.txt", "SHA256SUMS"):
        (bpe / name).write_bytes((REPO / "gpt2_bpe" / name).read_bytes())
    subprocess.run([sys.executable, "-m", "fairseq_ext.commands.gpt2_encoder", bpe / "vocab.bpe",
                    bpe / "encoder.json"], check=True, capture_output=True)
    subprocess.run(["sha256sum", "--quiet", "--check", "SHA256SUMS"], cwd=bpe, check=True)


def write_corpus(corpus: Path) -> int:
    """The wiki paragraphs (articles separated by blank lines) and the King James Bible, 40 verses a
    document: about 1.5 MB of prose in two files. Returns the number of documents."""
    corpus.mkdir()
    wiki = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8")
    (corpus / "wiki.txt").write_text(wiki, encoding="utf-8")
    verses = shared_path("data", "kjv", "kjv.txt").read_text(encoding="utf-8").splitlines()[:12000]
    documents = ["\n".join(verses[start:start + 40]) for start in range(0, len(verses), 40)]
    (corpus / "kjv.txt").write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return len(documents) + wiki.count("\n\n") + 1


def run_step(step: int, script: str, work: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=work, capture_output=True,
                          text=True, timeout=900, env={**os.environ, **OFFLINE})
    assert done.returncode == 0, f"step {step}:\n{script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_readme_route_runs_as_written_offline(legacy_checkpoint, tmp_path):
    """From a fresh clone's state to an evaluated Hugging Face model, every command as the README writes
    it (bar docs/testing.md's substitutions), offline."""
    work = tmp_path / "checkout"
    work.mkdir()
    checkout_view(work)
    documents = write_corpus(work / "corpus")
    squad_articles(TRAIN_ARTICLES, work / "train-v2.0.json")
    dev = squad_articles(VALID_ARTICLES, work / "dev-v2.0.json")
    make_release_archive(legacy_checkpoint, work / "gpt2_bpe" / "dict.txt", work)  # roberta.base.tar.gz

    steps = readme_steps()
    for step, written, substituted in SUBSTITUTIONS:
        steps[step] = steps[step].replace(written, substituted)
    done = {step: run_step(step, steps[step], work) for step in sorted(steps)}

    # each step owns its directory: step 1 again, after step 2 read it, replaces its own output
    run_step(1, steps[1], work)
    split = {name: (work / "data" / "mycorpus" / f"data.{name}.raw").read_text().count("\n\n") + 1
             for name in ("train", "valid", "test")}
    assert sum(split.values()) == documents and split["valid"] >= 1 and split["test"] >= 1
    assert (work / "data-bin" / "mycorpus" / "train.bin").stat().st_size > 500_000  # ~1.5 MB of text
    assert (work / "runs" / "pretrain" / "checkpoint_best.pt").is_file()

    fairseq = json.loads((work / "runs" / "squad2-dev" / "predictions.json").read_text())
    hf = json.loads((work / "runs" / "hf-dev" / "predictions.json").read_text())
    questions = sum(len(p["qas"]) for a in json.loads(dev.read_text())["data"] for p in a["paragraphs"])
    assert len(fairseq) == questions == 262 and hf == fairseq  # transformers answers as fairseq does
    for scored in (work / "runs" / "squad2-dev" / "eval_results.json", work / "runs" / "hf-dev" /
                   "eval_results.json"):
        results = json.loads(scored.read_text())
        assert results["total"] == 262 and results["no_answer_baseline"] > 0, results
    card = (work / "hf" / "roberta-squad2" / "README.md").read_text()
    assert str(tmp_path) not in card and "squad_v2" not in card  # a custom dev file, no local paths
    assert done[6].stdout.strip()  # predict_hf's answer (or "no answer")
