"""Benchmark: SQuAD span-QA inference throughput (features/s) and peak memory, fairseq vs transformers.

Ours: the fine-tuned ``roberta_span_qa`` checkpoint loaded as scripts/predict_squad2.py loads it, forward
passes as predict_squad2.py batches them. Reference: the same checkpoint converted by
convert/fairseq_to_hf.py, run as transformers' ``RobertaForQuestionAnswering`` with an attention mask.
The checkpoint and its export come from the training benchmark's setup (a few updates on shared SQuAD
articles); the features are the validation windows of the next article. Same batches (windows sorted by
length, 32 per batch), fp32, no gradients, on CPU with one thread, each side in its own subprocess (its
own peak memory). Timing starts after two untimed warm-up batches.

A second row, ``qa-inference vs run_qa``: questions/s of scripts/predict_squad2.py --max-tokens (from
loading to files) vs run_qa's evaluation (windows padded to 384, batches of 8, its post-processing), on
a model trained at run_qa's windows; ``identical`` says whether the answers are the same.

Also run as ``python -m scripts.benchmarks.inference SIDE ...``: one side, results as JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

from scripts.benchmarks.training import (
    MAX_TOKENS,
    REPO,
    RUN_QA,
    SIDE_ENV,
    train_and_export,
    train_by_tokens_and_export,
)

BATCH_SIZE = 32  # predict_squad2.py's default
RUN_QA_EVAL_BATCH = 8  # run_qa.py's per_device_eval_batch_size (TrainingArguments' default)
WARMUP_BATCHES = 2


def batches(lengths: np.ndarray, repeats: int) -> list[np.ndarray]:
    """predict_squad2.py's batching (windows sorted by length), the whole set ``repeats`` times."""
    order = np.argsort(lengths, kind="stable")
    one_pass = [order[i:i + BATCH_SIZE] for i in range(0, len(order), BATCH_SIZE)]
    return one_pass * repeats


def padded(arrays, windows: np.ndarray, pad: int):
    import torch

    lengths = arrays.lengths[windows]
    tokens = torch.full((len(windows), int(lengths.max())), pad, dtype=torch.long)
    for row, window in enumerate(windows):
        tokens[row, :lengths[row]] = torch.from_numpy(arrays.tokens(window).astype(np.int64))
    return tokens


def timed_forward(forward, arrays, pad: int, repeats: int) -> dict:
    """Seconds for ``repeats`` passes over all windows, after WARMUP_BATCHES untimed batches."""
    import torch

    plan = batches(arrays.lengths, repeats)
    inputs = [padded(arrays, windows, pad) for windows in plan]  # tensors built outside the timing
    with torch.inference_mode():
        for tokens in inputs[:WARMUP_BATCHES]:
            forward(tokens)
        start = time.perf_counter()
        for tokens in inputs:
            forward(tokens)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "features": sum(len(windows) for windows in plan),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "threads": torch.get_num_threads(),
    }


def fairseq_side(checkpoint: pathlib.Path, bpe_dir: pathlib.Path, data_dir: pathlib.Path,
                 repeats: int) -> dict:
    from fairseq_ext.commands.predict_squad2 import load_model
    from fairseq_ext.squad.format import FeatureArrays

    model, _, task = load_model(checkpoint, bpe_dir, "cpu", fp16=False)
    arrays = FeatureArrays.load(data_dir / "valid.features.npz")
    return timed_forward(model, arrays, task.source_dictionary.pad(), repeats)


def hf_side(hf_model: pathlib.Path, data_dir: pathlib.Path, repeats: int) -> dict:
    from transformers import AutoModelForQuestionAnswering

    from fairseq_ext.squad.features import PAD
    from fairseq_ext.squad.format import FeatureArrays

    model = AutoModelForQuestionAnswering.from_pretrained(str(hf_model)).eval()
    arrays = FeatureArrays.load(data_dir / "valid.features.npz")

    def forward(tokens):
        return model(input_ids=tokens, attention_mask=tokens.ne(PAD).long())

    return timed_forward(forward, arrays, PAD, repeats)


