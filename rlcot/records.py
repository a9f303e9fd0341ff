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

from verifiers import BINARY, HedgeScheme, Verdict

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
    bad = {k: v for k, v in values.items() if not (v is None and k == "unparsed")
           and (isinstance(v, bool) or not isinstance(v, (int, float)))}
    if bad:
        raise ValueError(f"{path}: scheme values must be numbers, got {bad}")
    return path.stem, HedgeScheme(**values)


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
