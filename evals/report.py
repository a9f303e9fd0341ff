"""``rlcot report``: one self-contained HTML page for a sweep, a training run, or several overlaid.

Reading traces is how people learn what a model does, so the page is built around a
table of every trace, not around the figures. Its parts:

- the headline numbers: accuracy at each budget with its 95% CI (``analysis.headline``),
  and with two curves or more the first against the last with a paired bootstrap CI
  of the change (``analysis.before_after``); a training run's rates at its start and end;
- the figures of ``analysis.plot_runs`` (accuracy vs thinking tokens with CI bands,
  every curve overlaid; pass@k/maj@k/best@k and risk-coverage with samples > 1;
  accuracy over checkpoints) and, for a training run, reward and outcome rates over
  steps from its ``metrics.jsonl``. Each is matplotlib's SVG, embedded as a data URI
  (an inline SVG's ids would collide between figures);
- the traces: a sweep's rows and a training run's kept rollouts (``traces.jsonl``),
  filterable by outcome, budget, hedged, task and model/checkpoint, sortable by
  thinking tokens. A trace opens beside the table: prompt, thinking and answer with
  the tokens budget forcing wrote highlighted (``forced_spans``), the verdict and its
  reason, a sudoku or crossword answer drawn as a grid beside the solution with wrong
  cells marked, and the same problem's traces at every budget side by side (a sweep's
  budgets are forks of one trace, so they read as the trace cut at each cap).

Self-contained means no network: data, style and script are inside the one file
(``report_page.html`` is its template), so it can be mailed or archived with a run.
Traces are stored once each with their prompts deduplicated, and the table draws
only the rows in view (a page at a time), so 10,000 rows open and filter in well
under 2 s (``bench/report.py`` measures it in headless Chromium).
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from rlcot.jsonl import complete_rows

from . import analysis, plots
from .plots import Point
from .sweep import load_rows, row_files

REPORT_FILE = "report.html"
TEMPLATE = Path(__file__).with_name("report_page.html")
# What a training run's steps are plotted as; each metric exists only when the run logged it.
REWARD_METRICS = ("reward", "score/mean")
OUTCOME_METRICS = ("outcomes/correct", "outcomes/wrong", "outcomes/abstain", "outcomes/unparsed", "outcomes/hedged",
                   "thinking/cap_rate")
FIGURE_TITLES = {"accuracy": "Accuracy vs thinking tokens", "at_k": "pass@k, maj@k, best@k",
                 "risk_coverage": "Risk-coverage", "training": "Accuracy over checkpoints",
                 "model_size": "Accuracy by model size"}


@dataclass
class Run:
    """What one run directory holds for the report."""

    path: Path
    kind: str  # "sweep" or "training"
    rows: list[dict] = field(default_factory=list)  # sweep rows (a training run's eval curves)
    metrics: list[dict] = field(default_factory=list)  # a training run's log lines
    rollouts: list[dict] = field(default_factory=list)  # a training run's kept rollouts
    summary: dict | None = None  # a training run's summary.json


def read_run(path: Path, scheme: str = "default") -> Run:
    """A sweep directory (``rows*.jsonl``) or a training run (``metrics.jsonl``, ``eval/<task>/``)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a directory; pass the --out of `rlcot sweep` or `rlcot train`")
    if row_files(path):
        return Run(path, "sweep", rows=load_rows(path, scheme))
    eval_dirs = sorted(d for d in (path / "eval").glob("*") if d.is_dir() and row_files(d))
    if not (path / "metrics.jsonl").is_file() and not eval_dirs and not (path / "traces.jsonl").is_file():
        raise ValueError(f"{path} holds neither sweep rows (rows*.jsonl) nor a training run (metrics.jsonl, eval/); "
                         "pass the --out of `rlcot sweep` or `rlcot train`")
    # complete lines only: a live run may be appending to these files
    run = Run(path, "training", metrics=list(complete_rows(path / "metrics.jsonl")),
              rollouts=[r for r in complete_rows(path / "traces.jsonl") if "completion" in r])
    for eval_dir in eval_dirs:
        run.rows += load_rows(eval_dir, scheme)
    if (path / "summary.json").is_file():
        run.summary = json.loads((path / "summary.json").read_text())
    return run


