"""Benchmark: corpus preparation, ours vs fairseq's tools, 2 workers each, as a user runs them
(separate processes, start-up included), on the KJV Bible repeated 5 times (~20 MB) and the wiki
paragraphs.

- bpe-encode: scripts/bpe_encode.py vs fairseq's examples/roberta/multiprocessing_bpe_encoder.py.
- prepare-corpus: scripts/prepare_corpus.py (raw -> data-bin in one pass) vs that encoder on each split
  followed by fairseq-preprocess --only-source --srcdict.

Both sides run with --keep-empty (RoBERTa's recipe); every row checks that the outputs are identical.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import time

from fairseq_ext.corpus.reading import fairseq_encoder_script

REPO = pathlib.Path(__file__).resolve().parents[2]
FAIRSEQ_ENCODER = fairseq_encoder_script()
WORKERS = 2
KJV_REPEATS = 5
QUICK_KJV_LINES = 3000


def timed(command: list) -> float:
    start = time.perf_counter()
    subprocess.run([str(part) for part in command], check=True, capture_output=True)
    return time.perf_counter() - start


def encoder_flags(gpt2_bpe: pathlib.Path, source: pathlib.Path, output: pathlib.Path) -> list:
    return ["--encoder-json", gpt2_bpe / "encoder.json", "--vocab-bpe", gpt2_bpe / "vocab.bpe",
            "--inputs", source, "--outputs", output, "--keep-empty", "--workers", WORKERS]


def same_files(first: pathlib.Path, second: pathlib.Path, names: list[str]) -> bool:
    return all((first / name).read_bytes() == (second / name).read_bytes() for name in names)


def bench_encoder(name: str, source: pathlib.Path, gpt2_bpe: pathlib.Path, work_dir: pathlib.Path) -> dict:
    out = work_dir / f"encode-{name}"
    out.mkdir()
    reference_s = timed([sys.executable, FAIRSEQ_ENCODER,
                         *encoder_flags(gpt2_bpe, source, out / "fairseq.bpe")])
    ours_s = timed([sys.executable, REPO / "scripts" / "bpe_encode.py", "--quiet",
                    *encoder_flags(gpt2_bpe, source, out / "ours.bpe")])
    return {"benchmark": f"bpe-encode {name}", "ours": "scripts/bpe_encode.py",
            "reference": "fairseq multiprocessing_bpe_encoder.py", "ours_s": ours_s,
            "reference_s": reference_s, "ratio": reference_s / ours_s, "workers": WORKERS,
            "input_mb": source.stat().st_size / 2**20,
            "identical": (out / "ours.bpe").read_bytes() == (out / "fairseq.bpe").read_bytes()}


def bench_prepare(name: str, raw_dir: pathlib.Path, gpt2_bpe: pathlib.Path, work_dir: pathlib.Path) -> dict:
    out = work_dir / f"prepare-{name}"
    (out / "bpe").mkdir(parents=True)
    splits = ("train", "valid")
    start = time.perf_counter()
    for split in splits:
        timed([sys.executable, FAIRSEQ_ENCODER,
               *encoder_flags(gpt2_bpe, raw_dir / f"data.{split}.raw", out / "bpe" / f"data.{split}.bpe")])
    timed([pathlib.Path(sys.executable).parent / "fairseq-preprocess", "--only-source", "--srcdict",
           gpt2_bpe / "dict.txt", "--trainpref", out / "bpe" / "data.train.bpe", "--validpref",
           out / "bpe" / "data.valid.bpe", "--destdir", out / "fairseq", "--workers", WORKERS])
    reference_s = time.perf_counter() - start
    ours_s = timed([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--raw-dir", raw_dir,
                    "--gpt2-bpe", gpt2_bpe, "--destdir", out / "ours", "--workers", WORKERS, "--quiet"])
    names = ["dict.txt"] + [f"{split}.{ext}" for split in splits for ext in ("bin", "idx")]
    return {"benchmark": f"prepare-corpus {name}", "ours": "scripts/prepare_corpus.py",
            "reference": "multiprocessing_bpe_encoder.py + fairseq-preprocess", "ours_s": ours_s,
            "reference_s": reference_s, "ratio": reference_s / ours_s, "workers": WORKERS,
            "input_mb": sum((raw_dir / f"data.{split}.raw").stat().st_size for split in splits) / 2**20,
            "identical": same_files(out / "ours", out / "fairseq", names)}


def run(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool = False) -> list[dict]:
    gpt2_bpe = shared_dir / "gpt2_bpe"
    kjv_lines = (shared_dir / "data" / "kjv" / "kjv.txt").read_bytes().splitlines(keepends=True)
    if quick:
        kjv_lines = kjv_lines[:QUICK_KJV_LINES]
    kjv_raw = work_dir / "kjv-raw"
    kjv_raw.mkdir(parents=True, exist_ok=True)
    (kjv_raw / "data.train.raw").write_bytes(b"".join(kjv_lines) * KJV_REPEATS)
    (kjv_raw / "data.valid.raw").write_bytes(b"".join(kjv_lines[:1000]))
    wiki_raw = work_dir / "wiki-raw"
    wiki_raw.mkdir(exist_ok=True)
    shutil.copyfile(shared_dir / "data" / "wiki" / "wiki-paragraphs.txt", wiki_raw / "data.train.raw")
    wiki_text = (wiki_raw / "data.train.raw").read_bytes()
    (wiki_raw / "data.valid.raw").write_bytes(wiki_text[:len(wiki_text) // 10].rsplit(b"\n", 1)[0] + b"\n")
    kjv_name = f"KJV x{KJV_REPEATS}" + (f" (first {QUICK_KJV_LINES} verses)" if quick else "")
    return [bench_encoder(kjv_name, kjv_raw / "data.train.raw", gpt2_bpe, work_dir),
            bench_prepare(kjv_name, kjv_raw, gpt2_bpe, work_dir),
            bench_encoder("wiki", wiki_raw / "data.train.raw", gpt2_bpe, work_dir),
            bench_prepare("wiki", wiki_raw, gpt2_bpe, work_dir)]
