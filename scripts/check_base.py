#!/usr/bin/env python
"""make check-base: a randomly initialised roberta-base-sized model through every stage of the workflow, on
CPU, with the real base configs (configs/pretraining/roberta_base_continue.yaml,
configs/finetuning/squad2_base.yaml), fp16 off, a few updates each on small slices of the shared data:

  1. corpus: split_data.py + prepare_corpus.py on the shared wiki paragraphs;
  2. pretraining from scratch (pretrain.sh, no checkpoint), then continued from its checkpoint;
  3. SQuAD features (prepare_squad2.py, the base windows) and fine-tuning (finetune_squad2.sh);
  4. prediction (predict_squad2.py) of a few questions, export with verification (fairseq_to_hf.py),
     HF evaluation (evaluate_hf.py) of the same questions, and the HF -> fairseq round trip
     (hf_to_fairseq.py).

Each stage runs the user's command in its own process; per stage it prints seconds, words/s (training:
fairseq's own wps; prediction and evaluation: questions per second, model loading included), peak
resident memory and the sizes of the checkpoints written, and writes them to WORK/check_base.json. It
fails unless every command succeeds and fairseq and HF give the same answers. A pre-release check (8-15
minutes on 2 cores), not part of the test suite; on a GPU, scripts/gpu_check.sh measures the same
size with fp16.

    python scripts/check_base.py [--work-dir DIR] [--shared-dir ../shared] [--updates 3] [--keep-models]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fairseq_ext.cli import run_cli  # noqa: E402
from fairseq_ext.errors import UserInputError  # noqa: E402
from fairseq_ext.squad.settings import DEFAULT  # noqa: E402  (squad2_base.yaml's windows: run_qa's)
from scripts.benchmarks.training import logged_tokens_per_s  # noqa: E402

# small slices: pretraining batches of 2 blocks of 512 tokens, fine-tuning batches of 4 windows; the
# questions of one paragraph to fine-tune on and of the next to validate, predict and evaluate
PRETRAIN_BATCH = 2
FINETUNE_BATCH = 4
TRAIN_PARAGRAPHS = slice(0, 2)
EVAL_PARAGRAPHS = slice(2, 4)
CPU_OVERRIDES = [
    "common.cpu=true",
    "common.fp16=false",
    "dataset.num_workers=0",
    "common.log_interval=1",
    "optimization.update_freq=[1]",
    "lr_scheduler.warmup_updates=1",
]


def step(message: str) -> None:
    print(f"check-base [{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def run_stage(name: str, command: Sequence, log_dir: Path) -> dict:
    """Runs one user command; its seconds and peak resident memory (of it and the processes it waited
    for), its output in LOG_DIR/NAME.log. A failure prints the log's tail and stops the check."""
    log = log_dir / f"{name}.log"
    step(f"{name}: {' '.join(str(c) for c in command)}")
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]), file=sys.stderr)
        raise RuntimeError(f"check-base: stage {name} failed (exit {code}); log: {log}")
    return {"stage": name, "seconds": round(seconds, 1), "peak_mb": round(usage.ru_maxrss / 1024)}


def train_wps(save_dir: Path) -> float:
    """fairseq's logged words/s, the first update (start-up) left out."""
    return round(logged_tokens_per_s(save_dir / "train_log.json", skip=1), 1)


def sizes_mb(*paths: Path) -> dict:
    return {path.name: round(path.stat().st_size / 2**20) for path in paths if path.is_file()}


