"""scripts/get_checkpoint.sh: a release-layout archive (a tiny model made by the tests, no network) becomes a
checked model directory the launcher restores; the download path runs on a file:// URL; damaged, incomplete
or mismatched copies are refused in one line with nothing written."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from fairseq_ext import releases
from fairseq_ext.commands import get_checkpoint
from fairseq_ext.errors import UserInputError
from tests.conftest import REPO
from tests.pretrain_fixtures import load_launcher, make_release_archive

SCRIPT = REPO / "scripts" / "get_checkpoint.sh"


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)


def refusal(*args) -> str:
    with pytest.raises(UserInputError) as err:
        get_checkpoint.main([*map(str, args), "--quiet"])
    return str(err.value)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_archive_to_a_restorable_model(release_archive, legacy_checkpoint, wiki_data_bin, tmp_path):
    dest = tmp_path / "roberta.base"
    result = run_script("roberta.base", "--copy-from", release_archive, "--dest", dest)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("note: the official roberta.base has 12 layers, 768 wide, 50265 embedding rows; this "
                        "copy is another model")
    assert lines[1] == (f"{dest}: roberta_base model, 2 layers, 64 wide, 50265 embedding rows, matching "
                        "dict.txt")
    assert lines[2] == f"archive sha256 {sha256(release_archive)} (recorded in {dest / 'release.json'})"
    assert lines[3] == f"ready: --restore {dest / 'model.pt'}"
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "NOTE", "dict.txt", "model.pt", "release.json"]
    assert (dest / "model.pt").read_bytes() == legacy_checkpoint.read_bytes()
    assert (dest / "dict.txt").read_bytes() == (wiki_data_bin / "dict.txt").read_bytes()
    assert not list(tmp_path.glob(".*partial*"))  # no staging left

    again = run_script("roberta.base", "--copy-from", release_archive, "--dest", dest)
    assert again.returncode == 0 and again.stdout == f"{dest} already holds roberta.base (pass --force to " \
                                                     "fetch it again)\n"

    launcher = load_launcher()
    assert launcher.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir",
                          str(tmp_path / "run"), "--restore", str(dest / "model.pt"), "--check-only"]) == 0


def test_download_checks_sha256(release_archive, monkeypatch, tmp_path, capsys):
    """The download path, on a file:// URL standing for fairseq's server."""
    monkeypatch.setattr(releases, "BASE_URL", release_archive.parent.as_uri())
    message = refusal("roberta.base", "--dest", tmp_path / "bad", "--sha256", "0" * 64)
    assert message.endswith(f"expected {'0' * 64}: a different or damaged archive; nothing written")
    assert not (tmp_path / "bad").exists()

    assert get_checkpoint.main(["roberta.base", "--dest", str(tmp_path / "good"), "--quiet",
                                "--sha256", sha256(release_archive).upper()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"downloading {release_archive.as_uri()}\n")
    record = (tmp_path / "good" / "release.json").read_text()
    assert release_archive.as_uri() in record and sha256(release_archive) in record


class RangeServer(http.server.ThreadingHTTPServer):
    """Serves one file over HTTP with Range requests, as fairseq's server does; the first response can be
    cut off after ``cut`` bytes (a connection lost mid-download). ``ranges``: the Range header of each
    request."""

    def __init__(self, body: bytes, cut: int | None = None):
        self.body, self.cut, self.ranges = body, cut, []
        super().__init__(("127.0.0.1", 0), RangeHandler)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        wanted = self.headers.get("Range")
        self.server.ranges.append(wanted)
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        body = self.server.body[start:]
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(len(body)))
        if wanted:
            size = len(self.server.body)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        cut, self.server.cut = self.server.cut, None
        self.wfile.write(body[:cut] if cut is not None else body)
        self.close_connection = True

    def log_message(self, *args):  # quiet
        pass


