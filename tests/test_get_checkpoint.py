"""scripts/get_checkpoint.sh: a release-layout archive (a tiny model made by the tests, no network) becomes a
checked model directory the launcher restores; the download path runs on a file:// URL; damaged, incomplete
or mismatched copies are refused in one line with nothing written."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tarfile
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
