"""``jsonl:PATH``: a user's own rows, read from a JSONL file and scored by a named verifier.

Rows are read in file order, so the first n rows of a file are its dataset of n
(``seed`` only seeds sampling), and ``rows(None)`` is every row: a file-backed task is
swept whole unless a limit says otherwise. A row keeps its own ``id`` or is named
``PREFIX-LINE`` (the prefix defaults to the file's stem); ids must be unique in the
file, because a row is stored and resumed by its id. A bad line is an error naming
``FILE:LINE``, and so are messages about a row (``origins``). Whether the file holds
any ``answerable: false`` row (and so whether the instruction offers ``\\boxed{IDK}``)
is found by one pass, cached by the file's path, mtime and size so that a rewrite is
noticed.

**Column mapping.** Rows as people have them name their columns otherwise (MATH-500:
``problem``, ``answer``, ``unique_id``). ``question_field``, ``answer_field`` and
``id_field`` (``--task-arg question_field=problem``, or a recipe task's options) name
the columns that hold the question, the gold and the id; ``map_columns`` renames them to
``question``, ``answer`` and ``id`` as each row is read, so the prompt, the verifier, the
store and ``rlcot score`` all see one shape. A mapped column a row lacks is a one-line
error listing the columns it has. A row already in that shape (one ``rlcot generate``
stored) is left as it is, so rows can be rescored with the mapping that read them.

This class is the machinery every file-backed task shares (ids, their uniqueness, the
mapping, origins); a subclass gives its rows (``_records``), where a row sits
(``_where``) and the prefix of generated ids. ``gsm8k`` (``rlcot.tasks.gsm8k``) and
``hf:NAME`` (``rlcot.tasks.hf_dataset``) are built on it.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from rlcot.jsonl import read_jsonl

from .base import Task, check_n

CANONICAL_COLUMNS = {"question_field": "question", "answer_field": "answer", "id_field": "id"}


@dataclass(frozen=True)
class JsonlTask(Task):
    """A user's rows (a question and, unless ``answerable: false``, an answer) scored by a named verifier."""

    name: str = "jsonl"
    description: str = "rows from a JSONL file"
    verifier: str = "math"
    path: str = ""
    id_prefix: str = ""  # row ids are PREFIX-LINE where a row has no id; default: the file's stem
    question_field: str = "question"  # the column holding the question (MATH-500: problem)
    answer_field: str = "answer"  # the column holding the gold answer
    id_field: str = "id"  # the column holding the row's id (MATH-500: unique_id); absent: PREFIX-LINE

    @property
    def file_backed(self) -> bool:
        return True

    def rows(self, n: int | None = None, seed: int = 0) -> list[dict]:
        """The first n rows in file order, every row for ``n=None`` (``seed`` only seeds sampling)."""
        if n is not None:
            check_n(n)
        return [row for _, row in itertools.islice(self._numbered_rows(), n)]

    def map_columns(self, row: Mapping, mapped_ok: bool = False) -> dict:
        """``row`` with the mapped columns renamed to ``question``, ``answer`` and ``id`` (module docstring).

        A column named by a field but missing is a ValueError listing the row's columns;
        the answer may be missing from a row marked ``answerable: false``, and a default
        field's column may be missing altogether. ``mapped_ok``: a row that already has
        the canonical column instead (one rlcot stored, scored again) is taken as it is.
        """
        mapped = dict(row)
        for option, canonical in CANONICAL_COLUMNS.items():
            source = getattr(self, option)
            if source in mapped:
                if source != canonical:
                    mapped[canonical] = mapped.pop(source)
                continue
            exempt = (canonical == "answer" and row.get("answerable") is False) or (mapped_ok and canonical in row)
            if source != canonical and not exempt:
                raise ValueError(missing_column(source, option, list(row)))
        return mapped

    def origins(self, rows: Sequence[dict]) -> list[str]:
        """``FILE:LINE (id 'x')`` for each row of this file (found by its id, unique in the file)."""
        wanted = {str(row.get("id")) for row in rows}
        numbers: dict[str, int] = {}
        try:
            for number, row in self._numbered_rows():
                if str(row["id"]) in wanted:
                    numbers[str(row["id"])] = number
                    if len(numbers) == len(wanted):
                        break
        except ValueError:  # a bad line past the rows asked about (rows() stops before it)
            pass
        plain = Task.origins(self, rows)
        return [f"{self._where(numbers[str(row.get('id'))])} ({where})" if str(row.get("id")) in numbers else where
                for row, where in zip(rows, plain)]

    def _numbered_rows(self) -> Iterator[tuple[int, dict]]:
        """``(number, row)`` in order, each row mapped and with its id: its own, or ``PREFIX-NUMBER``.

        Ids must be unique: a row is stored and resumed by its id, so a second row
        with the first one's id would be scored against the first one's gold.
        """
        prefix = self._row_prefix()
        seen: dict[str, int] = {}
        for number, raw, error in self._records():
            where = self._where(number)
            if error:
                raise ValueError(f"{where}: {error}; fix the line or remove it")
            try:
                row = self.map_columns(raw)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            if "question" not in row:
                raise ValueError(f"{where}: {missing_column(self.question_field, 'question_field', list(raw))}")
            row_id = row.get("id", f"{prefix}-{number}")
            if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
                raise ValueError(f"{where}: id {row_id!r} is not a non-empty string or an integer; "
                                 "fix it or drop the id field (the row is then named by its number)")
            first = seen.setdefault(str(row_id), number)
            if first != number:
                unit = self._unit
                generated = "" if "id" in row else f" ({unit} {number} has no id, so it is named {prefix}-{number})"
                raise ValueError(f"{self._label()}: id {str(row_id)!r} on {unit}s {first} and {number}{generated}; "
                                 "ids must be unique: rename one or drop the id field")
            yield number, {**row, "id": row_id}

    def _records(self) -> Iterator[tuple[int, dict | None, str | None]]:
        """``(number, raw row, error)``: here each line of the file."""
        return read_jsonl(self._file())

    _unit = "line"  # what a row's number counts, in messages

    def _label(self) -> str:
        """The rows' source, for messages: the file."""
        return str(self._file())

    def _where(self, number: int) -> str:
        """Where row ``number`` sits, for messages: ``FILE:LINE``."""
        return f"{self._label()}:{number}"

    def _row_prefix(self) -> str:
        return self._id_prefix(self._file())

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


def missing_column(column: str, option: str, columns: Sequence[str]) -> str:
    """The one line for a mapped column a row (or a dataset) lacks: which, the columns there are, the fix."""
    shown = ", ".join(map(repr, columns[:20])) + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")
    return (f"no column {column!r} (the {option}); the columns are {shown or 'none'}; "
            f"pass --task-arg {option}=NAME (a recipe task: {option}: NAME)")


@functools.lru_cache(maxsize=32)
def _has_unanswerable_rows(path: str, mtime_ns: int, size: int) -> bool:
    """One pass over a task file (cached by its path, mtime and size: a rewrite is noticed)."""
    return any(row is not None and row.get("answerable", True) is False for _, row, _ in read_jsonl(Path(path)))
