#!/usr/bin/env python
"""The whole workflow end to end with a tiny model, through the commands a user runs:

  split -> BPE + dictionary -> binarize -> tiny "pretrained" checkpoint -> continued masked LM
  -> SQuAD v2 fine-tuning -> fairseq prediction + evaluation -> export to Hugging Face (verified)
  -> transformers prediction + evaluation -> plots -> summary (EM/F1 on both sides, their agreement,
  where every artefact is)

By default on the learnable QA set (scripts/learnable_qa.py: made-up contexts about invented people, a
third of the questions unanswerable, no name shared between train and dev), offline, in minutes on 2 CPU
cores: masked-LM pretraining on its contexts (tiny.yaml), fine-tuning (squad2_tiny.yaml) from that
checkpoint and, side by side, from scratch; the table shows dev EM/F1 on unseen questions against the
"no answer" baseline. --seeds N (make learn-check) also fine-tunes N seeds on each side, fairseq and
transformers' Trainer (finetune_hf.py) from the same exported checkpoint, and compares their mean dev F1
(and N seeds from scratch, shown beside). --sample uses the embedded encyclopedic sample instead
(scripts/sample/: a smoke run, the tiny model does not answer its unseen questions). The dictionary is
built from the data itself (fairseq-preprocess --dict-only), so nothing beyond the GPT-2 BPE files is
needed.

With --real the same pipeline runs on real data with the official GPT-2 dictionary: SHARED's wiki
paragraphs and SQuAD 2.0 articles (the last articles held out as dev), or the files given with --corpus,
--squad-train and --squad-dev (e.g. the official downloads listed below).

With --lang zh it is the Chinese path: a SentencePiece model trained on the data (train_spm.py) instead of
GPT-2 BPE, CMRC 2018-style questions scored with the CMRC 2018 metric (task.metric=cmrc, --metric cmrc),
an XLM-R-style export. The embedded Chinese sample (scripts/sample/zh-*), or with --real SHARED's CMRC 2018
trial file (its contexts double as the raw corpus; its last articles are held out as dev).

Every output goes to one new run directory (runs/demo-TIMESTAMP, or --run-dir, which must not exist):
the commands of all stages in RUN_DIR/commands.sh, their output in RUN_DIR/logs/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from fairseq_ext.cli import run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.learnable import kind_scores, name_blind_ceiling
from fairseq_ext.squad.settings import TINY
from fairseq_ext.tokenizer import find_tokenizer_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "scripts" / "sample"
BPE_FILES = ("encoder.json", "vocab.bpe")
DOWNLOADS = """Real data without a shared directory: the official downloads
  corpus (raw text, documents separated by blank lines), e.g. WikiText-103 (fairseq's RoBERTa example):
    https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip
  SQuAD 2.0: https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v2.0.json
             https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json
  GPT-2 BPE files with dict.txt: make gpt2-bpe
then: scripts/demo.py --real --corpus FILE --squad-train train-v2.0.json --squad-dev dev-v2.0.json"""
# the windows of configs/finetuning/squad2_tiny.yaml: prepare_squad2.py must use the same
SQUAD_WINDOWS = TINY.window_arguments()
RESETS = [f"checkpoint.{flag}=true"
          for flag in ("reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader")]
SIDES = ("fairseq", "transformers")
# continued pretraining restarts the optimizer: at tiny.yaml's 3e-3 its first updates undo part of what the
# first stage learnt (valid loss 2.3 -> 2.7 bits in 40 updates); a tenth of it, as continued pretraining
# of a released model uses a lower rate than its pretraining
CONTINUE_LR = "optimization.lr=[0.0003]"
# one thread per process: as fast for a 64-wide model, and torch's thread pool gets many times slower
# when the cores are shared (measured: 10x for fine-tuning on a busy 2-core machine)
STAGE_ENV = {"PYTHON": sys.executable, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


@dataclass
class Inputs:
    """What one demo run works on."""

    label: str  # "embedded sample" or "real data"
    corpus: list[Path]
    squad_train: Path
    squad_dev: Path
    bpe_source: Optional[Path]  # encoder.json and vocab.bpe (with real data also dict.txt); None: rebuild
    build_dictionary: bool  # the sample builds its own dict.txt; real data uses the official one
    valid_docs: int
    squad_to_split: Optional[Path] = None  # shared real data: one SQuAD file, split by article
    dev_articles: int = 4
    metric: str = "squad"  # "cmrc" for Chinese
    spm_vocab_size: int = 0  # > 0: a SentencePiece model of this size is trained on the data (--lang zh)
    corpus_from_contexts: bool = False  # the SQuAD file's contexts are the raw corpus (the CMRC trial)
    learnable: bool = False  # the learnable set is generated first (its contexts are the raw corpus)


@dataclass
class StageResult:
    name: str
    seconds: float
    cpu_seconds: float  # of the stage's processes: less sensitive than wall time to a busy machine
    log: Optional[str]


@dataclass
class Demo:
    run_dir: Path
    total_stages: int
    results: list[StageResult] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def _header(self, name: str, description: str) -> str:
        header = f"[{len(self.results) + 1}/{self.total_stages}] {name}: {description}"
        print(header, flush=True)
        return header

    def stage(self, name: str, description: str, commands: Sequence[Sequence], updates: int = 0) -> None:
        """Runs one stage's commands in order, output to logs/NN-NAME.log; a failure ends the demo with
        the stage's name, the end of its output and its log file. ``updates``: a training stage's
        max_update, shown as progress (on a terminal) from the JSON records fairseq logs."""
        header = self._header(name, description)
        log = self.path("logs", f"{len(self.results) + 1:02d}-{name}.log")
        with open(self.path("commands.sh"), "a") as script:
            script.write(f"\n# {header}\n" + "".join(shlex.join(map(str, c)) + "\n" for c in commands))
        start, cpu_start = time.perf_counter(), _children_cpu()
        with open(log, "w") as out:
            for command in commands:
                out.write(f"$ {shlex.join(map(str, command))}\n")
                out.flush()
                process = subprocess.Popen([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT,
                                           cwd=REPO, env={**os.environ, **STAGE_ENV})
                while process.poll() is None:
                    time.sleep(0.5)
                    if sys.stdout.isatty():
                        progress = f"  update {last_update(log)}/{updates}" if updates else ""
                        print(f"\r    {time.perf_counter() - start:4.0f} s{progress}   ", end="", flush=True)
                if sys.stdout.isatty():
                    print("\r" + " " * 40 + "\r", end="", flush=True)
                if process.returncode != 0:
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    print("\n".join("    | " + line for line in tail), file=sys.stderr)
                    print(f"demo: stage '{name}' failed (exit status {process.returncode}) after "
                          f"{time.perf_counter() - start:.0f} s; its output: {log}", file=sys.stderr)
                    raise SystemExit(1)
        self._done(name, start, _children_cpu() - cpu_start, str(log))

    def step(self, name: str, description: str, action: Callable[[], None]) -> None:
        """A stage done inside the demo (no user-facing tool involved)."""
        self._header(name, description)
        start, cpu_start = time.perf_counter(), time.process_time()
        action()
        self._done(name, start, time.process_time() - cpu_start, None)

    def _done(self, name: str, start: float, cpu_seconds: float, log: Optional[str]) -> None:
        seconds = time.perf_counter() - start
        self.results.append(StageResult(name, seconds, cpu_seconds, log))
        print(f"    done in {seconds:.0f} s", flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def last_update(log: Path) -> str:
    """The latest update of a stage's log, read from its end: the launcher's progress lines
    (fairseq_ext.training.progress), or fairseq's JSON records (--verbose)."""
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        tail = f.read().decode("utf-8", errors="replace")
    found = re.findall(r'"num_updates": "(\d+)"|\] update (\d+)\b', tail)
    return next(filter(None, found[-1])) if found else "0"


# ------------------------------------------------------------------------------------------------ inputs

def find_bpe_source(explicit: Optional[Path], shared_dir: Path, need_dict: bool) -> Optional[Path]:
    """The tokenizer directory (fairseq_ext.tokenizer's rule, with SHARED/gpt2_bpe as a fallback); None
    when there is none, so that the demo rebuilds encoder.json from the checkout's gpt2_bpe/vocab.bpe."""
    try:
        return find_tokenizer_dir(explicit, need_dict, fallbacks=[shared_dir / "gpt2_bpe"])
    except UserInputError:
        if explicit is not None:
            raise
        return None


def learnable_inputs(lang: str, bpe_source: Optional[Path]) -> Inputs:
    """The learnable set, generated into the run directory by its first stage (paths set there)."""
    return Inputs(f"learnable QA set ({lang})", [], Path(), Path(), bpe_source, build_dictionary=True,
                  valid_docs=20, metric="cmrc" if lang == "zh" else "squad",
                  spm_vocab_size=2000 if lang == "zh" else 0, learnable=True)


def choose_chinese_inputs(args) -> Inputs:
    """The embedded Chinese sample, or real CMRC-style data; the tokenizer is trained on it."""
    if not args.real:
        if args.corpus or args.squad_train or args.squad_dev:
            raise UserInputError("--corpus, --squad-train and --squad-dev go with --real")
        if not args.sample:
            return learnable_inputs("zh", None)
        return Inputs("embedded Chinese sample", [SAMPLE / "zh-corpus.txt"], SAMPLE / "zh-sample-train.json",
                      SAMPLE / "zh-sample-dev.json", None, build_dictionary=True, valid_docs=3,
                      metric="cmrc", spm_vocab_size=1000)
    if (args.squad_train is None) != (args.squad_dev is None):
        raise UserInputError("give both --squad-train and --squad-dev, or neither")
    if args.squad_train is not None:
        if not args.corpus:
            raise UserInputError("with --squad-train and --squad-dev, give the raw Chinese corpus (--corpus)")
        for path in (*args.corpus, args.squad_train, args.squad_dev):
            if not path.exists():
                raise UserInputError(f"not found: {path}")
        return Inputs("real Chinese data", args.corpus, args.squad_train, args.squad_dev, None,
                      build_dictionary=True, valid_docs=10, metric="cmrc", spm_vocab_size=6000)
    trial = args.shared_dir / "data" / "cmrc2018" / "cmrc2018-trial.json"
    if not trial.is_file():
        raise UserInputError(f"no CMRC 2018 trial file in {args.shared_dir}: give --corpus, --squad-train "
                             "and --squad-dev (CMRC 2018's squad-style-data/cmrc2018_{train,dev}.json)")
    return Inputs("CMRC 2018 trial (real data)", [], Path(), Path(), None, build_dictionary=True,
                  valid_docs=10, squad_to_split=trial, dev_articles=50, metric="cmrc", spm_vocab_size=6000,
                  corpus_from_contexts=True)


def choose_inputs(args) -> Inputs:
    if args.lang == "zh":
        return choose_chinese_inputs(args)
    if not args.real:
        if args.corpus or args.squad_train or args.squad_dev:
            raise UserInputError("--corpus, --squad-train and --squad-dev go with --real")
        bpe_source = find_bpe_source(args.tokenizer_dir, args.shared_dir, need_dict=False)
        if not args.sample:
            return learnable_inputs("en", bpe_source)
        return Inputs("embedded sample", [SAMPLE / "corpus.txt"], SAMPLE / "squad2-sample-train.json",
                      SAMPLE / "squad2-sample-dev.json", bpe_source, build_dictionary=True, valid_docs=6)
    bpe_source = find_bpe_source(args.tokenizer_dir, args.shared_dir, need_dict=True)
    if bpe_source is None:
        raise UserInputError("real data needs the official encoder.json, vocab.bpe and dict.txt: none in "
                             "--gpt2-bpe, $GPT2_BPE_DIR, SHARED/gpt2_bpe or gpt2_bpe/ (make gpt2-bpe)")
    if (args.squad_train is None) != (args.squad_dev is None):
        raise UserInputError("give both --squad-train and --squad-dev, or neither")
    shared_corpus = args.shared_dir / "data" / "wiki" / "wiki-paragraphs.txt"
    shared_squad = args.shared_dir / "data" / "squad2" / "squad2-dev-part.json"
    corpus = args.corpus or ([shared_corpus] if shared_corpus.is_file() else None)
    if corpus is None or (args.squad_train is None and not shared_squad.is_file()):
        raise UserInputError(f"no real data in {args.shared_dir} and none given.\n{DOWNLOADS}")
    for path in (*corpus, args.squad_train, args.squad_dev):
        if path is not None and not path.exists():
            raise UserInputError(f"not found: {path}")
    if args.squad_train is not None:
        return Inputs("real data", corpus, args.squad_train, args.squad_dev, bpe_source,
                      build_dictionary=False, valid_docs=2)
    return Inputs("real data", corpus, Path(), Path(), bpe_source, build_dictionary=False, valid_docs=2,
                  squad_to_split=shared_squad)


def new_run_dir(requested: Optional[Path]) -> Path:
    if requested is not None:
        if requested.exists():
            raise UserInputError(f"{requested} exists: a demo never writes into an earlier run; "
                                 "choose another --run-dir")
        return requested
    base = REPO / "runs" / f"demo-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def split_squad_by_article(source: Path, dev_articles: int, train_out: Path, dev_out: Path) -> None:
    """The last ``dev_articles`` articles become dev, the others train: no context is in both."""
    data = json.loads(source.read_text(encoding="utf-8"))
    articles = data["data"]
    if len(articles) <= dev_articles:
        raise UserInputError(f"{source} has {len(articles)} articles: too few to hold out {dev_articles}")
    for out, part in ((train_out, articles[:-dev_articles]), (dev_out, articles[-dev_articles:])):
        out.write_text(json.dumps({**data, "data": part}), encoding="utf-8")


def write_contexts(squad_file: Path, out: Path) -> None:
    """The contexts of a SQuAD file as raw text: one paragraph per line, a blank line between articles."""
    articles = read_json(squad_file)["data"]
    out.write_text("\n\n".join("\n".join(p["context"] for p in article["paragraphs"]) for article in articles)
                   + "\n", encoding="utf-8")


def write_dictionary_source(inputs: Inputs, out: Path) -> None:
    """The corpus plus every SQuAD context and question: the dictionary covers all the demo encodes."""
    with open(out, "w", encoding="utf-8") as f:
        for path in inputs.corpus:
            f.write(path.read_text(encoding="utf-8").rstrip("\n") + "\n\n")
        for path in (inputs.squad_train, inputs.squad_dev):
            for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
                for paragraph in article["paragraphs"]:
                    f.write(paragraph["context"] + "\n")
                    f.writelines(qa["question"].strip() + "\n" for qa in paragraph["qas"])


# ------------------------------------------------------------------------------------------------ summary

def override(key: str, value: Optional[int]) -> tuple[str, ...]:
    """``key=value`` for fairseq-hydra-train, or nothing (the config's own value) when ``value`` is None."""
    return () if value is None else (f"{key}={value}",)


def config_value(config: str, *keys: str):
    """A value of configs/CONFIG (a YAML file), e.g. config_value("pretraining/tiny.yaml", "optimization",
    "max_update")."""
    import yaml

    value = yaml.safe_load((REPO / "configs" / config).read_text(encoding="utf-8"))
    for key in keys:
        value = value[key]
    return value


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def questions(squad_file: Path) -> list[dict]:
    return [qa for article in read_json(squad_file)["data"] for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]]


