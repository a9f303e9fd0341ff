"""The files a command reads and writes: inputs read with errors that name them, every output checked before
any work and written so that a failure loses nothing.

Four rules, one home, so every command follows them alike:

- ``read_text`` reads a user's text file (a recipe, a sweep spec): a missing file or
  bytes that are not UTF-8 are one sentence naming the file, not a codec traceback.

- ``check_output`` runs before a model loads or a file is created: the path is of the
  right kind (a file, or a directory), lies on a disk this process may write, and is
  not one of the command's inputs (``rlcot score x.jsonl --out x.jsonl`` once emptied
  ``x.jsonl`` by opening the output first).
- ``atomic_write_text`` writes whole files through a temporary sibling and an atomic
  rename: a kill or a full disk leaves the old file or the new one, never half of one.
  Append-only row files are the other shape (``rlcot.store.TraceStore``): their torn tail
  is cut by the next run.
- ``os_error_line`` turns an ``OSError`` the user can cause (a read-only mount, a full
  disk, a file where a directory belongs) into one sentence naming the path and the fix;
  the CLI prints it instead of a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable


def read_text(path: Path, what: str) -> str:
    """The text of ``path``, a ``what`` the user wrote; ``ValueError`` naming it where it cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{what} {path}: {err.strerror or err}; pass a readable file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{what} {path}: line {line} is not UTF-8 text (byte {data[err.start:err.start + 1]!r}); "
                         "save the file as UTF-8") from None


def check_output(path: Path, kind: str, flag: str = "--out", inputs: Iterable[Path] = ()) -> None:
    """``ValueError`` unless ``path`` can be written as a ``kind`` ("file" or "dir") without touching an input."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; pass a file path, e.g. {flag} {path / 'out.jsonl'}")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; pass a directory (a new or an existing one)")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise ValueError(f"{flag} {path} is also the input {source}; writing it would destroy the input: "
                             "pass another path")
    existing = path if path.exists() else _nearest_existing(path.parent)
    if existing is not None and existing != path and not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a directory; pass another path")
    writable = existing if existing is not None and existing.is_dir() else (existing or path).parent
    if existing is not None and not os.access(writable, os.W_OK):
        raise ValueError(f"{flag} {path}: cannot write in {writable} (read-only or no permission); "
                         "pass a path on a writable disk")


def _nearest_existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a temporary sibling, fsynced, renamed over it."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


_FIXES = {  # what to do, by errno; the kernel's own words say what went wrong
    errno.ENOSPC: "free some space and rerun the same command: finished work is kept and the run resumes",
    errno.EDQUOT: "free some space and rerun the same command: finished work is kept and the run resumes",
    errno.EROFS: "pass an --out on a writable disk",
    errno.EACCES: "pass an --out you may write, or fix the permissions",
    errno.EPERM: "pass an --out you may write, or fix the permissions",
    errno.EISDIR: "a file belongs there: pass a file path",
    errno.ENOTDIR: "a part of the path is a file where a directory belongs: pass another path",
    errno.EEXIST: "something of another kind is already there: pass another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "pass a shorter path",
}


def os_error_line(err: OSError) -> str:
    """One sentence for an ``OSError``: the path, what went wrong, and what to do."""
    path = err.filename if err.filename is not None else "a file"
    if err.filename2 is not None:
        path = f"{err.filename} -> {err.filename2}"
    fix = _FIXES.get(err.errno)
    what = err.strerror or err.__class__.__name__
    return f"{path}: {what}" + (f"; {fix}" if fix else "")
