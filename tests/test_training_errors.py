"""fairseq's and hydra's exceptions as one line (fairseq_ext/training/errors.py): a real fairseq failure
that the pre-flight checks did not foresee is translated into the line naming its fix; any other
exception is one line naming SAVE_DIR/launch_error.log, where its traceback is; --verbose prints it."""

from __future__ import annotations

import pytest

from fairseq_ext.errors import UserInputError
from fairseq_ext.training import errors, launch, preflight


def test_a_real_fairseq_failure_the_checks_let_through_is_one_line_naming_the_fix(
        wiki_data_bin, tmp_path, monkeypatch, capsys):
    """tokens_per_sample above the model's positions, with its pre-flight check switched off: fairseq
    skips every sample and raises "The dataset is empty" (or "Size of sample #N is invalid"); the launcher
    says what to set."""
    monkeypatch.setattr(preflight, "check_positions", lambda cfg: None)
    save_dir = tmp_path / "run"
    expected = r"a split gives no batch: .* longer than the model's positions \(set task.tokens_per_sample"
    with pytest.raises(UserInputError, match=expected):
        launch.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir", str(save_dir),
                     "task.tokens_per_sample=256", "optimization.max_update=1"])
    assert "Traceback" not in capsys.readouterr().err
    assert not (save_dir / errors.LOG_NAME).exists()  # a known failure needs no traceback file


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unknown_failure_names_the_file_holding_its_traceback(wiki_data_bin, tmp_path, monkeypatch, capsys,
                                                                 verbose):
    def fails(*args):
        raise RuntimeError("something fairseq never said before")

    monkeypatch.setattr(launch, "run_fairseq_hydra_train", fails)
    save_dir = tmp_path / "run"
    with pytest.raises(UserInputError) as raised:
        launch.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir", str(save_dir),
                     *(["--verbose"] if verbose else [])])
    log = save_dir / errors.LOG_NAME
    assert str(raised.value) == (f"fairseq failed (RuntimeError: something fairseq never said before); the "
                                 f"full traceback is in {log} (--verbose prints it)")
    assert "Traceback" in log.read_text() and "in fails" in log.read_text()
    assert ("Traceback" in capsys.readouterr().err) == verbose


def test_known_failures_and_write_failures():
    import errno
    import os

    assert errors.translate(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))).startswith(
        "cannot write the checkpoints or logs: No space left on device")
    wrapped = RuntimeError("while loading")
    wrapped.__cause__ = ValueError("cannot mmap an empty file")
    assert errors.translate(wrapped).startswith("a data file of task.data is empty")
    assert errors.translate(KeyError("unrelated")) is None
