"""``make demo``: what an SFT warm-up, then a short GRPO run, do to the budget curves on chain rows.

The story has three points: before training, after the SFT warm-up (what GRPO starts
from) and after GRPO. At each, two budget curves on the same held-out rows of
``recipes/chain-grpo-cpu.yaml`` (chains of 1-6 steps, the rows after the ``size`` it
trains on): greedy accuracy, and mean@4, four samples a row at the training temperature,
which is what GRPO optimizes and can move while greedy accuracy stays put. The headline
is RL's own gain, after GRPO minus after the warm-up, per budget and for both curves,
each with its paired bootstrap CI, beside the warm-up's gain (after it minus before).

Three stages, in order, each writing under ``out``:

1. ``train``: the recipe, its SFT warm-up included, with the demo's overrides
   (``DEMO_OVERRIDES``). The trainer draws the six curves itself (``rlcot.evals.training.EvalCurves``):
   at step 0, after the warm-up (``WARM_UP_LABEL``) and at the end, into
   ``train/eval/chain`` (greedy) and ``train/eval/chain-sampled`` (mean@4), labelled
   ``step 0``, ``after SFT warm-up`` and ``step 10``. The console shows a bar per stage
   and a line per logged step; TRL's raw log dicts and the libraries' logs go to
   ``train/train.log`` (``rlcot.train.trainer.train_run``);
2. ``plots``: ``plots/accuracy.png`` (and ``.svg``, ``.csv``), accuracy against thinking
   tokens with the three points as three curves, the mean@4 panel beside the greedy one
   on one y scale (``rlcot.evals.plots.plot_panels``);
3. ``report.html``: ``rlcot.evals.report.write_report`` on the run: both curves, the
   rollouts, the training steps, and RL's own gain among its comparisons.

Then the headline (``rlcot.evals.analysis.paired_change`` on each pair of points) and
where the files are.

Why the trainer's own curves, not sweep stages before and after it (as this demo had
for arith): they are the same sweep (``EvalCurve`` through ``sweep_spec``, the held-out
rows, the recipe's budgets), the warm-up point needs no stage of its own, and nothing is
swept twice. They resume as well as sweeps do. A curve's traces are keyed by its label
(the policy is in memory, with no files to hash) and stored, fsynced, after each
generation call (128 rows x samples; at the demo's sizes a whole curve), so a curve cut
off is finished, never redone, by the next call that draws the same label from the same
policy, and every way back into training does: a run stopped before its
warm-up model is saved starts afresh (the step-0 curve finds its traces, the warm-up is
redone, as ``rlcot train`` would); one stopped after it, and before the first GRPO
checkpoint, resumes from ``sft-warmup/model`` and the trainer finishes the warm-up
curve there; one stopped in GRPO resumes from its last checkpoint (LoRA checkpoints
every step); one stopped in the final curve, its last step checkpointed, is finished on
that checkpoint (``rlcot.train.trainer.finish_from``, which ``train_run`` calls there).
``summary.json`` is written last, so its presence means every curve is complete. The
plot and the page are rebuilt only when older than the traces they read, as ``make``
decides. So Ctrl-C loses at most the curve or the step in flight (under 3 minutes; or
the warm-up itself, which saves nothing until it ends), and a second run does nothing.
``demo.json`` records the settings; a second run with others is refused rather than
mixed into the same curves.

The budget is 30 minutes on 2 CPU cores. Measured on a 2-core AMD EPYC with bf16 units:
17 min 44 s in all, 12 min 8 s for the curves before training, the SFT warm-up and the
curves after it (about 3.5 min a point), then 10 GRPO steps at ~21 s, the final curves,
plot and page in 5 min 36 s. The overrides that keep it there: 32 of the recipe's 48
held-out rows (the first 32 of them: rows are seeded by index), 10 of its 16 GRPO steps,
and no curves between (``eval.every=0``); the warm-up and the budgets are the recipe's. Fewer rows widen the CIs (the arith demo's were about
+-0.14 on 64 rows, greedy); mean@4 averages four samples a row, which narrows its own.

Every knob defaults to the real demo; tests shrink it (a tiny model, a few rows and
steps) through ``model``, ``overrides``, ``budgets`` and ``limit``. Bad input raises
``ValueError`` with one sentence naming the value and the fix, before any model loads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .train.resolve import WARM_UP_LABEL

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "chain-grpo-cpu.yaml"
# the recipe's keys the demo changes to fit 30 minutes on 2 CPU cores (module docstring); the user's overrides win
DEMO_OVERRIDES = ("grpo.max_steps=10", "tasks.0.eval_size=32", "eval.every=0")
BEFORE, WARM_UP, AFTER = "before training", WARM_UP_LABEL, "after GRPO"  # the three points' series labels


@dataclass(frozen=True)
class DemoPlan:
    """What the demo will do, resolved and checked before any model loads."""

    out: Path
    recipe_path: Path
    run: Any  # rlcot.train.resolve.ResolvedRun: the training run, demo overrides applied, resolved once
    device: str | None = None

    @property
    def recipe(self):
        """The training run's recipe (``rlcot.train.recipe.Recipe``)."""
        return self.run.recipe

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    @property
    def curves(self) -> tuple:
        """The run's eval curves (``rlcot.train.resolve.EvalCurve``): mean@k first, then greedy."""
        return self.run.eval_curves

    def curve_dir(self, curve) -> Path:
        return self.train_dir / "eval" / curve.key

    def curve_files(self) -> list[Path]:
        """The trace files of every curve (what the plot and the page are drawn from)."""
        from rlcot.store import trace_files

        return [path for curve in self.curves for path in trace_files(self.curve_dir(curve))]

    @property
    def labels(self) -> dict[str, str]:
        """The trainer's label of each point (its eval curves' ``model``) -> the demo's."""
        return {"step 0": BEFORE, WARM_UP_LABEL: WARM_UP, f"step {self.recipe.grpo['max_steps']}": AFTER}

    def settings(self) -> dict:
        """What decides the demo's results, as written to ``demo.json`` (paths of the run itself left out)."""
        from .train.recipe import resolved

        return {"recipe": {k: v for k, v in resolved(self.recipe).items() if k != "output_dir"}}


