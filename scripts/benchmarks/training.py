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

Two more rows against the recipes users run (transformers' examples, written out with transformers +
torch, since they need ``datasets``): ``qa-training vs run_qa``, windows/s of the squad2 task batched by
tokens (``dataset.max_tokens``) vs run_qa's training (every window padded to 384), at run_qa's windows;
``mlm-training vs run_mlm``, tokens/s of scripts/pretrain.sh --config tiny vs run_mlm's training
(group_texts blocks, DataCollatorForLanguageModeling) of the same size, block and batch.

Also run as ``python -m scripts.benchmarks.training SIDE ...``: one side, results as JSON.
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
from typing import Sequence

import numpy as np

from fairseq_ext.squad.settings import DEFAULT, TINY

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs" / "finetuning"
CONFIG_NAME = "squad2_tiny"
# the windows of squad2_tiny.yaml (prepare_squad2.py must use the same)
WINDOW_ARGS = TINY.window_arguments()
BATCH_SIZE = 16
WARMUP_UPDATES = 6  # squad2_tiny's lr warmup: timing starts once the schedule is past it
# run_qa.py's defaults: windows of 384 tokens (stride 128, questions up to 64), every window padded to 384;
# our side batches by tokens, the same budget as RUN_QA_BATCH full windows
RUN_QA = DEFAULT
RUN_QA_BATCH = BATCH_SIZE
MAX_TOKENS = RUN_QA_BATCH * RUN_QA.max_seq_length
MLM_WARMUP_UPDATES = 5  # tiny.yaml's lr warmup; fairseq's first logged interval (log_interval 5)
# one intra-op thread on both sides: a 64-wide model gains nothing from more, and with two, timings swing
# up to tenfold as soon as anything else runs on the cores
SIDE_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}



def trainer_step(loss, model, optimizer, scheduler) -> float:
    """One optimiser step as transformers' Trainer takes it (clip at 1.0, then step, schedule, zero)."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return loss.item()

def slice_squad(source: pathlib.Path, articles: slice, out: pathlib.Path) -> pathlib.Path:
    data = json.loads(source.read_text(encoding="utf-8"))
    data["data"] = data["data"][articles]
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def prepare_features(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool,
                     windows: Sequence[str] = WINDOW_ARGS, name: str = "data-bin") -> pathlib.Path:
    """WORK_DIR/NAME for task squad2 from shared SQuAD articles (train: the first 1 or 4, valid: the next:
    squad-train.json, squad-valid.json), with prepare_squad2.py's ``windows`` arguments."""
    squad = shared_dir / "data" / "squad2" / "squad2-dev-part.json"
    train_articles = 1 if quick else 4
    train = slice_squad(squad, slice(0, train_articles), work_dir / "squad-train.json")
    valid = slice_squad(squad, slice(train_articles, train_articles + 1), work_dir / "squad-valid.json")
    data_dir = work_dir / name
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_squad2.py"), "--train", str(train),
                    "--valid", str(valid), "--gpt2-bpe", str(shared_dir / "gpt2_bpe"), "--destdir",
                    str(data_dir), *windows], check=True, stdout=subprocess.DEVNULL)
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

