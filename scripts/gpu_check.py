"""GPU check: training throughput and peak memory of fairseq (the workflow's engine, with our plugin) vs a
plain transformers loop, on one GPU, for a roberta-base-sized model from random init, with fp16:

  - continued masked-LM pretraining (configs/pretraining/roberta_base_continue.yaml): 512-token blocks of
    the shared wiki paragraphs, 15% of the tokens masked (80% <mask>, 10% random, 10% kept);
  - SQuAD v2 fine-tuning (configs/finetuning/squad2_base.yaml): 384-token windows of the shared SQuAD part.

Both sides train on the same batches (the same blocks and masks, the same windows). fairseq:
``Trainer.train_step`` on the config composed as scripts/pretrain.sh composes it (fp16 with loss scaling,
Adam, polynomial decay). transformers: ``RobertaForMaskedLM`` / ``RobertaForQuestionAnswering`` of the same
size, AdamW with the config's settings and schedule, ``torch.autocast`` fp16 with a ``GradScaler``.
Reported per side: words/s (non-padding tokens per second, timed after a warm-up) and peak GPU memory
(``torch.cuda.max_memory_allocated``), as a table and in OUT/gpu_check.json with the GPU's name.

    scripts/gpu_check.sh [--updates 300] [--out DIR]
    scripts/gpu_check.sh --dry-run     the tiny configs on CPU for a few updates: the script itself, in
                                       seconds (peak memory is then the process's resident size)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts.benchmarks.training
    sys.path.insert(0, str(REPO))

from fairseq_ext.cli import run_cli  # noqa: E402
from fairseq_ext.errors import UserInputError  # noqa: E402
from fairseq_ext.squad.settings import DEFAULT, TINY, QASettings  # noqa: E402
from scripts.benchmarks.training import batch_plan  # noqa: E402

MASK_PROBABILITY = 0.15


@dataclass(frozen=True)
class Setting:
    """What one run of the check trains: the workflow's configs and their sizes, on a device."""

    device: str
    fp16: bool
    pretrain_config: str
    finetune_config: str
    block: int  # tokens per masked-LM sequence (the config's tokens_per_sample)
    windows: QASettings  # the finetune config's windows (prepare_squad2.py must use the same)
    batch_size: int  # sequences per update, both stages (the configs' dataset.batch_size)
    updates: int  # timed updates per side and stage
    warmup: int  # untimed updates first
    wiki_lines: Optional[int]  # of the shared wiki paragraphs (None: all)
    squad_articles: int


def setting(dry_run: bool, updates: int) -> Setting:
    if dry_run:
        return Setting("cpu", False, "tiny", "squad2_tiny", 128, TINY, 4, 3, 1, 200, 1)
    return Setting("cuda", True, "roberta_base_continue", "squad2_base", 512, DEFAULT, 16, updates, 10,
                   None, 20)


