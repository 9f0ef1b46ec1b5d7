"""Benchmark: SQuAD span-QA training throughput (updates/s) and peak memory, fairseq vs transformers.

Ours: fairseq's ``Trainer.train_step`` with our plugin (task ``squad2``, model ``roberta_span_qa_tiny``,
criterion ``span_qa``), configured by configs/finetuning/squad2_tiny.yaml exactly as
scripts/finetune_squad2.sh composes it. Reference: a plain PyTorch loop over transformers'
``RobertaForQuestionAnswering`` loaded from the fairseq model converted by convert/fairseq_to_hf.py (so
the same architecture and vocabulary, checked by the converter), with the optimiser, schedule and gradient
clipping of that config (AdamW, polynomial decay with warmup, clip 1.0).

Both sides train on the same features (scripts/prepare_squad2.py on shared SQuAD articles) in the same
batches (the same windows, right-padded to the batch's longest), on CPU with one thread, each in its own
subprocess so that its peak resident memory (ru_maxrss) is its own. Timing starts after a few warm-up
updates.

Also run as ``python -m scripts.benchmarks.training {fairseq,hf} ...``: one side, results as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

from fairseq_ext.squad.settings import TINY

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs" / "finetuning"
CONFIG_NAME = "squad2_tiny"
# the windows of squad2_tiny.yaml (prepare_squad2.py must use the same)
WINDOW_ARGS = TINY.window_arguments()
BATCH_SIZE = 16
WARMUP_UPDATES = 6  # squad2_tiny's lr warmup: timing starts once the schedule is past it
# one intra-op thread on both sides: a 64-wide model gains nothing from more, and with two, timings swing
# up to tenfold as soon as anything else runs on the cores
SIDE_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def slice_squad(source: pathlib.Path, articles: slice, out: pathlib.Path) -> pathlib.Path:
    data = json.loads(source.read_text(encoding="utf-8"))
    data["data"] = data["data"][articles]
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def prepare_features(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool) -> pathlib.Path:
    """data-bin for task squad2 from shared SQuAD articles (train: the first 1 or 4, valid: the next)."""
    squad = shared_dir / "data" / "squad2" / "squad2-dev-part.json"
    train_articles = 1 if quick else 4
    train = slice_squad(squad, slice(0, train_articles), work_dir / "squad-train.json")
    valid = slice_squad(squad, slice(train_articles, train_articles + 1), work_dir / "squad-valid.json")
    data_dir = work_dir / "data-bin"
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_squad2.py"), "--train", str(train),
                    "--valid", str(valid), "--gpt2-bpe", str(shared_dir / "gpt2_bpe"), "--destdir",
                    str(data_dir), *WINDOW_ARGS], check=True, stdout=subprocess.DEVNULL)
    return data_dir


def batch_plan(windows: int, batches: int, batch_size: int = BATCH_SIZE, seed: int = 1) -> list[list[int]]:
    """The windows of each batch: shuffled epochs, cut into batches, as many as asked for."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(windows) for _ in range(-(-batches * batch_size // windows))])
    return [order[i * batch_size:(i + 1) * batch_size].tolist() for i in range(batches)]


