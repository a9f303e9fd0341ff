"""What ``rlcot report``'s page shows, read from run directories into plain JSON data.

Reading traces is how people learn what a model does, so the page is built around a
table of every trace, not around the figures. ``report_data`` gathers its parts:

- the headline numbers: accuracy at each budget with its 95% CI (``analysis.headline``),
  and with two curves or more the first against the last with a paired bootstrap CI
  of the change (``analysis.before_after``); a training run's rates at its start and end;
- the figures of ``analysis.plot_runs`` (accuracy vs thinking tokens with CI bands,
  every curve overlaid; pass@k/maj@k/best@k and risk-coverage with samples > 1;
  accuracy over checkpoints; think longer or sample more, with what wins where in words:
  ``rlcot.evals.compute``) and, for a training run, reward and outcome rates over
  steps from its ``metrics.jsonl``. Each is matplotlib's SVG, embedded as a data URI
  (an inline SVG's ids would collide between figures);
- the traces: every one a sweep stored, and a training run's kept rollouts (``rollouts.jsonl``),
  filterable by outcome, budget, hedged, task and model/checkpoint, sortable by
  thinking tokens. A trace opens beside the table: prompt, thinking and answer with
  the tokens budget forcing wrote highlighted (``forced_spans``), the verdict and its
  reason, a sudoku or crossword answer drawn as a grid beside the solution with wrong
  cells marked, and the same problem's traces at every budget side by side (a sweep's
  budgets are forks of one trace, so they read as the trace cut at each cap).

Traces are stored once each with their prompts deduplicated. Run directories are
shared, so any file in one may be hostile. Traces are read through the one reader
(``rlcot.store``), which keeps only lines that are stored traces with every field of
its type (``rlcot.records.line_problem``): a line that is not is left out of the traces
and the numbers, and the page names it (``left_out``). Every string is escaped where
the page draws it; the other files (metrics, summary) are read defensively here
(``_text``, ``_scalar``). ``report`` renders the data.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import matplotlib

from rlcot.jsonl import DamagedLinesWarning, complete_rows, describe_skipped
from rlcot.records import ScoredTrace
from rlcot.runinfo import ROLLOUTS
from rlcot.train.resolve import WARM_UP_LABEL

from . import analysis, plots
from .points import Point
from .series import label_runs, series_of
from rlcot.store import TraceStore, load_traces, trace_files

# What a training run's steps are plotted as; each metric exists only when the run logged it.
REWARD_METRICS = ("reward", "score/mean")
OUTCOME_METRICS = ("outcomes/correct", "outcomes/wrong", "outcomes/abstain", "outcomes/unparsed", "outcomes/hedged",
                   "thinking/cap_rate")
FIGURE_TITLES = {"accuracy": "Accuracy vs thinking tokens", "at_k": "pass@k, maj@k, best@k",
                 "risk_coverage": "Risk-coverage", "training": "Accuracy over checkpoints",
                 "compute": "Think longer or sample more? Accuracy vs tokens generated per problem",
                 "model_size": "Accuracy by model size"}
LITERAL_TEXT = {"text.parse_math": False}  # a model named $\foo$ is drawn as written, not parsed as TeX (and failed)


@dataclass
class Run:
    """What one run directory holds for the report."""

    path: Path
    kind: str  # "sweep" or "training"
    traces: list[ScoredTrace] = field(default_factory=list)  # sweep traces (a training run's eval curves)
    metrics: list[dict] = field(default_factory=list)  # a training run's log lines
    rollouts: list[ScoredTrace] = field(default_factory=list)  # a training run's kept rollouts
    skipped: list = field(default_factory=list)  # damaged lines of its stores (rlcot.jsonl.SkippedLine)
    summary: dict | None = None  # a training run's summary.json, as ``read_summary`` leaves it


def read_run(path: Path, scheme: str = "default") -> Run:
    """A sweep directory (``rows*.jsonl``) or a training run (``metrics.jsonl``, ``eval/<task>/``)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a directory; pass the --out of `rlcot sweep` or `rlcot train`")
    run = _read_stores(path, scheme)
    if run.skipped:  # on the page (left_out), and said to whoever reads the run (the CLI prints it)
        warnings.warn(DamagedLinesWarning(run.skipped), stacklevel=2)
    return run


