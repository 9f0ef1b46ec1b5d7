"""tests/testdata.py: the test data fetched from its official homes, here from a local HTTP server
laid out like those homes (``ROBERTA_TEST_DATA_MIRROR``) and filled from ../shared."""

import hashlib
import http.server
import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from fairseq_ext.cli import run_cli
from tests import testdata
from tests.conftest import REPO, shared_path


def lzw_compress(data: bytes, max_bits: int = 16, clear_every: int = 0) -> bytes:
    """compress(1)'s block-mode output: codes packed LSB first in groups of n_bits bytes, a group written
    whole when the code width grows or after CLEAR; CLEAR (256) also every ``clear_every`` codes."""
    out, max_max_code = bytearray(), 1 << max_bits
    n_bits, max_code, free_ent, table = 9, 511, 257, {}
    group, used, written = 0, 0, 0

    def output(code: int, clear: bool = False) -> None:
        nonlocal group, used, n_bits, max_code, written
        group, used, written = group | code << used, used + n_bits, written + 1
        if used == 8 * n_bits:
            out.extend(group.to_bytes(n_bits, "little"))
            group, used = 0, 0
        if free_ent > max_code or clear:
            if used:
                out.extend(group.to_bytes(n_bits, "little"))
                group, used = 0, 0
            if clear:
                n_bits, max_code = 9, 511
            else:
                n_bits += 1
                max_code = max_max_code if n_bits == max_bits else (1 << n_bits) - 1

    code = data[0]
    for char in data[1:]:
        key = code << 8 | char
        if key in table:
            code = table[key]
            continue
        output(code)
        if free_ent < max_max_code:
            table[key], free_ent = free_ent, free_ent + 1
        code = char
        if clear_every and written % clear_every == 0:
            table, free_ent = {}, 257
            output(256, clear=True)
    output(code)
    if used:
        out.extend(group.to_bytes((used + 7) // 8, "little"))
    return bytes(out)


def bible_data_file(text: bytes, window_size: int = 65536) -> bytes:
    """A bible program data file: "EC02", description, window size and count, window offsets, windows."""
    windows = [lzw_compress(text[i:i + window_size]) for i in range(0, len(text), window_size)]
    starts = [92 + 4 * (len(windows) + 1)]
    for window in windows:
        starts.append(starts[-1] + len(window))
    header = b"EC02" + b"Compressed Data File".ljust(80, b"\0")
    return header + window_size.to_bytes(4, "big") + len(windows).to_bytes(4, "big") + \
        b"".join(start.to_bytes(4, "big") for start in starts) + b"".join(windows)


def deb_package(files: dict) -> bytes:
    """A .deb (ar archive: debian-binary, control.tar.xz, data.tar.xz) holding ``files``."""
    def tar_xz(members: dict) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz", preset=0) as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    members = {"debian-binary": b"2.0\n", "control.tar.xz": tar_xz({"./control": b"Package: x\n"}),
               "data.tar.xz": tar_xz(files)}
    archive = bytearray(b"!<arch>\n")
    for name, data in members.items():
        archive += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        archive += data + b"\n" * (len(data) % 2)
    return bytes(archive)


def kjv_deb(verses: list) -> bytes:
    """bible-kjv-text's layout: a title line, then "Ge1:1 In the beginning ..." lines, LZW windows."""
    lines = ["Holy Bible, Authorized (King James) Version.  Textfile 930105."]
    lines += [f"Ge{i // 50 + 1}:{i % 50 + 1} {verse}" for i, verse in enumerate(verses)]
    return deb_package({"./usr/lib/bible.data": bible_data_file(("\n".join(lines) + "\n").encode("ascii"))})


def url_path(url: str) -> Path:
    """Where a mirror keeps ``url``: HOST/PATH."""
    return Path(testdata.mirrored(url, "http://mirror")[len("http://mirror/"):])


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory) -> Path:
    """The official homes, filled from ../shared: its GPT-2 files, its SQuAD part as dev-v2.0.json, a
    train-v2.0.json whose articles are its wiki articles, its CMRC file, and a bible-kjv-text .deb made
    from its KJV verses."""
    root = tmp_path_factory.mktemp("mirror")

    def put(url: str, data: bytes) -> None:
        (root / url_path(url)).parent.mkdir(parents=True, exist_ok=True)
        (root / url_path(url)).write_bytes(data)

    for name in testdata.GPT2_BPE_SHA256:
        put(testdata.GPT2_BPE_URL + name, shared_path("gpt2_bpe", name).read_bytes())
    put(testdata.SQUAD_DEV_URL, shared_path("data", "squad2", "squad2-dev-part.json").read_bytes())
    articles = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8").split("\n\n")
    train = {"version": "v2.0", "data": [
        {"title": f"Article_{i}", "paragraphs": [{"context": line, "qas": []} for line in article.split("\n")
                                                 if line]} for i, article in enumerate(articles)]}
    put(testdata.SQUAD_TRAIN_URL, json.dumps(train).encode())
    put(testdata.CMRC_TRIAL_URL, shared_path("data", "cmrc2018", "cmrc2018-trial.json").read_bytes())
    verses = shared_path("data", "kjv", "kjv.txt").read_text(encoding="ascii").splitlines()
    put(testdata.KJV_DEB_URLS[0], kjv_deb(verses))
    return root


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the server's directory; a path in ``server.truncate`` announces its full length but stops
    half way, as a dropped connection does."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path in self.server.truncate:
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(mirror_dir):
    """An HTTP server on 127.0.0.1 serving mirror_dir; ``server.url``, ``.requests``, ``.truncate``."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *args: MirrorHandler(*args, directory=str(mirror_dir)))
    httpd.requests, httpd.truncate = [], set()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def fetched(server, tmp_path_factory) -> Path:
    """A cache filled from the mirror: the first attempt fails on a truncated file, the second resumes."""
    root = tmp_path_factory.mktemp("cache") / "test-data"
    cmrc = "/" + url_path(testdata.CMRC_TRIAL_URL).as_posix()
    server.truncate.add(cmrc)
    try:
        with pytest.raises(testdata.FetchError) as failed:
            testdata.fetch_test_data(root, server.url)
    finally:
        server.truncate.discard(cmrc)
    message = str(failed.value)
    assert "cmrc2018_trial.json" in message and server.url + cmrc in message and "\n" not in message
    assert not testdata.is_complete(root) and not (root / testdata.COMPLETE).exists()
    assert not list(root.rglob("*.part"))
    assert (root / "gpt2_bpe" / "dict.txt").is_file() and not (root / "data/cmrc2018").exists()

    server.requests.clear()
    testdata.fetch_test_data(root, server.url)
    # only what was missing is fetched again
    assert sorted(server.requests) == sorted([cmrc, "/" + url_path(testdata.KJV_DEB_URLS[0]).as_posix()])
    return root


def test_hard_coded_checksums_are_those_of_shared():
    for name, sha256 in testdata.GPT2_BPE_SHA256.items():
        assert hashlib.sha256(shared_path("gpt2_bpe", name).read_bytes()).hexdigest() == sha256
    kjv = shared_path("data", "kjv", "kjv.txt").read_bytes()
    assert (hashlib.sha256(kjv).hexdigest(), kjv.count(b"\n")) == (testdata.KJV_SHA256, testdata.KJV_VERSES)
    squad = json.loads(shared_path("data", "squad2", "squad2-dev-part.json").read_text())
    assert tuple(article["title"] for article in squad["data"]) == testdata.SQUAD_DEV_PART_TITLES
    assert testdata.squad_counts(squad) == testdata.SQUAD_DEV_PART_COUNTS
    cmrc = json.loads(shared_path("data", "cmrc2018", "cmrc2018-trial.json").read_text())
    assert testdata.squad_counts(cmrc) == testdata.CMRC_TRIAL_COUNTS


@pytest.mark.parametrize("clear_every", [0, 300])
def test_lzw_windows_decompress_to_the_text(clear_every):
    """Codes growing from 9 to 15 bits, the cScSc case ("aaaa..."), CLEAR codes mid-stream, a partial
    last group."""
    text = (b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + bytes(range(256)) +
            shared_path("data", "kjv", "kjv.txt").read_bytes()[:40000] + b"xyz")
    packed = lzw_compress(text, clear_every=clear_every)
    assert len(packed) < len(text)
    assert testdata.lzw_decompress(packed) == text


def test_download_good_truncated_wrong_checksum_missing(server, tmp_path):
    url = server.url + "/" + url_path(testdata.GPT2_BPE_URL + "vocab.bpe").as_posix()
    good = shared_path("gpt2_bpe", "vocab.bpe").read_bytes()
    target = tmp_path / "vocab.bpe"
    testdata.download(url, target, testdata.GPT2_BPE_SHA256["vocab.bpe"])
    assert target.read_bytes() == good

    target.write_bytes(b"an earlier copy")
    with pytest.raises(testdata.FetchError, match="sha256 mismatch") as wrong:
        testdata.download(url, target, "0" * 64)
    server.truncate.add(url[len(server.url):])
    try:
        with pytest.raises(testdata.FetchError, match=f"incomplete download .*{len(good)} bytes") as cut:
            testdata.download(url, target)
    finally:
        server.truncate.clear()
    with pytest.raises(testdata.FetchError, match="HTTP 404") as missing:
        testdata.download(url + ".missing", target)
    for error in (wrong, cut, missing):
        assert "vocab.bpe" in str(error.value) and url in str(error.value) and "\n" not in str(error.value)
    assert target.read_bytes() == b"an earlier copy"  # never replaced by a bad download
    assert [path.name for path in tmp_path.iterdir()] == ["vocab.bpe"]  # no temporary file left


def test_fetch_builds_the_layout_of_shared(fetched):
    assert testdata.is_complete(fetched) and not (fetched / ".downloads").exists()
    same_bytes = ["gpt2_bpe/encoder.json", "gpt2_bpe/vocab.bpe", "gpt2_bpe/dict.txt",
                  "data/cmrc2018/cmrc2018-trial.json", "data/kjv/kjv.txt"]
    for name in same_bytes:
        assert (fetched / name).read_bytes() == shared_path(*name.split("/")).read_bytes(), name
    squad = "data/squad2/squad2-dev-part.json"
    assert json.loads((fetched / squad).read_text()) == json.loads(shared_path(*squad.split("/")).read_text())

    wiki = (fetched / "data/wiki/wiki-paragraphs.txt").read_text(encoding="utf-8")
    source = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8")
    expected = [article.split("\n")[:testdata.WIKI_PARAGRAPHS_PER_ARTICLE]
                for article in source.rstrip("\n").split("\n\n")]
    assert [article.split("\n") for article in wiki.rstrip("\n").split("\n\n")] == expected
    assert wiki.endswith(".\n") and len(expected) == testdata.WIKI_ARTICLES
    assert 500 < sum(map(len, expected)) <= 580


def test_wiki_paragraphs_one_per_line_without_dev_articles():
    train = {"data": [
        {"title": "Normans", "paragraphs": [{"context": "a dev article", "qas": []}]},
        {"title": "One", "paragraphs": [{"context": " line\u2028separator and\r\nbreaks ", "qas": []},
                                        {"context": "line separator and breaks", "qas": []},
                                        {"context": " \n ", "qas": []}, {"context": "second", "qas": []}]},
        {"title": "Empty", "paragraphs": [{"context": "\t", "qas": []}]},
        {"title": "Two", "paragraphs": [{"context": "x", "qas": []}]}]}
    assert testdata.wiki_paragraphs(train) == "line separator and breaks\nsecond\n\nx\n"


def test_a_wrong_file_is_named_with_its_url(server, tmp_path):
    """A mirror serving the CMRC file as SQuAD dev: the counts tell, and the downloaded file is dropped."""
    root = tmp_path / "cache"
    for name in testdata.GPT2_BPE_SHA256:
        (root / "gpt2_bpe").mkdir(parents=True, exist_ok=True)
        (root / "gpt2_bpe" / name).write_bytes(shared_path("gpt2_bpe", name).read_bytes())
    dev = root / ".downloads" / "dev-v2.0.json"
    dev.parent.mkdir()
    dev.write_bytes(shared_path("data", "cmrc2018", "cmrc2018-trial.json").read_bytes())
    with pytest.raises(testdata.FetchError, match=r"squad2-dev-part.json built from .*dev-v2.0.json has "
                                                  r"\{'articles': 0"):
        testdata.fetch_test_data(root, server.url)
    assert not dev.exists()
    dev.write_bytes(b'{"data": [{"title": "Normans", "paragraphs": [{"qas": []}]}]}')
    with pytest.raises(testdata.FetchError, match="dev-v2.0.json from .* is not SQuAD-format JSON"):
        testdata.fetch_test_data(root, server.url)
    assert not dev.exists() and not testdata.is_complete(root)


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A repository with no ../shared beside it, an empty user cache, SHARED_DIR unset."""
    repo = tmp_path / "work" / "repo"
    repo.mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SHARED_DIR", raising=False)
    monkeypatch.delenv(testdata.MIRROR_ENV, raising=False)
    return repo