def agreement(fairseq_answers: dict, hf_answers: dict) -> tuple[int, list[str]]:
    """(questions answered identically, ids answered differently or not at all by transformers)."""
    differing = [qid for qid, answer in fairseq_answers.items() if hf_answers.get(qid) != answer]
    return len(fairseq_answers) - len(differing), differing


def demo_scores(metric: str, result: dict) -> dict:
    """A metric result with SQuAD's key names (the CMRC 2018 script's EM/F1/AVERAGE/TOTAL renamed)."""
    if metric == "squad":
        return result
    return {"exact": float(result["EM"]), "f1": float(result["F1"]), "average": float(result["AVERAGE"]),
            "total": result["TOTAL"]}


def metric_rows(metrics: dict[str, dict]) -> list[str]:
    rows = [("exact match", "exact"), ("F1", "f1"), ("average of EM and F1", "average"),
            ("F1, best null threshold", "best_f1"), ("  that threshold", "best_f1_thresh"),
            ("  answerable: exact / F1", ("HasAns_exact", "HasAns_f1")),
            ("  unanswerable: exact", "NoAns_exact")]
    lines = []
    for label, keys in rows:
        keys = keys if isinstance(keys, tuple) else (keys,)
        if any(key not in metrics[side] for side in metrics for key in keys):
            continue
        cells = [" / ".join(f"{metrics[side][key]:.1f}" for key in keys) for side in metrics]
        lines.append(f"  {label:<30}" + "".join(f"{cell:>15}" for cell in cells))
    return lines