@dataclass(frozen=True)
class CurveGains:
    """One eval curve's three points compared per budget: ``paired_change`` lines, paired CIs by problem."""

    kind: str  # "sampled" (mean@k at the training temperature) or "greedy" (EvalCurve.kind)
    samples: int
    temperature: float
    warm_up: tuple[dict, ...]  # after the SFT warm-up - before training
    rl: tuple[dict, ...]  # after GRPO - after the SFT warm-up: RL's own gain

    @property
    def name(self) -> str:
        return f"mean@{self.samples}, T={self.temperature:g}" if self.kind == "sampled" else "greedy"


def plan_demo(out: Path = Path("demo"), model: str | None = None, recipe: Path = RECIPE,
              overrides: Sequence[str] = (), budgets: Sequence[int] | None = None, limit: int | None = None,
              device: str | None = None) -> DemoPlan:
    """The demo's resolved run: the recipe < ``DEMO_OVERRIDES`` < ``overrides`` (as ``--set``) < the arguments.

    ``budgets`` are the curves' thinking budgets (``eval.budgets``) and ``limit`` their
    held-out rows (``tasks.0.eval_size``); None keeps the recipe's, as overridden.
    """
    from rlcot.evals.training import sweep_spec

    from .train.checks import check_recipe
    from .train.recipe import load_recipe
    from .quiet import checkpointing_alias_warnings
    from .train.resolve import resolve_run

    out, recipe = Path(out), Path(recipe)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is a file; pass a directory for the demo's runs, e.g. demo")
    if not recipe.is_file():
        raise ValueError(f"recipe {str(recipe)!r} does not exist; pass a YAML file such as {RECIPE}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r} must be >= 1 held-out rows; e.g. limit=32")
    if budgets is not None and not list(budgets):
        raise ValueError("budgets is empty; pass the curves' thinking budgets, e.g. (16, 32, 64, 128)")
    if model is not None and not str(model).strip():
        raise ValueError("model is empty; give a built-in name (smollm2-135m) or a model directory")
    base = load_recipe(recipe, [*DEMO_OVERRIDES, *overrides])
    if len(base.tasks) != 1:
        raise ValueError(f"{recipe} trains on {len(base.tasks)} tasks; the demo draws one task's curves: "
                         "give a one-task recipe")
    mix = replace(base.tasks[0], eval_size=limit if limit is not None else base.tasks[0].eval_size)
    base = replace(base, tasks=(mix,), model=str(model) if model is not None else base.model,
                   eval=replace(base.eval, budgets=tuple(budgets) if budgets is not None else base.eval.budgets),
                   output_dir=str((out / "train").resolve()))
    check_recipe(base)  # the arguments, checked as the recipe's own values are
    if base.sft_warmup is None:
        raise ValueError(f"{recipe} has no sft_warmup; the demo's middle point is the warmed-up model: add "
                         "sft_warmup: {steps: 30} or use recipes/chain-grpo-cpu.yaml")
    if not base.eval.sampled:
        raise ValueError("eval.sampled=0 draws no mean@k curve, half of the demo's story; set eval.sampled=4")
    if not mix.eval_size:
        raise ValueError("tasks.0.eval_size=0 holds no rows out, so there are no curves; set it to 32")
    with checkpointing_alias_warnings():  # TRL checks the grpo: block now, before any work
        run = resolve_run(base, device, base.output_dir)
    for curve in run.eval_curves:  # what the trainer builds at step 0, after loading the model: checked now
        sweep_spec(curve, base.model)
    return DemoPlan(out=out, recipe_path=recipe, run=run, device=device)


