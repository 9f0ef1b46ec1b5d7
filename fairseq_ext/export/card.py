"""The model card (README.md) of an export, written with huggingface_hub's ``ModelCard``: task, languages,
model size and tokenizer, base checkpoint, training data and config as the checkpoint records them (file
and directory names only: no path of the machine that built it), the verification figures, a usage
snippet and, given our eval_results.json, a model-index with EM/F1/HasAns/NoAns beside the score of
answering nothing, and how they were obtained.

The dataset the scores are labelled with is the one given (--eval-dataset), else the one eval_results.json
recognised by its checksum (an official file, fairseq_ext.squad.data.OFFICIAL_FILES), else ``custom``
named by the scored file: a part of SQuAD's dev set, or any other file, is never labelled ``squad_v2``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from fairseq_ext.errors import UserInputError
from fairseq_ext.export.config import HF_ARCHITECTURES, MASKED_LM, SPAN_QA
from fairseq_ext.export.fairseq_model import CONVERTED_FROM
from fairseq_ext.squad.data import read_json

PIPELINE_TAGS = {SPAN_QA: "question-answering", MASKED_LM: "fill-mask"}
# eval_results.json key -> model-index metric (type, name); the official SQuAD 2.0 script's keys
EVAL_METRICS = {"exact": ("exact_match", "EM"), "f1": ("f1", "F1"),
                "HasAns_exact": ("exact_match", "HasAns EM"), "HasAns_f1": ("f1", "HasAns F1"),
                "NoAns_exact": ("exact_match", "NoAns EM"), "NoAns_f1": ("f1", "NoAns F1")}
# training settings worth a line in the card: (config section, key)
TRAINING_FIELDS = (("task", "_name"), ("task", "data"), ("checkpoint", "restore_file"),
                   ("optimization", "lr"), ("optimization", "max_update"), ("optimization", "max_epoch"),
                   ("dataset", "batch_size"), ("optimization", "update_freq"), ("common", "seed"))


@dataclass
class CardFacts:
    kind: str
    name: str  # the export directory's name
    config: dict  # the exported config.json
    checkpoint: Path
    num_updates: int
    training: dict[str, object] = field(default_factory=dict)  # "section.key" -> value, when recorded
    verification: Optional[str] = None
    languages: list[str] = field(default_factory=lambda: ["en"])
    license: Optional[str] = None
    eval_results: Optional[dict] = None
    eval_dataset: Optional[str] = None  # a hub dataset id given by the user; None: from eval_results' data
    parameters: Optional[int] = None
    tokenizer: Optional[str] = None  # e.g. "GPT-2 byte-level BPE, 50265 ids"
    null_threshold: Optional[tuple[float, str]] = None  # (value, where it comes from)


def training_facts(state: dict) -> dict[str, object]:
    """The TRAINING_FIELDS a checkpoint's config records (hydra ``cfg`` or legacy ``args``); for a
    checkpoint imported from HF (never trained by fairseq), where it came from."""
    if state.get(CONVERTED_FROM):
        return {"converted from Hugging Face": state[CONVERTED_FROM]}
    cfg = state.get("cfg") or {}
    legacy = vars(state["args"]) if state.get("args") is not None else None
    facts = {}
    for section, key in TRAINING_FIELDS:
        if legacy is not None:
            value = legacy.get(section if key == "_name" else key)
        else:
            part = cfg.get(section)
            value = part.get(key) if isinstance(part, dict) else None
        # 0 means "no limit" for these settings; checkpoint_last.pt is fairseq's default, not a base model
        if value not in (None, "", [], 0, "checkpoint_last.pt"):
            facts[f"{section}.{key}"] = _without_directories(value)
    return facts


def _without_directories(value):
    """A path as its last component (``/home/me/data-bin/squad2`` -> ``squad2``; data shards joined by
    ``:`` each so): a card is published, the builder's directories are nobody's business."""
    if isinstance(value, str) and "/" in value:
        return ":".join(Path(part).name for part in value.split(":"))
    return value


# CUSTOM: the model-index dataset type of a file that is no recognised official one
CUSTOM = "custom"


def eval_dataset(facts: CardFacts) -> tuple[str, str]:
    """(model-index dataset type, dataset name) of the scores: see the module doc."""
    data = (facts.eval_results or {}).get("data") or {}
    if facts.eval_dataset:
        return facts.eval_dataset, data.get("file") or facts.eval_dataset
    if data.get("dataset"):
        return data["dataset"], data.get("dataset_name") or data["dataset"]
    return CUSTOM, data.get("file") or "an unrecorded data file"


def read_eval_results(path: Path) -> dict:
    results = read_json(path, "eval results")
    if not isinstance(results, dict) or "exact" not in results or "f1" not in results:
        raise UserInputError(f"{path}: no 'exact' and 'f1' (expected eval_results.json of predict_squad2.py "
                             "or evaluate_hf.py)")
    return results


def model_card(facts: CardFacts):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    eval_results, dataset_type = None, None
    if facts.eval_results is not None:
        dataset_type, dataset_name = eval_dataset(facts)
        eval_results = [
            EvalResult(task_type=PIPELINE_TAGS[SPAN_QA], dataset_type=dataset_type,
                       dataset_name=dataset_name, metric_type=metric_type, metric_name=metric_name,
                       metric_value=round(float(facts.eval_results[key]), 2))
            for key, (metric_type, metric_name) in EVAL_METRICS.items() if key in facts.eval_results]
    data = ModelCardData(
        language=facts.languages, license=facts.license, library_name="transformers",
        pipeline_tag=PIPELINE_TAGS[facts.kind], tags=["roberta", "fairseq"] + (
            ["extractive-qa"] if facts.kind == SPAN_QA else []) + (  # squad_v2: the official file only
            ["squad_v2"] if dataset_type == "squad_v2" else []),
        model_name=facts.name, eval_results=eval_results)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{_body(facts)}")


def _body(facts: CardFacts) -> str:
    config = facts.config
    architecture = (config.get("architectures") or [HF_ARCHITECTURES[facts.kind]])[0]
    lines = [
        f"# {facts.name}", "",
        f"A RoBERTa ({config['num_hidden_layers']} layers, hidden size {config['hidden_size']}, "
        f"{config['num_attention_heads']} heads, {config['max_position_embeddings'] - 2} positions) "
        f"trained with fairseq and converted to `{architecture}`"
        + (f": {facts.parameters / 1e6:.1f}M parameters" if facts.parameters else "")
        + (f"; tokenizer: {facts.tokenizer}" if facts.tokenizer else "") + ".", "",
        "## Training", "",
        f"- fairseq checkpoint: `{facts.checkpoint.name}` after {facts.num_updates} updates",
    ]
    lines += [f"- `{key}`: `{value}`" for key, value in facts.training.items()]
    lines += ["", "## Conversion check", "",
              "Before writing, the export was reloaded with `from_pretrained` and compared with the fairseq "
              "model: " + (facts.verification or "not run (`--no-verify`)") + "."]
    if facts.kind == SPAN_QA:
        settings = config.get("squad_settings") or {}
        lines += ["", "## Answering", "",
                  "Windows and post-processing (stored in `config.json` as `squad_settings`, used by "
                  "`evaluate_hf.py` and `predict_hf.py` unless overridden): "
                  + ", ".join(f"`{key}={value}`" for key, value in settings.items()) + "."]
        if facts.null_threshold is not None:
            value, source = facts.null_threshold
            lines.append(f"The \"no answer\" threshold `null_score_diff_threshold={value:g}` comes from "
                         f"{source}.")
    if facts.eval_results is not None:
        lines += ["", "## Evaluation", "", *_evaluation(facts)]
    lines += ["", "## Usage", "", *_usage(facts), ""]
    return "\n".join(lines)


def _evaluation(facts: CardFacts) -> list[str]:
    """The scores, the answer-nothing baseline beside them, how they were obtained, and a warning when they
    are (almost) the baseline's."""
    from fairseq_ext.squad.metric import score_notes

    results = facts.eval_results
    dataset_type, dataset_name = eval_dataset(facts)
    data = results.get("data") or {}
    where = f"`{data['file']}` (sha256 `{data['sha256'][:16]}…`)" if data.get("file") else dataset_name
    label = (f"labelled `{dataset_type}`" if dataset_type != CUSTOM else
             "not an official SQuAD file (checked by its sha256), so labelled `custom`")
    lines = [f"Measured on {where}, {label}, by this project's `predict_squad2.py` (fairseq) or "
             "`evaluate_hf.py` (this export): every question answered, the answers as written scored with "
             "the official SQuAD 2.0 metric (`evaluate-v2.0.py`).", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {float(results[key]):.2f} |"
              for key, (_, name) in EVAL_METRICS.items() if key in results]
    if "no_answer_baseline" in results:
        baseline = float(results["no_answer_baseline"])
        lines.append(f"| answering nothing (baseline: EM = F1) | {baseline:.2f} |")
        lines += ["", "Answering \"no answer\" to every question scores the baseline (the share of "
                  "unanswerable questions): read EM/F1 against it."]
        if "answered" in results and "total" in results:
            warnings = score_notes("squad", results, results["no_answer_baseline"], results["answered"],
                                   results["total"])[1:]
            lines += [f"**{line[0].upper()}{line[1:]}.**" for line in warnings]
    return lines


