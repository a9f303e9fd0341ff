"""JSON Lines in and out, where one bad line must never cost the good ones.

``read_jsonl`` yields every non-blank line as a row or as the reason it is not one:
invalid UTF-8, invalid JSON, JSON nested too deeply for the parser (Python's
recursion limit; a line of 100,000 ``[`` is enough), not an object, or missing a
required field. The file is read as bytes and decoded line by line, so a stray
``\\xff`` rejects its own line and nothing else.

Readers of files a writer may still be appending to (``complete_rows``) skip the
unterminated last line silently (a write in flight), but any other bad line is damage:
it is skipped too, and reported as a ``SkippedLine`` (file, line, reason) into the
caller's list, or, where the caller gave none, as a ``DamagedLinesWarning``. Writers
hold ``exclusive(path, what)`` while they append, so two never interleave.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence


def read_jsonl(path: Path, required: Sequence[str] = ()) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield ``(line_number, row, error)`` for each non-blank line: a row, or why not."""
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            row, error = parse_line(raw)
            if error is None:
                missing = [key for key in required if key not in row]
                if missing:
                    row, error = None, f"missing field(s) {', '.join(missing)}"
            yield number, row, error


@dataclass(frozen=True)
class SkippedLine:
    """A line a reader skipped as damage: where it is and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class DamagedLinesWarning(UserWarning):
    """A reader skipped damaged lines; ``skipped`` lists them (``SkippedLine``)."""

    def __init__(self, skipped: Sequence[SkippedLine]):
        self.skipped = list(skipped)
        super().__init__(describe_skipped(self.skipped))


def describe_skipped(skipped: Sequence[SkippedLine], shown: int = 5) -> str:
    """``skipped 2 damaged lines: a.jsonl:2: invalid JSON (...); a.jsonl:7: ...`` (the first ``shown`` named)."""
    named = "; ".join(map(str, skipped[:shown]))
    if len(skipped) > shown:
        named += f"; and {len(skipped) - shown} more"
    return f"skipped {len(skipped)} damaged line{'s' * (len(skipped) != 1)}: {named}"


def hand_over(found: Sequence[SkippedLine], skipped: list[SkippedLine] | None) -> None:
    """Give a reader's skipped lines to its caller: into ``skipped``, or as one warning where that is None."""
    if skipped is not None:
        skipped.extend(found)
    elif found:
        warnings.warn(DamagedLinesWarning(found), stacklevel=3)


def complete_rows(path: Path, problem: Callable[[dict], str | None] | None = None,
                  skipped: list[SkippedLine] | None = None) -> Iterator[dict]:
    """Every complete line of ``path`` that is a JSON object (and has no ``problem``), for a reader of a live file.

    The text after the last newline (a writer in flight, or killed) is skipped silently,
    not cut: cutting is the writer's job (``repair_tail``). Any other line that is not a
    row (``problem(row)`` returns why, or None for a row) is skipped and reported, once
    the file is read, through ``hand_over``. A missing file has no rows.
    """
    path = Path(path)
    if not path.is_file():
        return
    found = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            row, error = parse_line(raw)
            if error is None and problem is not None:
                error = problem(row)
            if error is None:
                yield row
            else:
                found.append(SkippedLine(path, number, error))
    hand_over(found, skipped)


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[Path]:
    """Be the one writer of ``path`` for the block, or fail at once: an exclusive ``flock`` on ``PATH.lock``.

    Another holder (another process, or another ``exclusive`` of this one: flock locks
    belong to an open file description) makes it raise ``ValueError`` naming ``path``,
    the holder's pid (written in the lock file) and the fix; ``what`` names the writer
    ("rlcot sweep"). The kernel releases the lock when its holder exits or is killed,
    so a lock file a killed writer left behind is taken over, never stale. The lock
    file is removed when the block ends; a lock taken on a file that another holder
    removed meanwhile is no lock, so it is taken again on the path's current file.
    Creates ``path``'s directory if needed. Yields the lock file's path.
    """
    import fcntl

    lock = Path(path).with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(f"{path} is being written by another {what} (pid {holder}); "
                             "wait for it or pass another --out") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed this file as we opened it: lock the path's new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # while still held: the next writer opens a new file
        os.close(fd)  # releases the lock


def parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    """One line as a JSON object, or ``(None, reason)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"invalid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r})"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"invalid JSON ({err.msg} at column {err.colno})"
    except RecursionError:
        return None, "JSON nested too deeply to read"
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    return row, None


def repair_tail(path: Path, valid: Callable[[dict], bool], what: str, fix: str) -> list[dict]:
    """The rows of an append-only JSONL file, after cutting a torn tail off it.

    A writer killed mid-``write`` leaves at most its last line partial: text after the
    final newline (every writer writes whole lines, newline included, in one write); that
    text is truncated away so the work it held is redone. A complete line that is not a
    valid row (``valid``; ``what`` names one) is damage or another format, not an
    interrupted write: ``ValueError`` naming the line, the reason and ``fix``; the file
    is untouched.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, kept_bytes = [], 0
    for number, raw in enumerate(lines, 1):
        last = number == len(lines)  # the text after the final newline: never a complete line
        if not raw.strip():
            kept_bytes += len(raw) + (not last)
            continue
        row, error = parse_line(raw)
        if not last and error is None and valid(row):
            rows.append(row)
            kept_bytes += len(raw) + 1
            continue
        if not last:
            raise ValueError(f"{path}:{number}: not {what} ({error or 'fields missing'}); {fix}")
        break  # the torn tail
    if kept_bytes != len(data):
        with path.open("r+b") as handle:
            handle.truncate(kept_bytes)
    return rows