def run_demo(out: Path = Path("demo"), console=None, *, model: str | None = None, recipe: Path = RECIPE,
             overrides: Sequence[str] = (), budgets: Sequence[int] | None = None, limit: int | None = None,
             device: str | None = None) -> dict:
    """Train (drawing both curves at the three points), plot and report into ``out``; print and return the gains.

    Returns ``gains`` (a ``CurveGains`` per curve, mean@k first), the paths (``train``,
    ``curves``: the eval directories, ``plot``, ``report``) and ``stages``: per stage,
    its seconds and whether it found its work already done.
    """
    from rich.console import Console

    console = console or Console()
    plan = plan_demo(out, model, recipe, overrides, budgets, limit, device)
    _check_settings(plan)
    found: dict = {"stages": {}, "train": plan.train_dir, "curves": [plan.curve_dir(c) for c in plan.curves]}
    steps: list[tuple[str, Path, Callable[[], dict]]] = [
        ("train", plan.train_dir, lambda: _train(plan, console)),
        ("plot", plan.out / "plots" / "accuracy.png", lambda: _plot(plan, console)),
        ("report", plan.out / "report.html", lambda: _report(plan, console)),
    ]
    for number, (name, where, stage) in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps)} {name}[/bold] -> {where}", align="left")
        started = time.perf_counter()
        try:
            result = stage()
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted in {name}[/yellow]: everything finished is kept (curve traces are "
                          "fsynced, training keeps its checkpoints); run the demo again to go on from here")
            raise
        result["seconds"] = time.perf_counter() - started
        done = "nothing to do" if result["skipped"] else f"done in {_duration(result['seconds'])}"
        console.print(f"{name}: {done}")
        found["stages"][name] = result
    found["plot"] = found["stages"]["plot"]["path"]
    found["report"] = found["stages"]["report"]["path"]
    found["gains"] = _gains(plan)
    _headline(plan, found, console)
    return found


# ------------------------------------------------------------------ the stages