def parse_args(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(prog=os.environ.get("GPU_CHECK_PROG"),  # gpu_check.sh names itself
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=300,
                        help="timed updates per side and stage (default 300)")
    parser.add_argument("--shared-dir", type=Path, default=REPO.parent / "shared",
                        help="the shared data: gpt2_bpe/, data/wiki/, data/squad2/ (default ../shared)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/gpu-check-TIMESTAMP)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny model on CPU for a few updates: checks the script, not the GPU")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    run = setting(args.dry_run, args.updates)
    if run.device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("no CUDA GPU visible: run this on a GPU node (or --dry-run to check the script)")
    out = args.out or REPO / "runs" / f"gpu-check-{dt.datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    gpu = torch.cuda.get_device_name(0) if run.device == "cuda" else "none (dry run on CPU)"
    print(f"gpu_check: {gpu}; {run.pretrain_config} and {run.finetune_config}, batch {run.batch_size}, "
          f"{run.warmup} + {run.updates} updates per side, fp16 {run.fp16}", flush=True)

    from fairseq.data import Dictionary

    bpe_dir = args.shared_dir / "gpt2_bpe"
    mlm_dir = out / "mlm-data"  # masked_lm reads only dict.txt: batches are made here
    mlm_dir.mkdir(exist_ok=True)
    (mlm_dir / "dict.txt").write_bytes((bpe_dir / "dict.txt").read_bytes())
    dictionary = Dictionary.load(str(mlm_dir / "dict.txt"))
    mask_index = dictionary.add_symbol("<mask>")
    blocks = wiki_blocks(args.shared_dir, bpe_dir, dictionary, run)
    mlm_batches = masked_batches(blocks, run, dictionary, mask_index)
    squad_dir = prepare_squad(args.shared_dir, bpe_dir, out, run)

    rows = []
    for stage, fairseq_side, hf_side, data in (("continued pretraining", fairseq_mlm, hf_mlm, mlm_batches),
                                               ("SQuAD fine-tuning", fairseq_qa, hf_qa, squad_dir)):
        for side, train in (("fairseq", fairseq_side), ("transformers", hf_side)):
            print(f"gpu_check: {stage}, {side} ...", flush=True)
            reset_peak_memory(run)
            tokens, seconds, losses = train(run, data, mlm_dir)
            applied = [loss for loss in losses if loss is not None]
            rows.append({"stage": stage, "side": side, "updates": run.updates, "tokens": tokens,
                         "seconds": seconds, "words_per_s": tokens / seconds, "peak_mb": peak_memory_mb(run),
                         "skipped_updates": len(losses) - len(applied),
                         "first_loss": applied[0] if applied else math.nan,
                         "last_loss": applied[-1] if applied else math.nan})
            gc.collect()
    report = {"gpu": gpu, "torch": torch.__version__, "results": rows,
              "setting": {**run.__dict__, "windows": run.windows.windows()}}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"\n{'stage':<22} {'side':<13} {'words/s':>10} {'peak MB':>9} {'loss (nats) first -> last':>26} "
          f"{'skipped (fp16)':>15}")
    for row in rows:
        print(f"{row['stage']:<22} {row['side']:<13} {row['words_per_s']:>10.0f} {row['peak_mb']:>9.0f} "
              f"{row['first_loss']:>15.3f} -> {row['last_loss']:<7.3f} {row['skipped_updates']:>15}")
    for stage in ("continued pretraining", "SQuAD fine-tuning"):
        ours, theirs = (next(r for r in rows if r["stage"] == stage and r["side"] == s)
                        for s in ("fairseq", "transformers"))
        print(f"{stage}: fairseq / transformers words/s = {ours['words_per_s'] / theirs['words_per_s']:.2f}, "
              f"peak memory {ours['peak_mb'] / theirs['peak_mb']:.2f}")
    print(f"gpu_check: wrote {out / 'gpu_check.json'}")
    bad = [f"{r['stage']}, {r['side']}" for r in rows
           if not all(map(math.isfinite, (r["first_loss"], r["last_loss"])))]
    if bad:
        print(f"gpu_check: non-finite loss in {'; '.join(bad)}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ data

def wiki_blocks(shared_dir: Path, bpe_dir: Path, dictionary, run: Setting) -> np.ndarray:
    """The wiki paragraphs as RoBERTa masked-LM samples: <s> + BLOCK-1 tokens of the running text (each
    paragraph ended by </s>), like fairseq's masked_lm with sample_break_mode none."""
    from fairseq_ext.tokenizer import Gpt2Bpe

    lines = (shared_dir / "data" / "wiki" / "wiki-paragraphs.txt").read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines[:run.wiki_lines] if line.strip()]
    bpe = Gpt2Bpe.from_dir(bpe_dir)
    tokenizer = bpe.to_dictionary(dictionary.symbols, unk_index=dictionary.unk())
    stream = np.concatenate([np.append(tokenizer.to_indices(ids), dictionary.eos())
                             for ids in bpe.encode_batch(lines)])
    body = run.block - 1
    count = len(stream) // body
    blocks = stream[:count * body].reshape(count, body)
    return np.concatenate([np.full((count, 1), dictionary.bos()), blocks], axis=1)


def masked_batches(blocks: np.ndarray, run: Setting, dictionary, mask_index: int) -> list[tuple]:
    """(tokens, targets) per update: shuffled epochs of the blocks, BERT masking; targets are the original
    tokens where masked, padding elsewhere."""
    rng = np.random.default_rng(1)
    batches = []
    for rows in batch_plan(len(blocks), run.warmup + run.updates, run.batch_size):
        original = blocks[rows]
        masked = (rng.random(original.shape) < MASK_PROBABILITY) & (original != dictionary.bos())
        tokens = original.copy()
        choice = rng.random(original.shape)
        tokens[masked & (choice < 0.8)] = mask_index
        random_tokens = rng.integers(dictionary.nspecial, len(dictionary) - 1, original.shape)
        swap = masked & (choice >= 0.8) & (choice < 0.9)
        tokens[swap] = random_tokens[swap]
        batches.append((tokens, np.where(masked, original, dictionary.pad())))
    return batches