def test_resolution_order(layout, fetched, server, monkeypatch):
    """$SHARED_DIR, else ../shared, else the user cache; nothing fetched while one of them is there."""
    shared = layout.parent / "shared"
    shared.symlink_to(fetched)
    monkeypatch.setenv(testdata.MIRROR_ENV, server.url)
    server.requests.clear()
    monkeypatch.setenv("SHARED_DIR", str(REPO.parent / "shared"))
    assert testdata.resolve_test_data(layout) == (REPO.parent / "shared", "$SHARED_DIR")
    monkeypatch.delenv("SHARED_DIR")
    assert testdata.resolve_test_data(layout) == (layout.resolve().parent / "shared", "../shared")
    assert server.requests == [] and not testdata.default_cache_dir().exists()

    shared.unlink()
    cache = testdata.default_cache_dir()
    cache.parent.mkdir(parents=True)
    cache.symlink_to(fetched)
    assert testdata.resolve_test_data(layout) == (cache, "the user cache")
    assert server.requests == []

    monkeypatch.setenv("SHARED_DIR", str(layout / "nowhere"))
    with pytest.raises(testdata.UserInputError, match=r"\$SHARED_DIR .*nowhere\) lacks gpt2_bpe/encoder"):
        testdata.resolve_test_data(layout)


def test_no_data_and_no_network_is_one_line(layout, monkeypatch, capsys):
    with socket.socket() as closed:  # a port nobody listens on: connection refused, like no network
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv(testdata.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(SystemExit) as done:
        run_cli(testdata.main, ["resolve", "--repo", str(layout)])
    assert done.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    notice, error = captured.err.strip().split("\n")
    assert notice.startswith("test data: no ../shared here; fetching it")
    assert str(testdata.default_cache_dir()) in notice
    assert error.startswith(f"{Path(sys.argv[0]).name}: error: no test data: could not fetch encoder.json "
                            f"from http://127.0.0.1:{port}/dl.fbaipublicfiles.com/fairseq/gpt2_bpe/encoder.json")
    assert "SHARED_DIR" in error and "make test-data" in error


def test_get_test_data_script(fetched, tmp_path):
    script = ["bash", str(REPO / "scripts" / "get_test_data.sh")]
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    usage = subprocess.run([*script, "a", "b"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and usage.stdout.startswith("usage:")
    done = subprocess.run([*script, str(fetched)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"test data already complete in {fetched}" in done.stderr