def _usage(facts: CardFacts) -> list[str]:
    if facts.kind == SPAN_QA:
        return [
            "With this project (same windows and post-processing as the fairseq side):", "", "```bash",
            f"python convert/predict_hf.py --model {facts.name} --question \"Who ...?\" --context \"...\"",
            f"python convert/evaluate_hf.py --model {facts.name} --data dev-v2.0.json --out eval/", "```", "",
            "With transformers alone (best single window, no \"no answer\" threshold):", "", "```python",
            "import torch",
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer", "",
            f"tokenizer = AutoTokenizer.from_pretrained(\"{facts.name}\")",
            f"model = AutoModelForQuestionAnswering.from_pretrained(\"{facts.name}\")",
            "inputs = tokenizer(\"Who ...?\", \"context ...\", return_tensors=\"pt\")",
            "with torch.no_grad():",
            "    output = model(**inputs)",
            "start, end = int(output.start_logits.argmax()), int(output.end_logits.argmax())",
            "print(tokenizer.decode(inputs[\"input_ids\"][0, start:end + 1]))", "```"]
    return ["```python", "from transformers import pipeline", "",
            f"fill_mask = pipeline(\"fill-mask\", model=\"{facts.name}\")",
            "print(fill_mask(\"The capital of France is <mask>.\"))", "```"]
