"""The flow's one home: task row -> completion -> verdict -> score, as one frozen record.

Every path that scores a completion goes through ``Scorer`` (or its one-call form
``score_completion``): ``rlcot score``, sweeps and TRL reward functions. So none of
them re-derives the answer section, the verifier's options or the score, and a
number in a training log means what the same number in a sweep means.

Scoring one completion:

1. **Put back the pre-filled opening.** A prompt that pre-fills ``<think>`` (the
   default protocol does) leaves it out of what the model samples; TRL hands reward
   functions exactly that. Split without it, ``2+2 is 4 so \\boxed{4} and I keep
   thinking`` would have no tags at all and read as an answer; with it, the thinking
   never closed and there is no answer. So the opening is put back first
   (``ThinkingProtocol.prefilled_opening``), unless the completion already has it.
2. **Split with the protocol's own tags** (``ThinkingProtocol.split``), not the
   default ``<think>``/``</think>``.
3. **Judge the answer section** with the task's verifier, built once with the
   task's options (``Task.build_verifier``: GSM8K's lenient percent).
4. **Score the verdict** under a named scheme: ``default`` (+1 / +0.5 / 0 / -2 / -4),
   ``binary``, a YAML file of ``HedgeScheme`` fields, or a ``HedgeScheme``.

Before generating, ``check_rows`` sends every task row through these same steps with
the gold as the completion, so a row that cannot be scored (no answer, a list for an
answer, a gold its verifier cannot read) stops a run before any model loads, named by
file and line, instead of failing after every completion is generated.

The completion row (what ``rlcot generate`` writes, what ``rlcot score`` reads), one
JSON object per line:

    row         object   the task row: "id" and the verifier's fields ("answer", "puzzle", ...)
    completion  string   the whole assistant turn (from the pre-filled <think> on)
    prompt      string   optional; its pre-filled <think> is put back before a completion lacking it
    sample      int      optional, default 0: which of the row's samples
    budget      int      optional: the thinking cap it ran under
    ...                  anything else is kept (``rlcot generate`` writes every Trace field)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlcot.verifiers import BINARY, HedgeScheme, Verdict

from .generation.base import Trace
from .tasks import Task
from .thinking import ThinkingProtocol

SCHEMES: dict[str, HedgeScheme] = {"default": HedgeScheme(), "binary": BINARY}


@dataclass(frozen=True)
class CompletionRow:
    """One completion to score, as read from a completion row (module docstring)."""

    row: Mapping[str, Any]
    completion: str
    prompt: str = ""
    sample: int = 0
    budget: int | None = None

    @property
    def row_id(self) -> str:
        return str(self.row.get("id", ""))

    @classmethod
    def from_dict(cls, line: Mapping[str, Any]) -> "CompletionRow":
        """Read one completion row; a ValueError names the bad field and what it must be."""
        row, completion = line.get("row"), line.get("completion")
        if not isinstance(row, dict):
            raise ValueError(f"'row' must be an object holding the task row (id, answer, ...), "
                             f"got {_kind(row)}")
        if not isinstance(completion, str):
            raise ValueError(f"'completion' must be a string (the whole assistant turn), got {_kind(completion)}")
        prompt, sample, budget = line.get("prompt", ""), line.get("sample", 0), line.get("budget")
        if prompt is None:
            prompt = ""
        if not isinstance(prompt, str):
            raise ValueError(f"'prompt' must be a string or absent, got {_kind(prompt)}")
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise ValueError(f"'sample' must be an integer >= 0 or absent, got {sample!r}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise ValueError(f"'budget' must be an integer, null or absent, got {budget!r}")
        return cls(row=row, completion=completion, prompt=prompt, sample=sample, budget=budget)


@dataclass(frozen=True)
class ScoredRecord:
    """A completion of one row's sample under one budget, its verdict and its score."""

    row_id: str
    sample: int
    budget: int | None
    completion: str  # the whole assistant turn, pre-filled opening put back
    verdict: Verdict
    score: float
    scheme: str
    trace: Trace | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        """The record's own fields (the trace, when there is one, is stored beside it by the caller)."""
        return {"row_id": self.row_id, "sample": self.sample, "budget": self.budget, "completion": self.completion,
                "verdict": self.verdict.to_dict(), "score": self.score, "scheme": self.scheme}


