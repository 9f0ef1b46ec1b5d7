"""How every tool of the project writes its results (stdlib only).

- Outputs are checked before any work: an output may not be an input, lie inside an input directory or
  contain an input; a directory output that exists must be empty or an earlier output of the same tool
  (a marker file in it lists what the tool wrote), so nothing else is ever deleted.
- Results are written into a hidden staging sibling (``.NAME.partial-...``) and renamed into place at the
  end: the output holds the old complete result or the new complete one, never a mix, and no file of an
  earlier run survives next to new ones. On any exit before that (error, Ctrl-C, SIGTERM through
  fairseq_ext.cli.run_cli) the staging is removed; one left by a killed process is removed by the next run.
- Output directories are created exclusively: of two processes writing the same OUT, the second one
  refuses at once when it sees the first one's staging, and in any case when it would replace a directory
  that appeared, or changed, after its checks (a no-replace rename): both can never say "wrote OUT".
- Files and directories get ordinary permissions (umask-respecting), and a device such as /dev/stdout or
  /dev/full is written directly; failures to write (a full disk, a quota, a file size limit), whatever the
  library that writes (safetensors, torch, numpy), are one-line errors that leave the earlier output.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import re
import secrets
import shutil
import signal
import stat
import sys
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, Union

from fairseq_ext.cli import pause_point
from fairseq_ext.errors import UserInputError

PathLike = Union[str, os.PathLike]
MARKER = ".roberta-squad2-output.json"  # in every output directory: which tool wrote which files
_HOST = f"{zlib.crc32(platform.node().encode()):08x}"  # staging names say which machine made them
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # renameat2 flags (Linux >= 3.15)
# Errors that mean the output cannot be written, whoever raised them: a library written in another
# language (safetensors) reports them as its own exception whose message holds the system's wording.
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(path))


def _is_stream(path: PathLike) -> bool:
    """'-' (stdout) or an existing file that is neither a regular file nor a directory (/dev/full, a
    FIFO): written directly, not replaced."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_not_input(output: PathLike, inputs: Iterable[Optional[PathLike]], what: str = "output") -> None:
    """Refuses an output that is one of ``inputs``, lies inside an input directory or contains an input."""
    if _is_stream(output):
        return
    out = _real(output)
    for given in inputs:
        if given is None or str(given) == "-":
            continue
        source = _real(given)
        if out == source or (out.exists() and source.exists() and os.path.samefile(out, source)):
            raise UserInputError(f"{what} {output} is also an input ({given}): choose another path")
        if source in out.parents:
            raise UserInputError(f"{what} {output} is inside the input directory {given}: choose a path "
                                 "outside it")
        if out in source.parents:
            raise UserInputError(f"{what} {output} contains the input {given}: writing it would replace "
                                 "the input; choose another path")


