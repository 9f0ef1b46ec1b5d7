"""Benchmark: SQuAD span-QA inference throughput (features/s) and peak memory, fairseq vs transformers.

Ours: the fine-tuned ``roberta_span_qa`` checkpoint loaded as scripts/predict_squad2.py loads it, forward
passes as predict_squad2.py batches them. Reference: the same checkpoint converted by
convert/fairseq_to_hf.py, run as transformers' ``RobertaForQuestionAnswering`` with an attention mask.
The checkpoint and its export come from the training benchmark's setup (a few updates on shared SQuAD
articles); the features are the validation windows of the next article. Same batches (windows sorted by
length, 32 per batch), fp32, no gradients, on CPU with one thread, each side in its own subprocess (its
own peak memory). Timing starts after two untimed warm-up batches.

Also run as ``python -m scripts.benchmarks.inference {fairseq,hf} ...``: one side, results as JSON.
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

from scripts.benchmarks.training import REPO, SIDE_ENV, train_and_export

BATCH_SIZE = 32  # predict_squad2.py's default
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
    }]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one side of the QA inference benchmark")
    parser.add_argument("side", choices=("fairseq", "hf"))
    parser.add_argument("--data", type=pathlib.Path, required=True, help="prepare_squad2.py output")
    parser.add_argument("--repeats", type=int, required=True, help="timed passes over the valid windows")
    parser.add_argument("--checkpoint", type=pathlib.Path, help="fairseq: the span-QA checkpoint")
    parser.add_argument("--gpt2-bpe", type=pathlib.Path, help="fairseq: directory with dict.txt")
    parser.add_argument("--hf-model", type=pathlib.Path, help="hf: the converted model directory")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="result JSON")
    args = parser.parse_args(argv)
    if args.side == "fairseq":
        result = fairseq_side(args.checkpoint, args.gpt2_bpe, args.data, args.repeats)
    else:
        result = hf_side(args.hf_model, args.data, args.repeats)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