PARITY_F1 = 1.5  # --seeds: the largest gap between the two sides' mean dev F1 that passes


def seeded(name: str, seed: int) -> str:
    """The run directory of one fine-tuning seed: seed 1 is the demo's main run, NAME itself."""
    return name if seed == 1 else f"{name}-seed{seed}"


def parity(demo: Demo, metric: str, seeds: int) -> dict:
    """Dev F1 of every seed on each side (fairseq's seed 1 is the main fine-tuning), their means and gap;
    the from-scratch seeds, when they ran, beside them."""
    runs = {"fairseq": [seeded("fairseq", seed) for seed in range(1, seeds + 1)],
            "transformers": [f"hf-seed{seed}" for seed in range(1, seeds + 1)]}
    if demo.path("predictions", "scratch").is_dir():  # shown beside, not compared
        runs["from scratch"] = [seeded("scratch", seed) for seed in range(1, seeds + 1)]
    f1 = {side: [demo_scores(metric, read_json(demo.path("predictions", name, "eval_results.json")))["f1"]
                 for name in names] for side, names in runs.items()}
    means = {side: sum(values) / len(values) for side, values in f1.items()}
    gap = abs(means["fairseq"] - means["transformers"])
    return {"f1": f1, "mean_f1": means, "gap": gap, "limit": PARITY_F1, "pass": gap <= PARITY_F1}