def slice_squad(source: Path, paragraphs: slice, out: Path) -> int:
    """The paragraphs of the first article of SOURCE; returns the number of questions."""
    data = json.loads(source.read_text(encoding="utf-8"))
    article = dict(data["data"][0], paragraphs=data["data"][0]["paragraphs"][paragraphs])
    out.write_text(json.dumps(dict(data, data=[article])), encoding="utf-8")
    return sum(len(p["qas"]) for p in article["paragraphs"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where data, checkpoints and logs go (default: runs/check-base-TIMESTAMP)",
    )
    parser.add_argument(
        "--shared-dir",
        type=Path,
        default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")),
        help="the shared data (gpt2_bpe/, data/): default $SHARED_DIR, else ../shared",
    )
    parser.add_argument(
        "--updates", type=int, default=3, help="updates per training stage (default: 3, at least 2)"
    )
    parser.add_argument(
        "--keep-models", action="store_true", help="keep the checkpoints and exports (9 GB) after a pass"
    )
    args = parser.parse_args(argv)
    if args.updates < 2:
        raise UserInputError(
            f"--updates must be at least 2 (words/s leaves the first out), not {args.updates}"
        )
    bpe = args.shared_dir / "gpt2_bpe"
    wiki = args.shared_dir / "data" / "wiki" / "wiki-paragraphs.txt"
    squad = args.shared_dir / "data" / "squad2" / "squad2-dev-part.json"
    for path in (bpe / "dict.txt", wiki, squad):
        if not path.is_file():
            raise UserInputError(f"{path} not found (set --shared-dir or SHARED_DIR)")
    work = (args.work_dir or REPO / "runs" / f"check-base-{dt.datetime.now():%Y%m%d-%H%M%S}").resolve()
    if work.exists():
        raise UserInputError(f"{work} exists: give another --work-dir")
    logs = work / "logs"
    logs.mkdir(parents=True)
    py = sys.executable
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    stages = []
    training = ["optimization.max_update=" + str(args.updates), *CPU_OVERRIDES]

    run_stage(
        "split",
        [
            py,
            "scripts/split_data.py",
            "--inputs",
            wiki,
            "--outdir",
            work / "wiki",
            "--valid-docs",
            2,
            "--test-docs",
            1,
            "--quiet",
        ],
        logs,
    )
    stages.append(
        run_stage(
            "prepare_corpus",
            [
                py,
                "scripts/prepare_corpus.py",
                "--raw-dir",
                work / "wiki",
                "--gpt2-bpe",
                bpe,
                "--destdir",
                work / "data-bin",
                "--quiet",
            ],
            logs,
        )
    )

    pretrain = [*training, f"dataset.batch_size={PRETRAIN_BATCH}", "checkpoint.save_interval_updates=0"]
    scratch, continued = work / "pretrain-scratch", work / "pretrain-continued"
    for name, save_dir, restore in (
        ("pretrain_scratch", scratch, ["checkpoint.restore_file=checkpoint_last.pt"]),
        ("pretrain_continued", continued, ["--restore", scratch / "checkpoint_last.pt"]),
    ):
        stage = run_stage(
            name,
            [
                "bash",
                "scripts/pretrain.sh",
                "--config",
                "roberta_base_continue",
                "--data",
                work / "data-bin",
                "--save-dir",
                save_dir,
                *restore,
                *pretrain,
            ],
            logs,
        )
        stage.update(words_per_s=train_wps(save_dir), checkpoints_mb=sizes_mb(*sorted(save_dir.glob("*.pt"))))
        stages.append(stage)

    train_questions = slice_squad(squad, TRAIN_PARAGRAPHS, work / "squad-train.json")
    eval_json = work / "squad-eval.json"
    eval_questions = slice_squad(squad, EVAL_PARAGRAPHS, eval_json)
    stages.append(
        run_stage(
            "prepare_squad2",
            [
                py,
                "scripts/prepare_squad2.py",
                "--train",
                work / "squad-train.json",
                "--valid",
                eval_json,
                "--gpt2-bpe",
                bpe,
                "--destdir",
                work / "squad2-bin",
                *DEFAULT.window_arguments(),
            ],
            logs,
        )
    )
    squad_dir = work / "squad2-base"
    stage = run_stage(
        "finetune",
        [
            "bash",
            "scripts/finetune_squad2.sh",
            "--config",
            "squad2_base",
            "--data",
            work / "squad2-bin",
            "--restore",
            continued / "checkpoint_last.pt",
            "--save-dir",
            squad_dir,
            *training,
            f"dataset.batch_size={FINETUNE_BATCH}",
            f"dataset.batch_size_valid={FINETUNE_BATCH}",
        ],
        logs,
    )
    stage.update(
        words_per_s=train_wps(squad_dir),
        checkpoints_mb=sizes_mb(*sorted(squad_dir.glob("*.pt"))),
        train_questions=train_questions,
    )
    stages.append(stage)

    ours, theirs, hf_dir = work / "predictions-fairseq", work / "predictions-hf", work / "hf-model"
    stage = run_stage(
        "predict",
        [
            py,
            "scripts/predict_squad2.py",
            "--checkpoint",
            squad_dir / "checkpoint_best.pt",
            "--data",
            eval_json,
            "--gpt2-bpe",
            bpe,
            "--out",
            ours,
        ],
        logs,
    )
    stage.update(questions=eval_questions, questions_per_s=round(eval_questions / stage["seconds"], 3))
    stages.append(stage)
    stage = run_stage(
        "export",
        [
            py,
            "convert/fairseq_to_hf.py",
            "--checkpoint",
            squad_dir / "checkpoint_best.pt",
            "--gpt2-bpe",
            bpe,
            "--out",
            hf_dir,
        ],
        logs,
    )
    stage.update(
        checkpoints_mb=sizes_mb(*sorted(hf_dir.glob("*.safetensors")), *sorted(hf_dir.glob("*.bin")))
    )
    stages.append(stage)
    stage = run_stage(
        "evaluate_hf",
        [py, "convert/evaluate_hf.py", "--model", hf_dir, "--data", eval_json, "--out", theirs],
        logs,
    )
    stage.update(questions=eval_questions, questions_per_s=round(eval_questions / stage["seconds"], 3))
    stages.append(stage)
    roundtrip = work / "fairseq-from-hf"
    stage = run_stage(
        "import_hf",
        [py, "convert/hf_to_fairseq.py", "--model", hf_dir, "--gpt2-bpe", bpe, "--out", roundtrip],
        logs,
    )
    stage.update(checkpoints_mb=sizes_mb(roundtrip / "model.pt"))
    stages.append(stage)

    answers = [json.loads((d / "predictions.json").read_text(encoding="utf-8")) for d in (ours, theirs)]
    differing = sorted(q for q in answers[0] if answers[0][q] != answers[1].get(q))
    report = {
        "stages": stages,
        "answers_agree": not differing,
        "differing": differing,
        "questions": eval_questions,
        "updates": args.updates,
        "seconds": round(time.perf_counter() - started),
        "load_average": [load_at_start, [round(x, 2) for x in os.getloadavg()]],
        "cores": os.cpu_count(),
    }
    (work / "check_base.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'stage':20} {'s':>7} {'words/s':>9} {'questions/s':>11} {'peak MB':>8}  checkpoints (MB)")
    for s in stages:
        rates = [s.get("words_per_s"), s.get("questions_per_s")]
        wps, qps = ("-" if rate is None else f"{rate:.3g}" for rate in rates)
        sizes = ", ".join(f"{k} {v}" for k, v in s.get("checkpoints_mb", {}).items()) or "-"
        print(f"{s['stage']:20} {s['seconds']:7.1f} {wps:>9} {qps:>11} {s['peak_mb']:8d}  {sizes}")
    print(
        f"\n{eval_questions} questions: fairseq and HF answers "
        + ("agree" if not differing else f"differ on {len(differing)}: {differing[:5]}")
    )
    print(
        f"{report['seconds']} s in all; load average {' -> '.join(map(str, report['load_average']))}; "
        f"{work / 'check_base.json'}"
    )
    if not differing and not args.keep_models:  # logs, predictions and check_base.json stay
        for model_file in [*work.rglob("*.pt"), *work.rglob("*.safetensors")]:
            model_file.unlink()
    return 0 if not differing else 1


if __name__ == "__main__":
    run_cli(main)
