"""JSON Lines in and out, where one bad line must never cost the good ones.

``read_jsonl`` yields every non-blank line as a row or as the reason it is not one:
invalid UTF-8, invalid JSON, JSON nested too deeply for the parser (Python's
recursion limit; a line of 100,000 ``[`` is enough), not an object, or missing a
required field. The file is read as bytes and decoded line by line, so a stray
``\\xff`` rejects its own line and nothing else.
"""

from __future__ import annotations

import json
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


def complete_rows(path: Path) -> Iterator[dict]:
    """Every complete line of ``path`` that is a JSON object, for a reader of a file a writer may be appending to.

    A torn tail (a writer in flight or killed) is skipped, not cut: cutting is the
    writer's job (``repair_tail``). A missing file has no rows.
    """
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n") and raw.strip():
                row, error = parse_line(raw)
                if error is None:
                    yield row


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

    A writer killed mid-``write`` leaves at most its last line partial (no newline yet,
    or not a valid row); that line is truncated away so the work it held is redone. A
    line that is not a valid row (``valid``; ``what`` names one) anywhere before the last one is damage,
    not an interrupted write: ``ValueError`` naming the line, the reason and ``fix``; the file is untouched.
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
        if number < len(lines) - 1:
            raise ValueError(f"{path}:{number}: not {what} ({error or 'fields missing'}); {fix}")
        break  # the torn tail
    if kept_bytes != len(data):
        with path.open("r+b") as handle:
            handle.truncate(kept_bytes)
    return rows
