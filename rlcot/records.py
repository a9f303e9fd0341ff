"""The flow's one home: task row -> completion -> verdict -> score, as one frozen record.

Every path that scores a completion goes through ``Scorer``: ``rlcot score``,
``rlcot generate``, sweeps, training rollouts and TRL reward functions. So none of
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

Before generating, ``rlcot.row_checks`` sends every task row through these same steps
with the gold as the completion, so a row that cannot be scored (a gold the verifier
cannot read included) stops a run before any model loads, or, in a sweep, is left out
and named: never scored 0 or 1.

The completion row (what ``rlcot score --input`` reads), one JSON object per line:

    row         object   the task row: "id" and the verifier's fields ("answer", "puzzle", ...)
    completion  string   the whole assistant turn (from the pre-filled <think> on)
    prompt      string   optional; its pre-filled <think> is put back before a completion lacking it
    sample      int      optional, default 0: which of the row's samples
    budget      int      optional: the thinking cap it ran under
    ...                  anything else is kept (a stored trace is a completion row too)

or the flat form most generation tools write, with no "row": the task row's fields and
the completion side by side, ``{"id", "question", "answer", "completion", ...}``. Its
row is every field but ``FLAT_FIELDS`` (the completion's own, and the verdict, score and
scheme ``rlcot score`` adds, so its output can be scored again). Columns named
otherwise (``problem``) are the task's to map (``Task.map_columns``).

The stored line: ``ScoredTrace.to_dict``, one JSON object per line of a trace store
(``rlcot.store``), written alike by ``rlcot generate``, sweeps and training rollouts,
and read by every reader (analysis, plots, the report) through ``ScoredTrace.from_dict``:

    v                  int      schema version (SCHEMA_VERSION; absent: 0, a sweep line of before it existed)
    key                string   content key: a hash of everything that decides the trace (one line per key)
    model, task        string, object   the curve's label; the task's spec (name, data, options)
    row_id, row        string, object   the task row's id, the row itself
    sample, budget     int, int|null    which sample; the thinking cap (null: none, or a rollout)
    mode               string   cap | extend (s1's "Wait") | stated (the prompt states the budget) | generate | rollout
    prompt, completion string   the prompt; the whole assistant turn
    answer             string|null      the answer section (null: the thinking never closed)
    thinking_tokens, answer_tokens, extensions   int   sampled token counts; "Wait"s forced
    capped, finish_reason, forced_spans   bool, string, [[start, end], ...]   how the thinking ended;
                                       the character spans budget forcing wrote
    seed, sum_logprob, sampled_tokens, gold_logprob   the draw's seed, its log-probability, log p(gold)
    verdict, score, scheme   object (outcome, hedged, answer, reason, details), number, string
    unit, model_path, weights, step, run_dir, parameters   where it came from (a sweep unit, a checkpoint)
    temperature, top_p, sweep_seed, dtype, backend, protocol, max_answer_tokens, min_thinking_tokens
                       the settings it was made under (a store refuses to mix them: rlcot.store)

Required: key, model, task, row_id, row, sample, budget, mode, completion,
thinking_tokens, verdict (with its outcome), score; every other field has its
dataclass default. A line that is not a stored trace (``line_problem``) is damage:
readers skip and report it, never guess at it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rlcot.verifiers import BINARY, HedgeScheme, Verdict
from rlcot.verifiers.base import OUTCOMES

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
        """Read one completion row, nested or flat (module docstring); a ValueError names the bad field."""
        row, completion = line.get("row"), line.get("completion")
        if "row" not in line:  # the flat form: the row's fields beside the completion's
            row = {key: value for key, value in line.items() if key not in FLAT_FIELDS}
        if not isinstance(row, dict):
            raise ValueError(f"'row' must be an object holding the task row (id, answer, ...), "
                             f"got {type_name(row)}")
        if not isinstance(completion, str):
            raise ValueError(f"'completion' must be a string (the whole assistant turn), got {type_name(completion)}")
        prompt, sample, budget = line.get("prompt", ""), line.get("sample", 0), line.get("budget")
        if prompt is None:
            prompt = ""
        if not isinstance(prompt, str):
            raise ValueError(f"'prompt' must be a string or absent, got {type_name(prompt)}")
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise ValueError(f"'sample' must be an integer >= 0 or absent, got {sample!r}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise ValueError(f"'budget' must be an integer, null or absent, got {budget!r}")
        return cls(row=row, completion=completion, prompt=prompt, sample=sample, budget=budget)


# what a flat completion row holds besides the task row's fields: the completion's own, and what scoring added
FLAT_FIELDS = frozenset({"completion", "prompt", "sample", "budget", "verdict", "score", "scheme"})

SCHEMA_VERSION = 1  # the "v" of a stored line; none is version 0: a sweep line written before this record


@dataclass(frozen=True)
class ScoredTrace:
    """A completion of one row's sample under one budget, its verdict and score, its trace's counts and context.

    ``Scorer`` fills what scoring decides (and the counts of the ``Trace`` it is given);
    the writer adds where the trace came from (``with_context``: key, model, step, ...).
    ``to_dict``/``from_dict`` are the stored line (module docstring, "The stored line").
    """

    # what was scored
    row_id: str
    sample: int
    budget: int | None  # the thinking cap it ran under (None: uncapped, or a rollout under the recipe's cap)
    completion: str  # the whole assistant turn, pre-filled opening put back
    verdict: Verdict
    score: float
    scheme: str
    row: Mapping[str, Any] = field(default_factory=dict)  # the task row
    prompt: str = ""
    # the trace's counts (zeros for a completion scored without one)
    answer: str | None = None  # the answer section; None: the thinking never closed
    thinking_tokens: int = 0
    answer_tokens: int = 0
    capped: bool = False
    finish_reason: str | None = None
    extensions: int = 0
    forced_spans: tuple[tuple[int, int], ...] = ()  # [start, end) character spans budget forcing wrote
    seed: int | None = None
    sum_logprob: float = 0.0  # of the sampled tokens
    sampled_tokens: int = 0
    gold_logprob: float | None = None
    # its context
    key: str = ""  # content key: the store keeps one line per key
    unit: str | None = None  # the (model, row, sample) a sweep forks budgets from
    mode: str = "cap"  # cap, extend (s1's Wait), stated (the prompt states the budget), generate, rollout
    model: str = ""  # the label curves are drawn under
    model_path: str | None = None
    weights: str | None = None  # a hash of the weights' files
    step: int | None = None  # training steps done when it was made
    run_dir: str | None = None
    parameters: int | None = None
    task: Mapping[str, Any] = field(default_factory=dict)  # Task.spec()
    temperature: float | None = None
    top_p: float | None = None
    dtype: str | None = None
    backend: str | None = None
    protocol: Mapping[str, Any] | None = None
    sweep_seed: int | None = None
    max_answer_tokens: int | None = None
    min_thinking_tokens: int | None = None
    trace: Trace | None = field(default=None, compare=False, repr=False)  # in memory only, never stored

    def __post_init__(self):
        if not isinstance(self.forced_spans, tuple):  # forced_spans() and JSON give lists; a frozen record holds tuples
            object.__setattr__(self, "forced_spans", tuple(tuple(span) for span in self.forced_spans))

    def with_context(self, **context) -> "ScoredTrace":
        return replace(self, **context)

    def to_dict(self) -> dict:
        """The stored line: ``{"v": SCHEMA_VERSION, ...}`` with every field but the in-memory trace."""
        line = {"v": SCHEMA_VERSION}
        for name in _STORED:
            value = getattr(self, name)
            line[name] = (value.to_dict() if name == "verdict" else [list(span) for span in value]
                          if name == "forced_spans" else value)
        return line

    @classmethod
    def from_dict(cls, line: Mapping[str, Any]) -> "ScoredTrace":
        """A stored line back; ``ValueError`` naming the first field that is missing or of the wrong type."""
        problem = line_problem(line)
        if problem:
            raise ValueError(problem)
        values = {name: line[name] for name in _STORED if name in line}
        values["verdict"] = verdict_from_dict(line["verdict"])
        return cls(**values)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return (_int(v) or isinstance(v, float)) and math.isfinite(v)


def _text_or_none(v) -> bool:
    return v is None or isinstance(v, str)


def _span(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_int(x) for x in v) and 0 <= v[0] <= v[1]


# Each stored field: (the test its value passes, what it must be, required). Required are those every
# reader counts with (sweep lines of version 0 held them all); the rest default (ScoredTrace's defaults).
_FIELDS: dict[str, tuple[Callable[[Any], bool], str, bool]] = {
    "key": (lambda v: isinstance(v, str), "a string", True),
    "model": (lambda v: isinstance(v, str), "a string", True),
    "task": (lambda v: isinstance(v, dict), "an object", True),
    "row_id": (lambda v: isinstance(v, str), "a string", True),
    "row": (lambda v: isinstance(v, dict), "an object", True),
    "sample": (lambda v: _int(v) and v >= 0, "a whole number >= 0", True),
    "budget": (lambda v: v is None or _int(v) and v >= 0, "a whole number >= 0 or null", True),
    "mode": (lambda v: isinstance(v, str), "a string", True),
    "completion": (lambda v: isinstance(v, str), "a string", True),
    "thinking_tokens": (lambda v: _int(v) and v >= 0, "a whole number >= 0", True),
    "verdict": (lambda v: isinstance(v, dict), "an object", True),
    "score": (_number, "a number", True),
    "scheme": (lambda v: isinstance(v, str), "a string", False),
    "prompt": (lambda v: isinstance(v, str), "a string", False),
    "answer": (_text_or_none, "a string or null", False),
    "answer_tokens": (lambda v: _int(v) and v >= 0, "a whole number >= 0", False),
    "capped": (lambda v: isinstance(v, bool), "true or false", False),
    "finish_reason": (_text_or_none, "a string or null", False),
    "extensions": (lambda v: _int(v) and v >= 0, "a whole number >= 0", False),
    "forced_spans": (lambda v: isinstance(v, list) and all(map(_span, v)), "a list of [start, end] offsets", False),
    "seed": (lambda v: v is None or _int(v), "a whole number or null", False),
    "sum_logprob": (_number, "a number", False),
    "sampled_tokens": (lambda v: _int(v) and v >= 0, "a whole number >= 0", False),
    "gold_logprob": (lambda v: v is None or _number(v), "a number or null", False),
    "unit": (_text_or_none, "a string or null", False),
    "model_path": (_text_or_none, "a string or null", False),
    "weights": (_text_or_none, "a string or null", False),
    "step": (lambda v: v is None or _int(v), "a whole number or null", False),
    "run_dir": (_text_or_none, "a string or null", False),
    "parameters": (lambda v: v is None or _int(v), "a whole number or null", False),
    "temperature": (lambda v: v is None or _number(v), "a number or null", False),
    "top_p": (lambda v: v is None or _number(v), "a number or null", False),
    "dtype": (_text_or_none, "a string or null", False),
    "backend": (_text_or_none, "a string or null", False),
    "protocol": (lambda v: v is None or isinstance(v, dict), "an object or null", False),
    "sweep_seed": (lambda v: v is None or _int(v), "a whole number or null", False),
    "max_answer_tokens": (lambda v: v is None or _int(v), "a whole number or null", False),
    "min_thinking_tokens": (lambda v: v is None or _int(v), "a whole number or null", False),
}
_STORED = tuple(f.name for f in fields(ScoredTrace) if f.name != "trace")
_VERDICT_FIELDS = {"hedged": (lambda v: isinstance(v, bool), "true or false"),
                   "answer": (_text_or_none, "a string or null"), "reason": (_text_or_none, "a string or null"),
                   "details": (lambda v: v is None or isinstance(v, dict), "an object")}


def line_problem(line: Mapping[str, Any]) -> str | None:
    """Why ``line`` is not a stored ``ScoredTrace`` (a field missing or of the wrong type), or None."""
    version = line.get("v", 0)
    if not _int(version) or not 0 <= version <= SCHEMA_VERSION:
        return (f"schema version {json.dumps(version, default=str)[:20]} is not one this rlcot reads "
                f"(0 to {SCHEMA_VERSION}); read it with the rlcot that wrote it, or upgrade")
    missing = [name for name, (_, _, required) in _FIELDS.items() if required and name not in line]
    if missing:
        return f"not a stored trace: missing {', '.join(missing)}"
    for name, (ok, kind, _) in _FIELDS.items():
        if name in line and not ok(line[name]):
            return f"its {name} is {_shown(line[name])}, not {kind}"
    return verdict_problem(line["verdict"])


def verdict_problem(verdict: Mapping[str, Any]) -> str | None:
    """Why a stored verdict (``Verdict.to_dict``) is not one, or None."""
    if verdict.get("outcome") not in OUTCOMES:
        return f"its verdict's outcome is {_shown(verdict.get('outcome'))}, not one of {', '.join(OUTCOMES)}"
    for name, (ok, kind) in _VERDICT_FIELDS.items():
        if name in verdict and not ok(verdict[name]):
            return f"its verdict's {name} is {_shown(verdict[name])}, not {kind}"
    return None


def verdict_from_dict(verdict: Mapping[str, Any]) -> Verdict:
    """A stored verdict back (check it first: ``verdict_problem``)."""
    return Verdict(outcome=verdict["outcome"], hedged=bool(verdict.get("hedged", False)), answer=verdict.get("answer"),
                   reason=verdict.get("reason"), details=dict(verdict.get("details") or {}))


def _shown(value) -> str:
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = type_name(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
        raise ValueError(f"{path}: expected a mapping of HedgeScheme fields, got {type_name(values)}")
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
              trace: Trace | None = None) -> ScoredTrace:
        return self.score_many([CompletionRow(row, completion, prompt, sample, budget)], [trace])[0]

    def score_many(self, items: Sequence[CompletionRow],
                   traces: Sequence[Trace | None] | None = None) -> list[ScoredTrace]:
        """One record per item, in order. A bad row (e.g. no gold answer) raises ValueError."""
        traces = list(traces) if traces is not None else [None] * len(items)
        turns = [self.full_completion(item.prompt, item.completion) for item in items]
        sections = [self.protocol.split(turn).answer for turn in turns]
        verdicts = self.verifier.verify_answer_batch(sections, [item.row for item in items])
        return [
            ScoredTrace(row_id=item.row_id, sample=item.sample, budget=item.budget, completion=turn,
                        verdict=verdict, score=self.scheme.score(verdict), scheme=self.scheme_name,
                        row=item.row, prompt=item.prompt, trace=trace, **_trace_counts(trace))
            for item, turn, verdict, trace in zip(items, turns, verdicts, traces)
        ]

    def score_trace(self, trace: Trace, row: Mapping) -> ScoredTrace:
        return self.score(trace.prompt, trace.completion, row, trace.sample, trace.budget, trace)


def _trace_counts(trace: Trace | None) -> dict:
    """What a record keeps of its trace: token counts, how the thinking ended, the sampled log-probability."""
    if trace is None:
        return {}
    sampled = [lp for lp in trace.logprobs if lp is not None]
    return {"answer": trace.answer, "thinking_tokens": trace.thinking_tokens, "answer_tokens": trace.answer_tokens,
            "capped": trace.capped, "finish_reason": trace.finish_reason, "extensions": trace.extensions,
            "seed": trace.seed, "sum_logprob": float(sum(sampled)), "sampled_tokens": len(sampled),
            "gold_logprob": trace.gold_logprob}


def type_name(value) -> str:
    """A value's JSON kind as an error message names it: null, str, list, ..."""
    return "null" if value is None else type(value).__name__