def _read_stores(path: Path, scheme: str) -> Run:
    """The run's traces through the one reader (damaged lines into ``Run.skipped``), its logs and summary."""
    if trace_files(path):
        run = Run(path, "sweep")
        run.traces = load_traces(path, scheme, skipped=run.skipped)
        return run
    eval_dirs = sorted(d for d in (path / "eval").glob("*") if d.is_dir() and trace_files(d))
    rollouts = TraceStore(path / ROLLOUTS)
    if not (path / "metrics.jsonl").is_file() and not eval_dirs and not rollouts.files():
        raise ValueError(f"{path} holds neither sweep traces (rows*.jsonl) nor a training run (metrics.jsonl, eval/); "
                         "pass the --out of `rlcot sweep` or `rlcot train`")
    # complete lines only: a live run may be appending to these files
    run = Run(path, "training", metrics=list(complete_rows(path / "metrics.jsonl")))
    run.rollouts = rollouts.read(run.skipped)
    for eval_dir in eval_dirs:
        run.traces += load_traces(eval_dir, scheme, skipped=run.skipped)
    if (path / "summary.json").is_file():
        run.summary = read_summary(path / "summary.json")
    return run


def read_summary(path: Path) -> dict:
    """A training run's ``summary.json`` as the page shows it: rates at the start and end, their window, warnings.

    A file of another shape (torn, hand-edited, hostile) is named among the warnings, not a reason to stop.
    """
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError):  # invalid UTF-8 or JSON; nesting too deep for the parser
        return {"warnings": [f"{path} is not valid JSON; its rates are not shown"]}
    if not isinstance(summary, dict):
        return {"warnings": [f"{path} is not a JSON object; its rates are not shown"]}
    warnings = summary.get("warnings") or []
    start, end = _object(summary.get("start")), _object(summary.get("end"))
    return {"start": {k: _scalar(v) for k, v in start.items()}, "end": {k: _scalar(v) for k, v in end.items()},
            "window": _scalar(summary.get("window")),
            "warnings": [_text(w) for w in (warnings if isinstance(warnings, list) else [warnings])]}


# ------------------------------------------------------------------ what the page holds


def report_data(runs: Sequence[Run], scheme: str = "default", seed: int = 0) -> dict:
    """Everything the page shows, as plain JSON: headline tables, figures, and the traces."""
    overlaid = len(runs) > 1
    traces, names, left_out = _labelled_traces(runs)
    data: dict = {
        "title": " vs ".join(run.path.name or str(run.path) for run in runs),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scheme": scheme,
        "runs": [{"path": str(run.path), "kind": run.kind, "rows": len(run.traces), "rollouts": len(run.rollouts),
                  "steps": len(_steps(run.metrics))} for run in runs],
        "tasks": [], "figures": [], "figure_notes": [], "training": [], "left_out": left_out,
    }
    tasks = _tasks(traces)
    for task in tasks:
        task_traces = [trace for trace in traces if _task_name(trace) == task]
        data["tasks"].append({"task": task, "headline": analysis.headline(task_traces, seed=seed),
                              # two training runs: "first -> last" would pair one run's start with the other's end
                              "before_after": [] if _trainings(runs) > 1 else analysis.before_after(task_traces,
                                                                                                     seed=seed),
                              "comparisons": _comparisons(task_traces, runs, names, seed)})
        figures, notes = _sweep_figures(task_traces, task, scheme, seed, several=len(tasks) > 1)
        data["figures"] += figures
        data["figure_notes"] += notes
    for run in runs:
        if run.kind == "training":
            label = run.path.name if overlaid else ""
            data["training"].append({"run": str(run.path), "start": {}, "end": {}, "window": None, "warnings": [],
                                     **(run.summary or {})})
            data["figures"] += _training_figures(run.metrics, label)
    data.update(_traces(traces, [r for run in runs for r in _rollout_traces(run, overlaid)]))
    return data


def _labelled_traces(runs: Sequence[Run]) -> tuple[list[ScoredTrace], list[dict[str, str]], list[str]]:
    """Every run's traces named by series (``series.label_runs``), per run its models' new names, and a line
    per run on the damaged lines left out of traces and numbers."""
    labelled = label_runs([(run.path, run.traces) for run in runs])
    names = [{old.model: new.model for old, new in zip(run.traces, mine)} for run, mine in zip(runs, labelled)]
    left_out = [f"{run.path}: left out of the traces and the numbers: {describe_skipped(run.skipped)}"
                for run in runs if run.skipped]
    return [trace for mine in labelled for trace in mine], names, left_out


