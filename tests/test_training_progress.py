"""fairseq_ext.training.progress on fairseq's own records: the progress line's counts, rate and ETA, and the
logging config it installs (the end-to-end console is checked in test_pretrain)."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from fairseq_ext.training import progress


def record(name: str, stats: dict, created: float) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, json.dumps(stats), None, None)
    made.created = created
    return made


def test_progress_lines_count_rate_eta_and_losses():
    lines = progress.Progress(max_update=1000)
    first = lines.line("train_inner", {"num_updates": "100", "loss": "9.5", "ppl": "724", "ups": "2.5"}, 0.0)
    assert first == "update 100 of 1000 (10%) | 2.50 updates/s | ETA 6m00s | train loss 9.5 bits"
    valid = {"valid_loss": "9.1", "valid_ppl": "549", "valid_num_updates": "100"}
    assert lines.line("valid", valid, 1.0) == "validation at update 100: loss 9.1 bits"
    # measured since the first record: 100 updates in 50 s -> 2/s, 800 left
    assert lines.line("train_inner", {"num_updates": "200", "loss": "8.0", "ppl": "256"}, 50.0) == (
        "update 200 of 1000 (20%) | 2.00 updates/s | ETA 6m40s | train loss 8.0 bits | last valid loss 9.1 "
        "bits")
    squad = progress.Progress(max_update=0)  # no limit: no share, no ETA; span QA: no unit in bits
    assert squad.line("train_inner", {"num_updates": "7", "loss": "2.1", "ups": "1"}, 0.0) == \
        "update 7 | 1.00 updates/s | train loss 2.1"
    assert squad.line("valid", {"valid_loss": "2.0", "valid_num_updates": "7", "valid_f1": "55.2",
                                "valid_em": "50.1", "valid_baseline_f1": "50.7"}, 1.0) == \
        "validation at update 7: loss 2.0, F1 55.2, EM 50.1 (answering nothing: 50.7)"


def test_console_config_formats_stats_and_drops_object_messages():
    """The logging dict hydra gives fairseq (job_logging), as format_console changes it: the console shows
    progress lines and text, a file handler of the same config is left as it was."""
    console, log_file = io.StringIO(), io.StringIO()
    config = {"version": 1, "disable_existing_loggers": False,
              "formatters": {"simple": {"format": "[%(name)s] %(message)s"}},
              "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple",
                                       "stream": console},
                           "file": {"class": "logging.StreamHandler", "formatter": "simple",
                                    "stream": log_file}},
              "root": {"level": "INFO", "handlers": ["console", "file"]}}
    assert progress.format_console(config, max_update=10)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        logging.getLogger("train_inner").info(json.dumps({"num_updates": "5", "loss": "3.0", "ups": "1"}))
        logging.getLogger("fairseq_cli.train").info(object())  # the model, as fairseq logs it
        logging.getLogger("fairseq_cli.train").info("task: MaskedLMTask")
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
    shown = console.getvalue().splitlines()
    assert len(shown) == 2 and shown[0].endswith("] update 5 of 10 (50%) | 1.00 updates/s | ETA 0m05s | "
                                                 "train loss 3.0")
    assert shown[1] == "[fairseq_cli.train] task: MaskedLMTask"
    written = log_file.getvalue().splitlines()
    assert written[0] == '[train_inner] {"num_updates": "5", "loss": "3.0", "ups": "1"}' and len(written) == 3
