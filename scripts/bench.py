#!/usr/bin/env python
"""Runs the benchmarks of scripts/benchmarks/ and prints one table of ratios (reference time / our time:
above 1 means ours is faster), then writes every figure, with the machine it ran on, to a JSON file.

Each module scripts/benchmarks/NAME.py exposes ``run(work_dir, shared_dir, quick=False) -> list[dict]``;
a row holds ``benchmark, ours, reference, ours_s, reference_s, ratio`` (None: no time comparison) and
any extra figures (``ours_peak_mb`` / ``reference_peak_mb`` for peak memory, counts, settings; ``note``:
a line printed under the table). Modules whose name starts
with ``_`` are helpers, not benchmarks. A module that fails is reported and makes the exit status 1; the
others still run.

    python scripts/bench.py                      # everything, on ../shared
    python scripts/bench.py --quick --only training inference
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = REPO / "scripts" / "benchmarks"
REQUIRED_KEYS = ("benchmark", "ours", "reference", "ours_s", "reference_s", "ratio")

if str(REPO) not in sys.path:  # the modules are imported as scripts.benchmarks.NAME
    sys.path.insert(0, str(REPO))

from fairseq_ext.cli import run_cli  # noqa: E402
from fairseq_ext.errors import UserInputError  # noqa: E402


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_benchmark(name: str):
    return importlib.import_module(f"scripts.benchmarks.{name}")


def machine_info() -> dict:
    """Where the figures come from: they only compare with figures taken on the same machine."""
    cpu = platform.processor() or platform.machine()
    try:
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    memory_gb = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    versions = {}
    for package in ("torch", "fairseq", "transformers", "tokenizers", "numpy"):
        try:
            versions[package] = importlib.import_module(package).__version__
        except Exception as err:  # a missing package is information, not a failure
            versions[package] = f"unavailable ({type(err).__name__})"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def check_rows(name: str, rows) -> list[dict]:
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"benchmark module {name}: run() returned {type(rows).__name__}, not a list of rows")
    for row in rows:
        missing = [key for key in REQUIRED_KEYS if key not in row]
        if missing:
            raise ValueError(f"benchmark module {name}: row {row.get('benchmark', '?')} lacks {missing}")
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: Sequence[dict]) -> str:
    header = ("benchmark", "ours s", "reference s", "ratio", "ours MB", "ref MB")
    lines = [
        (
            str(row["benchmark"]),
            _fmt(row["ours_s"], ".3f"),
            _fmt(row["reference_s"], ".3f"),
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}x",
            _fmt(row.get("ours_peak_mb"), ".0f"),
            _fmt(row.get("reference_peak_mb"), ".0f"),
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = []
    for cells in [header, *lines]:
        aligned = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        out.append("  ".join(aligned))
    out.insert(1, "  ".join("-" * w for w in widths))
    out += ["", "ratio = reference s / ours s (above 1: ours is faster); MB = peak resident memory"]
    out += [f"  {row['benchmark']}: ours = {row['ours']}; reference = {row['reference']}" for row in rows]
    out += [f"  {row['benchmark']}: {row['note']}" for row in rows if row.get("note")]
    return "\n".join(out)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small inputs: checks that all runs (figures not meaningful)"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"run only these ({', '.join(available_benchmarks())})"
    )
    parser.add_argument(
        "--shared-dir", type=Path, default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")),
        help="the shared data (gpt2_bpe/, data/): default $SHARED_DIR, else ../shared",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the results (default: RUN_DIR/bench.json)")
    parser.add_argument(
        "--run-dir", type=Path, help="working directory (default: runs/bench-TIMESTAMP; must not exist)"
    )
    parser.add_argument("--keep-work", action="store_true", help="keep RUN_DIR/work (intermediate files)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    names = available_benchmarks()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise UserInputError(f"unknown benchmark(s) {unknown}; available: {names}")
        names = [name for name in names if name in args.only]
    if not args.shared_dir.is_dir():
        raise UserInputError(f"shared data not found: {args.shared_dir} (set --shared-dir or SHARED_DIR)")
    run_dir = args.run_dir or REPO / "runs" / f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if run_dir.exists():
        raise UserInputError(f"{run_dir} exists: give another --run-dir (earlier results are kept)")
    out = args.out or run_dir / "bench.json"
    if args.out and out.exists():
        raise UserInputError(f"{out} exists: remove it or give another --out")

    started = dt.datetime.now().astimezone()
    report = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_info(),
        "rows": [],
        "failures": [],
    }
    for name in names:
        work_dir = run_dir / "work" / name
        work_dir.mkdir(parents=True)
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            rows = check_rows(name, load_benchmark(name).run(work_dir, args.shared_dir, quick=args.quick))
        except Exception as err:
            traceback.print_exc()
            report["failures"].append({"module": name, "error": f"{type(err).__name__}: {err}"})
            print(f"[bench] {name} FAILED: {type(err).__name__}: {err}", flush=True)
            continue
        for row in rows:
            row.setdefault("module", name)
        report["rows"].extend(rows)
        print(f"[bench] {name}: {len(rows)} row(s) in {time.perf_counter() - start:.0f} s", flush=True)
    report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    report["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if not args.keep_work:
        shutil.rmtree(run_dir / "work", ignore_errors=True)
    machine = report["machine"]
    print(f"\n{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB"
          f"{' (quick run: sizes too small for meaningful figures)' if args.quick else ''}")
    if report["rows"]:
        print(format_table(report["rows"]))
    for failure in report["failures"]:
        print(f"FAILED {failure['module']}: {failure['error']}")
    print(f"\nresults: {out}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    run_cli(main)