def write_report(run_dirs: Sequence[Path], out: Path | None = None, scheme: str = "default", seed: int = 0) -> Path:
    """Read the runs, compute the numbers and figures, and write the page; returns its path."""
    if not run_dirs:
        raise ValueError("no run directories; pass the --out of `rlcot sweep` or `rlcot train` (several overlay)")
    runs = [read_run(Path(d), scheme) for d in run_dirs]
    if not any(run.rows or run.rollouts or run.metrics for run in runs):
        raise ValueError(f"{', '.join(str(r.path) for r in runs)}: no rows, rollouts or training steps yet; "
                         "run the sweep or training first")
    out = Path(out) if out is not None else Path(run_dirs[0]) / REPORT_FILE
    data = report_data(runs, scheme=scheme, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a page
    return out


def render(data: dict) -> str:
    """The template with the data embedded as JSON; every ``<`` escaped, so no string can close the script."""
    payload = json.dumps(analysis.finite_or_null(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                         default=analysis.jsonable)
    payload = payload.replace("<", "\\u003c")
    return TEMPLATE.read_text(encoding="utf-8").replace("/*REPORT_DATA*/null", payload, 1)


# ------------------------------------------------------------------ what the page holds


def report_data(runs: Sequence[Run], scheme: str = "default", seed: int = 0) -> dict:
    """Everything the page shows, as plain JSON: headline tables, figures, and the traces."""
    overlaid = len(runs) > 1
    rows = [row for run in runs for row in analysis.label_rows(run.rows, run.path, overlaid)]
    data: dict = {
        "title": " vs ".join(run.path.name or str(run.path) for run in runs),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scheme": scheme,
        "runs": [{"path": str(run.path), "kind": run.kind, "rows": len(run.rows), "rollouts": len(run.rollouts),
                  "steps": len(_steps(run.metrics))} for run in runs],
        "tasks": [], "figures": [], "training": [],
    }
    tasks = _tasks(rows)
    for task in tasks:
        task_rows = [row for row in rows if _task_name(row) == task]
        data["tasks"].append({"task": task, "headline": analysis.headline(task_rows, seed=seed),
                              "before_after": analysis.before_after(task_rows, seed=seed)})
        data["figures"] += _sweep_figures(task_rows, task, scheme, seed, several=len(tasks) > 1)
    for run in runs:
        if run.kind == "training":
            label = run.path.name if overlaid else ""
            data["training"].append({"run": str(run.path), "start": (run.summary or {}).get("start", {}),
                                     "end": (run.summary or {}).get("end", {}),
                                     "window": (run.summary or {}).get("window"),
                                     "warnings": (run.summary or {}).get("warnings", [])})
            data["figures"] += _training_figures(run.metrics, label)
    data.update(_traces(rows, [r for run in runs for r in _rollout_rows(run, overlaid)]))
    return data


def _tasks(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(_task_name(row) for row in rows))


def _task_name(row: dict) -> str:
    task = row.get("task")
    return task.get("name", "?") if isinstance(task, dict) else str(task)


def _sweep_figures(rows: list[dict], task: str, scheme: str, seed: int, several: bool) -> list[dict]:
    """``analysis.plot_runs``'s SVGs for one task's rows, each as a data URI."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = analysis.plot_runs(rows, tmp, scheme=scheme, seed=seed)
        figures = []
        for path in map(Path, summary["files"]):
            if path.suffix == ".svg":
                title = FIGURE_TITLES.get(path.stem, path.stem) + (f" ({task})" if several else "")
                figures.append({"title": title, "src": _svg_uri(path.read_bytes()), "wide": path.stem == "accuracy"})
    return figures


def _steps(metrics: Sequence[dict]) -> list[dict]:
    """Log lines of training steps (TRL also logs a final summary line without a loss)."""
    return [m for m in metrics if isinstance(m.get("step"), (int, float)) and "loss" in m]


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
        chart = plots.curve_chart(points, xlabel="training step", ylabel=ylabel, title=title.lower())
        figures.append({"title": title + (f" ({label})" if label else ""), "src": _svg_uri(_svg_bytes(chart))})
    return figures


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _svg_bytes(chart) -> bytes:
    import io

    buffer = io.BytesIO()
    chart.figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def _svg_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


# ------------------------------------------------------------------ the traces


def _rollout_rows(run: Run, overlaid: bool) -> list[dict]:
    """A training run's kept rollouts in the shape of sweep rows (no budget: the recipe's cap bounds them)."""
    name = f"{run.path.name}: rollouts" if overlaid else "training rollouts"
    return [{**r, "series": name, "budget": None, "mode": "rollout", "sample": 0,
             "row_id": r.get("row_id") or f"prompt-{hash(r['prompt']) & 0xFFFFFFFF:08x}"} for r in run.rollouts]


def _traces(rows: Sequence[dict], rollouts: Sequence[dict]) -> dict:
    """Traces as compact records; prompts and problems stored once, text offsets in UTF-16 for the browser."""
    prompts: dict[str, int] = {}
    problems: dict[tuple, int] = {}
    problem_list, series_list, traces = [], {}, []
    for row in [*rows, *rollouts]:
        task = _task_name(row)
        problem_key = (task, str(row["row_id"]))
        if problem_key not in problems:
            problems[problem_key] = len(problem_list)
            problem_list.append(_problem(task, row))
        prompt = prompts.setdefault(row.get("prompt", ""), len(prompts))
        series = series_list.setdefault(row.get("series") or row.get("model", "?"), len(series_list))
        completion = row.get("completion", "")
        verdict = row.get("verdict") or {}
        traces.append({
            "s": series, "p": problems[problem_key], "q": prompt, "b": row.get("budget"), "m": row.get("mode", "cap"),
            "n": row.get("sample", 0), "st": row.get("step"), "o": verdict.get("outcome", "unparsed"),
            "h": bool(verdict.get("hedged")), "t": row.get("thinking_tokens", 0), "cap": bool(row.get("capped")),
            "f": row.get("finish_reason"), "sc": row.get("score"), "a": verdict.get("answer"),
            "r": verdict.get("reason"), "d": verdict.get("details") or {}, "c": completion,
            "ans": _utf16_length(completion, _answer_start(completion, row.get("answer"))),
            "fs": [[_utf16_length(completion, a), _utf16_length(completion, b)] for a, b in row.get("forced_spans", [])],
        })
    return {"series": list(series_list), "problems": problem_list, "prompts": list(prompts), "traces": traces}


def _problem(task: str, row: dict) -> dict:
    example = row.get("row") or {}
    gold = example.get("answer", example.get("solution", (row.get("verdict") or {}).get("details", {}).get("gold")))
    problem = {"id": str(row["row_id"]), "task": task, "question": example.get("question", ""), "gold": gold}
    # what a grid needs: sudoku (puzzle, solution as one string) or crossword (grid, solution as rows)
    for key in ("puzzle", "solution", "grid", "size"):
        if key in example:
            problem[key] = example[key]
    if "puzzle" in example:  # a sudoku's boxes: 6x6 has 2x3 boxes, so the side's square root will not do
        from verifiers.sudoku import BOX_SHAPES

        problem["box"] = BOX_SHAPES.get(example.get("size") or round(len(example["puzzle"]) ** 0.5))
    if "answerable" in example:
        problem["answerable"] = example["answerable"]
    return problem


def _answer_start(completion: str, answer: str | None) -> int:
    """Where the answer section begins: the trace's answer is the completion's tail."""
    if answer and completion.endswith(answer):
        return len(completion) - len(answer)
    return len(completion)


def _utf16_length(text: str, end: int) -> int:
    """A Python (code point) offset as the browser's string index (UTF-16 units)."""
    head = text[:end]
    return end + sum(1 for ch in head if ord(ch) > 0xFFFF)
