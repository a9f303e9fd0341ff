"""``make demo``: does a short GRPO run move the budget curve? Before, train, after, one plot, one page.

Five stages, in order, each writing its own directory under ``out``:

1. ``sweep-before``: the default model's budget curve (greedy, budgets 0-128) on the 64
   held-out rows of ``recipes/arith-grpo-cpu.yaml``: the rows after the ``size`` it
   trains on, swept with the spec the trainer builds for its own eval curves (the
   resolved run's ``EvalCurve`` through ``rlcot.evals.training.sweep_spec``), so
   "before" here is its step 0;
2. ``train``: the recipe, SFT warm-up included, for 10 GRPO steps instead of 20 (the
   README's table: the second ten moved nothing), with the in-training curves off
   (``tasks.0.eval_size=0``: they would repeat stages 1 and 3; the held-out split
   depends only on ``size``, so it stays where it was);
3. ``sweep-after``: the same spec on the run's final checkpoint
   (``rlcot.runinfo.final_checkpoint``). Not the run directory:
   ``expand_models`` makes that one model per kept checkpoint (the last 3), three
   sweeps where one is wanted. The checkpoint is a LoRA adapter whose config names the
   merged SFT warm-up as its base (an absolute path: the run directory is resolved
   first), and ``rlcot.models.load_policy`` merges it into that;
4. ``plots``: ``rlcot.evals.analysis.plot_runs`` on both sweeps' rows, labelled as the series
   "before training" and "after training": ``plots/accuracy.png`` has both curves;
5. ``report.html``: ``rlcot.evals.report.write_report`` on the three run directories.

Then the headline: accuracy at each budget before and after, with the paired bootstrap
CI of the change (``rlcot.evals.analysis.before_after``), and where the files are.

Resuming is each component's own mechanism, not a new one: a sweep skips rows whose
key is stored (rows are appended and fsynced a problem at a time); training resumes
from its last complete checkpoint (LoRA checkpoints every step); the plot and the page
are rebuilt only when older than the rows they read, as ``make`` decides. So Ctrl-C
loses at most the problem or the step in flight, and a second run does nothing; a run
stopped after its SFT warm-up (six minutes on 2 cores) but before the first GRPO
checkpoint resumes from the saved warmed-up model (``sft-warmup/model``), as the
trainer's ``--resume`` does, instead of warming up again. ``demo.json`` records the
settings; a second run with others is refused rather than mixed into the same curves.

Measured on a 2-core AMD EPYC (fp32): sweep before 2 min 10 s, training 16 min 44 s
(SFT warm-up 6 min, GRPO ~63 s a step), sweep after 54 s, plot and page 4 s: 20 min.
Accuracy at 128 thinking tokens went 0.156 -> 0.469 (+0.31, 95% CI +0.17 to +0.45),
as in the README's table, where the warm-up does most of it.

Every knob defaults to the real demo; tests shrink it (a tiny model, a few rows and
steps) through ``model``, ``overrides``, ``budgets`` and ``limit``. Bad input raises
``ValueError`` with one sentence naming the value and the fix.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "arith-grpo-cpu.yaml"
GRPO_STEPS = 10  # a short run: SFT warm-up ~6 min + 10 steps x ~47 s on 2 CPU cores
BEFORE, AFTER = "before training", "after training"  # the two curves' series labels


@dataclass(frozen=True)
class DemoPlan:
    """What the demo will do, resolved and checked before any model loads."""

    out: Path
    recipe_path: Path
    run: Any  # rlcot.train.resolve.ResolvedRun: the training run, demo overrides applied, resolved once
    spec: Any  # rlcot.evals.sweep_spec.SweepSpec of the "before" sweep; "after" swaps the model
    device: str | None = None

    @property
    def recipe(self):
        """The training run's recipe (``rlcot.train.recipe.Recipe``)."""
        return self.run.recipe

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    def settings(self) -> dict:
        """What decides the demo's results, as written to ``demo.json`` (paths of the run itself left out)."""
        from .train.recipe import resolved

        recipe = {k: v for k, v in resolved(self.recipe).items() if k != "output_dir"}
        sweep = {k: v for k, v in asdict(self.spec).items() if k != "device"}
        return {"recipe": recipe, "sweep": sweep}


