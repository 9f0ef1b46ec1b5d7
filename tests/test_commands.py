"""The commands the docs name, and the Makefile's targets, work as named: every `scripts/`, `convert/`
command in README.md and docs/*.md exists and answers --help with its own name; every `make` target they
name exists; every Makefile target runs far enough to catch a broken command (the first stage with inputs
that do not exist, or each command's --help); a wrong path fails before torch, transformers or fairseq
load."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_docs import code_lines

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?<![\w./-])((?:scripts|convert)/[\w./*-]*\.(?:py|sh|sbatch))(?![\w./-])")
MAKE = re.compile(r"(?:^|[\s`(;&])make ((?:-o \S+ )*)([a-z][a-z0-9-]*)")
HEAVY = {"torch", "transformers", "fairseq", "fairseq_cli", "hydra"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def named_commands() -> list[str]:
    found = {match for page in PAGES for match in COMMAND.findall(page.read_text(encoding="utf-8"))}
    return sorted({str(path.relative_to(REPO)) for pattern in found for path in REPO.glob(pattern)})


def shown(page: Path) -> list[str]:
    """What a page shows as commands: its code blocks' lines and its `inline code`."""
    return code_lines(page) + re.findall(r"`([^`]+)`", page.read_text(encoding="utf-8"))


def makefile_targets() -> list[str]:
    return re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), flags=re.M)


def invocation(command: str) -> list[str]:
    return [sys.executable, command] if command.endswith(".py") else ["bash", command]


def test_the_docs_name_the_workflows_commands():
    assert {"scripts/pretrain.sh", "scripts/prepare_squad2.py", "convert/fairseq_to_hf.py",
            "scripts/slurm/pretrain.sbatch", "scripts/get_gpt2_bpe.sh"} <= set(named_commands())


