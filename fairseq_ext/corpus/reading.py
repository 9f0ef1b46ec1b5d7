"""Input read the way fairseq's ``multiprocessing_bpe_encoder.py`` reads it (UTF-8, Python's universal
newlines: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line), but in byte blocks, so memory stays bounded
whatever the file size."""

from __future__ import annotations

import glob
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, NamedTuple, Optional, Sequence

from fairseq_ext.errors import UserInputError

BLOCK_BYTES = 1 << 19


def fairseq_encoder_script() -> Path:
    """fairseq's examples/roberta/multiprocessing_bpe_encoder.py, the reference that bpe_encode.py and
    prepare_corpus.py match (tests and benchmarks run it), found without importing fairseq."""
    import importlib.util

    spec = importlib.util.find_spec("fairseq")
    if spec is None or spec.origin is None:
        raise UserInputError("fairseq is not installed")
    return Path(spec.origin).parent / "examples" / "roberta" / "multiprocessing_bpe_encoder.py"


class InputFiles(NamedTuple):
    files: list[Path]  # each file once, in order of first mention
    repeated: int  # mentions of a file already listed (the same path again, a symlink, a glob overlap)

    def describe_repeated(self) -> str:
        """The line a command prints when it read some inputs once although they were named again."""
        return (f"{self.repeated} input files named more than once (the same path, a link or an overlapping "
                "pattern) were read once")


def is_stream(path: str | Path) -> bool:
    """An existing input that can be read once only: a FIFO, ``<(zcat corpus.gz)`` (/dev/fd/N), a
    character device; not a regular file or a directory."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def expand_inputs(patterns: Sequence[str]) -> InputFiles:
    """Files named by paths, directories (their files, recursively, sorted) or glob patterns, in order,
    each real file once (read twice, its documents would land in two splits). A stream named by its path
    (see is_stream) is an input too; the caller reads it once."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file() or is_stream(path):
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise UserInputError(f"no files in directory {path}")
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not found:
                raise UserInputError(f"input not found: {pattern}")
        files.extend(found)
    unique = {}
    for path in files:
        unique.setdefault(os.path.realpath(path), path)
    return InputFiles(list(unique.values()), len(files) - len(unique))


def _line_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def decode_lines(block: bytes, name: str, first_line: int, errors: str = "strict", hint: str = "",
                 counts: Optional[dict] = None) -> list[str]:
    """The lines of ``block`` (terminators removed) as text mode would give them; ``first_line`` numbers
    the first one for the error message on invalid UTF-8. With ``errors="replace"``, ``counts["replaced"]``
    adds up the invalid sequences replaced by U+FFFD."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as err:
        if errors == "replace":
            text = block.decode("utf-8", "replace")
            if counts is not None:  # the U+FFFD that were not already in the input
                counts["replaced"] = (counts.get("replaced", 0) + text.count("\ufffd")
                                      - block.decode("utf-8", "ignore").count("\ufffd"))
            return _split_lines(text)
        line = first_line + _line_breaks(block[:err.start])
        raise UserInputError(f"{name}: line {line}: invalid UTF-8 ({err.reason}, "
                             f"byte 0x{block[err.start]:02x}){hint}") from None
    return _split_lines(text)


def _split_lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the text after the last terminator: a line only if non-empty
        lines.pop()
    return lines


def read_byte_blocks(stream: BinaryIO, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of about ``block_bytes``, each cut after a ``\\n`` (so a ``\\r\\n`` or a UTF-8 sequence is
    never split); the text after the last ``\\n`` comes last."""
    pending: list[bytes] = []
    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # a line longer than a block: keep reading
            pending.append(data)
            continue
        block = b"".join(pending) + data[:cut]
        pending = [data[cut:]]
        yield block
    tail = b"".join(pending)
    if tail:
        yield tail


class ByteBlock(NamedTuple):
    """Undecoded lines, so that a worker process decodes them (bytes are cheap to send); ``first_line``
    numbers the first one for error messages."""

    data: bytes
    name: str
    first_line: int

    def lines(self) -> list[str]:
        return decode_lines(self.data, self.name, self.first_line)


def read_numbered_blocks(stream: BinaryIO, name: str, block_bytes: int = BLOCK_BYTES) -> Iterator[ByteBlock]:
    """The byte blocks of ``stream``, numbered without decoding them (every block but the last ends with
    a line terminator, so its lines are its terminators)."""
    next_line = 1
    for block in read_byte_blocks(stream, block_bytes):
        yield ByteBlock(block, name, next_line)
        next_line += _line_breaks(block)


def read_line_blocks(stream: BinaryIO, name: str, errors: str = "strict", hint: str = "",
                     counts: Optional[dict] = None, block_bytes: int = BLOCK_BYTES
                     ) -> Iterator[tuple[list[str], int]]:
    """Yields (lines, bytes read) for the blocks of ``read_byte_blocks``."""
    next_line = 1
    for block in read_byte_blocks(stream, block_bytes):
        lines = decode_lines(block, name, next_line, errors, hint, counts)
        next_line += len(lines)
        yield lines, len(block)


def open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    existing = Path(name)
    if existing.is_dir():
        raise UserInputError(f"input {name} is a directory: give a file")
    if not existing.is_file() and not is_stream(existing):
        raise UserInputError(f"input not found: {name}")
    return open(existing, "rb")


def input_bytes(names: Sequence[str]) -> Optional[int]:
    """Total size for a progress bar, or None when an input is a stream."""
    if any(name == "-" or is_stream(name) for name in names):
        return None
    return sum(os.path.getsize(name) for name in names)


def zip_line_blocks(readers: Sequence[Iterator[tuple[list[str], int]]], names: Sequence[str],
                    warn: Callable[[str], None]) -> Iterator[tuple[list[list[str]], int]]:
    """Aligned line blocks of several inputs, stopping at the shortest like ``zip(*inputs)`` in fairseq's
    encoder; extra lines in longer inputs are reported through ``warn``."""
    if len(readers) == 1:
        for lines, nbytes in readers[0]:
            yield [lines], nbytes
        return
    buffers: list[list[str]] = [[] for _ in readers]
    exhausted = [False] * len(readers)
    emitted = 0
    while True:
        nbytes = 0
        for i, reader in enumerate(readers):
            while not buffers[i] and not exhausted[i]:
                block = next(reader, None)
                if block is None:
                    exhausted[i] = True
                else:
                    buffers[i] = block[0]
                    nbytes += block[1]
        count = min(len(buffer) for buffer in buffers)
        if count == 0:
            break
        emitted += count
        yield [buffer[:count] for buffer in buffers], nbytes
        buffers = [buffer[count:] for buffer in buffers]
    for i, reader in enumerate(readers):
        if buffers[i] or next(reader, None) is not None:
            warn(f"{names[i]} has more lines than the shortest input; like fairseq's encoder, "
                 f"only the first {emitted} lines of each input were encoded")