# --- against transformers' run_qa.py evaluation (questions/s, answers compared)

def predict_side(checkpoint: pathlib.Path, bpe_dir: pathlib.Path, squad_json: pathlib.Path,
                 out: pathlib.Path) -> dict:
    """scripts/predict_squad2.py --max-tokens MAX_TOKENS, in this process after its imports: loading,
    windows, forward passes, post-processing, files."""
    import fairseq.checkpoint_utils  # noqa: F401  (imports outside the timing)
    import torch  # noqa: F401

    import fairseq_ext.plugin  # noqa: F401
    from fairseq_ext.commands import predict_squad2

    start = time.perf_counter()
    predict_squad2.main(["--checkpoint", str(checkpoint), "--data", str(squad_json), "--gpt2-bpe",
                         str(bpe_dir), "--out", str(out), "--max-tokens", str(MAX_TOKENS)])
    seconds = time.perf_counter() - start
    answers = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    return {"seconds": seconds, "questions": len(answers), "answers": answers,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_qa_eval_side(hf_model: pathlib.Path, squad_json: pathlib.Path) -> dict:
    """run_qa.py's evaluation: the model and tokenizer from the directory, prepare_validation_features
    padded to max_seq_length, forward passes in batches of RUN_QA_EVAL_BATCH with the tokenizer's
    attention mask, then the run_qa post-processing (fairseq_ext.squad's, the one implementation)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from fairseq_ext.squad import load_squad, postprocess_predictions
    from fairseq_ext.squad.features import QAFeature
    from scripts.benchmarks.squad_features import run_qa_train_features

    start = time.perf_counter()
    squad = load_squad(squad_json)
    tokenizer = AutoTokenizer.from_pretrained(str(hf_model))
    model = AutoModelForQuestionAnswering.from_pretrained(str(hf_model)).eval()
    windows = run_qa_train_features(tokenizer, squad.examples, RUN_QA.max_seq_length, RUN_QA.doc_stride,
                                    padding="max_length", labels=False)
    features = [QAFeature(example_index=w["example_index"], input_ids=w["input_ids"], start_position=0,
                          end_position=0, token_offsets=w["offsets"],
                          context_start=w["sequence_ids"].index(1))
                for w in windows]
    input_ids = torch.tensor([w["input_ids"] for w in windows])
    attention_mask = input_ids.ne(tokenizer.pad_token_id).long()
    starts, ends = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), RUN_QA_EVAL_BATCH):
            output = model(input_ids=input_ids[i:i + RUN_QA_EVAL_BATCH],
                           attention_mask=attention_mask[i:i + RUN_QA_EVAL_BATCH])
            starts.extend(output.start_logits.float().numpy())
            ends.extend(output.end_logits.float().numpy())
    predictions = postprocess_predictions(squad.examples, features, starts, ends,
                                          version_2_with_negative=squad.version_2, **RUN_QA.answers())
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "questions": len(predictions.answers), "answers": predictions.answers,
            "windows": len(windows), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def qa_inference_vs_run_qa(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool) -> dict:
    _, _, checkpoint, hf_dir, _ = train_by_tokens_and_export(work_dir, shared_dir, quick)
    squad_json = work_dir / "squad-valid.json"
    ours = run_side("predict", work_dir, "--checkpoint", str(checkpoint), "--gpt2-bpe",
                    str(shared_dir / "gpt2_bpe"), "--data", str(squad_json), "--predictions",
                    str(work_dir / "predictions"))
    reference = run_side("run_qa", work_dir, "--hf-model", str(hf_dir), "--data", str(squad_json))
    differing = [q for q, answer in ours["answers"].items() if reference["answers"].get(q) != answer]
    ours_rate = ours["questions"] / ours["seconds"]
    reference_rate = reference["questions"] / reference["seconds"]
    return {
        "benchmark": "qa-inference vs run_qa",
        "ours": f"scripts/predict_squad2.py --max-tokens {MAX_TOKENS} (length-grouped batches), "
                "model loading to files",
        "reference": f"run_qa.py evaluation recipe: prepare_validation_features padded to "
                     f"{RUN_QA.max_seq_length}, batches of {RUN_QA_EVAL_BATCH}, run_qa post-processing "
                     "(converted model, its tokenizer)",
        "ours_s": 1 / ours_rate,
        "reference_s": 1 / reference_rate,
        "ratio": ours_rate / reference_rate,
        "unit": "seconds per question",
        "note": f"s = seconds per question: {ours_rate:.1f} vs {reference_rate:.1f} questions/s, "
                f"{len(differing)} answers differ",
        "ours_questions_per_s": ours_rate,
        "reference_questions_per_s": reference_rate,
        "questions": ours["questions"],
        "reference_windows": reference["windows"],
        "identical": not differing and len(reference["answers"]) == len(ours["answers"]),
        "differing_answers": len(differing),
        "ours_peak_mb": ours["peak_mb"],
        "reference_peak_mb": reference["peak_mb"],
    }


def run_side(side: str, work_dir: pathlib.Path, *args: str) -> dict:
    out = work_dir / f"inference-{side}.json"
    subprocess.run([sys.executable, "-m", "scripts.benchmarks.inference", side, *args, "--out", str(out)],
                   check=True, cwd=REPO, env=SIDE_ENV, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def run(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool = False) -> list[dict]:
    data_dir, _, checkpoint, hf_dir, _ = train_and_export(work_dir, shared_dir, quick)
    repeats = "1" if quick else "5"
    common = ["--data", str(data_dir), "--repeats", repeats]
    ours = run_side("fairseq", work_dir, "--checkpoint", str(checkpoint), "--gpt2-bpe",
                    str(shared_dir / "gpt2_bpe"), *common)
    reference = run_side("hf", work_dir, "--hf-model", str(hf_dir), *common)
    return [{
        "benchmark": "qa_inference",
        "ours": "fairseq roberta_span_qa forward (predict_squad2.py's loading and batching)",
        "reference": "transformers RobertaForQuestionAnswering forward (converted model, attention mask)",
        "ours_s": ours["seconds"],
        "reference_s": reference["seconds"],
        "ratio": reference["seconds"] / ours["seconds"],
        "features": ours["features"],
        "batch_size": BATCH_SIZE,
        "ours_features_per_s": ours["features"] / ours["seconds"],
        "reference_features_per_s": reference["features"] / reference["seconds"],
        "ours_peak_mb": ours["peak_mb"],
        "reference_peak_mb": reference["peak_mb"],
        "threads": ours["threads"],
    }, qa_inference_vs_run_qa(work_dir, shared_dir, quick)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one side of the QA inference benchmark")
    parser.add_argument("side", choices=("fairseq", "hf", "predict", "run_qa"))
    parser.add_argument("--data", type=pathlib.Path, required=True,
                        help="prepare_squad2.py output (predict, run_qa: the SQuAD JSON)")
    parser.add_argument("--repeats", type=int, help="fairseq, hf: timed passes over the valid windows")
    parser.add_argument("--predictions", type=pathlib.Path, help="predict: the output directory")
    parser.add_argument("--checkpoint", type=pathlib.Path, help="fairseq: the span-QA checkpoint")
    parser.add_argument("--gpt2-bpe", type=pathlib.Path, help="fairseq: directory with dict.txt")
    parser.add_argument("--hf-model", type=pathlib.Path, help="hf: the converted model directory")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="result JSON")
    args = parser.parse_args(argv)
    if args.side == "fairseq":
        result = fairseq_side(args.checkpoint, args.gpt2_bpe, args.data, args.repeats)
    elif args.side == "hf":
        result = hf_side(args.hf_model, args.data, args.repeats)
    elif args.side == "predict":
        result = predict_side(args.checkpoint, args.gpt2_bpe, args.data, args.predictions)
    else:
        result = run_qa_eval_side(args.hf_model, args.data)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