def plan_demo(out: Path = Path("demo"), model: str | None = None, recipe: Path = RECIPE,
              overrides: Sequence[str] = (), budgets: Sequence[int] | None = None, limit: int | None = None,
              device: str | None = None) -> DemoPlan:
    """The demo's resolved run and sweep spec: the recipe < ``overrides`` (``key=value``, as ``--set``) < ``model``.

    ``budgets`` default to the recipe's ``eval.budgets`` and ``limit`` to its held-out
    ``eval_size``; the sweeps skip the ``size`` rows it trains on.
    """
    from rlcot.evals.training import sweep_spec

    from .train.recipe import load_recipe
    from .train.resolve import quiet_checkpointing_warnings, resolve_run

    out, recipe = Path(out), Path(recipe)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} is a file; pass a directory for the demo's runs, e.g. demo")
    if not recipe.is_file():
        raise ValueError(f"recipe {str(recipe)!r} does not exist; pass a YAML file such as {RECIPE}")
    base = load_recipe(recipe, [f"grpo.max_steps={GRPO_STEPS}", *overrides])
    if model is not None:
        if not str(model).strip():
            raise ValueError("model is empty; give a built-in name (smollm2-135m) or a model directory")
        base = replace(base, model=str(model))
    if len(base.tasks) != 1:
        raise ValueError(f"{recipe} trains on {len(base.tasks)} tasks; the demo sweeps one: give a one-task recipe")
    mix = base.tasks[0]
    # the in-training curves would repeat the two sweeps; eval_size=0 skips them all (step 0, warm-up, end)
    training = replace(base, tasks=(replace(mix, eval_size=0),), output_dir=str((out / "train").resolve()))
    with quiet_checkpointing_warnings():  # TRL checks the grpo: block now, before any work
        run = resolve_run(training, device, training.output_dir)
    # the trainer's own held-out curve of the task (rows after the trained ones), with the demo's budgets and limit
    greedy = next(curve for curve in run.eval_curves if curve.kind == "greedy")  # the demo's curves are greedy
    spec = sweep_spec(greedy, base.model, limit=mix.eval_size if limit is None else limit,
                      budgets=tuple(budgets if budgets is not None else base.eval.budgets), device=device)
    return DemoPlan(out=out, recipe_path=recipe, run=run, spec=spec, device=device)


def run_demo(out: Path = Path("demo"), console=None, *, model: str | None = None, recipe: Path = RECIPE,
             overrides: Sequence[str] = (), budgets: Sequence[int] | None = None, limit: int | None = None,
             device: str | None = None) -> dict:
    """Sweep, train, sweep again, plot and report into ``out``; print and return the before/after headline.

    Returns ``before_after`` (one line per budget, ``rlcot.evals.analysis.before_after``), the
    paths (``plot``, ``report``, ``sweep_before``, ``train``, ``sweep_after``) and
    ``stages``: per stage, its seconds and whether it found its work already done.
    """
    from rich.console import Console

    from .runinfo import final_checkpoint

    console = console or Console()
    plan = plan_demo(out, model, recipe, overrides, budgets, limit, device)
    _check_settings(plan)
    found: dict = {"stages": {}, "sweep_before": plan.out / "sweep-before", "train": plan.train_dir,
                   "sweep_after": plan.out / "sweep-after"}
    steps: list[tuple[str, Path, Callable[[], dict]]] = [
        ("sweep before", found["sweep_before"], lambda: _sweep(plan, plan.spec.models[0], found["sweep_before"],
                                                               console)),
        ("train", plan.train_dir, lambda: _train(plan, console)),
        ("sweep after", found["sweep_after"], lambda: _sweep(plan, str(final_checkpoint(plan.train_dir)),
                                                             found["sweep_after"], console)),
        ("plot", plan.out / "plots" / "accuracy.png", lambda: _plot(plan, console)),
        ("report", plan.out / "report.html", lambda: _report(plan, console)),
    ]
    for number, (name, where, stage) in enumerate(steps, 1):
        console.rule(f"[bold]{number}/{len(steps)} {name}[/bold] -> {where}", align="left")
        started = time.perf_counter()
        try:
            result = stage()
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted in {name}[/yellow]: everything finished is kept (sweep traces are "
                          "fsynced, training keeps its checkpoints); run the demo again to go on from here")
            raise
        result["seconds"] = time.perf_counter() - started
        done = "nothing to do" if result["skipped"] else f"done in {_duration(result['seconds'])}"
        console.print(f"{name}: {done}")
        found["stages"][name] = result
    found["plot"] = found["stages"]["plot"]["path"]
    found["report"] = found["stages"]["report"]["path"]
    found["before_after"] = _headline(plan, found, console)
    return found