def prepare_squad(shared_dir: Path, bpe_dir: Path, out: Path, run: Setting) -> Path:
    """data-bin for task squad2 (scripts/prepare_squad2.py) from the first articles of the shared part."""
    squad = json.loads((shared_dir / "data" / "squad2" / "squad2-dev-part.json").read_text())
    train = out / "squad-train.json"
    train.write_text(json.dumps({**squad, "data": squad["data"][:run.squad_articles]}))
    destdir = out / "squad-data"
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_squad2.py"), "--train", str(train),
                    "--valid", str(train), "--gpt2-bpe", str(bpe_dir), "--destdir", str(destdir),
                    *run.windows.window_arguments()], check=True, stdout=subprocess.DEVNULL)
    return destdir


# ------------------------------------------------------------------------------------------------ sides

def compose(config_dir: Path, config_name: str, data: Path, run: Setting):
    from fairseq_ext.training.preflight import compose_config, plugin_dir

    cfg = compose_config(config_dir, config_name, [
        f"common.user_dir={plugin_dir()}", f"task.data={data}", f"checkpoint.save_dir={data}",
        "checkpoint.restore_file=none", f"dataset.batch_size={run.batch_size}",
        "optimization.update_freq=[1]", f"optimization.max_update={run.warmup + run.updates}",
        f"common.fp16={str(run.fp16).lower()}", f"common.cpu={str(run.device == 'cpu').lower()}",
        "distributed_training.distributed_world_size=1", "dataset.num_workers=0"])
    from fairseq import utils

    utils.import_user_module(cfg.common)
    return cfg


def fairseq_loss(logging_output: Optional[dict], to_nats: float = 1.0) -> Optional[float]:
    """The update's mean loss in nats, None when fp16 overflowed and the update was skipped."""
    return None if logging_output is None else float(logging_output["loss"]) * to_nats


def fairseq_trainer(cfg):
    from fairseq import tasks
    from fairseq.trainer import Trainer

    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return task, Trainer(cfg, task, model, task.build_criterion(cfg.criterion))


def timed_updates(run: Setting, batches, step) -> tuple[int, float, list[float]]:
    """Runs ``step(batch) -> (loss or None if the update was skipped, tokens)`` on every batch; times the
    updates after the warm-up."""
    import torch

    losses, tokens = [], 0
    for index, batch in enumerate(batches):
        if index == run.warmup:
            if run.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss, batch_tokens = step(batch)
        losses.append(loss)
        if index >= run.warmup:
            tokens += batch_tokens
    if run.device == "cuda":
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - start, losses


def fairseq_mlm(run: Setting, batches, mlm_dir: Path):
    import torch

    cfg = compose(REPO / "configs" / "pretraining", run.pretrain_config, mlm_dir, run)
    task, trainer = fairseq_trainer(cfg)
    pad = task.source_dictionary.pad()

    def step(batch):
        tokens, targets = (torch.from_numpy(a) for a in batch)
        ntokens = int(tokens.ne(pad).sum())
        sample = {"id": torch.arange(len(tokens)), "nsentences": len(tokens), "ntokens": ntokens,
                  "net_input": {"src_tokens": tokens, "src_lengths": tokens.ne(pad).sum(1)},
                  "target": targets}
        return fairseq_loss(trainer.train_step([sample]), math.log(2)), ntokens  # masked_lm logs bits

    return timed_updates(run, batches, step)


def fairseq_qa(run: Setting, squad_dir: Path, _):
    cfg = compose(REPO / "configs" / "finetuning", run.finetune_config, squad_dir, run)
    task, trainer = fairseq_trainer(cfg)
    task.load_dataset("train")
    dataset = task.dataset("train")

    def step(windows):
        sample = dataset.collater(windows)
        return fairseq_loss(trainer.train_step([sample])), sample["ntokens"]

    return timed_updates(run, batch_plan(len(dataset), run.warmup + run.updates, run.batch_size), step)