def _train(plan: DemoPlan, console) -> dict:
    from functools import partial

    from rlcot.evals.training import EvalCurves

    from .quiet import checkpointing_alias_warnings
    from .runinfo import SFT_MODEL_DIR, checkpoint_step, is_saved_model, last_checkpoint
    from .train.preflight import preflight
    from .train.trainer import train_run

    recipe, out_dir = plan.recipe, plan.run.output_dir
    steps = recipe.grpo["max_steps"]
    what = (f"{steps} GRPO steps{' (LoRA)' if recipe.peft else ''} on {recipe.tasks[0].size} {recipe.tasks[0].name} "
            f"rows after a {recipe.sft_warmup.get('steps', 20)}-step SFT warm-up, {plan.recipe_path.name}")
    console.print(f"{what}; {_curves_there(plan)}", highlight=False)
    checkpoint = last_checkpoint(out_dir)
    if (out_dir / "summary.json").is_file():  # written after the final curves: every curve is complete
        console.print("training: finished already (summary.json)", highlight=False)
        return {"skipped": True, "state": "finished"}
    if checkpoint is not None and checkpoint_step(checkpoint) >= steps:
        state, note, resume = (f"finished from {checkpoint.name}",
                               f"{checkpoint.name} is its last step; finishing the final curves on it", True)
    elif checkpoint is not None:
        state, note, resume = f"resumed from {checkpoint.name}", f"{checkpoint.name} of {steps} there, resuming", True
    elif is_saved_model(out_dir / SFT_MODEL_DIR):
        # the trainer's --resume starts GRPO from the saved warm-up (finishing its curve) rather than warming up again
        state, note, resume = "after the SFT warm-up", f"the SFT warm-up is done ({SFT_MODEL_DIR}), GRPO starts", True
    else:
        state, note, resume = "from the start", "no warm-up or checkpoint there yet", False
    console.print(f"training: {note}", highlight=False)
    with checkpointing_alias_warnings():  # TRL's and SFT's configs use transformers 5's deprecated name
        # a bar per stage and a line per logged step on the demo's console; the libraries' logs to train/train.log
        train_run(plan.run, preflight(recipe, out_dir, resume), evals=partial(EvalCurves, console=console),
                  console=console)
    return {"skipped": False, "state": state}


def _curves_there(plan: DemoPlan) -> str:
    """'curve traces there: before training 0/96, ...': what each point already has, of both curves together."""
    from collections import Counter

    from rlcot.store import load_traces, trace_files

    counts: Counter = Counter()
    for curve in plan.curves:
        if trace_files(plan.curve_dir(curve)):
            counts.update(trace.model for trace in load_traces(plan.curve_dir(curve)))
    wanted = sum(curve.limit * curve.samples * len(set(curve.budgets)) for curve in plan.curves)
    return "curve traces there: " + ", ".join(f"{ours} {counts[theirs]}/{wanted}"
                                             for theirs, ours in plan.labels.items())


def _story(plan: DemoPlan, curve) -> list:
    """The curve's traces at the three points, relabelled ``BEFORE``, ``WARM_UP``, ``AFTER`` and in that order."""
    from rlcot.store import load_traces

    labels = plan.labels
    traces = load_traces(plan.curve_dir(curve))
    return [trace.with_context(model=ours) for theirs, ours in labels.items()
            for trace in traces if trace.model == theirs]


def _plot(plan: DemoPlan, console) -> dict:
    from rlcot.evals.plots import plot_panels
    from rlcot.evals.series import curve_points, series_of

    stem = plan.out / "plots" / "accuracy"
    target, table = stem.with_name("accuracy.png"), stem.with_name("accuracy.csv")
    sources = plan.curve_files()
    # save_chart writes the CSV last: a figure cut off mid-way is older than its rows, and redrawn
    fresh = target.is_file() and not _older(table, sources)
    console.print(f"accuracy vs thinking tokens, {BEFORE}, {WARM_UP} and {AFTER}; greedy and mean@k panels: "
                  + ("up to date with the curves" if fresh else "drawing"), highlight=False)
    if fresh:
        return {"skipped": True, "path": target}
    points, titles = [], {}
    for curve in plan.curves:
        metric = f"mean@{curve.samples}" if curve.kind == "sampled" else "accuracy"
        titles[metric] = (f"mean@{curve.samples}: {curve.samples} samples a row at T={curve.temperature:g}, "
                          "what GRPO optimizes" if curve.kind == "sampled" else "greedy")
        for series in series_of(_story(plan, curve)):
            points += [replace(p, metric=metric) for p in curve_points(series, "default") if p.metric == "accuracy"]
    mix = plan.recipe.tasks[0]
    plot_panels(points, stem, titles, title=f"{mix.name}: accuracy on {mix.eval_size} held-out rows, "
                                            f"{BEFORE}, {WARM_UP}, {AFTER}")
    return {"skipped": False, "path": target}


