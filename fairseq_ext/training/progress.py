"""Training a person can watch: on the console, fairseq's JSON stats records become one progress line per
log interval, and the noise around them goes.

    update 120 of 1500 (8%) | 2.31 updates/s | ETA 9m57s | train loss 9.871 bits | last valid loss 10.02

  - ``train_inner`` records (every ``common.log_interval`` updates): the line above. updates/s is measured
    on the wall clock since the first record of this process (fairseq's ``ups`` for the first one), the ETA
    from it and ``optimization.max_update``.
  - ``valid`` records: ``validation at update N: loss L`` (and, for the squad2 task, F1, EM and the F1 of
    answering nothing); ``train`` records (end of an epoch): the epoch's mean loss.
  - The model's repr and the config dict fairseq logs at start, hydra's deprecation warnings, hydra's debug
    line and torch's deprecation warnings raised inside fairseq are not shown.

Only the console changes: the JSON records still go, unchanged, to ``common.log_file`` (train_log.json,
what scripts/plot_logs.py reads) and to hydra_train.log. ``--verbose`` (the launcher's; VERBOSE_ENV in the
environment of the training processes) shows everything as fairseq logs it.

Installed by :func:`install` in every training process before fairseq-hydra-train runs: it wraps the
``fairseq_cli.train.main`` that fairseq-hydra-train calls (``fairseq_cli.hydra_train.pre_main``) to give
the console handler of hydra's logging config (``cfg.job_logging_cfg``, which train.main applies again)
:class:`ProgressFormatter` and :class:`ConsoleFilter`.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import os
import time
import warnings
from typing import Optional

VERBOSE_ENV = "ROBERTA_TRAIN_VERBOSE"
STATS_RECORDS = ("train_inner", "valid", "train")  # the names fairseq's progress bar logs its stats under
# warnings that are about fairseq's and hydra's own code, not the user's run
NOISE = (
    r"\s*The version_base parameter is not specified",
    r"\s*'.*' is validated against ConfigStore schema",
    r".*'pin_memory' argument is set as true but no accelerator",
    r".*torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated",
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def install() -> None:
    """In a training process, before fairseq-hydra-train: quiet warnings now, console formatting once hydra
    has set up logging (nothing when verbose)."""
    if verbose():
        return
    for message in NOISE:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("hydra").setLevel(logging.INFO)  # its "Setting JobRuntime" debug line
    import fairseq_cli.hydra_train as hydra_train

    if getattr(hydra_train.pre_main, "__wrapped__", None) is None:
        hydra_train.pre_main = _formatting_console(hydra_train.pre_main)


def _formatting_console(train_main):
    @functools.wraps(train_main)
    def wrapper(cfg, **kwargs):
        if "job_logging_cfg" in cfg:  # hydra's logging config, which fairseq's train.main applies again
            from omegaconf import OmegaConf, open_dict

            logging_cfg = OmegaConf.to_container(cfg.job_logging_cfg, resolve=True)
            if format_console(logging_cfg, int(cfg.optimization.max_update or 0)):
                with open_dict(cfg):
                    cfg.job_logging_cfg = logging_cfg
                logging.config.dictConfig(logging_cfg)  # for the ranks whose train.main does not
        return train_main(cfg, **kwargs)

    return wrapper


def format_console(logging_cfg: dict, max_update: int) -> bool:
    """Gives the console handler of a logging.config dict (hydra's job_logging: ``console``, a
    StreamHandler) :class:`ProgressFormatter` and :class:`ConsoleFilter`; False when it has none."""
    console = logging_cfg.get("handlers", {}).get("console")
    if not console:
        return False
    formatter = logging_cfg.get("formatters", {}).get(console.get("formatter"), {})
    logging_cfg.setdefault("formatters", {})["progress"] = {
        "()": f"{__name__}.ProgressFormatter", "fmt": formatter.get("format"),
        "datefmt": formatter.get("datefmt"), "max_update": max_update}
    logging_cfg.setdefault("filters", {})["text_only"] = {"()": f"{__name__}.ConsoleFilter"}
    console["formatter"] = "progress"
    console["filters"] = [*console.get("filters", []), "text_only"]
    return True


class ConsoleFilter(logging.Filter):
    """Drops the records whose message is an object, not text: fairseq logs the model (its repr runs for
    pages) and the whole config dict that way at start; hydra_train.log keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return isinstance(record.msg, str)


class ProgressFormatter(logging.Formatter):
    """fairseq's stats records as progress lines (see the module doc), the others as ``fmt`` says."""

    def __init__(self, fmt: Optional[str] = None, datefmt: Optional[str] = None, max_update: int = 0):
        super().__init__(fmt, datefmt)
        self.progress = Progress(max_update)

    def format(self, record: logging.LogRecord) -> str:
        stats = _stats(record)
        line = None if stats is None else self.progress.line(record.name, stats, record.created)
        if line is None:
            return super().format(record)
        return f"[{self.formatTime(record, '%H:%M:%S')}] {line}"


def _stats(record: logging.LogRecord) -> Optional[dict]:
    if record.name not in STATS_RECORDS or not isinstance(record.msg, str) or not record.msg.startswith("{"):
        return None
    try:
        stats = json.loads(record.getMessage())
    except json.JSONDecodeError:
        return None
    return stats if isinstance(stats, dict) else None


class Progress:
    """The lines of one training process: update counts, the measured rate, the last losses."""

    def __init__(self, max_update: int):
        self.max_update = max_update
        self.first: Optional[tuple[float, float]] = None  # (time, updates) of the first train_inner record
        self.valid_loss: Optional[str] = None

    def line(self, kind: str, stats: dict, now: Optional[float] = None) -> Optional[str]:
        now = time.time() if now is None else now
        unit = " bits" if any(key.endswith("ppl") for key in stats) else ""
        if kind == "valid":
            return self._valid(stats, unit)
        if kind == "train":
            return f"epoch {stats.get('epoch')} done: mean train loss {stats.get('train_loss')}{unit}"
        updates = _number(stats.get("num_updates"))
        if updates is None:
            return None
        rate = self._rate(updates, now, _number(stats.get("ups")))
        parts = [f"update {int(updates)}" + (f" of {self.max_update} ({100 * updates / self.max_update:.0f}%)"
                                             if self.max_update else "")]
        if rate:
            parts.append(f"{rate:.2f} updates/s")
            if self.max_update:
                parts.append(f"ETA {_duration(max(self.max_update - updates, 0) / rate)}")
        parts.append(f"train loss {stats.get('loss')}{unit}")
        if self.valid_loss is not None:
            parts.append(f"last valid loss {self.valid_loss}")
        return " | ".join(parts)

    def _rate(self, updates: float, now: float, reported: Optional[float]) -> Optional[float]:
        if self.first is None:
            self.first = (now, updates)
            return reported
        elapsed, done = now - self.first[0], updates - self.first[1]
        return done / elapsed if elapsed > 0 and done > 0 else reported

    def _valid(self, stats: dict, unit: str) -> str:
        self.valid_loss = f"{stats.get('valid_loss')}{unit}"
        line = f"validation at update {stats.get('valid_num_updates')}: loss {self.valid_loss}"
        if "valid_f1" in stats:
            line += f", F1 {stats['valid_f1']}, EM {stats.get('valid_em')}"
            if "valid_baseline_f1" in stats:
                line += f" (answering nothing: {stats['valid_baseline_f1']})"
        return line


def _number(value) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
