"""fairseq's released RoBERTa and XLM-R checkpoints: where they are, how an archive or a copy becomes a model
directory (model.pt, dict.txt and the release's other files), and the check that the result is usable.

fairseq publishes no checksums for these archives. What is checked instead: the archive is a complete
gzip'd tar (a truncated download fails while unpacking), it holds model.pt and dict.txt, model.pt loads as a
fairseq RoBERTa checkpoint and its embedding has exactly the rows dict.txt gives (fairseq's own rule), and
the model's size is the release's (else a note). The archive's sha256 is printed and recorded, so that a
copy can be checked against the first download (``--sha256``)."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fairseq_ext.cli import progress_bar
from fairseq_ext.errors import UserInputError

# fairseq's README (examples/roberta, examples/xlmr) and RobertaModel/XLMRModel.hub_models()
BASE_URL = "https://dl.fbaipublicfiles.com/fairseq/models"
REQUIRED_FILES = ("model.pt", "dict.txt")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Release:
    name: str
    layers: int
    width: int
    embedding_rows: int
    tokenizer_files: tuple[str, ...] = ()  # beside model.pt in the archive (RoBERTa's BPE files are not)

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.tar.gz"


RELEASES = {release.name: release for release in (
    Release("roberta.base", 12, 768, 50265),
    Release("roberta.large", 24, 1024, 50265),
    Release("xlmr.base", 12, 768, 250002, ("sentencepiece.bpe.model",)),
    Release("xlmr.large", 24, 1024, 250002, ("sentencepiece.bpe.model",)),
)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, show_progress: bool = True) -> None:
    """``url`` into ``dest``, with a progress bar. Bytes already in ``dest`` (an interrupted download) are
    kept and only the rest is asked for (an HTTP Range request; a server that ignores it sends the whole
    file, which replaces them). A network failure is a one-line error naming the offline route and that a
    rerun resumes."""
    have = dest.stat().st_size if dest.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have > 0 and getattr(response, "status", None) == 206
            length = int(response.headers.get("Content-Length") or 0) or None
            total = length + have if resumed and length is not None else length
            with open(dest, "ab" if resumed else "wb") as out, \
                    progress_bar(total, dest.name, show_progress) as bar:
                bar.update(out.tell())
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
                if total is not None and out.tell() != total:
                    raise UserInputError(f"download of {url} ended after {out.tell()} of {total} bytes: run "
                                         "the command again (it resumes)")
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the kept bytes are the whole file
            return
        raise UserInputError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:  # HTTPException: a cut reply
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        kept = f" ({dest.stat().st_size:,} bytes kept: a rerun resumes)" if dest.is_file() else ""
        raise UserInputError(f"cannot download {url}: {reason}{kept}; without network, copy the archive (or "
                             "an unpacked copy) to this machine and pass --copy-from PATH") from None


def unpack(archive: Path, into: Path) -> Path:
    """Extracts ``archive`` (tar, any compression; absolute paths, links out and devices refused) into
    ``into``; returns the directory holding model.pt (the release's NAME/ folder, or ``into``)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UserInputError(f"{archive} is not a complete tar archive ({err}): a truncated download? "
                             "fetch it again") from None
    found = sorted(into.rglob("model.pt"), key=lambda path: len(path.parts))
    if not found:
        raise UserInputError(f"{archive} holds no model.pt: not a fairseq model archive")
    return found[0].parent


def copy_release(source: Path, staging: Path) -> None:
    """The files of a model directory (model.pt, dict.txt, the release's NOTE and tokenizer files) into
    ``staging``, hard-linked where the file system allows (a large model is not copied twice)."""
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            (staging / path.name).hardlink_to(path)
        except OSError:
            shutil.copy2(path, staging / path.name)


def check_release(directory: Path, release: Release, source: str) -> tuple[str, Optional[str]]:
    """The model directory holds the release's files; model.pt is a fairseq RoBERTa whose embedding has
    the rows of dict.txt (plus fairseq's specials and <mask>). Returns what it found, and a note where the
    model's size is not the release's (a different model under that name). Errors name ``source``."""
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint, model_config
    from fairseq_ext.tokenizer.dictionary import roberta_symbols

    wanted = (*REQUIRED_FILES, *release.tokenizer_files)
    missing = [name for name in wanted if not (directory / name).is_file()]
    if missing:
        held = ", ".join(sorted(path.name for path in directory.iterdir())) or "nothing"
        raise UserInputError(f"{source} has no {', '.join(missing)}: not a complete {release.name} release "
                             f"(it holds {held})")
    state = load_checkpoint(directory / "model.pt", lazy=True)
    info = checkpoint_info(state)
    if info.embedding_rows is None:
        raise UserInputError(f"{source}: model.pt is not a RoBERTa checkpoint (no token embedding)")
    symbols = len(roberta_symbols(directory / "dict.txt"))
    if symbols != info.embedding_rows:
        raise UserInputError(f"{source}: model.pt has {info.embedding_rows} embedding rows but dict.txt "
                             f"gives {symbols} symbols: the two files are not from one release")
    config = model_config(state)
    shape = (config.get("encoder_layers"), config.get("encoder_embed_dim"), info.embedding_rows)
    found = f"{info.model_name} model, {shape[0]} layers, {shape[1]} wide, {shape[2]} embedding rows"
    note = None
    if shape != (release.layers, release.width, release.embedding_rows):
        note = (f"note: the official {release.name} has {release.layers} layers, {release.width} wide, "
                f"{release.embedding_rows} embedding rows; this copy is another model")
    return f"{found}, matching dict.txt", note