def side_result(seconds: float, updates: int, model, losses: list[float]) -> dict:
    import torch

    return {
        "seconds": seconds,
        "updates": updates,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


# ------------------------------------------------------------------------------------------------ workers

def compose_tiny_config(data_dir: pathlib.Path, save_dir: pathlib.Path, total_updates: int):
    from fairseq_ext.training.preflight import compose_config, plugin_dir

    return compose_config(CONFIG_DIR, CONFIG_NAME, [
        f"task.data={data_dir}", f"checkpoint.save_dir={save_dir}", "checkpoint.restore_file=none",
        f"common.user_dir={plugin_dir()}", f"optimization.max_update={total_updates}",
        f"dataset.batch_size={BATCH_SIZE}",
    ])


def fairseq_side(data_dir: pathlib.Path, updates: int, save: pathlib.Path | None) -> dict:
    from fairseq import tasks, utils
    from fairseq.trainer import Trainer

    total = WARMUP_UPDATES + updates
    cfg = compose_tiny_config(data_dir, save.parent if save else data_dir, total)
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    plan = batch_plan(len(dataset), total)
    losses = []
    for step, windows in enumerate(plan):
        if step == WARMUP_UPDATES:
            start = time.perf_counter()
        logging_output = trainer.train_step([dataset.collater(windows)])
        losses.append(float(logging_output["loss"]))
    elapsed = time.perf_counter() - start
    if save:
        trainer.consolidate_optimizer()  # as checkpoint_utils.save_checkpoint does first
        trainer.save_checkpoint(str(save), {"train_iterator": {"epoch": 1}, "val_loss": None})
    return side_result(elapsed, updates, model, losses)


def hf_side(data_dir: pathlib.Path, hf_model: pathlib.Path, updates: int) -> dict:
    import torch
    from transformers import AutoModelForQuestionAnswering, get_polynomial_decay_schedule_with_warmup

    from fairseq_ext.squad.features import PAD
    from fairseq_ext.squad.format import FeatureArrays

    arrays = FeatureArrays.load(data_dir / "train.features.npz")
    total = WARMUP_UPDATES + updates
    torch.manual_seed(1)
    model = AutoModelForQuestionAnswering.from_pretrained(str(hf_model)).train()
    # squad2_tiny.yaml: adam (decoupled weight decay) lr 1e-3, betas (0.9, 0.98), eps 1e-6, wd 0.01,
    # polynomial decay with 6 warmup updates, clip_norm 1.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    scheduler = get_polynomial_decay_schedule_with_warmup(optimizer, WARMUP_UPDATES, total)
    losses = []
    for step, windows in enumerate(batch_plan(len(arrays), total)):
        if step == WARMUP_UPDATES:
            start = time.perf_counter()
        lengths = arrays.lengths[windows]
        input_ids = torch.full((len(windows), int(lengths.max())), PAD, dtype=torch.long)
        for row, window in enumerate(windows):
            input_ids[row, :lengths[row]] = torch.from_numpy(arrays.tokens(window).astype(np.int64))
        loss = model(input_ids=input_ids, attention_mask=input_ids.ne(PAD).long(),
                     start_positions=torch.from_numpy(arrays.start_positions[windows].astype(np.int64)),
                     end_positions=torch.from_numpy(arrays.end_positions[windows].astype(np.int64))).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return side_result(time.perf_counter() - start, updates, model, losses)


def run_side(side: str, work_dir: pathlib.Path, *args: str) -> dict:
    """One side in a fresh interpreter (its own peak memory), its result read back from JSON."""
    out = work_dir / f"{side}-result.json"
    subprocess.run([sys.executable, "-m", "scripts.benchmarks.training", side, *args, "--out", str(out)],
                   check=True, cwd=REPO, env=SIDE_ENV, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def train_and_export(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool):
    """Features, a fairseq span-QA checkpoint trained in the fairseq timing run, and its HF export:
    (data_dir, fairseq result, checkpoint, hf_dir, updates). The inference benchmark reuses them."""
    data_dir = prepare_features(work_dir, shared_dir, quick)
    updates = 5 if quick else 60
    checkpoint = work_dir / "checkpoints" / "checkpoint_last.pt"
    checkpoint.parent.mkdir(parents=True)
    ours = run_side("fairseq", work_dir, "--data", str(data_dir), "--updates", str(updates),
                    "--save", str(checkpoint))
    hf_dir = work_dir / "hf-model"
    subprocess.run([sys.executable, str(REPO / "convert" / "fairseq_to_hf.py"), "--checkpoint",
                    str(checkpoint), "--gpt2-bpe", str(shared_dir / "gpt2_bpe"), "--out", str(hf_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    return data_dir, ours, checkpoint, hf_dir, updates


def run(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool = False) -> list[dict]:
    data_dir, ours, _, hf_dir, updates = train_and_export(work_dir, shared_dir, quick)
    reference = run_side("hf", work_dir, "--data", str(data_dir), "--updates", str(updates),
                         "--hf-model", str(hf_dir))
    return [{
        "benchmark": "qa_training",
        "ours": f"fairseq Trainer.train_step, roberta_span_qa_tiny + span_qa ({CONFIG_NAME}.yaml)",
        "reference": "plain PyTorch loop on transformers RobertaForQuestionAnswering (converted model)",
        "ours_s": ours["seconds"],
        "reference_s": reference["seconds"],
        "ratio": reference["seconds"] / ours["seconds"],
        "updates": updates,
        "batch_size": BATCH_SIZE,
        "ours_updates_per_s": updates / ours["seconds"],
        "reference_updates_per_s": updates / reference["seconds"],
        "ours_peak_mb": ours["peak_mb"],
        "reference_peak_mb": reference["peak_mb"],
        "ours_params": ours["params"],
        "reference_params": reference["params"],
        "ours_loss": [ours["first_loss"], ours["last_loss"]],
        "reference_loss": [reference["first_loss"], reference["last_loss"]],
        "threads": ours["threads"],
    }]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one side of the QA training benchmark")
    parser.add_argument("side", choices=("fairseq", "hf"))
    parser.add_argument("--data", type=pathlib.Path, required=True, help="prepare_squad2.py output")
    parser.add_argument("--updates", type=int, required=True, help="timed updates (after the warm-up)")
    parser.add_argument("--save", type=pathlib.Path, help="fairseq: write the trained checkpoint here")
    parser.add_argument("--hf-model", type=pathlib.Path, help="hf: the converted model directory")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="result JSON")
    args = parser.parse_args(argv)
    if args.side == "fairseq":
        result = fairseq_side(args.data, args.updates, args.save)
    else:
        result = hf_side(args.data, args.hf_model, args.updates)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