def _report(plan: DemoPlan, console) -> dict:
    target = plan.out / "report.html"
    sources = plan.curve_files() + [plan.train_dir / name for name in ("summary.json", "metrics.jsonl",
                                                                         "rollouts.jsonl")]
    fresh = not _older(target, sources)
    console.print("one HTML page of the training run and its curves: "
                  + ("up to date with the run" if fresh else "writing"), highlight=False)
    if fresh:
        return {"skipped": True, "path": target}
    from rlcot.evals.report import write_report

    return {"skipped": False, "path": write_report([plan.train_dir], target)}


def _older(target: Path, sources: Sequence[Path]) -> bool:
    """make's rule: ``target`` is missing or older than one of the ``sources`` that exist."""
    if not target.is_file():
        return True
    stamp = target.stat().st_mtime_ns
    return any(source.is_file() and source.stat().st_mtime_ns > stamp for source in sources)


# ------------------------------------------------------------------ what it shows


def _gains(plan: DemoPlan) -> list[CurveGains]:
    """Per curve with all three points: the warm-up's gain and RL's own (``paired_change``)."""
    from rlcot.evals.analysis import paired_change
    from rlcot.evals.series import series_of

    found = []
    for curve in plan.curves:
        points = {series.label: series for series in series_of(_story(plan, curve))}
        if all(label in points for label in (BEFORE, WARM_UP, AFTER)):
            found.append(CurveGains(curve.kind, curve.samples, curve.temperature,
                                    tuple(paired_change(points[BEFORE], points[WARM_UP])),
                                    tuple(paired_change(points[WARM_UP], points[AFTER]))))
    return found


def _headline(plan: DemoPlan, found: dict, console) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    gains = [gain for gain in found["gains"] if gain.rl and gain.warm_up]
    if gains:
        first = gains[0].rl[0]
        recipe = plan.recipe
        table = Table(title=f"{recipe.tasks[0].name}, {first['problems']} held-out rows: {BEFORE} -> {WARM_UP} "
                            f"({recipe.sft_warmup.get('steps', 20)} steps) -> {AFTER} ({recipe.grpo['max_steps']} "
                            "steps)", box=box.SIMPLE_HEAD,
                      caption=f"RL's own gain: {AFTER} - {WARM_UP}; the warm-up's: {WARM_UP} - {BEFORE}; "
                              f"{first['level']:.0%} paired bootstrap CIs by problem",
                      caption_justify="left")
        level = f"[{first['level']:.0%} CI]"
        for column in ("curve", "budget", "before", "warm-up", "GRPO", f"RL's own gain {level}",
                       f"warm-up's gain {level}"):
            table.add_column(column, justify="right")
        for number, gain in enumerate(gains):
            if number:
                table.add_section()
            for rl, warm_up in zip(gain.rl, gain.warm_up):
                table.add_row(gain.name, str(rl["budget"]), f"{warm_up['accuracy_before']:.3f}",
                              f"{rl['accuracy_before']:.3f}", f"{rl['accuracy_after']:.3f}",
                              _change(rl), _change(warm_up))
        # seven columns wrap into nonsense at 80: a wider line reads better, even where the terminal folds it
        Console(file=console.file, width=max(console.width, 120), force_terminal=console.is_terminal).print(table)
    console.print(f"plot:   {found['plot']}", highlight=False)
    console.print(f"report: {found['report']}", highlight=False)
    console.print(f"run:    {found['train']} (curves: {', '.join(str(d) for d in found['curves'])})",
                  highlight=False)


def _change(line: dict) -> str:
    return f"{line['change']:+.3f} [{line['change_lo']:+.2f}, {line['change_hi']:+.2f}]"


def _check_settings(plan: DemoPlan) -> None:
    """Write ``demo.json``, or refuse an ``out`` whose runs were made with other settings."""
    path = plan.out / "demo.json"
    settings = json.loads(json.dumps(plan.settings(), default=str))
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except ValueError:
            recorded = {}
        differ = _differences(recorded if isinstance(recorded, dict) else {}, settings)
        if differ:
            raise ValueError(f"{plan.out} holds a demo made with other settings ({', '.join(differ)} differ); "
                             f"pass another out, or delete {plan.out} to start afresh")
        return
    plan.out.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(settings, indent=2) + "\n")
    partial.replace(path)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ (``recipe.eval.budgets``); mappings are compared key by key."""
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"