def _comparisons(traces: Sequence[ScoredTrace], runs: Sequence[Run], names: Sequence[dict[str, str]],
                 seed: int) -> list[list[dict]]:
    """What a training run's curves say beyond first -> last, each a ``paired_change`` table.

    Per training run with an SFT warm-up: its warm-up curve -> its last (RL's own gain).
    With two training runs or more (``rlcot report RUN CONTROL_RUN``): each run's first
    curve -> its last (in place of the page's first -> last, which would pair one run's
    start with another's end), and each other run's last curve -> the first run's last
    (the first run's gain over that arm). ``names``: per run, its models' curve labels.
    """
    series = series_of(traces)
    finals, out = [], []
    for run, labels in zip(runs, names):
        if run.kind != "training":
            continue
        own = [s for s in series if s.traces[0].model in labels.values()]
        warm = [s for s in own if s.label == labels.get(WARM_UP_LABEL)]
        if own:
            finals.append(own[-1])
        if _trainings(runs) > 1 and len(own) > 1:  # each run's own start -> end, as before_after gives one run
            out.append(analysis.paired_change(own[0], own[-1], seed))
        if warm and own[-1] is not warm[0]:
            out.append(analysis.paired_change(warm[0], own[-1], seed))
    out += [analysis.paired_change(other, finals[0], seed) for other in finals[1:]]
    return [table for table in out if table]


def _trainings(runs: Sequence[Run]) -> int:
    return sum(run.kind == "training" for run in runs)


def _tasks(traces: Sequence[ScoredTrace]) -> list[str]:
    return list(dict.fromkeys(_task_name(trace) for trace in traces))


def _task_name(trace: ScoredTrace) -> str:
    """The task, and the temperature where traces were sampled (a mean@k curve is not the greedy one's)."""
    return _text(trace.task.get("name", "?")) + (f" (sampled, T={trace.temperature:g})" if trace.temperature else "")


def _sweep_figures(traces: list[ScoredTrace], task: str, scheme: str, seed: int,
                   several: bool) -> tuple[list[dict], list[str]]:
    """``analysis.plot_runs``'s SVGs for one task's traces, each as a data URI, and its notes on figures not drawn.

    The think-longer-or-sample-more figure carries what wins where, in words, as its ``note``.
    """
    with tempfile.TemporaryDirectory() as tmp, matplotlib.rc_context(LITERAL_TEXT):
        summary = analysis.plot_runs(traces, tmp, scheme=scheme, seed=seed)
        figures = []
        for path in map(Path, summary["files"]):
            if path.suffix == ".svg":
                title = FIGURE_TITLES.get(path.stem, path.stem) + (f" ({task})" if several else "")
                figures.append({"title": title, "src": _svg_uri(path.read_bytes()),
                                "wide": path.stem in ("accuracy", "compute")})
                if path.stem == "compute":
                    figures[-1]["note"] = [f"{label}, {metric}: {found['says']}"
                                           for label, by_metric in summary["compute"].items()
                                           for metric, found in by_metric.items()]
    return figures, [f"{task}: {note}" if several else note for note in summary["notes"]]


def _steps(metrics: Sequence[dict]) -> list[dict]:
    """Log lines of training steps (TRL also logs a final summary line without a loss)."""
    return [m for m in metrics if _finite(m.get("step")) and "loss" in m]


def _training_figures(metrics: Sequence[dict], label: str) -> list[dict]:
    """Reward and outcome rates against the training step, from ``metrics.jsonl``."""
    steps = _steps(metrics)
    figures = []
    prefix = f"{label}: " if label else ""
    for names, ylabel, title in ((REWARD_METRICS, "mean over the step's rollouts", "Training reward"),
                                 (OUTCOME_METRICS, "fraction of the step's rollouts", "Outcome rates over training")):
        points = [Point(series=prefix + name, metric="training", x=float(m["step"]), y=float(m[name]))
                  for name in names for m in steps if _finite(m.get(name))]
        if not points:
            continue
        with matplotlib.rc_context(LITERAL_TEXT):
            chart = plots.curve_chart(points, xlabel="training step", ylabel=ylabel, title=title.lower())
            svg = _svg_bytes(chart)
        figures.append({"title": title + (f" ({label})" if label else ""), "src": _svg_uri(svg)})
    return figures


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value) -> str:
    """A value the page shows as text: a string as it is, null as nothing, anything else as its JSON."""
    if isinstance(value, str):
        return value
    try:
        return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    except RecursionError:  # JSON nested about as deep as Python's recursion limit: parsed, but not written again
        return "(nested too deeply to show)"


