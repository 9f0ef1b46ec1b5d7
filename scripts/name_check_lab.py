#!/usr/bin/env python
"""A fast stand-in for the tiny recipe, to study what makes the name check learnable (issue 30).

A plain PyTorch model shaped like configs/pretraining/tiny.yaml's RoBERTa (post-LN, learned positions,
an embedding layer norm, GELU, no dropout; 2 x 64 by default) with a span head that scores "no answer" at
<s>, trained on a learnable set (fairseq_ext.squad.learnable) through the repo's own SQuAD features
(build_features, the GPT-2 BPE of gpt2_bpe/): an optional masked LM on the training contexts first, then
span fine-tuning. One core runs 20-30 updates a second, several times the fairseq route's pace with its
process starts and validation, so a question about the recipe is answered in minutes. It prints dev exact
match (start and end token of the gold span, or <s> for no answer) by kind of question
(fairseq_ext.squad.learnable.KINDS) every --eval-every updates. Its figures are the lab model's, not
fairseq's: a finding here is a lead to try through scripts/finetune_squad2.sh (docs/learnable-qa.md).

    scripts/name_check_lab.py --people 2-3 --wordings 1 --mlm-updates 3000 --updates 12000
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fairseq_ext.cli import bounded_float, bounded_int, ratio, run_cli, seed_int  # noqa: E402
from fairseq_ext.commands.learnable_qa import count_range  # noqa: E402
from fairseq_ext.errors import UserInputError  # noqa: E402
from fairseq_ext.squad.learnable import WORDINGS  # noqa: E402

MAX_POSITIONS = 128
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq's dictionary order
BOS, PAD, EOS = 0, 1, 2
DEFAULT = "(default: %(default)s)"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("the set (scripts/learnable_qa.py's options)")
    data.add_argument("--people", type=count_range(8), default=(2, 3), metavar="N|LOW-HIGH",
                      help="persons per context (default: 2-3)")
    data.add_argument("--facts", type=count_range(4), default=(2, 2), metavar="N|LOW-HIGH",
                      help="attributes per person (default: 2)")
    data.add_argument("--absent-share", type=ratio(), default=0.3, help=DEFAULT)
    data.add_argument("--wordings", type=bounded_int(1, WORDINGS), default=WORDINGS, help=DEFAULT)
    data.add_argument("--train-questions", type=bounded_int(1, 100_000), default=20000,
                      help=DEFAULT)
    data.add_argument("--dev-questions", type=bounded_int(1, 10_000), default=600, help=DEFAULT)
    data.add_argument("--set-seed", type=seed_int, default=1, help=DEFAULT)
    model = parser.add_argument_group("the model and its training")
    model.add_argument("--layers", type=bounded_int(1, 12), default=2, help=DEFAULT)
    model.add_argument("--dim", type=bounded_int(8, 1024), default=64, help=DEFAULT)
    model.add_argument("--heads", type=bounded_int(1, 64), default=2, help="must divide --dim (default: 2)")
    model.add_argument("--mlm-updates", type=bounded_int(0, 1_000_000), default=0,
                       help="masked-LM updates on the training contexts before fine-tuning (16 contexts "
                       "each, lr 3e-3, 15%% masked, as tiny.yaml; default: 0, from random init)")
    model.add_argument("--updates", type=bounded_int(1, 1_000_000), default=6000, help=DEFAULT)
    model.add_argument("--batch", type=bounded_int(1, 4096), default=32, help=DEFAULT)
    model.add_argument("--lr", type=bounded_float(0, 1, open_min=True), default=1e-3,
                       help="peak rate, linear warmup then linear decay to 0 (default: %(default)s)")
    model.add_argument("--warmup", type=bounded_int(0, 1_000_000), default=100, help=DEFAULT)
    model.add_argument("--eval-every", type=bounded_int(1, 1_000_000), default=1000, help=DEFAULT)
    model.add_argument("--seed", type=seed_int, default=1, help=DEFAULT)
    args = parser.parse_args(argv)
    if args.dim % args.heads:
        parser.error(f"--heads {args.heads} does not divide --dim {args.dim}")
    return args


def encoded_set(args):
    """(train features, dev features, dev set, training contexts as id lists, dictionary size)."""
    from fairseq_ext.squad.data import parse_articles
    from fairseq_ext.squad.features import build_features
    from fairseq_ext.squad.learnable import NamesExhausted, contexts, make_dataset
    from fairseq_ext.tokenizer.gpt2 import Gpt2Bpe

    try:
        train, dev = make_dataset("en", args.train_questions, args.dev_questions, args.set_seed, args.people,
                                  args.facts, args.absent_share, True, args.wordings)
    except NamesExhausted as err:
        raise UserInputError(f"{err}: ask for fewer questions (--train-questions, --dev-questions)") from None
    bpe = Gpt2Bpe.from_dir(REPO / "gpt2_bpe")
    texts = contexts(train) + contexts(dev) + [qa["question"] for squad in (train, dev)
                                               for p in squad["data"][0]["paragraphs"] for qa in p["qas"]]
    vocab = bpe.vocab_symbols()
    symbols = [*SPECIALS, *sorted({vocab[i] for ids in bpe.encode_batch(texts) for i in ids}), "<mask>"]
    tokenizer = bpe.to_dictionary(symbols)
    features = [build_features(parse_articles(squad["data"]).examples, tokenizer, MAX_POSITIONS, 32, 32)
                for squad in (train, dev)]
    documents = [[BOS, *tokenizer.encode_with_offsets(text)[0], EOS] for text in contexts(train)]
    return features[0], features[1], dev, documents, len(symbols)


def build_model(size: int, args):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(size, args.dim, padding_idx=PAD)
            self.positions = nn.Embedding(MAX_POSITIONS, args.dim)
            self.embedding_norm = nn.LayerNorm(args.dim)
            layer = nn.TransformerEncoderLayer(args.dim, args.heads, 2 * args.dim, dropout=0.0,
                                               activation="gelu", batch_first=True)
            self.layers = nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False)
            self.lm_transform = nn.Sequential(nn.Linear(args.dim, args.dim), nn.GELU(),
                                              nn.LayerNorm(args.dim))
            self.lm_bias = nn.Parameter(torch.zeros(size))
            self.span = nn.Linear(args.dim, 2)
            for module in self.modules():  # BERT's init, as fairseq's RoBERTa (init_bert_params)
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
                if isinstance(module, nn.MultiheadAttention):  # its q, k, v projections are one matrix
                    nn.init.normal_(module.in_proj_weight, std=0.02)
                    nn.init.zeros_(module.in_proj_bias)

        def forward(self, ids):
            x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))[None]
            return self.layers(self.embedding_norm(x), src_key_padding_mask=ids == PAD)

        def masked_lm(self, hidden):  # output projection tied to the embeddings, as RoBERTa's
            return self.lm_transform(hidden) @ self.tokens.weight.T + self.lm_bias

    return Encoder()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import torch
    import torch.nn.functional as F

    from fairseq_ext.squad.learnable import KINDS, name_blind_ceiling, question_kinds

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    draw = random.Random(args.seed)
    train, dev, dev_set, documents, size = encoded_set(args)
    kinds = list(question_kinds(dev_set).values())  # in the dev file's order, as the features' examples
    model = build_model(size, args)
    print(f"set: {len(train):,} training windows, {len(dev):,} dev; dictionary {size}; name-blind ceiling "
          f"{name_blind_ceiling(dev_set):.1f} exact; model {sum(p.numel() for p in model.parameters()):,} "
          "parameters", flush=True)

    def batch(rows):
        width = max(map(len, rows))
        return torch.tensor([row + [PAD] * (width - len(row)) for row in rows])

    def train_loop(updates: int, lr: float, warmup: int, loss_of, report):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6,
                                      weight_decay=0.01)
        started = time.time()
        for update in range(1, updates + 1):
            for group in optimizer.param_groups:
                group["lr"] = lr * (update / warmup if update <= warmup else
                                    (updates - update + 1) / max(1, updates - warmup + 1))
            loss = loss_of()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            report(update, loss.item(), time.time() - started)

    def masked_lm_loss():
        ids = batch(draw.sample(documents, 16))
        chosen = (torch.rand(ids.shape) < 0.15) & (ids > 3)
        target = torch.where(chosen, ids, torch.full_like(ids, -100))
        roll = torch.rand(ids.shape)
        noisy = ids.masked_fill(chosen & (roll < 0.8), size - 1)
        swapped = chosen & (roll >= 0.8) & (roll < 0.9)
        noisy[swapped] = torch.randint(4, size - 1, ids.shape)[swapped]
        logits = model.masked_lm(model(noisy))
        return F.cross_entropy(logits.view(-1, size), target.view(-1))

    def span_loss():
        rows = draw.sample(train, args.batch)
        ids = batch([f.input_ids for f in rows])
        logits = model.span(model(ids)).masked_fill((ids == PAD)[..., None], -1e4)
        starts = torch.tensor([f.start_position for f in rows])
        ends = torch.tensor([f.end_position for f in rows])
        return (F.cross_entropy(logits[..., 0], starts) + F.cross_entropy(logits[..., 1], ends)) / 2

    def dev_exact_by_kind() -> dict:
        right = dict.fromkeys(KINDS, 0)
        total = dict.fromkeys(KINDS, 0)
        model.eval()
        with torch.no_grad():
            for first in range(0, len(dev), 128):
                rows = dev[first:first + 128]
                logits = model.span(model(batch([f.input_ids for f in rows])))
                for row, feature in zip(logits, rows):
                    context = slice(feature.context_start, len(feature.input_ids) - 1)
                    start, end = row[context, 0], row[context, 1]
                    pairs = start[:, None] + end[None, :]  # spans of up to 8 tokens, start <= end
                    n = pairs.shape[0]
                    allowed = torch.triu(torch.ones(n, n, dtype=torch.bool)) & ~torch.triu(
                        torch.ones(n, n, dtype=torch.bool), 8)
                    best = pairs.masked_fill(~allowed, -1e9).flatten().argmax().item()
                    span = (feature.context_start + best // n, feature.context_start + best % n)
                    null = (row[0, 0] + row[0, 1]).item() > pairs.flatten()[best].item()
                    guess = (0, 0) if null else span
                    kind = kinds[feature.example_index]
                    total[kind] += 1
                    right[kind] += guess == (feature.start_position, feature.end_position)
        model.train()
        return {kind: (100 * right[kind] / total[kind], total[kind]) for kind in KINDS if total[kind]}

    def report_mlm(update, loss, seconds):
        if update % 500 == 0 or update == args.mlm_updates:
            print(f"masked LM {update}: train loss {loss / math.log(2):.2f} bits ({seconds:.0f} s)",
                  flush=True)

    def report_span(update, loss, seconds):
        if update % args.eval_every == 0 or update == args.updates:
            scores = dev_exact_by_kind()
            exact = sum(s * n for s, n in scores.values()) / sum(n for _, n in scores.values())
            kinds_line = "; ".join(f"{kind} {s:.0f}% of {n}" for kind, (s, n) in scores.items())
            print(f"fine-tuning {update}: loss {loss:.3f}, dev exact {exact:.1f} ({kinds_line}) "
                  f"({seconds:.0f} s)", flush=True)

    if args.mlm_updates:
        train_loop(args.mlm_updates, 3e-3, 5, masked_lm_loss, report_mlm)
    train_loop(args.updates, args.lr, args.warmup, span_loss, report_span)
    return 0


if __name__ == "__main__":
    run_cli(main)