def test_interrupted_download_resumes(release_archive, monkeypatch, tmp_path, capsys):
    """A download cut off midway keeps its bytes beside DEST; the rerun asks only for the rest (a Range
    request) and ends with the archive of one uninterrupted download; the kept bytes are then removed."""
    body = release_archive.read_bytes()
    server = RangeServer(body, cut=len(body) // 2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(releases, "BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        dest, partial = tmp_path / "model", tmp_path / ".model.roberta.base.tar.gz.part"
        message = refusal("roberta.base", "--dest", dest)
        assert message == (f"download of {releases.BASE_URL}/roberta.base.tar.gz ended after "
                           f"{len(body) // 2} of {len(body)} bytes: run the command again (it resumes)")
        assert not dest.exists() and partial.stat().st_size == len(body) // 2
        capsys.readouterr()
        assert get_checkpoint.main(["roberta.base", "--dest", str(dest), "--quiet"]) == 0
        assert capsys.readouterr().out.startswith(f"resuming {releases.BASE_URL}/roberta.base.tar.gz "
                                                  f"({len(body) // 2:,} bytes kept)\n")
        assert server.ranges == [None, f"bytes={len(body) // 2}-"]
        assert sha256(release_archive) in (dest / "release.json").read_text()
        assert (dest / "model.pt").is_file() and not partial.exists()
    finally:
        server.shutdown()
        server.server_close()


def test_unpacked_copy(release_archive, tmp_path):
    """--copy-from a directory: the parent of an unpacked archive (NAME/ inside) or the model directory."""
    with tarfile.open(release_archive) as tar:
        tar.extractall(tmp_path / "copy", filter="data")
    unpacked = tmp_path / "copy" / "roberta.base"
    for source, dest in ((tmp_path / "copy", tmp_path / "a"), (unpacked, tmp_path / "b")):
        assert get_checkpoint.main(["roberta.base", "--copy-from", str(source), "--dest", str(dest),
                                    "--quiet"]) == 0
        assert (dest / "model.pt").read_bytes() == (unpacked / "model.pt").read_bytes()


def test_damaged_or_incomplete_copies(release_archive, legacy_checkpoint, wiki_data_bin, tmp_path):
    dest = tmp_path / "out"
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(release_archive.read_bytes()[: release_archive.stat().st_size // 2])
    assert refusal("roberta.base", "--copy-from", truncated, "--dest", dest).startswith(
        f"{truncated} is not a complete tar archive (")

    not_tar = tmp_path / "model.tar.gz"
    not_tar.write_bytes(gzip.compress(b"not a tar archive" * 100))
    assert "is not a complete tar archive" in refusal("roberta.base", "--copy-from", not_tar, "--dest", dest)

    no_dict = tmp_path / "no-dict"
    no_dict.mkdir()
    (no_dict / "model.pt").symlink_to(legacy_checkpoint)
    assert refusal("roberta.base", "--copy-from", no_dict, "--dest", dest) == (
        f"{no_dict} has no dict.txt: not a complete roberta.base release (it holds model.pt)")

    short_dict = tmp_path / "short"
    short_dict.mkdir()
    lines = (wiki_data_bin / "dict.txt").read_text().splitlines(keepends=True)
    (short_dict / "dict.txt").write_text("".join(lines[:-10]))
    archive = make_release_archive(legacy_checkpoint, short_dict / "dict.txt", short_dict)
    assert refusal("roberta.base", "--copy-from", archive, "--dest", dest) == (
        f"{archive}: model.pt has 50265 embedding rows but dict.txt gives 50255 symbols: the two files are "
        "not from one release")

    assert refusal("xlmr.base", "--copy-from", release_archive, "--dest", dest) == (
        f"{release_archive} has no sentencepiece.bpe.model: not a complete xlmr.base release (it holds NOTE, "
        "dict.txt, model.pt)")
    assert not dest.exists()


def test_network_failure_names_the_offline_route(monkeypatch, tmp_path):
    monkeypatch.setattr(releases, "BASE_URL", (tmp_path / "nowhere").as_uri())
    message = refusal("roberta.large", "--dest", tmp_path / "out")
    assert message.startswith(f"cannot download {(tmp_path / 'nowhere').as_uri()}/roberta.large.tar.gz: ")
    assert message.endswith("pass --copy-from PATH")
    assert not (tmp_path / "out").exists()