# ------------------------------------------------------------------ the stages


def _sweep(plan: DemoPlan, model: str, out_dir: Path, console) -> dict:
    from rlcot.evals.progress import SweepBar
    from rlcot.evals.sweep import run_sweep

    spec = replace(plan.spec, models=(model,))
    total = spec.limit * spec.samples * len(set(spec.budgets))
    there = _traces_there(out_dir, spec)
    name = Path(model).name if Path(model).is_dir() else model
    console.print(f"{name}: {spec.limit} held-out {spec.task} rows (after the {spec.skip} trained on) at budgets "
                  f"{', '.join(map(str, spec.budgets))}; {there} of {total} traces already there", highlight=False)
    with SweepBar(console) as bar:
        report = run_sweep(spec, out_dir, progress=bar)
    return {"skipped": report.written == 0, "written": report.written, "traces": there + report.written}


def _traces_there(out_dir: Path, spec) -> int:
    """Distinct (problem, sample, budget) traces of ``spec`` already stored in ``out_dir``."""
    from rlcot.store import load_traces, trace_files

    if not trace_files(out_dir):
        return 0
    wanted = set(spec.budgets)
    return len({(r.row_id, r.sample, r.budget) for r in load_traces(out_dir)
                if r.budget in wanted and r.sample < spec.samples and r.mode == "cap"})


def _train(plan: DemoPlan, console) -> dict:
    from .runinfo import SFT_MODEL_DIR, is_saved_model, last_checkpoint
    from rlcot.evals.training import EvalCurves

    from .train.preflight import preflight
    from .train.resolve import quiet_checkpointing_warnings
    from .train.trainer import train_run

    recipe, out_dir = plan.recipe, plan.run.output_dir
    steps = recipe.grpo["max_steps"]
    what = (f"{steps} GRPO steps{' (LoRA)' if recipe.peft else ''} on {recipe.tasks[0].size} {recipe.tasks[0].name} "
            f"rows" + (f" after a {recipe.sft_warmup.get('steps', 20)}-step SFT warm-up" if recipe.sft_warmup else "")
            + f", {plan.recipe_path.name}")
    checkpoint = last_checkpoint(out_dir)
    if (out_dir / "summary.json").is_file():
        console.print(f"{what}: finished already (summary.json)", highlight=False)
        return {"skipped": True, "state": "finished"}
    if checkpoint is not None:
        state, note, resume = f"resumed from {checkpoint.name}", f"{checkpoint.name} of {steps} there, resuming", True
    elif recipe.sft_warmup is not None and is_saved_model(out_dir / SFT_MODEL_DIR):
        # the trainer's --resume starts GRPO from the saved warm-up rather than warming up again
        state, note, resume = "after the SFT warm-up", f"the SFT warm-up is done ({SFT_MODEL_DIR}), GRPO starts", True
    else:
        state, note, resume = "from the start", "nothing there yet", False
    console.print(f"{what}: {note}", highlight=False)
    with quiet_checkpointing_warnings():  # TRL's and SFT's configs use transformers 5's deprecated name
        train_run(plan.run, preflight(recipe, out_dir, resume), evals=EvalCurves)
    return {"skipped": False, "state": state}


def _labelled_traces(plan: DemoPlan) -> list:
    from rlcot.store import load_traces

    return ([row.with_context(model=BEFORE) for row in load_traces(plan.out / "sweep-before")]
            + [row.with_context(model=AFTER) for row in load_traces(plan.out / "sweep-after")])


