"""The test data (the layout of ``../shared``) fetched from its official homes into a user cache.
Test machinery, not part of the runtime package ``fairseq_ext``.

``make test`` reads ``$SHARED_DIR``, else ``../shared``, else this cache, which it fills once
(``python -m tests.testdata resolve``); ``scripts/get_test_data.sh`` (``python -m tests.testdata fetch``)
fills it explicitly. Standard library only (plus ``fairseq_ext.cli``, itself standard library only): it
runs before anything else is installed or imported.

  python -m tests.testdata fetch [DEST]   fetch into DEST (default: the user cache)
  python -m tests.testdata resolve        print the directory `make test` uses: $SHARED_DIR, else
                                          ../shared beside the repository, else the user cache, fetched
                                          first when incomplete; it says which on stderr

What is fetched, and how each file is checked before it is put in place:
  gpt2_bpe/{encoder.json,vocab.bpe,dict.txt}  fairseq's URLs, sha256 (same bytes as ../shared)
  data/squad2/squad2-dev-part.json  16 articles of the official SQuAD 2.0 dev set, by title, checked by
                                    the counts ../shared/README.md states (ids stay the official ones)
  data/cmrc2018/cmrc2018-trial.json the CMRC 2018 trial set as published, checked by its counts
  data/kjv/kjv.txt                  Debian's bible-kjv-text text, one verse per line, sha256
  data/wiki/wiki-paragraphs.txt     the first 20 articles of SQuAD 2.0 train (none is a dev article),
                                    up to 29 paragraphs each: the layout and size of ../shared's file,
                                    not its bytes
Every file is written to a temporary name, checked, then renamed; ``.complete`` is written last, so
an interrupted fetch never looks complete. ``ROBERTA_TEST_DATA_MIRROR=BASE`` fetches every
``https://HOST/PATH`` from ``BASE/HOST/PATH`` instead (a local mirror, or tests' own HTTP server).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import run_cli
from fairseq_ext.errors import UserInputError

MIRROR_ENV = "ROBERTA_TEST_DATA_MIRROR"
DATA_VERSION = "1"  # written to .complete; bump it when a rule below changes, so caches are rebuilt

GPT2_BPE_URL = "https://dl.fbaipublicfiles.com/fairseq/gpt2_bpe/"
GPT2_BPE_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "dict.txt": "2c31c5b236661067fe8626775eb995ef5fe808ac87d2ad4a6ddbef68550f5cc6",
}
SQUAD_DEV_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json"
SQUAD_TRAIN_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v2.0.json"
CMRC_TRIAL_URL = "https://raw.githubusercontent.com/ymcui/cmrc2018/master/squad-style-data/cmrc2018_trial.json"
# Debian's pool keeps a version only while a release ships it; snapshot.debian.org keeps it by sha1.
KJV_DEB_URLS = ("https://deb.debian.org/debian/pool/main/b/bible-kjv/bible-kjv-text_4.38_all.deb",
                "https://snapshot.debian.org/file/1666fa8517505735afa6b63c149d7879c42fb1a2")
KJV_SHA256 = "b5c4940bcfeee072c0935b5200d0f9d88a00a0199cb0961d16133458fcdfae5d"
KJV_VERSES = 31102

# The SQuAD articles of ../shared's part of dev, and what ../shared/README.md says the part holds.
SQUAD_DEV_PART_TITLES = (
    "Normans", "Computational_complexity_theory", "Huguenot", "Steam_engine", "1973_oil_crisis",
    "European_Union_law", "Packet_switching", "Harvard_University", "Yuan_dynasty", "Immune_system",
    "Scottish_Parliament", "Islamism", "Imperialism", "Warsaw", "French_and_Indian_War", "Force")
SQUAD_DEV_PART_COUNTS = {"articles": 16, "paragraphs": 646, "questions": 6078, "unanswerable": 3168}
CMRC_TRIAL_COUNTS = {"articles": 256, "paragraphs": 256, "questions": 1002, "unanswerable": 0}
WIKI_ARTICLES = 20
WIKI_PARAGRAPHS_PER_ARTICLE = 29

FILES = ("gpt2_bpe/encoder.json", "gpt2_bpe/vocab.bpe", "gpt2_bpe/dict.txt",
         "data/squad2/squad2-dev-part.json", "data/cmrc2018/cmrc2018-trial.json", "data/kjv/kjv.txt",
         "data/wiki/wiki-paragraphs.txt")
COMPLETE = ".complete"


class FetchError(UserInputError):
    """A download or a check failed: one line naming the file and the URL."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roberta-squad2" / "test-data"


def is_complete(root: Path) -> bool:
    marker = root / COMPLETE
    return marker.is_file() and marker.read_text().strip() == DATA_VERSION and missing_files(root) == []


