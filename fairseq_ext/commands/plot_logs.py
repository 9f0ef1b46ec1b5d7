"""Plot fairseq JSON training logs (``common.log_format=json``) as PNG curves against updates.

Each log becomes one PNG: training loss (the ``train_inner`` records, plus the end-of-epoch ``train``
averages as a line when there are two or more), validation loss, and, when the task logs them (our
``squad2`` task does), validation F1 and exact match with the F1 of answering nothing (``baseline_f1``,
or --baseline) as a dashed line. The loss axis states its unit (masked LM: bits per token, base 2, as
fairseq logs it; span QA: nats per window) and starts at 0, scores span 0-100: noise is not magnified.
``--label NAME=TEXT`` says what a run is (e.g. ``squad2=from pretrained masked LM``) in its title and
in legends; NAME is the run's plot name (--labels, else the log's directory name).

Reads every form fairseq writes: console and ``hydra_train.log`` lines (``... | valid | {json}``,
``[time][valid][INFO] - {json}``) and the ``common.log_file`` form (bare JSON lines; fairseq adds a file
handler per progress bar there, so records repeat: duplicates are dropped and counted).

    python scripts/plot_logs.py runs/demo/finetune/train_log.json --out-dir runs/demo/plots

``--compare NAME`` also draws the validation F1 of every log that has one on one axes (NAME.png): e.g.
fine-tuning from a pretrained checkpoint against the same fine-tuning from scratch.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

from fairseq_ext.cli import existing_file, finite_float, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputFiles

# validation metrics drawn on a second panel when present: our squad2 task's EM and F1 (not fairseq's
# valid_best_<metric>, the best value so far of the checkpoint metric)
QA_METRICS = ("f1", "em")
BASELINE = "valid baseline_f1"  # the squad2 task's F1 of answering nothing (metric.no_answer_baseline)
EPOCH_MEAN = "train (epoch mean) loss"


@dataclass
class Curve:
    updates: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, update: float, value: float) -> None:
        self.updates.append(update)
        self.values.append(value)


@dataclass
class TrainingLog:
    """What one log holds: curve name (``train_inner loss``, ``valid loss``, ``valid f1``...) -> points."""

    curves: dict[str, Curve] = field(default_factory=dict)
    records: int = 0
    duplicates: int = 0
    bits: bool = False  # fairseq logged a perplexity (2 ** loss): the loss is in bits (masked LM)

    def add(self, name: str, update: float, value: float) -> None:
        self.curves.setdefault(name, Curve()).add(update, value)


def _as_float(value) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _add_record(log: TrainingLog, record: dict) -> None:
    """Files a fairseq stats record by its keys: ``train_inner`` records carry bare names (``loss``,
    ``num_updates``); end-of-epoch and validation records prefix them with the subset (``valid_loss``)."""
    prefixed = [key[: -len("_num_updates")] for key in record if key.endswith("_num_updates")]
    if prefixed:
        subset = prefixed[0]
        update = _as_float(record[f"{subset}_num_updates"])
        kind = "train (epoch mean)" if subset == "train" else subset
        names = ("loss",) + (() if subset == "train" else QA_METRICS + ("baseline_f1",))
        for name in names:
            value = _as_float(record.get(f"{subset}_{name}"))
            if update is not None and value is not None:
                log.add(f"{kind} {name}", update, value)
    elif "num_updates" in record and "loss" in record:
        update, value = _as_float(record["num_updates"]), _as_float(record["loss"])
        if update is not None and value is not None:
            log.add("train loss", update, value)
    else:
        return
    log.bits = log.bits or any(key == "ppl" or key.endswith("_ppl") for key in record)
    log.records += 1


def parse_log(path: Path) -> TrainingLog:
    log = TrainingLog()
    seen = set()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            line = line.strip()
            if not line.endswith("}") or "{" not in line:
                continue
            text = line[line.index("{") :]
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            if text in seen:
                log.duplicates += 1
                continue
            seen.add(text)
            _add_record(log, record)
    if log.records == 0:
        raise UserInputError(
            f"no fairseq training records in {path} (is it a log of fairseq-train/fairseq-hydra-train "
            "run with common.log_format=json?)"
        )
    return log


def _pyplot():
    # importing fairseq sets the root logger to DEBUG (wav2vec2_classification.py calls basicConfig)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_unit(log: TrainingLog) -> str:
    return ("bits per token (base 2, as fairseq's masked LM logs it)" if log.bits
            else "nats per window (span QA cross-entropy)")


def _baseline(ax, value: Optional[float]) -> None:
    if value is not None:
        ax.axhline(value, color="gray", linestyle="--", linewidth=1,
                   label=f"answering nothing ({value:.1f})")


def plot_log(log: TrainingLog, title: str, source: Path, out_png: BinaryIO,
             baseline: Optional[float] = None) -> None:
    plt = _pyplot()
    curves = dict(log.curves)
    if len(curves.get(EPOCH_MEAN, Curve()).values) < 2:  # a lone mean reads as an outlier: not drawn
        curves.pop(EPOCH_MEAN, None)
    loss_curves = {name: c for name, c in curves.items() if name.endswith(" loss")}
    metric_curves = {name: c for name, c in curves.items() if not name.endswith(" loss") and name != BASELINE}
    panels = [(loss_curves, f"loss: {loss_unit(log)}")]
    if metric_curves:
        panels.append((metric_curves, "validation score (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.4), squeeze=False)
    for ax, (panel, ylabel) in zip(axes[0], panels):
        for name, curve in sorted(panel.items()):
            style = "-" if name in ("train loss", EPOCH_MEAN) else "o-"
            ax.plot(curve.updates, curve.values, style, label=name, markersize=4, linewidth=1.2)
        if panel is metric_curves:
            _baseline(ax, baseline if baseline is not None else log_baseline(log))
            ax.set_ylim(0, 100)
        else:  # from 0: the starting value and the scale of any change are in view
            ax.set_ylim(0, max(value for c in panel.values() for value in c.values) * 1.05 or 1)
        ax.set_xlabel("updates")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.text(0.5, 0.005, source.name if source.is_absolute() else str(source), ha="center", va="bottom",
             fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out_png, dpi=110, format="png")
    plt.close(fig)


def log_baseline(log: TrainingLog) -> Optional[float]:
    """The answer-nothing F1 the squad2 task logged (the same at every validation), if any."""
    curve = log.curves.get(BASELINE)
    return curve.values[-1] if curve and curve.values else None


def plot_comparison(curves: dict[str, Curve], title: str, out_png: BinaryIO,
                    baseline: Optional[float] = None) -> None:
    """One validation F1 curve per run (legend -> curve) on one axes, with the answer-nothing line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, curve in curves.items():
        ax.plot(curve.updates, curve.values, "o-", label=label, markersize=4, linewidth=1.2)
    _baseline(ax, baseline)
    ax.set_ylim(0, 100)
    ax.set_xlabel("updates")
    ax.set_ylabel("validation F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110, format="png")
    plt.close(fig)


def parse_descriptions(items: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """--label NAME=TEXT items as {NAME: TEXT}; NAME must be one of the runs' ``labels``."""
    descriptions = {}
    for item in items:
        name, equals, text = item.partition("=")
        if not equals or not text:
            raise UserInputError(f"--label {item!r}: expected NAME=TEXT, e.g. "
                                 "squad2='from pretrained masked LM'")
        if name not in labels:
            raise UserInputError(f"--label {item!r}: no run is named {name!r} (runs: {', '.join(labels)})")
        descriptions[name] = text
    return descriptions


def default_label(path: Path) -> str:
    """``runs/x/finetune/train_log.json`` -> ``finetune``: fairseq's log file sits in the save dir."""
    if path.stem in ("train_log", "hydra_train", "train") and path.parent.name:
        return path.parent.name
    return path.stem


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("logs", nargs="+", type=Path, metavar="LOG", help="fairseq JSON log file(s)")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where LABEL.png goes (default: .)")
    parser.add_argument(
        "--labels", nargs="+", help="one name per log for the title and the PNG name "
        "(default: the log's directory name, e.g. the checkpoint save dir)"
    )
    parser.add_argument(
        "--label", action="append", default=[], metavar="NAME=TEXT", dest="descriptions",
        help="what run NAME is, for its title and the legends (e.g. squad2-scratch='from random init'); "
        "repeatable"
    )
    parser.add_argument(
        "--baseline", type=finite_float, metavar="F1",
        help="the F1 of answering nothing, drawn on F1 plots (default: the baseline_f1 the squad2 task logs)"
    )
    parser.add_argument(
        "--compare", metavar="NAME", help="also NAME.png: the validation F1 of every log that has one, on "
        "one axes (at least two such logs)"
    )
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.logs):
        raise UserInputError(f"--labels gives {len(args.labels)} names for {len(args.logs)} logs")
    labels = args.labels or [default_label(path) for path in args.logs]
    descriptions = parse_descriptions(args.descriptions, labels)
    names = labels + ([args.compare] if args.compare is not None else [])  # NAME.png each
    for name in names:  # PNGs go into --out-dir, nowhere else
        if name in ("", ".", "..") or Path(name).name != name:
            raise UserInputError(f"label {name!r} is not a plain file name (no directories, no '..'): "
                                 "LABEL.png is written into --out-dir")
    if len(set(names)) != len(names):
        raise UserInputError(f"two plots would write the same PNG ({names}); name them with --labels")
    logs = [parse_log(existing_file(path, "log file")) for path in args.logs]
    compared = {descriptions.get(label, label): log.curves["valid f1"] for label, log in zip(labels, logs)
                if "valid f1" in log.curves}
    if args.compare is not None and len(compared) < 2:
        raise UserInputError(f"--compare needs two logs with validation F1; {len(compared)} of "
                             f"{len(logs)} have one")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise UserInputError(f"--out-dir {args.out_dir} exists and is not a directory")
    pngs = [args.out_dir / f"{label}.png" for label in labels]
    comparison = [args.out_dir / f"{args.compare}.png"] if args.compare is not None else []
    with OutputFiles(pngs + comparison, inputs=args.logs).open("wb") as streams:
        for path, label, log, stream in zip(args.logs, labels, logs, streams):
            title = f"{label}: {descriptions[label]}" if label in descriptions else label
            plot_log(log, title, path, stream, args.baseline)
        if comparison:
            baseline = args.baseline if args.baseline is not None else next(
                (value for value in map(log_baseline, logs) if value is not None), None)
            plot_comparison(compared, args.compare, streams[-1], baseline)
    for png, log in zip(pngs, logs):
        points = ", ".join(f"{name}: {len(c.values)}" for name, c in sorted(log.curves.items()))
        print(f"{png}: {points} points ({log.duplicates} repeated records skipped)")
    if comparison:
        print(f"{comparison[0]}: validation F1 of {', '.join(compared)}")
    return 0


def cli() -> None:
    run_cli(main)