@pytest.mark.parametrize("command", named_commands())
def test_every_command_named_in_the_docs_answers_help_with_its_name(command):
    done = subprocess.run([*invocation(command), "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, f"{command} --help: exit {done.returncode}: {done.stderr[-500:]}"
    first = done.stdout.lstrip().splitlines()[0]
    assert first.startswith("usage:") and Path(command).name in first, first


def test_every_make_target_named_in_the_docs_exists():
    targets = set(makefile_targets())
    named = {(page.name, target)
             for page in PAGES for text in shown(page) for _, target in MAKE.findall(text)}
    assert len(named) > 10
    missing = sorted((page, target) for page, target in named if target not in targets)
    assert not missing, f"make targets named in the docs but absent from the Makefile: {missing}"


def test_every_figure_of_the_readme_names_a_command_that_exists():
    rows = [line for line in (REPO / "README.md").read_text(encoding="utf-8").split("## Figures")[1]
            .splitlines() if line.startswith("|") and not line.startswith("|--")][1:]
    assert len(rows) >= 10
    targets = set(makefile_targets())
    for row in rows:
        reproduce = row.rstrip("|").rsplit("|", 1)[1]
        used = MAKE.findall(reproduce)
        assert used and all(target in targets for _, target in used), row
        for test_file in re.findall(r"PYTEST_ARGS=['\"]?(tests/[\w/.]+\.py)", reproduce):
            assert (REPO / test_file).is_file(), row


# --------------------------------------------------------------------------------------- Makefile targets
# How far each target runs here. "run": the whole target (cheap). "fails": variables naming paths that do
# not exist: every flag of its first command is parsed, then its pre-flight check refuses, exit 2 in one
# line. "help": each command of its recipe (make -n) with --help after the script it runs (the shell
# around it runs as is). "dry": make -n only (it would change the environment or the checkout).
def make_cases(tmp: Path) -> dict[str, tuple[str, dict]]:
    missing = tmp / "missing"
    existing = tmp / "exists"
    return {
        "help": ("run", {}),
        "gpt2-bpe": ("run", {}),
        "setup": ("dry", {}),
        "clean": ("dry", {}),
        "lint": ("help", {}),
        "test": ("help", {}),
        "fuzz": ("help", {}),
        "test-data": ("help", {}),
        "cluster-test": ("help", {}),
        "check-base": ("help", {}),
        "gpu-check": ("help", {}),
        "pack-env": ("help", {}),
        "demo": ("fails", {"DEMO_ARGS": f"--run-dir {existing}"}),
        "learn-check": ("fails", {"DEMO_ARGS": f"--run-dir {existing}"}),
        "demo-zh": ("fails", {"DEMO_ARGS": f"--run-dir {existing}"}),
        "bench": ("fails", {"BENCH_ARGS": f"--run-dir {existing}"}),
        "corpus": ("fails", {"CORPUS": missing}),
        "pretrain": ("fails", {"DATA": missing, "SAVE": tmp / "save"}),
        "squad2-data": ("fails", {"SQUAD_TRAIN": missing, "SQUAD_DEV": missing}),
        "finetune-squad2": ("fails", {"ROBERTA": missing}),
        "predict-squad2": ("fails", {"SQUAD_DEV": missing}),
        "export-hf": ("fails", {"CKPT": missing, "OUT": tmp / "out"}),
        "evaluate-hf": ("fails", {"MODEL": missing, "DATA": missing, "OUT": tmp / "out"}),
        "import-hf": ("fails", {"MODEL": missing, "OUT": tmp / "out"}),
        "checkpoint": ("fails", {"COPY_FROM": missing, "DEST": tmp / "out"}),
    }


def make(target: str, variables: dict, *flags: str) -> subprocess.CompletedProcess:
    """make TARGET without its setup/lint prerequisites, in this environment."""
    assignments = [f"{name}={value}" for name, value in {"VENV": sys.prefix, **variables}.items()]
    skipped = [flag for name in ("setup", "lint") if name != target for flag in ("-o", name)]
    return subprocess.run(["make", "--no-print-directory", *skipped, *flags, target, *assignments], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=ENV)


def recipe_lines(dry_run: str) -> list[str]:
    """The commands of make -n's output, continuation lines joined."""
    return [line for line in dry_run.replace("\\\n", " ").splitlines() if line.strip()]


def with_help(line: str) -> str:
    """The recipe line with --help right after the last script it runs (else at its end)."""
    scripts = list(re.finditer(r"(?:scripts|convert|\.ci)/\S+", line))
    if not scripts:
        return f"{line} --help"
    end = scripts[-1].end()
    return f"{line[:end]} --help{line[end:]}"


def test_every_makefile_target_has_a_case():
    assert sorted(makefile_targets()) == sorted(make_cases(Path("/")))


@pytest.mark.parametrize("target", sorted(make_cases(Path("/"))))
def test_every_makefile_target_runs_far_enough_to_catch_a_broken_command(target, tmp_path):
    (tmp_path / "exists").mkdir()
    mode, variables = make_cases(tmp_path)[target]
    dry = make(target, variables, "-n")
    assert dry.returncode == 0, dry.stderr
    if mode == "run":
        done = make(target, variables)
        assert done.returncode == 0, done.stderr
        if target == "help":
            listed = {line.split()[0] for line in done.stdout.splitlines()}
            assert listed == set(makefile_targets()) - {"help"} | {"help"}
    elif mode == "fails":
        done = make(target, variables)
        # make's own "*** Error" line: "make:" at top level, "make[N]:" under another make (make test)
        errors = [line for line in done.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
        assert done.returncode != 0 and len(errors) == 1, done.stderr[-2000:]
        assert "error:" in errors[0] and "usage:" not in done.stderr and "unrecognized" not in errors[0], \
            errors
        assert not (tmp_path / "out").exists() and not (tmp_path / "save").exists()
    elif mode == "help":
        lines = recipe_lines(dry.stdout)
        assert lines
        for line in lines:
            done = subprocess.run(["bash", "-c", with_help(line)], cwd=REPO, capture_output=True, text=True,
                                  timeout=300, env=ENV)
            assert done.returncode == 0 and "usage" in done.stdout.lower(), \
                f"{with_help(line)}: exit {done.returncode}: {done.stderr[-1000:]}"


# ---------------------------------------------------------------------------------- cheap checks first
BAD_PATHS = {
    "scripts/prepare_squad2.py": ["--train", "{missing}"],
    "scripts/predict_squad2.py": ["--checkpoint", "{missing}", "--data", "{missing}", "--out", "{out}"],
    "scripts/evaluate_squad2.py": ["{missing}", "{missing}"],
    "scripts/prepare_corpus.py": ["--raw-dir", "{missing}", "--destdir", "{out}"],
    "scripts/split_data.py": ["--inputs", "{missing}", "--outdir", "{out}"],
    "scripts/bpe_encode.py": ["--inputs", "{missing}", "--outputs", "{out}"],
    "scripts/plot_logs.py": ["{missing}"],
    "scripts/finetune_hf.py": ["--model", "{missing}", "--train", "{missing}", "--out", "{out}"],
    "scripts/launch_train.py": ["--config", "tiny", "--data", "{missing}", "--save-dir", "{out}"],
    "convert/fairseq_to_hf.py": ["--checkpoint", "{missing}", "--out", "{out}"],
    "convert/evaluate_hf.py": ["--model", "{missing}", "--data", "{missing}", "--out", "{out}"],
    "convert/predict_hf.py": ["--model", "{missing}", "--question", "q", "--context", "c"],
}


@pytest.mark.parametrize("command", sorted(BAD_PATHS))
def test_a_wrong_path_fails_in_one_line_before_the_heavy_imports(command, tmp_path):
    """Not one torch, transformers, fairseq or hydra module loaded (python -X importtime): the error comes
    in a fraction of a second, not after 5-10 s of imports."""
    args = [arg.format(missing=tmp_path / "missing", out=tmp_path / "out") for arg in BAD_PATHS[command]]
    done = subprocess.run([sys.executable, "-X", "importtime", command, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=ENV)
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
              if line.startswith("import time:")}
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 2 and len(errors) == 1 and "error:" in errors[0], errors
    assert not loaded & HEAVY, f"{shlex.join([command, *args])} loaded {sorted(loaded & HEAVY)}"
    assert not (tmp_path / "out").exists()


def figure_tables(page: Path) -> list[tuple[int, list[str]]]:
    """The tables of ``page`` that hold measured figures (a body cell with a number and a unit or a ratio),
    each with the line number where it starts."""
    lines = page.read_text(encoding="utf-8").splitlines()
    tables, start = [], None
    for number, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = number
        elif not line.startswith("|") and start is not None:
            body = lines[start + 2:number]
            if any(re.search(r"\d(?:\.\d+)?\s*(?:x\b|s\b|%|MB|/s|words|tokens|questions|windows)", row)
                   for row in body):
                tables.append((start, lines[start:number]))
            start = None
    return tables


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_table_of_figures_names_the_command_that_reproduces_it(page):
    """In the table itself or in the 15 lines before it: a make target that exists, or a command file."""
    lines = page.read_text(encoding="utf-8").splitlines()
    targets = set(makefile_targets())
    unnamed = []
    for start, table in figure_tables(page):
        near = "\n".join(lines[max(0, start - 15):start] + table)
        made = [target for _, target in MAKE.findall(near) if target in targets]
        if not made and not COMMAND.search(near):
            unnamed.append(f"line {start + 1}: {table[0]}")
    assert not unnamed, f"{page.relative_to(REPO)}: tables of figures without their command: {unnamed}"


def test_a_missing_starting_checkpoint_names_how_to_get_one_before_the_heavy_imports(tmp_path):
    done = subprocess.run(["bash", "scripts/pretrain.sh", "--config", "roberta_base_continue", "--data",
                           str(tmp_path), "--restore", str(tmp_path / "roberta.base" / "model.pt"),
                           "--save-dir", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**ENV, "PYTHON": sys.executable})
    missing = tmp_path / "roberta.base" / "model.pt"
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"pretrain.sh: error: checkpoint not found: {missing}: fetch a released "
                                  "one with scripts/get_checkpoint.sh NAME")
