"""Benchmark: corpus preparation, ours vs fairseq's tools, 2 workers each, as a user runs them
(separate processes, start-up included), on the KJV Bible repeated 5 times (~20 MB) and the wiki
paragraphs.

- bpe-encode: scripts/bpe_encode.py vs fairseq's examples/roberta/multiprocessing_bpe_encoder.py.
- prepare-corpus: scripts/prepare_corpus.py (raw -> data-bin in one pass) vs that encoder on each split
  followed by fairseq-preprocess --only-source --srcdict.
- prepare-corpus memory: scripts/prepare_corpus.py on KJV x25 (~100 MB) against its own KJV x5 run:
  peak memory must stay flat as the input grows (``memory_growth``, target within 10%).

Both sides run with --keep-empty (RoBERTa's recipe); every comparison row checks that the outputs are
identical. Peak memory is the largest sum of the resident memory (RSS) of a command's whole process
tree (the tool and its workers), sampled every 20 ms; pages that forked workers share with their parent
count once per process, so it overstates the true footprint the same way for both sides.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from fairseq_ext.corpus.reading import fairseq_encoder_script

REPO = pathlib.Path(__file__).resolve().parents[2]
FAIRSEQ_ENCODER = fairseq_encoder_script()
WORKERS = 2
KJV_REPEATS = 5
KJV_REPEATS_LARGE = 25
QUICK_KJV_LINES = 3000
SAMPLE_S = 0.02
PAGE_MB = 4096 / 2**20


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (0 for any that just exited)."""
    total, pids = 0.0, [pid]
    while pids:
        current = pids.pop()
        try:
            total += int(pathlib.Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE_MB
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                pids.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def measured(command: list) -> tuple[float, float]:
    """(seconds, peak MB of the process tree) of one command; fails with its stderr if it fails."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([str(part) for part in command], stdout=subprocess.DEVNULL, stderr=stderr)
        peak = 0.0
        while process.poll() is None:
            peak = max(peak, _tree_rss_mb(process.pid))
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}):\n"
                               f"{stderr.read().decode(errors='replace')[-2000:]}")
    return seconds, peak


def encoder_flags(gpt2_bpe: pathlib.Path, source: pathlib.Path, output: pathlib.Path) -> list:
    return ["--encoder-json", gpt2_bpe / "encoder.json", "--vocab-bpe", gpt2_bpe / "vocab.bpe",
            "--inputs", source, "--outputs", output, "--keep-empty", "--workers", WORKERS]


def same_files(first: pathlib.Path, second: pathlib.Path, names: list[str]) -> bool:
    return all((first / name).read_bytes() == (second / name).read_bytes() for name in names)


def run_prepare_corpus(raw_dir: pathlib.Path, gpt2_bpe: pathlib.Path, destdir: pathlib.Path
                       ) -> tuple[float, float]:
    return measured([sys.executable, REPO / "scripts" / "prepare_corpus.py", "--raw-dir", raw_dir,
                     "--gpt2-bpe", gpt2_bpe, "--destdir", destdir, "--workers", WORKERS, "--quiet"])


def bench_encoder(name: str, source: pathlib.Path, gpt2_bpe: pathlib.Path, work_dir: pathlib.Path) -> dict:
    out = work_dir / f"encode-{name}"
    out.mkdir()
    reference_s, reference_mb = measured([sys.executable, FAIRSEQ_ENCODER,
                                          *encoder_flags(gpt2_bpe, source, out / "fairseq.bpe")])
    ours_s, ours_mb = measured([sys.executable, REPO / "scripts" / "bpe_encode.py", "--quiet",
                                *encoder_flags(gpt2_bpe, source, out / "ours.bpe")])
    return {"benchmark": f"bpe-encode {name}", "ours": "scripts/bpe_encode.py",
            "reference": "fairseq multiprocessing_bpe_encoder.py", "ours_s": ours_s,
            "reference_s": reference_s, "ratio": reference_s / ours_s, "workers": WORKERS,
            "ours_peak_mb": ours_mb, "reference_peak_mb": reference_mb,
            "input_mb": source.stat().st_size / 2**20,
            "identical": (out / "ours.bpe").read_bytes() == (out / "fairseq.bpe").read_bytes()}


def bench_prepare(name: str, raw_dir: pathlib.Path, gpt2_bpe: pathlib.Path, work_dir: pathlib.Path) -> dict:
    out = work_dir / f"prepare-{name}"
    (out / "bpe").mkdir(parents=True)
    splits = ("train", "valid")
    reference = [measured([sys.executable, FAIRSEQ_ENCODER,
                           *encoder_flags(gpt2_bpe, raw_dir / f"data.{split}.raw",
                                          out / "bpe" / f"data.{split}.bpe")]) for split in splits]
    reference.append(measured([
        pathlib.Path(sys.executable).parent / "fairseq-preprocess", "--only-source", "--srcdict",
        gpt2_bpe / "dict.txt", "--trainpref", out / "bpe" / "data.train.bpe", "--validpref",
        out / "bpe" / "data.valid.bpe", "--destdir", out / "fairseq", "--workers", WORKERS]))
    reference_s = sum(seconds for seconds, _ in reference)
    ours_s, ours_mb = run_prepare_corpus(raw_dir, gpt2_bpe, out / "ours")
    names = ["dict.txt"] + [f"{split}.{ext}" for split in splits for ext in ("bin", "idx")]
    return {"benchmark": f"prepare-corpus {name}", "ours": "scripts/prepare_corpus.py",
            "reference": "multiprocessing_bpe_encoder.py + fairseq-preprocess", "ours_s": ours_s,
            "reference_s": reference_s, "ratio": reference_s / ours_s, "workers": WORKERS,
            "ours_peak_mb": ours_mb, "reference_peak_mb": max(mb for _, mb in reference),
            "input_mb": sum((raw_dir / f"data.{split}.raw").stat().st_size for split in splits) / 2**20,
            "identical": same_files(out / "ours", out / "fairseq", names)}


def bench_memory(name: str, small: dict, raw_dir: pathlib.Path, gpt2_bpe: pathlib.Path,
                 work_dir: pathlib.Path) -> dict:
    """prepare_corpus.py on a 5 times larger input than ``small`` (a bench_prepare row): peak memory."""
    seconds, peak_mb = run_prepare_corpus(raw_dir, gpt2_bpe, work_dir / "prepare-large")
    shutil.rmtree(work_dir / "prepare-large")
    small_mb = small["ours_peak_mb"]
    growth = peak_mb / small_mb
    input_mb = sum(path.stat().st_size for path in raw_dir.glob("data.*.raw")) / 2**20
    return {"benchmark": f"prepare-corpus memory {name}", "ours": "scripts/prepare_corpus.py",
            "reference": f"itself on {small['benchmark'].removeprefix('prepare-corpus ')}",
            "ours_s": seconds, "reference_s": small["ours_s"], "ratio": None, "workers": WORKERS,
            "ours_peak_mb": peak_mb, "reference_peak_mb": small_mb, "input_mb": input_mb,
            "memory_growth": growth,
            "note": f"peak memory {peak_mb:.0f} MB on {input_mb:.0f} MB of text vs {small_mb:.0f} MB on "
                    f"{small['input_mb']:.0f} MB: x{growth:.3f} (target: within 10%)"}


def write_kjv(raw_dir: pathlib.Path, kjv_lines: list[bytes], repeats: int) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    with open(raw_dir / "data.train.raw", "wb") as train:
        for _ in range(repeats):
            train.write(b"".join(kjv_lines))
    (raw_dir / "data.valid.raw").write_bytes(b"".join(kjv_lines[:1000]))


def run(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool = False) -> list[dict]:
    gpt2_bpe = shared_dir / "gpt2_bpe"
    kjv_lines = (shared_dir / "data" / "kjv" / "kjv.txt").read_bytes().splitlines(keepends=True)
    if quick:
        kjv_lines = kjv_lines[:QUICK_KJV_LINES]
    kjv_raw = work_dir / "kjv-raw"
    write_kjv(kjv_raw, kjv_lines, KJV_REPEATS)
    wiki_raw = work_dir / "wiki-raw"
    wiki_raw.mkdir(exist_ok=True)
    shutil.copyfile(shared_dir / "data" / "wiki" / "wiki-paragraphs.txt", wiki_raw / "data.train.raw")
    wiki_text = (wiki_raw / "data.train.raw").read_bytes()
    (wiki_raw / "data.valid.raw").write_bytes(wiki_text[:len(wiki_text) // 10].rsplit(b"\n", 1)[0] + b"\n")
    quick_note = f" (first {QUICK_KJV_LINES} verses)" if quick else ""
    kjv_name = f"KJV x{KJV_REPEATS}{quick_note}"
    prepare_kjv = bench_prepare(kjv_name, kjv_raw, gpt2_bpe, work_dir)
    kjv_large_raw = work_dir / "kjv-large-raw"
    write_kjv(kjv_large_raw, kjv_lines, KJV_REPEATS_LARGE)
    memory = bench_memory(f"KJV x{KJV_REPEATS_LARGE}{quick_note}", prepare_kjv, kjv_large_raw, gpt2_bpe,
                          work_dir)
    shutil.rmtree(kjv_large_raw)
    return [bench_encoder(kjv_name, kjv_raw / "data.train.raw", gpt2_bpe, work_dir), prepare_kjv, memory,
            bench_encoder("wiki", wiki_raw / "data.train.raw", gpt2_bpe, work_dir),
            bench_prepare("wiki", wiki_raw, gpt2_bpe, work_dir)]