def missing_files(root: Path) -> list[str]:
    return [name for name in FILES if not (root / name).is_file()]


def mirrored(url: str, mirror: Optional[str]) -> str:
    """``https://HOST/PATH`` as ``MIRROR/HOST/PATH`` when a mirror is given."""
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _progress(name: str, done: int, total: Optional[int], quarters_shown: int) -> int:
    """Progress on stderr: a live line on a terminal, else a line at each quarter; returns quarters shown."""
    if sys.stderr.isatty():
        size = f"{done / 1e6:.1f}" + (f" / {total / 1e6:.1f}" if total else "")
        print(f"\r  {name}: {size} MB", end="", file=sys.stderr, flush=True)
    elif total and done * 4 // total > quarters_shown:
        quarters_shown = done * 4 // total
        print(f"  {name}: {25 * quarters_shown}% of {total / 1e6:.1f} MB", file=sys.stderr)
    return quarters_shown


def download(url: str, target: Path, sha256: Optional[str] = None) -> None:
    """``url`` into ``target`` through a temporary file: complete (Content-Length) and, when ``sha256``
    is given, verified, or ``target`` is left untouched and a FetchError names the file and the URL."""
    name = target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{name}.", suffix=".part",
                                     delete=False) as part:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                total, done, digest, quarters = response.length, 0, hashlib.sha256(), 0
                print(f"  fetching {name} from {url}", file=sys.stderr)
                while chunk := response.read(1 << 20):
                    part.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    quarters = _progress(name, done, total, quarters)
            if sys.stderr.isatty():
                print(file=sys.stderr)
            if total is not None and done != total:
                raise FetchError(f"{name}: incomplete download from {url} ({done} of {total} bytes)")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise FetchError(f"{name}: sha256 mismatch for {url} (got {digest.hexdigest()}, "
                                 f"expected {sha256})")
            part.close()
            os.replace(part.name, target)
        except urllib.error.HTTPError as err:
            raise FetchError(f"could not fetch {name} from {url}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            raise FetchError(f"could not fetch {name} from {url}: {err.reason}") from None
        except (OSError, HTTPException) as err:
            raise FetchError(f"could not fetch {name} from {url}: {err or type(err).__name__}") from None
        finally:
            Path(part.name).unlink(missing_ok=True)


def download_first(urls: Sequence[str], target: Path) -> str:
    """The first of ``urls`` that downloads into ``target``; returns it. All failing: the last error."""
    for url in urls[:-1]:
        try:
            download(url, target)
            return url
        except FetchError as err:
            print(f"  {err}; trying the next source", file=sys.stderr)
    download(urls[-1], target)
    return urls[-1]


def write_checked(target: Path, data: bytes) -> None:
    """Writes ``data`` (already checked) to ``target`` through a temporary file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    part.write_bytes(data)
    os.replace(part, target)


def read_squad(path: Path, url: str) -> dict:
    """A downloaded SQuAD-format file; one that is not is deleted (a retry fetches it again)."""
    try:
        dataset = json.loads(path.read_bytes())
        if not all(isinstance(article["title"], str) and isinstance(paragraph["context"], str)
                   and all(isinstance(qa["answers"], list) for qa in paragraph["qas"])
                   for article in dataset["data"] for paragraph in article["paragraphs"]):
            raise TypeError("a title, context or answers field of the wrong type")
    except (ValueError, KeyError, TypeError) as err:
        path.unlink()
        raise FetchError(f"{path.name} from {url} is not SQuAD-format JSON ({type(err).__name__}: {err})") \
            from None
    return dataset


def squad_counts(dataset: dict) -> dict[str, int]:
    articles = dataset["data"]
    questions = [qa for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return {"articles": len(articles),
            "paragraphs": sum(len(article["paragraphs"]) for article in articles),
            "questions": len(questions),
            "unanswerable": sum(bool(qa.get("is_impossible")) or not qa["answers"] for qa in questions)}


def check_counts(name: str, source: Path, url: str, dataset: dict, expected: dict) -> None:
    """``dataset`` (made from ``source``, downloaded from ``url``) has the ``expected`` counts; if not, the
    source is deleted (a retry fetches it again) and a FetchError raised."""
    if (found := squad_counts(dataset)) != expected:
        source.unlink()
        raise FetchError(f"{name} built from {url} has {found}, expected {expected}")


def squad_dev_part(dev: dict) -> dict:
    """The articles of SQUAD_DEV_PART_TITLES, in dev's order."""
    wanted = set(SQUAD_DEV_PART_TITLES)
    return {"version": dev["version"], "data": [a for a in dev["data"] if a["title"] in wanted]}


def wiki_paragraphs(train: dict) -> str:
    """The first WIKI_ARTICLES articles of SQuAD train that are not dev-part articles, their first
    WIKI_PARAGRAPHS_PER_ARTICLE distinct contexts one per line (all whitespace runs, line separators
    included, made single spaces), a blank line between articles (fairseq's complete_doc layout)."""
    articles = []
    for article in train["data"]:
        if article["title"] in SQUAD_DEV_PART_TITLES:
            continue
        paragraphs = list(dict.fromkeys(" ".join(p["context"].split()) for p in article["paragraphs"]))
        paragraphs = [p for p in paragraphs if p][:WIKI_PARAGRAPHS_PER_ARTICLE]
        if paragraphs:
            articles.append("\n".join(paragraphs))
        if len(articles) == WIKI_ARTICLES:
            break
    return "\n\n".join(articles) + "\n"


def ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ``ar`` archive (a .deb) whose name starts with ``prefix``."""
    if not archive.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    offset = 8
    while offset + 60 <= len(archive):
        header = archive[offset:offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith(prefix):
            return archive[offset + 60:offset + 60 + size]
        offset += 60 + size + size % 2
    raise ValueError(f"no {prefix}* member")


def lzw_decompress(data: bytes, max_bits: int = 16) -> bytes:
    """compress(1)'s block-mode LZW as the bible program's compresslib.c reads a window: codes come in
    groups of n_bits bytes, and a group's rest is skipped when the code width grows or CLEAR comes."""
    first_free, clear_code, max_max_code = 257, 256, 1 << max_bits
    prefix, suffix = [0] * max_max_code, bytearray(range(256)) + bytes(max_max_code - 256)
    out = bytearray()
    pos, n_bits, max_code, free_ent = 0, 9, 511, first_free
    group, offset, size, cleared = 0, 0, 0, False

    def next_code() -> int:
        nonlocal pos, n_bits, max_code, group, offset, size, cleared
        if cleared or offset >= size or free_ent > max_code:
            if free_ent > max_code:
                n_bits += 1
                max_code = max_max_code if n_bits == max_bits else (1 << n_bits) - 1
            if cleared:
                n_bits, max_code, cleared = 9, 511, False
            chunk = data[pos:pos + n_bits]
            pos += len(chunk)
            if not chunk:
                return -1
            group, offset, size = int.from_bytes(chunk, "little"), 0, len(chunk) * 8 - (n_bits - 1)
        code = (group >> offset) & ((1 << n_bits) - 1)
        offset += n_bits
        return code

    old_code = next_code()
    if old_code == -1:
        return b""
    last_char = old_code
    out.append(last_char)
    while (code := next_code()) != -1:
        if code == clear_code:
            cleared, free_ent = True, first_free - 1
            if (code := next_code()) == -1:
                break
        in_code, stack = code, bytearray()
        if code >= free_ent:  # the code being defined right now (cScSc)
            stack.append(last_char)
            code = old_code
        while code >= 256:
            stack.append(suffix[code])
            code = prefix[code]
        last_char = suffix[code]
        stack.append(last_char)
        out += stack[::-1]
        if free_ent < max_max_code:
            prefix[free_ent], suffix[free_ent] = old_code, last_char
            free_ent += 1
        old_code = in_code
    return bytes(out)


def bible_text(data_file: bytes) -> bytes:
    """The text of a bible program data file ("EC02" header, then windows compressed one by one)."""
    if data_file[:4] != b"EC02":
        raise ValueError("not a bible data file (EC02)")
    window_size, windows = struct.unpack(">II", data_file[84:92])
    starts = struct.unpack(f">{windows + 1}I", data_file[92:96 + 4 * windows])
    return b"".join(lzw_decompress(data_file[starts[i]:starts[i + 1]]) for i in range(windows))


VERSE_REF = re.compile(r"[1-3]?[A-Za-z]+\d+:\d+ ")


def kjv_verses(deb: bytes) -> bytes:
    """bible-kjv-text's .deb -> one verse per line, the references ("Ge1:1 ") and title line removed."""
    with tarfile.open(fileobj=io.BytesIO(ar_member(deb, "data.tar"))) as tar:
        data_file = tar.extractfile("./usr/lib/bible.data").read()
    lines = bible_text(data_file).decode("ascii").split("\n")
    if lines and not VERSE_REF.match(lines[0]):
        lines = lines[1:]  # "Holy Bible, Authorized (King James) Version. ..."
    verses = []
    for line in filter(None, lines):
        if not (ref := VERSE_REF.match(line)):
            raise ValueError(f"not a verse: {line[:60]!r}")
        verses.append(line[ref.end():])
    return ("\n".join(verses) + "\n").encode("ascii")


def fetch_test_data(root: Path, mirror: Optional[str] = None) -> None:
    """Builds FILES under ``root`` from the official homes (or ``mirror``); files already in place are
    kept, so a failed fetch resumes. Raises FetchError (one line) on any failure."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / COMPLETE
    if marker.is_file() and marker.read_text().strip() != DATA_VERSION:
        for name in FILES:
            (root / name).unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    downloads = root / ".downloads"  # sources kept until everything is built, so a retry resumes

    for name, sha256 in GPT2_BPE_SHA256.items():
        target = root / "gpt2_bpe" / name
        if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256):
            download(mirrored(GPT2_BPE_URL + name, mirror), target, sha256)

    def source(url: str) -> tuple[Path, str]:
        url = mirrored(url, mirror)
        path = downloads / Path(urllib.parse.urlsplit(url).path).name
        if not path.is_file():
            download(url, path)
        return path, url

    target = root / "data/squad2/squad2-dev-part.json"
    if not target.is_file():
        path, url = source(SQUAD_DEV_URL)
        part = squad_dev_part(read_squad(path, url))
        check_counts(target.name, path, url, part, SQUAD_DEV_PART_COUNTS)
        write_checked(target, json.dumps(part, ensure_ascii=False).encode("utf-8"))

    target = root / "data/wiki/wiki-paragraphs.txt"
    if not target.is_file():
        path, url = source(SQUAD_TRAIN_URL)
        text = wiki_paragraphs(read_squad(path, url))
        if text.count("\n\n") != WIKI_ARTICLES - 1:
            path.unlink()
            raise FetchError(f"{target.name}: {url} has fewer than {WIKI_ARTICLES} articles with text")
        write_checked(target, text.encode("utf-8"))

    target = root / "data/cmrc2018/cmrc2018-trial.json"
    if not target.is_file():
        path, url = source(CMRC_TRIAL_URL)
        check_counts(target.name, path, url, read_squad(path, url), CMRC_TRIAL_COUNTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)

    target = root / "data/kjv/kjv.txt"
    if not target.is_file():
        deb, urls = downloads / "bible-kjv-text_4.38_all.deb", [mirrored(url, mirror) for url in KJV_DEB_URLS]
        url = download_first(urls, deb) if not deb.is_file() else " or ".join(urls)
        print(f"  extracting {target.name} from {deb.name}", file=sys.stderr)
        try:
            verses = kjv_verses(deb.read_bytes())
        except (ValueError, KeyError, EOFError, lzma.LZMAError, tarfile.TarError, struct.error) as err:
            deb.unlink()
            raise FetchError(f"{target.name}: cannot read the bible-kjv-text package from {url}: {err}") \
                from None
        lines, sha256 = verses.count(b"\n"), hashlib.sha256(verses).hexdigest()
        if (lines, sha256) != (KJV_VERSES, KJV_SHA256):
            deb.unlink()
            raise FetchError(f"{target.name}: the text extracted from {url} is not the expected one "
                             f"({lines} verses, sha256 {sha256})")
        write_checked(target, verses)

    shutil.rmtree(downloads, ignore_errors=True)
    marker.write_text(DATA_VERSION + "\n")


def resolve_test_data(repo: Path) -> tuple[Path, str]:
    """The directory the tests read, and why: $SHARED_DIR, else REPO/../shared, else the user cache,
    fetched first when incomplete (FetchError when that fails)."""
    if os.environ.get("SHARED_DIR"):
        root, why = Path(os.environ["SHARED_DIR"]), "$SHARED_DIR"
    elif (repo.resolve().parent / "shared").is_dir():
        root, why = repo.resolve().parent / "shared", "../shared"
    else:
        root, why = default_cache_dir(), "the user cache"
        if not is_complete(root):
            print(f"test data: no ../shared here; fetching it from its official homes into {root} "
                  "(once, about 52 MB)", file=sys.stderr)
            fetch_test_data(root, os.environ.get(MIRROR_ENV))
        return root, why
    if missing := missing_files(root):
        raise UserInputError(f"test data from {why} ({root}) lacks {missing[0]}")
    return root, why


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.testdata", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="fetch and verify the test data into DEST")
    fetch.add_argument("dest", nargs="?", type=Path, default=default_cache_dir(),
                       help="where to put it (default: %(default)s)")
    resolve = commands.add_parser("resolve", help="print the test data directory `make test` uses")
    resolve.add_argument("--repo", type=Path, default=Path("."), help="the repository root (default: .)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.command == "fetch":
        if is_complete(args.dest):
            print(f"test data already complete in {args.dest}", file=sys.stderr)
            return
        fetch_test_data(args.dest, os.environ.get(MIRROR_ENV))
        print(f"test data ready in {args.dest}", file=sys.stderr)
        return
    try:
        root, why = resolve_test_data(args.repo)
    except FetchError as err:
        raise UserInputError(f"no test data: {err}. Set SHARED_DIR to a copy of it, put it at ../shared, or "
                             "run `make test-data` once online") from None
    print(f"test data: {root} ({why})", file=sys.stderr)
    print(root)


if __name__ == "__main__":
    run_cli(main)
