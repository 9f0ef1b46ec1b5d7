"""Shared test fixtures. Real data comes from $SHARED_DIR, else ../shared (never copied into the repo);
`make test` sets SHARED_DIR to ../shared or to the user cache it fetches (tests/testdata.py).

Each area keeps its session fixtures in its own module, loaded here as a plugin.
"""

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))

pytest_plugins = ["tests.corpus_fixtures", "tests.pretrain_fixtures", "tests.squad_fixtures",
                  "tests.spm_fixtures"]


def command(name: str):
    """The module of a command-line tool (fairseq_ext.commands.NAME): its main(argv) runs in this process
    (no start-up cost); scripts/NAME.py runs the same main in a subprocess."""
    return importlib.import_module(f"fairseq_ext.commands.{name}")


def shared_path(*parts: str) -> Path:
    """A file under ../shared; a missing one fails the test (it must never be silently skipped)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared data missing: {path} (tests read $SHARED_DIR, else ../shared; `make test` "
                    "finds or fetches it, `make test-data` fetches it)")
    return path


@pytest.fixture(scope="session")
def gpt2_bpe_dir() -> Path:
    return shared_path("gpt2_bpe")


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    """Where the environment's console scripts (fairseq-preprocess, ...) live."""
    import sys

    return Path(sys.executable).parent