def resolve_scheme(scheme: str | HedgeScheme) -> tuple[str, HedgeScheme]:
    """``(name, scheme)`` for ``default``, ``binary``, a YAML file of HedgeScheme fields, or a HedgeScheme."""
    if isinstance(scheme, HedgeScheme):
        named = [name for name, known in SCHEMES.items() if known == scheme]
        return (named[0] if named else "custom"), scheme
    if scheme in SCHEMES:
        return scheme, SCHEMES[scheme]
    path = Path(scheme)
    if not path.is_file():
        raise ValueError(f"scheme {scheme!r} is not {', '.join(SCHEMES)} or an existing YAML file of HedgeScheme fields")
    import yaml

    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err.__class__.__name__}); write one 'field: number' per line")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of HedgeScheme fields, got {_kind(values)}")
    unknown = sorted(set(values) - set(HedgeScheme.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path}: unknown scheme field(s) {', '.join(unknown)}; "
                         f"use {', '.join(HedgeScheme.__dataclass_fields__)}")
    try:
        return path.stem, HedgeScheme(**values)
    except ValueError as err:  # the scheme checks its own values; the file is ours to name
        raise ValueError(f"{path}: {err}") from None


class Scorer:
    """Scores completions of one task under one scheme and thinking protocol.

    Build it once (the verifier may hold worker processes); ``score`` one completion
    or ``score_many`` a batch (the verifier's batch path, e.g. math's worker pool).
    ``verifier`` overrides the task's own (``rlcot score --verifier``).
    """

    def __init__(self, task: Task, scheme: str | HedgeScheme = "default", protocol: ThinkingProtocol | None = None,
                 verifier=None):
        self.task = task
        self.scheme_name, self.scheme = resolve_scheme(scheme)
        self.protocol = protocol or ThinkingProtocol()
        self.verifier = verifier if verifier is not None else task.build_verifier()

    def full_completion(self, prompt: str, completion: str) -> str:
        """The whole assistant turn: the prompt's pre-filled opening put back unless already there."""
        opening = self.protocol.prefilled_opening(prompt)
        if opening and not completion.lstrip().startswith(self.protocol.open_tag):
            return opening + completion
        return completion

    def score(self, prompt: str, completion: str, row: Mapping, sample: int = 0, budget: int | None = None,
              trace: Trace | None = None) -> ScoredRecord:
        return self.score_many([CompletionRow(row, completion, prompt, sample, budget)], [trace])[0]

    def score_many(self, items: Sequence[CompletionRow],
                   traces: Sequence[Trace | None] | None = None) -> list[ScoredRecord]:
        """One record per item, in order. A bad row (e.g. no gold answer) raises ValueError."""
        traces = list(traces) if traces is not None else [None] * len(items)
        turns = [self.full_completion(item.prompt, item.completion) for item in items]
        sections = [self.protocol.split(turn).answer for turn in turns]
        verdicts = self.verifier.verify_answer_batch(sections, [item.row for item in items])
        return [
            ScoredRecord(row_id=item.row_id, sample=item.sample, budget=item.budget, completion=turn,
                         verdict=verdict, score=self.scheme.score(verdict), scheme=self.scheme_name, trace=trace)
            for item, turn, verdict, trace in zip(items, turns, verdicts, traces)
        ]

    def score_trace(self, trace: Trace, row: Mapping) -> ScoredRecord:
        return self.score(trace.prompt, trace.completion, row, trace.sample, trace.budget, trace)


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
    scorer = Scorer(task, "default", protocol)
    try:
        problems = _row_problems(scorer, rows)
    finally:
        close = getattr(scorer.verifier, "close", None)  # math's worker pool; the sweep starts its own
        if callable(close):
            close()
    if not problems:
        return
    origins = task.origins([rows[i] for i in problems])
    listed = [f"  {origin}: {problems[i]}" for origin, i in zip(origins, problems)][:ROWS_SHOWN]
    if len(problems) > ROWS_SHOWN:
        listed.append(f"  and {len(problems) - ROWS_SHOWN} more")
    raise ValueError(f"{len(problems)} of {len(rows)} task rows cannot be scored; fix or remove them:\n"
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
                raise ValueError(f"the question is {_short(question)} ({_kind(question)}); "
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


def score_completion(prompt: str, completion: str, row: Mapping, task: Task, scheme: str | HedgeScheme = "default",
                     protocol: ThinkingProtocol | None = None, sample: int = 0, budget: int | None = None,
                     trace: Trace | None = None) -> ScoredRecord:
    """(prompt, completion, row, task, scheme) -> ScoredRecord; the scorer is built once per setting."""
    scorer = _scorer(task, scheme, protocol or ThinkingProtocol())
    return scorer.score(prompt, completion, row, sample, budget, trace)


@functools.lru_cache(maxsize=16)
def _scorer(task: Task, scheme: str | HedgeScheme, protocol: ThinkingProtocol) -> Scorer:
    # tasks, schemes and protocols are frozen dataclasses: equal settings share one verifier
    return Scorer(task, scheme, protocol)


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__
