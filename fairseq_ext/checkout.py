"""The files that live beside the package in the source checkout (``configs/``, ``gpt2_bpe/``), found the
same way in an editable install and in a packed (non-editable) environment, where the package sits in
site-packages, away from any checkout.

The checkout is ``$ROBERTA_SQUAD2_CHECKOUT`` if set; else the directory holding the imported package when
it is a checkout (an editable install, or PYTHONPATH); else the current directory when it is one (tools of
a packed environment run from a checkout, as the cluster scripts do). A checkout has ``configs/pretraining``
and ``configs/finetuning``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ENV_VAR = "ROBERTA_SQUAD2_CHECKOUT"
PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # the checkout, in an editable install


def is_checkout(directory: Path) -> bool:
    return all((directory / "configs" / stage).is_dir() for stage in ("pretraining", "finetuning"))


def checkout_dir() -> Optional[Path]:
    """The source checkout (see the module's note), or None."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).resolve()
    for candidate in (PACKAGE_PARENT, Path.cwd().resolve()):
        if is_checkout(candidate):
            return candidate
    return None


def checkout_path(*parts: str) -> Path:
    """``parts`` inside the checkout; without one, inside the package's parent directory (where an
    editable install's checkout would be), so that a missing file is named by the caller's own error."""
    return (checkout_dir() or PACKAGE_PARENT).joinpath(*parts)
