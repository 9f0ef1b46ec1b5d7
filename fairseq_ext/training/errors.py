"""fairseq's and hydra's exceptions as one line, for the launcher and every training process it starts.

The pre-flight checks (fairseq_ext.training.preflight) refuse what they can foresee; what still fails
inside fairseq-hydra-train comes here. A known failure (KNOWN: fairseq's message, what to do) becomes one
line naming the fix; any other exception one line saying where its full traceback was written
(SAVE_DIR/launch_error.log). The traceback itself is printed only with the launcher's ``--verbose``.
hydra prints a failed job's traceback itself and exits 1, unless HYDRA_FULL_ERROR is set: it is set here,
so that the exception reaches this layer.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Iterator, Optional

from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import write_failure
from fairseq_ext.training.progress import VERBOSE_ENV  # --verbose, passed on to the training processes

LOG_NAME = "launch_error.log"

# (pattern searched in "ExceptionType: message", the line that replaces it); \1 etc. from the match.
KNOWN = [
    (r"Size of sample #\d+ is invalid.*max length is (\d+)",
     r"a sample is longer than the model's \1 positions: set task.tokens_per_sample (or the task's "
     r"max_positions) to \1 or less"),
    (r"The dataset is empty",
     "a split gives no batch: its samples were all skipped as longer than the model's positions (set "
     "task.tokens_per_sample to model.max_positions or less), or it has fewer samples than "
     "dataset.required_batch_size_multiple"),
    (r"please ensure that the architectures match",
     "the checkpoint's model has another architecture than the config's (model.*): use the model settings "
     "the checkpoint was trained with, or another checkpoint"),
    (r"cannot mmap an empty file",
     "a data file of task.data is empty: rebuild the data-bin from text that has documents "
     "(scripts/prepare_corpus.py)"),
    (r"offset must be non-negative and no greater than buffer length",
     "a .bin file of task.data is shorter than its .idx says (a truncated copy): copy or rebuild the "
     "data-bin"),
    (r"IndexError: index out of range in self",
     "a token id beyond the model's embedding: the data was binarized with a larger dictionary than the "
     "model's; binarize it with the checkpoint's dict.txt"),
    (r"(?:OutOfMemoryError|CUDA out of memory)",
     "out of GPU memory: lower dataset.batch_size or dataset.max_tokens (--global-batch keeps the global "
     "batch by raising update_freq)"),
    (r"Address already in use",
     "the port of the data-parallel rendezvous is taken (another run on this machine?): wait for it, or "
     "set MASTER_PORT to a free port"),
    (r"(?:ConfigCompositionException|ConfigKeyError|Could not override|MissingMandatoryValue): (.*)",
     r"config: \1"),
]


def translate(err: BaseException) -> Optional[str]:
    """The one line for a known failure (KNOWN, or a write that failed: a full disk), else None."""
    reason = write_failure(err)
    if reason is not None:
        return f"cannot write the checkpoints or logs: {reason} (free space in checkpoint.save_dir)"
    while err is not None:
        text = f"{type(err).__name__}: {str(err).strip()}"
        for pattern, line in KNOWN:
            match = re.search(pattern, text, re.DOTALL)
            if match:
                return match.expand(line).splitlines()[0]
        err = err.__cause__ or err.__context__
    return None


def write_traceback(err: BaseException, save_dir: Optional[Path]) -> Path:
    """The full traceback into SAVE_DIR/launch_error.log (a temporary file where that cannot be written)."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        if save_dir is None:
            raise OSError
        save_dir.mkdir(parents=True, exist_ok=True)
        path = save_dir / LOG_NAME
        path.write_text(text, encoding="utf-8")
    except OSError:
        descriptor, name = tempfile.mkstemp(prefix="launch_error-", suffix=".log")
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        path = Path(name)
    return path


@contextlib.contextmanager
def translated(save_dir: Optional[Path], verbose: bool = False) -> Iterator[None]:
    """Any exception of the block (but a UserInputError, already one line, and exits) as one line. The
    environment it sets for the block (and the launcher's --verbose, set within it) is restored after it:
    an in-process caller (launch.main in the tests) does not pass --verbose on to its later trainings."""
    saved = {key: os.environ.get(key) for key in ("HYDRA_FULL_ERROR", VERBOSE_ENV)}
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    verbose = verbose or os.environ.get(VERBOSE_ENV) == "1"
    try:
        yield
    except UserInputError:
        raise
    except Exception as err:
        if verbose:
            traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        known = translate(err)
        if known is not None:
            raise UserInputError(known) from None
        path = write_traceback(err, save_dir)
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise UserInputError(f"fairseq failed ({type(err).__name__}: {first}); the full traceback is in "
                             f"{path} (--verbose prints it)") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def save_dir_of(overrides: list[str]) -> Optional[Path]:
    """checkpoint.save_dir among hydra overrides (the launcher always passes it)."""
    value = next((item.split("=", 1)[1] for item in overrides if item.startswith("checkpoint.save_dir=")),
                 None)
    return Path(value) if value else None