def model_facts(checkpoint: Path) -> dict:
    """Layers, width, parameters and dictionary size (embedding rows: the symbols, specials included) of a
    fairseq checkpoint."""
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint, model_config

    state = load_checkpoint(checkpoint)
    config = model_config(state)
    return {"layers": config.get("encoder_layers"), "width": config.get("encoder_embed_dim"),
            "parameters": sum(tensor.numel() for tensor in state["model"].values()),
            "dictionary": checkpoint_info(state).embedding_rows}


def name_copying(demo: Demo) -> Optional[dict]:
    """The copy-probe stage's count (masked repeated names the masked LM put back), if it ran."""
    log = next((r.log for r in demo.results if r.name == "copy-probe"), None)
    found = log and re.search(r"restored (\d+) of (\d+) masked repeated names", Path(log).read_text())
    return {"restored": int(found[1]), "masked": int(found[2])} if found else None


def masked_lm_losses(stages: dict[str, Path], dictionary: int) -> dict[str, dict]:
    """Validation loss (bits per masked token) before and after each masked-LM stage, from its
    train_log.json. Before pretraining from random init: a uniform guess over the dictionary (log2 of its
    size, what a freshly initialised model scores); before a continued stage: the end of the one before
    (same validation split)."""
    from fairseq_ext.commands.plot_logs import parse_log

    losses, before = {}, math.log2(dictionary)
    for name, save_dir in stages.items():
        curve = parse_log(save_dir / "train_log.json").curves["valid loss"]
        losses[name] = {"before": before, "after": curve.values[-1], "updates": int(curve.updates[-1])}
        before = curve.values[-1]
    return losses


def seen_unseen_reading(seen: float, unseen: float, learnable: bool) -> str:
    """One line on what the fine-tuning questions' score beside the dev score says."""
    if unseen >= seen - 2:
        if learnable:
            return ("as good on unseen names as on the questions it was trained on: what it learnt carries "
                    "over, no memorised answers")
        return "as good on held-out contexts as on its training questions"
    return (f"{seen - unseen:.1f} points better on its training questions than on unseen ones: that much "
            "comes from answers it has seen (memorised) rather than from the rule")