def _plot(plan: DemoPlan, console) -> dict:
    from rlcot.evals.analysis import plot_runs
    from rlcot.store import trace_files

    plots = plan.out / "plots"
    target = plots / "accuracy.png"
    sources = trace_files(plan.out / "sweep-before") + trace_files(plan.out / "sweep-after")
    # plot_runs writes summary.json last: a plot cut off mid-way is older than it, and redone
    fresh = not _older(plots / "summary.json", sources) and target.is_file()
    console.print(f"accuracy vs thinking tokens, one curve {BEFORE} and one {AFTER}: "
                  + ("up to date with the rows" if fresh else "drawing"), highlight=False)
    if not fresh:
        plot_runs(_labelled_traces(plan), plots)
    return {"skipped": fresh, "path": target}


def _report(plan: DemoPlan, console) -> dict:
    from rlcot.store import trace_files

    target = plan.out / "report.html"
    runs = [plan.out / "sweep-before", plan.out / "sweep-after", plan.train_dir]
    sources = trace_files(runs[0]) + trace_files(runs[1]) + [plan.train_dir / name for name in
                                                         ("summary.json", "metrics.jsonl", "rollouts.jsonl")]
    fresh = not _older(target, sources)
    console.print("one HTML page of both sweeps and the training run: "
                  + ("up to date with the runs" if fresh else "writing"), highlight=False)
    if fresh:
        return {"skipped": True, "path": target}
    from rlcot.evals.report import write_report

    return {"skipped": False, "path": write_report(runs, target)}


def _older(target: Path, sources: Sequence[Path]) -> bool:
    """make's rule: ``target`` is missing or older than one of the ``sources`` that exist."""
    if not target.is_file():
        return True
    stamp = target.stat().st_mtime_ns
    return any(source.is_file() and source.stat().st_mtime_ns > stamp for source in sources)


# ------------------------------------------------------------------ what it shows


def _headline(plan: DemoPlan, found: dict, console) -> list[dict]:
    from rich import box
    from rich.table import Table

    from rlcot.evals.analysis import before_after

    lines = before_after(_labelled_traces(plan))
    if lines:
        first = lines[0]
        warm_up = plan.recipe.sft_warmup
        trained = (f"{warm_up.get('steps', 20)} SFT warm-up steps, then " if warm_up else "") \
            + f"{plan.recipe.grpo['max_steps']} GRPO steps"
        table = Table(title=f"accuracy on {first['problems']} held-out {plan.spec.task} problems, {BEFORE} vs "
                            f"{AFTER} ({trained})", box=box.SIMPLE_HEAD,
                      caption=f"change: after - before, {first['level']:.0%} paired bootstrap CI by problem",
                      caption_justify="left")
        for column in ("thinking budget", "before", "after", "change [CI]"):
            table.add_column(column, justify="right")
        for line in lines:
            table.add_row(str(line["budget"]), f"{line['accuracy_before']:.3f}", f"{line['accuracy_after']:.3f}",
                          f"{line['change']:+.3f} [{line['change_lo']:+.2f}, {line['change_hi']:+.2f}]")
        console.print(table)
    console.print(f"plot:   {found['plot']}", highlight=False)
    console.print(f"report: {found['report']}", highlight=False)
    console.print(f"runs:   {found['sweep_before']}, {found['train']}, {found['sweep_after']}", highlight=False)
    return lines


def _check_settings(plan: DemoPlan) -> None:
    """Write ``demo.json``, or refuse an ``out`` whose runs were made with other settings."""
    path = plan.out / "demo.json"
    settings = json.loads(json.dumps(plan.settings(), default=str))
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except ValueError:
            recorded = {}
        differ = [f"{part}.{key}" for part in settings for key in
                  sorted(set(settings[part]) | set(recorded.get(part, {})))
                  if settings[part].get(key) != recorded.get(part, {}).get(key)]
        if differ:
            raise ValueError(f"{plan.out} holds a demo made with other settings ({', '.join(differ)} differ); "
                             f"pass another out, or delete {plan.out} to start afresh")
        return
    plan.out.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(settings, indent=2) + "\n")
    partial.replace(path)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"