def _scalar(value):
    """A value the page shows: JSON's scalars as they are (it escapes strings), lists and objects as their JSON text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else _text(value)


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _svg_bytes(chart) -> bytes:
    import io

    buffer = io.BytesIO()
    chart.figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def _svg_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


# ------------------------------------------------------------------ the traces


def _rollout_traces(run: Run, overlaid: bool) -> list[ScoredTrace]:
    """A training run's kept rollouts, as one series of traces (no budget: the recipe's cap bounds them)."""
    name = f"{run.path.name}: rollouts" if overlaid else "training rollouts"
    return [r.with_context(model=name) for r in run.rollouts]


def _traces(traces: Sequence[ScoredTrace], rollouts: Sequence[ScoredTrace]) -> dict:
    """Traces as compact records; prompts and problems stored once, text offsets in UTF-16 for the browser.

    The verdict's details go as their JSON text: no value nests (a hostile one could
    nest deeper than the writer can recurse).
    """
    prompts: dict[str, int] = {}
    problems: dict[tuple, int] = {}
    problem_list, series_list, shown = [], {}, []
    for trace in [*traces, *rollouts]:
        task = _task_name(trace)
        problem_key = (task, trace.row_id)
        if problem_key not in problems:
            problems[problem_key] = len(problem_list)
            problem_list.append(_problem(task, trace.row_id, trace))
        prompt = prompts.setdefault(trace.prompt, len(prompts))
        series = series_list.setdefault(trace.model, len(series_list))
        completion, verdict = trace.completion, trace.verdict
        shown.append({
            "s": series, "p": problems[problem_key], "q": prompt, "b": trace.budget, "m": trace.mode, "n": trace.sample,
            "st": trace.step, "o": verdict.outcome, "h": verdict.hedged, "t": trace.thinking_tokens, "cap": trace.capped,
            "f": trace.finish_reason, "sc": trace.score, "a": verdict.answer, "r": verdict.reason,
            "d": _text(verdict.details or None), "c": completion,
            "ans": _utf16_length(completion, _answer_start(completion, trace.answer)),
            "fs": _forced_spans(completion, trace.forced_spans),
        })
    return {"series": list(series_list), "problems": problem_list, "prompts": list(prompts), "traces": shown}


def _problem(task: str, problem_id: str, trace: ScoredTrace) -> dict:
    example = trace.row
    gold = example.get("answer", example.get("solution", trace.verdict.details.get("gold")))
    problem = {"id": problem_id, "task": task, "question": _text(example.get("question", "")),
               "gold": [_scalar(g) for g in gold] if isinstance(gold, list) else _scalar(gold)}
    problem.update(_grid(example))
    if isinstance(example.get("answerable"), bool):
        problem["answerable"] = example["answerable"]
    return problem


def _grid(example: dict) -> dict:
    """What drawing the answer as a grid needs: a sudoku's puzzle and solution (strings of cells) and its boxes,
    or a crossword's solution (rows, ``#`` black); nothing where the row's fields are not that."""
    size, puzzle, solution = example.get("size"), example.get("puzzle"), example.get("solution")
    if size is not None and not (_is_int(size) and size > 0):
        return {}
    sized = {} if size is None else {"size": size}
    if isinstance(puzzle, str) and isinstance(solution, str) and solution:
        from rlcot.verifiers.sudoku import BOX_SHAPES

        # a sudoku's boxes: 6x6 has 2x3 boxes, so the side's square root will not do
        return {"puzzle": puzzle, "solution": solution, "box": BOX_SHAPES.get(size or round(len(puzzle) ** 0.5)),
                **sized}
    if isinstance(solution, list) and solution and all(isinstance(line, str) for line in solution):
        return {"solution": solution, **sized}
    return {}


def _forced_spans(completion: str, spans) -> list[list[int]]:
    """``forced_spans`` as browser offsets; a span past the completion's end is dropped."""
    return [[_utf16_length(completion, start), _utf16_length(completion, end)] for start, end in spans
            if end <= len(completion)]


def _answer_start(completion: str, answer: str | None) -> int:
    """Where the answer section begins: the trace's answer is the completion's tail."""
    if answer and completion.endswith(answer):
        return len(completion) - len(answer)
    return len(completion)


def _utf16_length(text: str, end: int) -> int:
    """A Python (code point) offset as the browser's string index (UTF-16 units)."""
    head = text[:end]
    return end + sum(1 for ch in head if ord(ch) > 0xFFFF)