def hf_model(kind: str, run: Setting, cfg, vocab_size: int):
    """A transformers RoBERTa of the fairseq config's size (positions: fairseq's plus its padding offset)."""
    import transformers
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from omegaconf import OmegaConf

    size = argparse.Namespace(**OmegaConf.to_container(cfg.model))
    ARCH_CONFIG_REGISTRY[cfg.model._name](size)  # a legacy architecture fills in the sizes its config omits
    positions = getattr(size, "max_positions", None) or cfg.task.max_positions  # span QA: the task's
    config = transformers.RobertaConfig(
        vocab_size=vocab_size, hidden_size=size.encoder_embed_dim, num_hidden_layers=size.encoder_layers,
        num_attention_heads=size.encoder_attention_heads, intermediate_size=size.encoder_ffn_embed_dim,
        max_position_embeddings=positions + 2, type_vocab_size=1, layer_norm_eps=1e-5,
        hidden_dropout_prob=size.dropout, attention_probs_dropout_prob=size.attention_dropout,
        pad_token_id=1, bos_token_id=0, eos_token_id=2)
    model_class = getattr(transformers, f"RobertaFor{kind}")
    return model_class(config).to(run.device).train()


def hf_loop(run: Setting, model, cfg, batches, forward):
    """AdamW + polynomial decay with the fairseq config's settings, fp16 autocast with loss scaling."""
    import torch
    from transformers import get_polynomial_decay_schedule_with_warmup

    total = run.warmup + run.updates
    betas = tuple(float(b) for b in cfg.optimizer.adam_betas.strip("()").split(","))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimization.lr[0], betas=betas,
                                  eps=cfg.optimizer.adam_eps, weight_decay=cfg.optimizer.weight_decay)
    scheduler = get_polynomial_decay_schedule_with_warmup(optimizer, cfg.lr_scheduler.warmup_updates, total)
    scaler = torch.amp.GradScaler(run.device, enabled=run.fp16)
    clip = cfg.optimization.clip_norm

    def step(batch):
        with torch.autocast(run.device, dtype=torch.float16, enabled=run.fp16):
            loss, tokens = forward(batch)
        scaler.scale(loss).backward()
        if clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        skipped = run.fp16 and scaler.get_scale() < scale  # inf/nan gradients: the scaler skipped the step
        return None if skipped else loss.item(), tokens

    return timed_updates(run, batches, step)


def hf_mlm(run: Setting, batches, mlm_dir: Path):
    import torch

    cfg = compose(REPO / "configs" / "pretraining", run.pretrain_config, mlm_dir, run)
    vocab = len((mlm_dir / "dict.txt").read_text().splitlines()) + 5  # + <s> <pad> </s> <unk>, <mask>
    model = hf_model("MaskedLM", run, cfg, vocab)

    def forward(batch):
        tokens, targets = (torch.from_numpy(a).to(run.device) for a in batch)
        attention = tokens.ne(1).long()
        labels = targets.masked_fill(targets.eq(1), -100)
        return model(input_ids=tokens, attention_mask=attention, labels=labels).loss, int(attention.sum())

    return hf_loop(run, model, cfg, batches, forward)


def hf_qa(run: Setting, squad_dir: Path, _):
    import torch

    from fairseq_ext.squad.format import FeatureArrays

    cfg = compose(REPO / "configs" / "finetuning", run.finetune_config, squad_dir, run)
    vocab = len((squad_dir / "dict.txt").read_text().splitlines()) + 5
    model = hf_model("QuestionAnswering", run, cfg, vocab)
    arrays = FeatureArrays.load(squad_dir / "train.features.npz")

    def forward(windows):
        lengths = arrays.lengths[windows]
        input_ids = torch.full((len(windows), int(lengths.max())), 1, dtype=torch.long)
        for row, window in enumerate(windows):
            input_ids[row, :lengths[row]] = torch.from_numpy(arrays.tokens(window).astype(np.int64))
        input_ids = input_ids.to(run.device)
        positions = [torch.from_numpy(a[windows].astype(np.int64)).to(run.device)
                     for a in (arrays.start_positions, arrays.end_positions)]
        output = model(input_ids=input_ids, attention_mask=input_ids.ne(1).long(),
                       start_positions=positions[0], end_positions=positions[1])
        return output.loss, int(lengths.sum())

    batches = batch_plan(len(arrays), run.warmup + run.updates, run.batch_size)
    return hf_loop(run, model, cfg, batches, forward)


def reset_peak_memory(run: Setting) -> None:
    import torch

    if run.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(run: Setting) -> float:
    import torch

    if run.device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the whole process, Linux: KiB


if __name__ == "__main__":
    run_cli(main)