def compose_tiny_config(data_dir: pathlib.Path, save_dir: pathlib.Path, total_updates: int,
                        batching: Sequence[str] = (f"dataset.batch_size={BATCH_SIZE}",)):
    from fairseq_ext.training.preflight import compose_config, plugin_dir

    return compose_config(CONFIG_DIR, CONFIG_NAME, [
        f"task.data={data_dir}", f"checkpoint.save_dir={save_dir}", "checkpoint.restore_file=none",
        f"common.user_dir={plugin_dir()}", f"optimization.max_update={total_updates}", *batching,
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
        losses.append(trainer_step(loss, model, optimizer, scheduler))
    return side_result(time.perf_counter() - start, updates, model, losses)


# --- against the recipes users run: transformers' run_qa.py and run_mlm.py (Trainer, datasets), written
# out with transformers + torch only: the same preprocessing, collation, optimiser and schedule

def tokens_overrides() -> list[str]:
    """squad2_tiny.yaml at run_qa's windows (384 tokens, stride 128; the model's positions to match),
    batched by tokens: as many windows as fit in RUN_QA_BATCH windows of 384 tokens."""
    return [f"task.max_positions={RUN_QA.max_seq_length + 128}",
            *[f"task.{name}={getattr(RUN_QA, name)}" for name in RUN_QA.WINDOW_FIELDS],
            "dataset.batch_size=null", f"dataset.max_tokens={MAX_TOKENS}"]


def fairseq_tokens_side(data_dir: pathlib.Path, updates: int, save: pathlib.Path) -> dict:
    """Our fine-tuning as fairseq-hydra-train runs it: the task's batch iterator (dataset.max_tokens,
    length-grouped batches, shuffled), Trainer.train_step; windows/s after the warm-up updates."""
    from fairseq import tasks, utils
    from fairseq.trainer import Trainer

    total = WARMUP_UPDATES + updates
    cfg = compose_tiny_config(data_dir, save.parent, total, tokens_overrides())
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    losses, windows, epoch = [], 0, 0
    while len(losses) < total:
        epoch += 1
        iterator = task.get_batch_iterator(
            task.dataset("train"), max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
            max_positions=task.max_positions(), required_batch_size_multiple=1, seed=cfg.common.seed,
            epoch=epoch).next_epoch_itr(shuffle=True)
        for sample in iterator:
            if len(losses) == WARMUP_UPDATES:
                start, windows = time.perf_counter(), 0
            if len(losses) == total:
                break
            losses.append(float(trainer.train_step([sample])["loss"]))
            windows += sample["nsentences"]
    elapsed = time.perf_counter() - start
    trainer.consolidate_optimizer()
    trainer.save_checkpoint(str(save), {"train_iterator": {"epoch": epoch}, "val_loss": None})
    return {**side_result(elapsed, updates, model, losses), "windows": windows,
            "epoch_windows": len(task.dataset("train"))}


def run_qa_side(train_json: pathlib.Path, bpe_dir: pathlib.Path, hf_model: pathlib.Path,
                updates: int) -> dict:
    """run_qa.py's training: prepare_train_features (padding="max_length"), then the Trainer's loop
    (shuffled batches of RUN_QA_BATCH, AdamW with squad2_tiny's settings, linear decay, clip 1.0)."""
    import torch
    from fairseq.data import Dictionary
    from transformers import AutoModelForQuestionAnswering, get_linear_schedule_with_warmup

    from fairseq_ext.squad import load_squad
    from fairseq_ext.tokenizer import Gpt2Bpe
    from scripts.benchmarks.squad_features import (
        reference_to_fairseq_ids,
        reference_tokenizer,
        run_qa_train_features,
    )

    tokenizer = reference_tokenizer(bpe_dir)
    features = run_qa_train_features(tokenizer, load_squad(train_json).examples, RUN_QA.max_seq_length,
                                     RUN_QA.doc_stride, padding="max_length")
    # the reference tokenizer's GPT-2 ids -> the model's (fairseq dictionary) ids
    to_model = reference_to_fairseq_ids(tokenizer, Gpt2Bpe.from_dir(bpe_dir).to_dictionary(
        Dictionary.load(str(bpe_dir / "dict.txt")).symbols))
    input_ids = torch.from_numpy(to_model[np.array([f["input_ids"] for f in features])])
    attention_mask = input_ids.ne(to_model[tokenizer.pad_token_id]).long()
    starts = torch.tensor([f["start_position"] for f in features])
    ends = torch.tensor([f["end_position"] for f in features])
    total = WARMUP_UPDATES + updates
    torch.manual_seed(1)
    model = AutoModelForQuestionAnswering.from_pretrained(str(hf_model)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    losses = []
    for step, rows in enumerate(batch_plan(len(features), total, RUN_QA_BATCH)):
        if step == WARMUP_UPDATES:
            start = time.perf_counter()
        loss = model(input_ids=input_ids[rows], attention_mask=attention_mask[rows],
                     start_positions=starts[rows], end_positions=ends[rows]).loss
        losses.append(trainer_step(loss, model, optimizer, scheduler))
    elapsed = time.perf_counter() - start
    return {**side_result(elapsed, updates, model, losses), "windows": updates * RUN_QA_BATCH,
            "epoch_windows": len(features)}


def run_mlm_side(raw_train: pathlib.Path, hf_model: pathlib.Path, updates: int) -> dict:
    """run_mlm.py's training: tokenize lines, group_texts into blocks of tokens_per_sample,
    DataCollatorForLanguageModeling (15%), the Trainer's loop with tiny.yaml's batch, AdamW settings,
    linear decay, clip 1.0; tokens/s after the warm-up updates."""
    import torch
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        get_linear_schedule_with_warmup,
    )

    cfg = mlm_config()
    block, batch = cfg.task.tokens_per_sample, cfg.dataset.batch_size
    tokenizer = AutoTokenizer.from_pretrained(str(hf_model))
    lines = [line for line in raw_train.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenized = tokenizer(lines, return_special_tokens_mask=True)
    columns = {key: [i for row in tokenized[key] for i in row]
               for key in ("input_ids", "special_tokens_mask")}
    length = len(columns["input_ids"]) // block * block  # group_texts
    blocks = [{key: values[i:i + block] for key, values in columns.items()} for i in range(0, length, block)]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    total = MLM_WARMUP_UPDATES + updates
    torch.manual_seed(1)
    model = AutoModelForMaskedLM.from_pretrained(str(hf_model)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg.optimization.lr[0]), betas=(0.9, 0.98),
                                  eps=1e-6, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total)
    losses, tokens = [], 0
    for step, rows in enumerate(batch_plan(len(blocks), total, batch)):
        if step == MLM_WARMUP_UPDATES:
            start, tokens = time.perf_counter(), 0
        inputs = collator([blocks[r] for r in rows])  # the Trainer's collate_fn, timed
        loss = model(**inputs).loss
        losses.append(trainer_step(loss, model, optimizer, scheduler))
        tokens += int(inputs["attention_mask"].sum())
    elapsed = time.perf_counter() - start
    return {**side_result(elapsed, updates, model, losses), "tokens": tokens, "block": block, "batch": batch}


def mlm_config():
    """configs/pretraining/tiny.yaml (model size, block size, batch) as fairseq composes it."""
    from fairseq_ext.training.preflight import compose_config

    return compose_config(REPO / "configs" / "pretraining", "tiny",
                          ["task.data=unused", "checkpoint.save_dir=unused"])


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
    return data_dir, ours, checkpoint, export_hf(checkpoint, shared_dir, work_dir / "hf-model"), updates


def export_hf(checkpoint: pathlib.Path, shared_dir: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    subprocess.run([sys.executable, str(REPO / "convert" / "fairseq_to_hf.py"), "--checkpoint",
                    str(checkpoint), "--gpt2-bpe", str(shared_dir / "gpt2_bpe"), "--out", str(out)],
                   check=True,
                    stdout=subprocess.DEVNULL)
    return out


def train_by_tokens_and_export(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool):
    """Features at run_qa's windows, squad2_tiny trained on them batched by tokens (timed), its HF export:
    (data_dir, fairseq result, checkpoint, hf_dir, updates). The inference benchmark reuses them."""
    data_dir = prepare_features(work_dir, shared_dir, quick, RUN_QA.window_arguments(), "data-bin-run-qa")
    updates = 3 if quick else 30
    checkpoint = work_dir / "checkpoints-run-qa" / "checkpoint_last.pt"
    checkpoint.parent.mkdir(parents=True)
    ours = run_side("fairseq-tokens", work_dir, "--data", str(data_dir), "--updates", str(updates),
                    "--save", str(checkpoint))
    hf_dir = export_hf(checkpoint, shared_dir, work_dir / "hf-model-run-qa")
    return data_dir, ours, checkpoint, hf_dir, updates


def qa_training_vs_run_qa(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool) -> dict:
    data_dir, ours, _, hf_dir, updates = train_by_tokens_and_export(work_dir, shared_dir, quick)
    reference = run_side("run_qa", work_dir, "--data", str(work_dir / "squad-train.json"), "--updates",
                         str(updates), "--hf-model", str(hf_dir), "--gpt2-bpe", str(shared_dir / "gpt2_bpe"))
    ours_rate, reference_rate = ours["windows"] / ours["seconds"], reference["windows"] / reference["seconds"]
    return {
        "benchmark": "qa-training vs run_qa",
        "ours": f"fairseq task squad2 batches by tokens (dataset.max_tokens={MAX_TOKENS}, length-grouped), "
                f"Trainer.train_step, {CONFIG_NAME}.yaml at 384-token windows",
        "reference": f"run_qa.py recipe: prepare_train_features padded to max_seq_length "
                     f"{RUN_QA.max_seq_length}, Trainer-equivalent loop, batch {RUN_QA_BATCH}, "
                     "converted model",
        "ours_s": 1 / ours_rate,
        "reference_s": 1 / reference_rate,
        "ratio": ours_rate / reference_rate,
        "unit": "seconds per window",
        "note": f"s = seconds per window: {ours_rate:.1f} vs {reference_rate:.1f} windows/s",
        "ours_windows_per_s": ours_rate,
        "reference_windows_per_s": reference_rate,
        "ours_windows": ours["windows"],
        "reference_windows": reference["windows"],
        "windows_in_data": [ours["epoch_windows"], reference["epoch_windows"]],
        "updates": updates,
        "ours_peak_mb": ours["peak_mb"],
        "reference_peak_mb": reference["peak_mb"],
        "params": [ours["params"], reference["params"]],
        "ours_loss": [ours["first_loss"], ours["last_loss"]],
        "reference_loss": [reference["first_loss"], reference["last_loss"]],
        "threads": ours["threads"],
    }


def logged_tokens_per_s(log: pathlib.Path, skip: int = 0) -> float:
    """Tokens/s by fairseq's own per-update records (common.log_format=json, common.log_interval=1, in
    common.log_file LOG) after the first ``skip`` updates."""
    tokens = seconds = 0.0
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line) if line.startswith("{") else {}
        except json.JSONDecodeError:
            continue
        if "wps" in record and "num_updates" in record and int(record["num_updates"]) > skip:
            tokens += float(record["wpb"])
            seconds += float(record["wpb"]) / max(float(record["wps"]), 1e-9)
    if not seconds:
        raise ValueError(f"{log}: no per-update records after update {skip}")
    return tokens / seconds


def mlm_training_vs_run_mlm(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool) -> dict:
    """scripts/pretrain.sh --config tiny (its own process; fairseq's logged tokens/s) vs the run_mlm recipe
    on the HF export of the checkpoint it wrote (same size, block and batch), on the shared wiki
    paragraphs."""
    raw, data = work_dir / "wiki", work_dir / "data-bin-wiki"
    subprocess.run([sys.executable, str(REPO / "scripts" / "split_data.py"), "--inputs",
                    str(shared_dir / "data" / "wiki" / "wiki-paragraphs.txt"), "--outdir", str(raw),
                    "--valid-docs", "2", "--test-docs", "1", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_corpus.py"), "--raw-dir", str(raw),
                    "--gpt2-bpe", str(shared_dir / "gpt2_bpe"), "--destdir", str(data), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    updates = 5 if quick else 60
    save = work_dir / "pretrain-tiny"
    with open(work_dir / "pretrain.log", "w") as log:
        process = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "pretrain.sh"), "--config", "tiny", "--data", str(data),
             "--save-dir", str(save), f"optimization.max_update={MLM_WARMUP_UPDATES + updates}",
             "common.log_interval=1", "dataset.disable_validation=true",
             "checkpoint.save_interval_updates=0"],
            cwd=REPO, env={**SIDE_ENV, "PYTHON": sys.executable}, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pretrain.sh failed: see {work_dir / 'pretrain.log'}")
    ours_rate = logged_tokens_per_s(save / "train_log.json", MLM_WARMUP_UPDATES)
    hf_dir = export_hf(save / "checkpoint_last.pt", shared_dir, work_dir / "hf-mlm")
    reference = run_side("run_mlm", work_dir, "--data", str(raw / "data.train.raw"), "--updates",
                         str(updates), "--hf-model", str(hf_dir))
    reference_rate = reference["tokens"] / reference["seconds"]
    return {
        "benchmark": "mlm-training vs run_mlm",
        "ours": "scripts/pretrain.sh --config tiny (fairseq-hydra-train, masked_lm; its logged tokens/s)",
        "reference": f"run_mlm.py recipe: group_texts blocks of {reference['block']}, "
                     f"DataCollatorForLanguageModeling, Trainer-equivalent loop, batch {reference['batch']}",
        "ours_s": 1000 / ours_rate,
        "reference_s": 1000 / reference_rate,
        "ratio": ours_rate / reference_rate,
        "unit": "seconds per 1000 tokens",
        "note": f"s = seconds per 1000 tokens: {ours_rate:.0f} vs {reference_rate:.0f} tokens/s",
        "ours_tokens_per_s": ours_rate,
        "reference_tokens_per_s": reference_rate,
        "updates": updates,
        "ours_peak_mb": usage.ru_maxrss / 1024,
        "reference_peak_mb": reference["peak_mb"],
        "reference_params": reference["params"],
        "reference_loss": [reference["first_loss"], reference["last_loss"]],
    }


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
    }, qa_training_vs_run_qa(work_dir, shared_dir, quick),
        mlm_training_vs_run_mlm(work_dir, shared_dir, quick)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one side of the QA training benchmark")
    parser.add_argument("side", choices=("fairseq", "hf", "fairseq-tokens", "run_qa", "run_mlm"))
    parser.add_argument("--data", type=pathlib.Path, required=True,
                        help="prepare_squad2.py output (run_qa: the SQuAD JSON; run_mlm: the raw text)")
    parser.add_argument("--gpt2-bpe", type=pathlib.Path, help="run_qa: the GPT-2 BPE files")
    parser.add_argument("--updates", type=int, required=True, help="timed updates (after the warm-up)")
    parser.add_argument("--save", type=pathlib.Path, help="fairseq: write the trained checkpoint here")
    parser.add_argument("--hf-model", type=pathlib.Path, help="hf: the converted model directory")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="result JSON")
    args = parser.parse_args(argv)
    if args.side == "fairseq":
        result = fairseq_side(args.data, args.updates, args.save)
    elif args.side == "hf":
        result = hf_side(args.data, args.hf_model, args.updates)
    elif args.side == "fairseq-tokens":
        result = fairseq_tokens_side(args.data, args.updates, args.save)
    elif args.side == "run_qa":
        result = run_qa_side(args.data, args.gpt2_bpe, args.hf_model, args.updates)
    else:
        result = run_mlm_side(args.data, args.hf_model, args.updates)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