def _check_parent(path: Path, shown: PathLike) -> None:
    """The nearest existing ancestor of ``path`` must be a directory (missing ones are created)."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserInputError(f"cannot write {shown}: {ancestor} is not a directory")
            return


def check_writable_directory(path: PathLike, shown: str) -> None:
    """``path`` is a directory this process may write in, or one it may create: its nearest existing
    ancestor is a writable directory (not a file, a device such as /dev/full, a read-only filesystem)."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserInputError(f"cannot write {shown}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
        reason = "on a read-only filesystem" if read_only else "not writable"
        raise UserInputError(f"cannot write {shown}: {existing} is {reason}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _staging_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_leftovers(target: Path) -> Optional[int]:
    """Removes the staging siblings of ``target`` left by killed processes of this machine; returns the
    process id of another live process staging ``target`` now, if any."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.partial-{_HOST}-(\d+)-[0-9a-f]{{8}}")
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return None
    writer = None
    for sibling in siblings:
        match = pattern.fullmatch(sibling.name)
        if match and not _alive(int(match.group(1))):
            _remove(sibling)
        elif match and int(match.group(1)) != os.getpid():
            writer = int(match.group(1))
    return writer


def write_failure(err: BaseException) -> Optional[str]:
    """The reason when ``err`` (or an exception it was raised from) is a failure to write the output (see
    WRITE_ERRORS), else None."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            return err.strerror
        text = str(err)
        for code in WRITE_ERRORS:
            if os.strerror(code) in text or f"os error {code})" in text or f"code: {code}," in text:
                return os.strerror(code)
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def write_failures_reported(shown: PathLike, unchanged: str) -> Iterator[None]:
    """A write failure (see write_failure) inside the block becomes one line naming ``shown``."""
    try:
        yield
    except UserInputError:
        raise
    except Exception as err:
        reason = write_failure(err)
        if reason is None:
            raise
        raise UserInputError(f"cannot write {shown}: {reason} ({unchanged})") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_parents(path: Path, shown: PathLike, created: list[Path]) -> None:
    """Creates the missing parents of ``path``, adding each to ``created`` (to remove on failure)."""
    for parent in [parent for parent in reversed(path.parents) if not parent.exists()]:
        try:
            parent.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            raise UserInputError(f"cannot write {shown}: {err.strerror} ({parent})") from None
        created.append(parent)


def _remove_empty(directories: Sequence[Path]) -> None:
    for directory in reversed(directories):
        with contextlib.suppress(OSError):
            directory.rmdir()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the renames are done (they are delivered right after)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _renameat2(a: Path, b: Path, flags: int) -> Optional[int]:
    """Linux renameat2: 0 when done, else the errno; None where the system has no such call."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0:
        return 0
    code = ctypes.get_errno()
    return None if code in (errno.ENOSYS, errno.EINVAL) else code  # a filesystem without the flags


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths in one step where the system can, else False."""
    return _renameat2(a, b, _RENAME_EXCHANGE) == 0


def _rename_new(staging: Path, target: Path) -> bool:
    """Renames ``staging`` to ``target`` only if ``target`` does not exist (or, without renameat2, is an
    empty directory: rename refuses a non-empty one); False when it was taken meanwhile."""
    code = _renameat2(staging, target, _RENAME_NOREPLACE)
    if code is None:
        return _replace_empty(staging, target)
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        return False
    if code:
        raise OSError(code, os.strerror(code))
    return True


def _identity(path: Path) -> Optional[tuple[int, int, bool]]:
    """What the checks saw at ``path``: (device, inode, empty), or None when nothing was there."""
    try:
        info = os.stat(path)
        return info.st_dev, info.st_ino, not os.listdir(path)
    except OSError:
        return None


def _normalise_permissions(root: Path) -> None:
    """What a plain ``mkdir``/``open`` would give (some writers create 0700 directories or 0600 files)."""
    mask = _umask()
    root.chmod(0o777 & ~mask)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories:
            os.chmod(os.path.join(directory, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o666 & ~mask)


def _listing(root: Path) -> list[str]:
    """Every file below ``root`` as a relative POSIX path, the marker excluded."""
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            relative = Path(directory, name).relative_to(root).as_posix()
            if relative != MARKER:
                found.append(relative)
    return sorted(found)


class OutputDirectory:
    """A directory that one tool writes as a unit::

        out = OutputDirectory(args.destdir, "prepare_corpus", inputs=[...])  # checks, before any work
        with out.staged() as staging:  # a hidden sibling, created first: an unwritable place fails here
            ...write into staging...
        # now args.destdir holds exactly what was written into staging (and the marker)

    An existing directory is replaced only if it is empty or an earlier output of ``tool`` holding nothing
    else; ``replace=False`` (a tool with --force) refuses even that.
    """

    def __init__(self, path: PathLike, tool: str, inputs: Iterable[Optional[PathLike]] = (),
                 replace: bool = True, what: str = "output directory", force_hint: str = "--force"):
        self.shown = Path(path)
        self.target = _real(path)
        self.tool = tool
        if self.target.parent == self.target or not self.target.name:
            raise UserInputError(f"{what} {path}: cannot replace a file system root")
        check_not_input(path, inputs, what)
        if self.target.exists():
            self._check_existing(what, replace, force_hint)
        else:
            _check_parent(self.target, path)
        self.checked = _identity(self.target)  # the commit replaces only what was checked

    def relative_path(self, path: PathLike) -> Optional[Path]:
        """``path`` relative to this directory (``.`` for the directory itself), or None when it lies
        outside: a file meant to be inside must be written into the staging."""
        real = _real(path)
        if real != self.target and self.target not in real.parents:
            return None
        return real.relative_to(self.target)

    def _check_existing(self, what: str, replace: bool, force_hint: str) -> None:
        shown, tool = self.shown, self.tool
        if not self.target.is_dir():
            raise UserInputError(f"{what} {shown} exists and is not a directory")
        try:
            entries = os.listdir(self.target)
        except OSError as err:
            raise UserInputError(f"cannot read {shown}: {err.strerror}") from None
        if not entries:
            return
        marker = self.target / MARKER
        written = _read_marker(marker)
        if written is None:
            raise UserInputError(f"{what} {shown} exists and was not written by {tool} (it holds "
                                 f"{sorted(entries)[0]}): choose a new or empty directory; {tool} only "
                                 "replaces its own earlier output")
        if written.get("tool") != tool:
            raise UserInputError(f"{what} {shown} holds the output of {written.get('tool')}, not {tool}: "
                                 "choose another directory")
        foreign = sorted(set(_listing(self.target)) - set(written.get("files", [])))
        if foreign:
            raise UserInputError(f"{what} {shown} holds {foreign[0]}, which {tool} did not write: move it "
                                 "away or choose another directory")
        if not replace:
            raise UserInputError(f"{shown} exists: pass {force_hint} to replace it")

    @contextlib.contextmanager
    def staged(self) -> Iterator[Path]:
        staging = _staging_name(self.target)
        created: list[Path] = []
        committed = False
        try:  # from before the staging exists: a signal at any point leaves nothing behind
            _make_parents(self.target, self.shown, created)
            writer = remove_leftovers(self.target)
            if writer is not None:
                raise UserInputError(f"{self.shown} is being written by another process (pid {writer}): wait "
                                     "for it to finish, or choose another output")
            try:
                staging.mkdir()
            except OSError as err:
                raise UserInputError(f"cannot write {self.shown}: {err.strerror}") from None
            unchanged = f"the earlier {self.shown} is intact" if self.checked else "nothing was written"
            with write_failures_reported(self.shown, unchanged):
                yield staging
            pause_point("staged")
            self._commit(staging)
            committed = True
        finally:
            if not committed:
                _remove(staging)
                _remove_empty(created)

    def _commit(self, staging: Path) -> None:
        marker = {"tool": self.tool, "files": _listing(staging)}
        try:
            (staging / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            _normalise_permissions(staging)
            with _signals_held():
                now = _identity(self.target)
                if now != self.checked and now is not None:
                    self._taken_meanwhile()
                if now is None or now[2]:  # new, or an empty directory (rename refuses a non-empty one)
                    placed = _rename_new if now is None else _replace_empty
                    if not placed(staging, self.target):
                        self._taken_meanwhile()
                elif _exchange(staging, self.target):
                    _remove(staging)  # now the previous output
                else:
                    previous = _staging_name(self.target)
                    os.rename(self.target, previous)
                    os.rename(staging, self.target)
                    _remove(previous)
        except OSError as err:
            raise UserInputError(f"cannot write {self.shown}: {err.strerror}") from None

    def _taken_meanwhile(self) -> None:
        raise UserInputError(f"{self.shown} was written by another process while this one ran: nothing of "
                             "this run was written (run it again, or choose another output)")


def _replace_empty(staging: Path, target: Path) -> bool:
    """Renames ``staging`` over the empty directory ``target``; False if it is no longer empty."""
    try:
        os.rename(staging, target)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _read_marker(path: Path) -> Optional[dict]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


class OutputFiles:
    """Files one tool writes as a unit: each into a hidden sibling, all renamed into place at the end.
    ``-`` is stdout; a device or FIFO (``/dev/full``) is written directly::

        outputs = OutputFiles(args.outputs, inputs=args.inputs)  # checks, before any work
        with outputs.open("wb") as (first, second):
            ...
    """

    def __init__(self, paths: Sequence[PathLike], inputs: Iterable[Optional[PathLike]] = (),
                 what: str = "output"):
        self.paths = [Path(path) if str(path) != "-" else "-" for path in paths]
        inputs = list(inputs)
        seen = {}
        for path in paths:
            if _is_stream(path):
                stream = "-" if str(path) == "-" else _real(path)
                if stream in seen and str(stream) != os.devnull:  # two writers of one stream mix their lines
                    raise UserInputError(f"{what} {path} is given twice (also as {seen[stream]})")
                seen[stream] = path
                continue
            if os.path.isdir(path):
                raise UserInputError(f"{what} {path} is a directory: give a file name")
            check_not_input(path, inputs, what)
            _check_parent(_real(path), path)
            real = _real(path)
            if real in seen:
                raise UserInputError(f"{what} {path} is given twice (also as {seen[real]})")
            seen[real] = path

    @contextlib.contextmanager
    def open(self, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[list[IO]]:
        """Yields one writable stream per path (``mode`` "wb" or "w"); renames them into place when the
        block ends without an exception."""
        binary = "b" in mode
        streams, staged, created = [], [], []
        committed = False
        try:
            for path in self.paths:
                if path == "-":
                    staged.append(None)
                    streams.append(sys.stdout.buffer if binary else sys.stdout)
                elif _is_stream(path):
                    staged.append(None)
                    streams.append(_open_for_writing(path, "wb" if binary else "w", encoding, path))
                else:
                    real = _real(path)
                    _make_parents(real, path, created)
                    remove_leftovers(real)
                    staged.append(_staging_name(real))  # before it exists: removed whatever happens next
                    streams.append(_open_for_writing(staged[-1], "xb" if binary else "x", encoding, path))
            with write_failures_reported(", ".join(map(str, self.paths)), "the earlier files are intact"):
                yield streams
            pause_point("staged")
            current = None
            try:
                for index, stream in enumerate(streams):  # every write done before any rename
                    current = self.paths[index]
                    stream.flush()
                with _signals_held():
                    for current, stream, staging in zip(self.paths, streams, staged):
                        if staging is not None:
                            stream.close()
                            os.replace(staging, _real(current))
            except OSError as err:
                shown = "standard output" if current == "-" else current
                raise UserInputError(f"cannot write {shown}: {err.strerror or err}") from None
            committed = True
        finally:
            for stream in streams:
                if stream not in (sys.stdout, getattr(sys.stdout, "buffer", None)):
                    with contextlib.suppress(OSError):
                        stream.close()
            if not committed:
                for staging in staged:
                    if staging is not None:
                        _remove(staging)
                _remove_empty(created)


def _open_for_writing(path: PathLike, mode: str, encoding: Optional[str], shown: PathLike) -> IO:
    try:
        return open(path, mode, encoding=encoding)
    except OSError as err:
        raise UserInputError(f"cannot write {shown}: {err.strerror}") from None


def json_text(value, what: str = "output") -> str:
    """``value`` as indented JSON; a NaN or infinity (not JSON) is a one-line error."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as err:
        raise UserInputError(f"{what}: {err} (a NaN or infinite value)") from None


def write_text_file(path: PathLike, text: str, inputs: Iterable[Optional[PathLike]] = ()) -> None:
    """One text file written the staged way (see OutputFiles)."""
    with OutputFiles([path], inputs).open("w", encoding="utf-8") as (stream,):
        stream.write(text)
