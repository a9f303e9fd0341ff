"""``jsonl:PATH``: a user's own rows, read from a JSONL file and scored by a named verifier.

Rows are read in file order, so the first n rows of a file are its dataset of n
(``seed`` only seeds sampling). A row keeps its own ``id`` or is named ``PREFIX-LINE``
(the prefix defaults to the file's stem); ids must be unique in the file, because a
row is stored and resumed by its id. A bad line is an error naming ``FILE:LINE``, and
so are messages about a row (``origins``). Whether the file holds any ``answerable:
false`` row (and so whether the instruction offers ``\\boxed{IDK}``) is found by one
pass, cached by the file's path, mtime and size so that a rewrite is noticed.

File tasks are built per path by ``get_task("jsonl:PATH")``, not registered; GSM8K
(``rlcot.tasks.gsm8k``) is the registered file task built on this one.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from rlcot.jsonl import read_jsonl

from .base import Task, check_n


@dataclass(frozen=True)
class JsonlTask(Task):
    """A user's rows (``question`` and ``answer`` at least) scored by a named verifier."""

    name: str = "jsonl"
    description: str = "rows from a JSONL file"
    verifier: str = "math"
    path: str = ""
    id_prefix: str = ""  # row ids are PREFIX-LINE where a row has no id; default: the file's stem

    def rows(self, n: int, seed: int = 0) -> list[dict]:
        """The first n rows in file order (``seed`` only seeds sampling)."""
        check_n(n)
        return [row for _, row in itertools.islice(self._numbered_rows(), n)]

    def origins(self, rows: Sequence[dict]) -> list[str]:
        """``FILE:LINE (id 'x')`` for each row of this file (found by its id, unique in the file)."""
        wanted = {str(row.get("id")) for row in rows}
        lines: dict[str, int] = {}
        try:
            for number, row in self._numbered_rows():
                if str(row["id"]) in wanted:
                    lines[str(row["id"])] = number
                    if len(lines) == len(wanted):
                        break
        except ValueError:  # a bad line past the rows asked about (rows() stops before it)
            pass
        path, plain = self._file(), Task.origins(self, rows)
        return [f"{path}:{lines[str(row.get('id'))]} ({where})" if str(row.get("id")) in lines else where
                for row, where in zip(rows, plain)]

    def _numbered_rows(self) -> Iterator[tuple[int, dict]]:
        """``(line, row)`` in file order, each row with its id: its own, or ``PREFIX-LINE``.

        Ids must be unique: a row is stored and resumed by its id, so a second row
        with the first one's id would be scored against the first one's gold.
        """
        path = self._file()
        prefix = self._id_prefix(path)
        seen: dict[str, int] = {}
        for number, row, error in read_jsonl(path, required=("question",)):
            if error:
                raise ValueError(f"{path}:{number}: {error}; fix the line or remove it")
            row_id = row.get("id", f"{prefix}-{number}")
            if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
                raise ValueError(f"{path}:{number}: id {row_id!r} is not a non-empty string or an integer; "
                                 "fix it or drop the id field (the row is then named by its line)")
            first = seen.setdefault(str(row_id), number)
            if first != number:
                generated = "" if "id" in row else f" (line {number} has no id, so it is named {prefix}-{number})"
                raise ValueError(f"{path}: id {str(row_id)!r} on lines {first} and {number}{generated}; "
                                 "ids must be unique: rename one or drop the id field")
            yield number, {**row, "id": row_id}

    def _id_prefix(self, path: Path) -> str:
        return self.id_prefix or path.stem

    @property
    def offers_abstention(self) -> bool:
        """True when any row of the file is ``answerable: false``."""
        path = self._file()
        stat = path.stat()
        return _has_unanswerable_rows(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def _file(self) -> Path:
        path = Path(self.path)
        if not path.is_file():
            raise ValueError(f"task file {str(path)!r} does not exist; pass the path of a JSONL file")
        return path


@functools.lru_cache(maxsize=32)
def _has_unanswerable_rows(path: str, mtime_ns: int, size: int) -> bool:
    """One pass over a task file (cached by its path, mtime and size: a rewrite is noticed)."""
    return any(row is not None and row.get("answerable", True) is False for _, row, _ in read_jsonl(Path(path)))
