"""Every task row is checked before any model loads: ``check_rows`` (refuse) or ``usable_rows`` (leave out).

Each row goes through what a sweep, ``rlcot generate`` or a training run does with it,
by the same code (``rlcot.records.Scorer``), with the gold written as the completion.
A row that cannot be scored (no answer, a list for an answer, a gold its verifier
cannot read, a duplicate id caught by the task) is found here, named by file and line,
not after every completion is generated. Training and ``rlcot generate`` (which makes
exactly the rows asked for) refuse such rows (``check_rows``); a sweep leaves them out
and names each one (``usable_rows``): a gold that cannot be read is that row's error,
never a score of 0 or 1.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .records import CompletionRow, Scorer, type_name
from .tasks import Task
from .thinking import ThinkingProtocol

ROWS_SHOWN = 5  # bad rows a check_rows error lists before "and N more"


def check_rows(task: Task, rows: Sequence[Mapping], protocol: ThinkingProtocol | None = None) -> None:
    """Raise ValueError listing every row that generation or scoring cannot use; call it before any model loads.

    Each row goes through what a sweep does with it, by the same code: its prompt
    (``Task.prompt`` with no tokenizer, the plain-transcript path: the same question
    and instruction), its gold (``Task.gold_answer``, ``Task.gold_continuation``) and
    the task's own ``Scorer`` on a completion that writes the gold after an empty
    thought. That gold must score ``correct`` (``abstain`` on an ``answerable: false``
    row): a gold the verifier cannot read would otherwise score every answer 0, or 1,
    without a word. Any exception is its row's reason. The error names each bad row as
    ``FILE:LINE (id 'x')`` for a file's rows (``Task.origins``), ``id 'x'`` otherwise.
    """
    rows = list(rows)
    problems = _problems(task, rows, protocol)
    if problems:
        raise ValueError(_refusal(task, rows, problems))


def usable_rows(task: Task, rows: Sequence[Mapping], protocol: ThinkingProtocol | None = None
                ) -> tuple[list[Mapping], list[str]]:
    """``(the rows that can be scored, one line per row left out)``; a ValueError as ``check_rows``'s if none can.

    Where an evaluation may go on without a row (a sweep), a row
    whose gold cannot be read (empty, ``None``, ``gold_unreadable``) is that row's
    error, not the run's: it is left out and named, ``FILE:LINE (id 'x'): why``, so
    it is neither scored 0 nor 1 nor silently dropped. Training refuses instead
    (``check_rows``): a recipe's data is meant to be used whole.
    """
    rows = list(rows)
    problems = _problems(task, rows, protocol)
    if problems and len(problems) == len(rows):
        raise ValueError(_refusal(task, rows, problems))
    origins = task.origins([rows[i] for i in problems])
    return ([row for i, row in enumerate(rows) if i not in problems],
            [f"{origin}: {problems[i]}" for origin, i in zip(origins, problems)])


def _problems(task: Task, rows: list[Mapping], protocol: ThinkingProtocol | None) -> dict[int, str]:
    scorer = Scorer(task, "default", protocol)
    try:
        return _row_problems(scorer, rows)
    finally:
        close = getattr(scorer.verifier, "close", None)  # math's worker pool; the sweep starts its own
        if callable(close):
            close()


def _refusal(task: Task, rows: list[Mapping], problems: dict[int, str]) -> str:
    origins = task.origins([rows[i] for i in problems])
    listed = [f"  {origin}: {problems[i]}" for origin, i in zip(origins, problems)][:ROWS_SHOWN]
    if len(problems) > ROWS_SHOWN:
        listed.append(f"  and {len(problems) - ROWS_SHOWN} more")
    return (f"{len(problems)} of {len(rows)} task rows cannot be scored; fix or remove them:\n"
            + "\n".join(listed))


def _row_problems(scorer: Scorer, rows: list[Mapping]) -> dict[int, str]:
    """``{row index: why it cannot be scored}``, in row order."""
    task, protocol = scorer.task, scorer.protocol
    problems: dict[int, str] = {}
    golds: dict[int, str] = {}
    items: dict[int, CompletionRow] = {}
    for i, row in enumerate(rows):
        try:
            question = task.question(row)
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f"the question is {_short(question)} ({type_name(question)}); "
                                 "give the problem as a non-empty string")
            if "id" not in row:
                raise ValueError("the row has no id; give it one")
            prompt = task.prompt(row, None, protocol)
            golds[i] = task.gold_answer(row)
            task.gold_continuation(row)
        except Exception as err:  # noqa: BLE001 - whatever breaks on a row breaks the sweep later
            problems[i] = _reason(err)
            continue
        items[i] = CompletionRow(row, protocol.open_tag + protocol.forced_close + golds[i], prompt)
    try:
        records = dict(zip(items, scorer.score_many(list(items.values()))))
    except Exception:  # noqa: BLE001 - some row raised: score them one by one to say which
        records = {}
        for i, item in items.items():
            try:
                records[i] = scorer.score_many([item])[0]
            except Exception as err:  # noqa: BLE001
                problems[i] = _reason(err)
    for i, record in records.items():
        expected = "abstain" if rows[i].get("answerable") is False else "correct"
        verdict = record.verdict
        if verdict.outcome != expected:
            problems[i] = (f"the verifier scores the gold answer {_short(golds[i])} {verdict.outcome}"
                           + (f" ({verdict.reason})" if verdict.reason else "")
                           + f", not {expected}; fix the answer (or the verifier, if it cannot read it)")
    return dict(sorted(problems.items()))


def _reason(err: Exception) -> str:
    if isinstance(err, KeyError):
        return f"the row has no field {err.args[0]!r}; add it"
    return str(err) if isinstance(err, (ValueError, TypeError)) else f"{type(err).__name__}: {err}"


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