def summarize(demo: Demo, inputs: Inputs, artefacts: dict[str, Path], started: float, seeds: int = 1) -> bool:
    """Prints the results table and writes summary.json; True when both sides agree (and, with several
    seeds, their mean dev F1 are within PARITY_F1)."""
    metrics = {side: demo_scores(inputs.metric, read_json(demo.path("predictions", side,
                                                                   "official_eval.json"))) for side in SIDES}
    scratch_results = demo.path("predictions", "scratch", "eval_results.json")
    if scratch_results.is_file():
        metrics["from scratch"] = demo_scores(inputs.metric, read_json(scratch_results))
    answers = {side: read_json(demo.path("predictions", side, "predictions.json")) for side in SIDES}
    fit = demo_scores(inputs.metric,
                      read_json(demo.path("predictions", "fairseq-train", "eval_results.json")))
    same, differing = agreement(answers["fairseq"], answers["transformers"])
    total = len(answers["fairseq"])
    gaps = {key: abs(metrics["fairseq"][key] - metrics["transformers"][key]) for key in ("exact", "f1")}
    agree = same >= 0.995 * total and max(gaps.values()) <= 0.1
    dev_questions = questions(inputs.squad_dev)
    baseline = 100.0 * sum(not qa.get("answers") for qa in dev_questions) / len(dev_questions)

    print(f"\nDemo on the {inputs.label} done in {time.perf_counter() - started:.0f} s -> {demo.run_dir}")
    if inputs.learnable:
        print("Unseen questions about unseen names: the fine-tuned model must find the right sentence.\n")
    else:
        print("A tiny model trained for minutes: a smoke run of the workflow, not a benchmark.\n")
    facts = model_facts(artefacts["fine-tuned checkpoint"])
    print(f"  model: RoBERTa, {facts['layers']} layers, {facts['width']} wide, {facts['parameters']:,} "
          f"parameters; dictionary: {facts['dictionary']:,} symbols")
    mlm = masked_lm_losses({"pretraining from random init": artefacts["pretrained checkpoint"].parent,
                            "continued pretraining": artefacts["continued checkpoint"].parent},
                           facts["dictionary"])
    print(f"  {'masked LM, validation loss':<44}{'before':>8}{'after':>8}   perplexity"
          "   (bits per masked token; perplexity = 2^loss)")
    for name, loss in mlm.items():
        print(f"  {name + ', ' + format(loss['updates'], ',') + ' updates':<44}{loss['before']:>8.2f}"
              f"{loss['after']:>8.2f}   {2 ** loss['before']:.1f} -> {2 ** loss['after']:.1f}")
    copying = name_copying(demo)
    if copying:
        print(f"  masked LM puts back {100 * copying['restored'] / max(copying['masked'], 1):.1f}% of "
              f"{copying['masked']} masked repeated names in the dev contexts (copying a name from its other "
              "mention:\n  the matching a name check needs; docs/learnable-qa.md)")
    print()
    metric_name = "CMRC 2018 metric" if inputs.metric == "cmrc" else "official metric"
    print(f"  {'held-out dev, ' + metric_name:<30}" + "".join(f"{side:>15}" for side in metrics))
    print(f"  {'':<30}{'(pretrained)':>15}{'(same model)':>15}" + ("" if len(metrics) == 2 else f"{'':>15}"))
    print("\n".join(metric_rows(metrics)))
    print(f"  {'answering nothing at all':<30}{baseline:>15.1f}   (exact match of that trivial baseline)")
    language = "zh" if inputs.metric == "cmrc" else "en"
    blind = name_blind_ceiling(read_json(inputs.squad_dev), language) if inputs.learnable else None
    if blind is not None:
        print(f"  {'ignoring the names, at best':<30}{blind:>15.1f}   (exact match: one answer per attribute "
              "and context, whoever is asked about)")
    train_questions = questions(inputs.squad_train)
    fit_baseline = 100.0 * sum(not qa.get("answers") for qa in train_questions) / len(train_questions)
    print(f"  {'fine-tuning questions (seen)':<30}{fit['exact']:>15.1f}   (exact match; answering nothing: "
          f"{fit_baseline:.1f})")
    reading = seen_unseen_reading(fit["exact"], metrics["fairseq"]["exact"], inputs.learnable)
    print(f"  seen vs unseen (exact match {fit['exact']:.1f} vs {metrics['fairseq']['exact']:.1f}): "
          f"{reading}")
    if "best_f1_thresh" in metrics["fairseq"]:
        print("  the threshold: null score minus best span score (logits); answer only above it")
    print(f"\n  fairseq vs transformers: {same}/{total} questions answered identically, exact match gap "
          f"{gaps['exact']:.2f}, F1 gap {gaps['f1']:.2f} -> {'agree' if agree else 'DISAGREE'}")
    kinds = None
    if inputs.learnable:  # which questions the fine-tuned model answers: those the name decides too?
        routes = {"pretrained": answers["fairseq"]}
        scratch_answers = demo.path("predictions", "scratch", "predictions.json")
        if scratch_answers.is_file():
            routes["from scratch"] = read_json(scratch_answers)
        by_route = {route: kind_scores(read_json(inputs.squad_dev), said, language)
                    for route, said in routes.items()}
        kinds = by_route["pretrained"]
        print("\n  fairseq's dev answers by kind of question (exact match):")
        print(f"    {'':<70}{'count':>6}" + "".join(f"{route:>14}" for route in routes))
        for kind, score in kinds.items():
            print(f"    {kind:<70}{score['questions']:>6}"
                  + "".join(f"{by_route[route][kind]['exact']:>14.1f}" for route in routes))
    compared = parity(demo, inputs.metric, seeds) if seeds > 1 else None
    if compared is not None:
        print(f"\n  fine-tuning, {seeds} seeds each, from the same pretrained checkpoint (dev F1; "
              "from scratch: fairseq, random init):")
        for side, values in compared["f1"].items():
            print(f"    {side:<14}" + "".join(f"{value:8.2f}" for value in values)
                  + f"   mean {compared['mean_f1'][side]:.2f}")
        print(f"    gap of the means {compared['gap']:.2f} (at most {PARITY_F1}) -> "
              f"{'pass' if compared['pass'] else 'FAIL'}")
    fit_answers = read_json(demo.path("predictions", "fairseq-train", "predictions.json"))
    learnt = [qa for qa in train_questions
              if qa.get("answers") and fit_answers.get(qa["id"]) == qa["answers"][0]["text"]]
    print("\n  examples (- = no answer):")
    for qa in learnt[:2]:
        print(f"    seen:   {qa['question']}  gold = fairseq: {fit_answers[qa['id']]}")
    for qa in dev_questions[:2]:
        gold = qa["answers"][0]["text"] if qa.get("answers") else "-"
        said = " | ".join(f"{side}: {answers[side].get(qa['id']) or '-'}" for side in SIDES)
        print(f"    unseen: {qa['question']}  gold: {gold} | {said}")
    print("\n  stage times (s): " + ", ".join(f"{r.name} {r.seconds:.0f}" for r in demo.results))
    print("\n  artefacts:")
    width = max(map(len, artefacts))
    for label, path in artefacts.items():
        print(f"    {label:<{width}}  {path}")

    summary = {
        "data": inputs.label,
        "run_dir": str(demo.run_dir),
        "dev": str(inputs.squad_dev),
        "metrics": metrics,
        "no_answer_baseline_exact": baseline,
        "fine_tuning_questions": fit,
        "dev_by_kind": kinds,
        "dev_by_kind_from_scratch": by_route.get("from scratch") if inputs.learnable else None,
        "name_blind_ceiling_exact": blind,
        "model": facts,
        "masked_lm_bits": mlm,
        "masked_lm_name_copying": copying,
        "agreement": {"identical": same, "questions": total, "differing_ids": differing, "gaps": gaps,
                      "agree": agree},
        "parity": compared,
        "stages": [vars(r) for r in demo.results],
        "artefacts": {label: str(path) for label, path in artefacts.items()},
    }
    demo.path("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    if not agree:
        print(f"demo: fairseq and transformers disagree on {len(differing)} questions "
              f"(e.g. {differing[:5]}); see the two predictions.json", file=sys.stderr)
    if compared is not None and not compared["pass"]:
        print(f"demo: mean dev F1 of fairseq and transformers fine-tuning differ by {compared['gap']:.2f}",
              file=sys.stderr)
    return agree and (compared is None or compared["pass"])


# ------------------------------------------------------------------------------------------------ main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, epilog=DOWNLOADS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=("en", "zh"), default="en",
                        help="en: GPT-2 BPE, SQuAD 2.0 metric (default); zh: SentencePiece trained on the "
                             "data, CMRC 2018 metric, XLM-R-style export")
    parser.add_argument("--sample", action="store_true", help="the embedded encyclopedic sample instead of "
                        "the learnable QA set (a smoke run: too small to learn unseen questions)")
    parser.add_argument("--real", action="store_true", help="real data: SHARED's wiki paragraphs and SQuAD "
                        "2.0 articles (zh: SHARED's CMRC 2018 trial file), or --corpus, --squad-train and "
                        "--squad-dev")
    parser.add_argument("--corpus", type=Path, nargs="+", help="with --real: raw text file(s) to pretrain on")
    parser.add_argument("--squad-train", type=Path, help="with --real: SQuAD 2.0 file to fine-tune on")
    parser.add_argument("--squad-dev", type=Path, help="with --real: SQuAD 2.0 file to evaluate on")
    parser.add_argument("--shared-dir", type=Path, help="the shared data directory (default: $SHARED_DIR, "
                        "else ../shared)",
                        default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")))
    parser.add_argument("--tokenizer", "--gpt2-bpe", dest="tokenizer_dir", type=Path, metavar="DIR",
                        help="directory with encoder.json and vocab.bpe (and "
                        "dict.txt for --real); default: $GPT2_BPE_DIR, SHARED/gpt2_bpe or gpt2_bpe/ "
                        "(without its encoder.json: rebuilt from its vocab.bpe into the run; nothing is "
                        "fetched)")
    parser.add_argument("--run-dir", type=Path, help="output directory, must not exist (default: "
                        "runs/demo-TIMESTAMP)")
    parser.add_argument("--pretrain-updates", type=int,
                        help="updates of the tiny pretraining from random init (default: tiny.yaml's)")
    parser.add_argument("--continue-updates", type=int, default=40,
                        help="updates of continued masked-LM training (default: 40)")
    parser.add_argument("--finetune-epochs", type=int,
                        help="at most this many SQuAD fine-tuning epochs (default: squad2_tiny.yaml's)")
    parser.add_argument("--finetune-updates", type=int,
                        help="fine-tuning updates (default: squad2_tiny.yaml's)")
    parser.add_argument("--no-scratch", action="store_true",
                        help="skip the fine-tuning from scratch shown beside the pretrained one")
    parser.add_argument("--seeds", type=int, default=1,
                        help="fine-tune this many seeds on each side, fairseq and transformers "
                             "(finetune_hf.py, from the exported pretrained checkpoint), and compare mean "
                             "dev F1; from scratch as many, unless --no-scratch (default: 1: fairseq only; "
                             "make learn-check: 3)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise UserInputError("--seeds must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    inputs = choose_inputs(args)
    chinese = inputs.spm_vocab_size > 0
    optional_stages = ((inputs.bpe_source is None and not chinese) + (inputs.squad_to_split is not None)
                       + inputs.corpus_from_contexts + inputs.learnable * (1 + (not chinese))
                       + 2 * (not args.no_scratch)
                       + 3 * (args.seeds > 1))
    demo = Demo(new_run_dir(args.run_dir), 13 + optional_stages)
    for sub in ("logs", "corpus", "bpe", "data", "checkpoints", "predictions", "plots"):
        demo.path(sub).mkdir(parents=True)
    demo.path("commands.sh").write_text("#!/usr/bin/env bash\n# the demo's commands, in order\n"
                                        f"cd {REPO}\nexport OMP_NUM_THREADS={STAGE_ENV['OMP_NUM_THREADS']}\n")
    print(f"demo on the {inputs.label} -> {demo.run_dir}")
    py = sys.executable

    bpe = demo.path("bpe")  # the tokenizer directory: GPT-2 BPE, or (zh) SentencePiece
    if inputs.bpe_source is None and not chinese:
        # the checkout's gpt2_bpe/ before `make gpt2-bpe`: offline, encoder.json is rebuilt into the run
        inputs.bpe_source = REPO / "gpt2_bpe"
        demo.stage("gpt2-bpe", "encoder.json rebuilt from the checkout's gpt2_bpe/vocab.bpe (offline)", [
            [py, "-m", "fairseq_ext.commands.gpt2_encoder", inputs.bpe_source / "vocab.bpe",
             bpe / "encoder.json"]])
    for name in () if chinese else BPE_FILES + (() if inputs.build_dictionary else ("dict.txt",)):
        if not (bpe / name).exists():  # encoder.json: rebuilt above
            shutil.copyfile(inputs.bpe_source / name, bpe / name)
    if inputs.learnable:
        learnable = demo.path("data", "learnable")
        lang = "zh" if chinese else "en"
        inputs.squad_train, inputs.squad_dev = learnable / "train.json", learnable / "dev.json"
        inputs.corpus = [learnable / "corpus" / "contexts.txt"]
        demo.stage("learnable-set", "made-up contexts and questions, unseen names in dev (learnable_qa.py)", [
            [py, "scripts/learnable_qa.py", "--out", learnable, "--lang", lang]])
    if inputs.squad_to_split is not None:
        source = inputs.squad_to_split
        train, dev = demo.path("data", "squad-train.json"), demo.path("data", "squad-dev.json")
        inputs.squad_train, inputs.squad_dev = train, dev
        demo.step("squad-split", f"hold out the last {inputs.dev_articles} articles of {source} as dev",
                  lambda: split_squad_by_article(source, inputs.dev_articles, train, dev))
    if inputs.corpus_from_contexts:
        contexts = demo.path("data", "contexts.txt")
        inputs.corpus = [contexts]
        demo.step("contexts", "the training articles' contexts as the raw corpus",
                  lambda: write_contexts(inputs.squad_train, contexts))

    corpus = demo.path("corpus")
    demo.stage("split", "documents -> train / valid (split_data.py)", [
        [py, "scripts/split_data.py", "--inputs", *inputs.corpus, "--outdir", corpus,
         "--valid-docs", inputs.valid_docs, "--test-docs", 0, "--quiet"]])
    if chinese:
        text = demo.path("data", "tokenizer-source.txt")
        write_dictionary_source(inputs, text)
        demo.stage("sentencepiece", "SentencePiece model + XLM-R dict.txt of the data (train_spm.py)", [
            [py, "scripts/train_spm.py", "--inputs", text, "--out", bpe, "--vocab-size",
             inputs.spm_vocab_size, "--force", "--quiet"]])
    elif inputs.build_dictionary:
        text = demo.path("data", "dictionary-source.txt")
        write_dictionary_source(inputs, text)
        demo.stage("bpe-dictionary", "GPT-2 BPE of the sample's text (bpe_encode.py), its dictionary", [
            [py, "scripts/bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe",
             bpe / "vocab.bpe", "--inputs", text, "--outputs", text.with_suffix(".bpe"), "--quiet"],
            [Path(py).parent / "fairseq-preprocess", "--only-source", "--dict-only", "--trainpref",
             text.with_suffix(".bpe"), "--destdir", bpe]])
    else:
        demo.step("bpe-dictionary", f"the official GPT-2 dictionary from {inputs.bpe_source}", lambda: None)
    corpus_bin = demo.path("data", "corpus-bin")
    demo.stage("binarize", "tokenization + binarization in one pass (prepare_corpus.py)", [
        [py, "scripts/prepare_corpus.py", "--raw-dir", corpus, "--tokenizer", bpe, "--destdir", corpus_bin,
         "--quiet"]])

    pretrained, continued = demo.path("checkpoints", "pretrained"), demo.path("checkpoints", "continued")
    demo.stage("pretrain", "a tiny 'pretrained' RoBERTa from random init (pretrain.sh, tiny.yaml)", [
        ["bash", "scripts/pretrain.sh", "--config", "tiny", "--data", corpus_bin, "--save-dir", pretrained,
         *override("optimization.max_update", args.pretrain_updates)]],
        updates=args.pretrain_updates or config_value("pretraining/tiny.yaml", "optimization", "max_update"))
    demo.stage("continue-mlm", "continued masked-LM training from that checkpoint (pretrain.sh --restore)", [
        ["bash", "scripts/pretrain.sh", "--config", "tiny", "--data", corpus_bin, "--save-dir", continued,
         "--restore", pretrained / "checkpoint_last.pt", f"optimization.max_update={args.continue_updates}",
         CONTINUE_LR, *RESETS]], updates=args.continue_updates)
    if inputs.learnable and not chinese:  # names are found by their capitals
        demo.stage("copy-probe", "does the masked LM copy names? (copy_probe.py)", [
            [py, "scripts/copy_probe.py", "--checkpoint", continued / "checkpoint_last.pt", "--data",
             inputs.squad_dev, "--tokenizer", bpe]])

    squad_bin, finetuned = demo.path("data", "squad2-bin"), demo.path("checkpoints", "squad2")
    demo.stage("prepare-squad", "SQuAD features, built once (prepare_squad2.py)", [
        [py, "scripts/prepare_squad2.py", "--train", inputs.squad_train, "--valid", inputs.squad_dev,
         "--tokenizer", bpe, "--destdir", squad_bin, *SQUAD_WINDOWS]])
    limits = (*override("optimization.max_epoch", args.finetune_epochs),
              *override("optimization.max_update", args.finetune_updates), f"task.metric={inputs.metric}")
    finetune_updates = args.finetune_updates or config_value("finetuning/squad2_tiny.yaml", "optimization",
                                                             "max_update")

    def finetune(save_dir: Path, start: Sequence, seed: int = 1) -> list:
        return ["bash", "scripts/finetune_squad2.sh", "--config", "squad2_tiny", "--data", squad_bin, *start,
                "--save-dir", save_dir, *limits, *(() if seed == 1 else (f"common.seed={seed}",))]

    demo.stage("finetune", "SQuAD fine-tuning in fairseq (finetune_squad2.sh, squad2_tiny.yaml)",
               [finetune(finetuned, ("--restore", continued / "checkpoint_last.pt"))],
               updates=finetune_updates)
    # the final model, not checkpoint_best.pt: the dev set also served as validation while fine-tuning
    model = finetuned / "checkpoint_last.pt"

    out = {side: demo.path("predictions", side) for side in SIDES}
    fit = demo.path("predictions", "fairseq-train")
    metric = ("--metric", inputs.metric)
    demo.stage("predict-fairseq", "answer the dev questions with fairseq (predict_squad2.py)", [
        [py, "scripts/predict_squad2.py", "--checkpoint", model, "--data", inputs.squad_dev, "--tokenizer",
         bpe, "--out", out["fairseq"], *metric]])
    demo.stage("fit-fairseq", "answer the fine-tuning questions too: what the model learnt", [
        [py, "scripts/predict_squad2.py", "--checkpoint", model, "--data", inputs.squad_train, "--tokenizer",
         bpe, "--out", fit, *metric]])
    hf_model = demo.path("hf-model")
    card = () if chinese else ("--eval-results", out["fairseq"] / "eval_results.json")  # SQuAD metric only
    demo.stage("convert", "export to Hugging Face with its model card, verified against fairseq "
               "(fairseq_to_hf.py)", [
        [py, "convert/fairseq_to_hf.py", "--checkpoint", model, "--tokenizer", bpe, "--dict",
         bpe / "dict.txt", "--out", hf_model, "--language", "zh" if chinese else "en", *card]])
    demo.stage("predict-transformers", "answer the dev questions with transformers (evaluate_hf.py)", [
        [py, "convert/evaluate_hf.py", "--model", hf_model, "--data", inputs.squad_dev, "--out",
         out["transformers"], *metric]])
    # SQuAD 2.0 data: the null odds as no-answer probabilities (best-threshold search)
    na_probs = {side: ["--na-prob-file", out[side] / "null_odds.json"] if inputs.metric == "squad" else []
                for side in SIDES}
    demo.stage("evaluate", "the official metric on both sides' answers (evaluate_squad2.py)", [
        [py, "scripts/evaluate_squad2.py", inputs.squad_dev, out[side] / "predictions.json", *metric,
         *na_probs[side], "--out-file", out[side] / "official_eval.json"] for side in SIDES])
    scratch = demo.path("checkpoints", "squad2-scratch")
    if not args.no_scratch:  # with --seeds N, N seeds from scratch too: pretrained vs scratch, mean vs mean
        scratch_runs = {seed: (demo.path("checkpoints", seeded("squad2-scratch", seed)),
                               seeded("scratch", seed)) for seed in range(1, args.seeds + 1)}
        demo.stage("finetune-scratch", "the same fine-tuning from random init, to compare (--from-scratch)",
                   [finetune(save_dir, ("--from-scratch",), seed)
                    for seed, (save_dir, _) in scratch_runs.items()], updates=finetune_updates)
        demo.stage("predict-scratch", "answer the dev questions with the model fine-tuned from scratch", [
            [py, "scripts/predict_squad2.py", "--checkpoint", save_dir / "checkpoint_last.pt", "--data",
             inputs.squad_dev, "--tokenizer", bpe, "--out", demo.path("predictions", name), *metric]
            for save_dir, name in scratch_runs.values()])
    if args.seeds > 1:
        seeds = range(2, args.seeds + 1)
        demo.stage("finetune-seeds", f"fairseq fine-tuning with seeds {', '.join(map(str, seeds))}", [
            command for seed in seeds for command in (
                finetune(demo.path("checkpoints", f"squad2-seed{seed}"),
                         ("--restore", continued / "checkpoint_last.pt"), seed),
                [py, "scripts/predict_squad2.py", "--checkpoint",
                 demo.path("checkpoints", f"squad2-seed{seed}", "checkpoint_last.pt"), "--data",
                 inputs.squad_dev, "--tokenizer", bpe, "--out",
                 demo.path("predictions", f"fairseq-seed{seed}"), *metric])],
                   updates=finetune_updates)
        hf_mlm = demo.path("hf-mlm")
        demo.stage("export-mlm", "the pretrained masked LM to Hugging Face (fairseq_to_hf.py)", [
            [py, "convert/fairseq_to_hf.py", "--checkpoint", continued / "checkpoint_last.pt", "--tokenizer",
             bpe, "--dict", bpe / "dict.txt", "--out", hf_mlm]])
        demo.stage("finetune-hf", f"transformers' Trainer, seeds 1-{args.seeds}, squad2_tiny.yaml's recipe "
                   "(finetune_hf.py)", [
            [py, "scripts/finetune_hf.py", "--config", "squad2_tiny", "--model", hf_mlm, "--train",
             inputs.squad_train, "--valid", inputs.squad_dev, "--out",
             demo.path("predictions", f"hf-seed{seed}"), "--seed", seed,
             *SQUAD_WINDOWS, *(("--updates", args.finetune_updates) if args.finetune_updates else ())]
            for seed in range(1, args.seeds + 1)])
    plots = demo.path("plots")
    curves = (pretrained, continued, finetuned) + (() if args.no_scratch else (scratch,))
    compare = () if args.no_scratch else ("--compare", "squad2-pretrained-vs-scratch")  # one axes
    meanings = ["--label", "pretrained=masked LM from random init",
                "--label", "continued=masked LM continued from 'pretrained'",
                "--label", "squad2=from pretrained masked LM"]
    meanings += [] if args.no_scratch else ["--label", "squad2-scratch=from random init"]
    demo.stage("plots", "training curves (plot_logs.py)", [
        [py, "scripts/plot_logs.py", *(d / "train_log.json" for d in curves), "--out-dir", plots, *meanings,
         *compare]])

    artefacts = {
        "corpus splits": corpus,
        "tokenizer + dictionary" if chinese else "dictionary": bpe if chinese else bpe / "dict.txt",
        "binarized corpus": corpus_bin,
        "pretrained checkpoint": pretrained / "checkpoint_last.pt",
        "continued checkpoint": continued / "checkpoint_last.pt",
        "SQuAD features": squad_bin,
        "fine-tuned checkpoint": model,
        "fairseq answers": out["fairseq"],
        "Hugging Face model": hf_model,
        "transformers answers": out["transformers"],
        "plots": plots,
        "logs": demo.path("logs"),
        "commands": demo.path("commands.sh"),
        "summary": demo.path("summary.json"),
    }
    return 0 if summarize(demo, inputs, artefacts, started, args.seeds) else 1


if __name__ == "__main__":
    run_cli(main)
