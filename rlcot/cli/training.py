"""``rlcot train``, ``rlcot demo`` and ``rlcot models``: the commands about models and training them.

``train`` runs a recipe (or, with ``--dry-run``, checks it without loading a model) and
prints the end-of-run tables; ``demo`` runs the whole story on the default model (``rlcot.demo``);
``models`` lists the built-in models. Kept apart from the sweep and trace commands
because they share nothing with them but the helpers in ``common``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .common import _fail, command, console, errors


@command()
def models() -> None:
    """List the built-in models (parameters, licence, where the weights come from, cache state), and how to use others."""
    from ..builtin_models import BUILTIN_MODELS, DEFAULT_MODEL, cached_path, is_cached

    table = Table(title="built-in models")
    for column in ("name", "parameters", "licence", "weights from", "cached"):
        table.add_column(column)
    for spec in BUILTIN_MODELS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        cached = str(cached_path(spec.name)) if is_cached(spec.name) else "no (converted on first load, ~30 s)"
        table.add_row(name, f"{spec.parameters / 1e6:.0f}M", spec.licence, spec.source(), cached)
    console.print(table)
    console.print("any other causal LM: pass its local directory (config.json, weights, tokenizer) or a hub id "
                  "(owner/name) as --model, or a recipe's model:; see \"Your own model\" in the README",
                  highlight=False)


@command()
def demo(
    out: Path = typer.Option(Path("demo"), help="where the runs, the plot and the report go"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
) -> None:
    """The whole story on chain rows: budget curves before training, after the SFT warm-up and after GRPO.

    Greedy and mean@4 curves at each point, one plot, the report, and RL's own gain per budget
    with CIs. About 30 minutes on 2 CPU cores. Run it again to go on after Ctrl-C: finished work
    is not redone.
    """
    from ..demo import run_demo

    try:
        run_demo(out, console, device=device)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@command()
def train(
    recipe: Path = typer.Argument(..., help="a recipe YAML (see recipes/)"),
    set_: list[str] = typer.Option([], "--set", help="override a recipe key, repeatable: "
                                                      "thinking.max_thinking_tokens=64, grpo.learning_rate=5e-6"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run directory's last checkpoint"),
    dry_run: bool = typer.Option(False, "--dry-run", help="resolve and print the config, build the datasets and "
                                                          "rewards, score scripted completions; load no model"),
    out: Optional[Path] = typer.Option(None, help="run directory (default: the recipe's output_dir)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
    control: Optional[str] = typer.Option(None, "--control", help="random-reward: the same run with each reward a "
                                          "coin flip of its batch mean (as --set control=random-reward)"),
) -> None:
    """Train a policy with GRPO (TRL's GRPOTrainer) from a recipe: verifier rewards, budget-forced rollouts."""
    from ..train.preflight import preflight
    from ..train.recipe import load_recipe
    from ..train.resolve import resolve_run

    if not recipe.is_file():
        _fail(f"recipe {str(recipe)!r} does not exist; pass a YAML file such as recipes/arith-grpo-cpu.yaml")
    try:
        chosen = load_recipe(recipe, [*set_, f"control={control}"] if control is not None else set_)
        start = preflight(chosen, out, resume)  # reads only: the out directory, the model, LoRA targets, --resume
        run = resolve_run(chosen, device, out)  # once: TRL's config, LoRA, the rollout budget, the eval curves
    except (ValueError, TypeError) as err:
        _fail(str(err))
    for note in run.notes:
        errors.print(f"[cyan]note:[/cyan] {note}", highlight=False)
    if dry_run:
        _dry_run(run)
        return
    from functools import partial

    from rlcot.evals.training import EvalCurves

    from ..train.trainer import train_run

    try:  # a bar per stage and a line per logged step here; the libraries' logs to the run's train.log
        summary = train_run(run, start, evals=partial(EvalCurves, console=console), console=console)
    except ValueError as err:
        _fail(str(err))
    _print_training_summary(summary)
    console.print(f"run directory: {run.output_dir} (metrics.jsonl, rollouts.jsonl, train.log, checkpoints, "
                  f"summary.json; eval curves: rlcot plot {run.output_dir}/eval/<task> and <task>-sampled)")


def _print_training_summary(summary: dict) -> None:
    """The end of a training run as tables: step rates first vs last, each eval curve before vs after."""
    window = summary.get("window", 1)
    rates = Table(title=f"training: {summary['steps']} steps; mean of the first vs the last {window} step(s)",
                  box=box.SIMPLE_HEAD)
    for column in ("", "start", "end"):
        rates.add_column(column, justify="right")
    for key in summary["start"]:
        start, end = summary["start"][key], summary["end"].get(key)
        rates.add_row(key, *("-" if v is None else f"{v:.3f}" for v in (start, end)))
    if summary["start"]:
        console.print(rates)
    for task, found in summary.get("eval", {}).items():
        lines = found["before_after"]
        if not lines:
            continue
        first = lines[0]
        for compared in (found.get("rl_gain"), lines):  # RL's own gain (from the warm-up) first, where there is one
            if compared:  # six columns wrap into nonsense at 80; a wider line reads better, even in a log
                Console(width=max(console.width, 120)).print(_change_table(task, found, compared))
        labels = list(dict.fromkeys(line["model"] for line in found["curves"]))
        if len(labels) > 2:  # the curves between (an SFT warm-up, every eval.every steps)
            every = Table(title=f"eval {task}: accuracy of every curve", box=box.SIMPLE_HEAD)
            every.add_column("budget", justify="right")
            for label in labels:
                every.add_column(label, justify="right")
            accuracy = {(line["model"], line["B"]): line["acc"] for line in found["curves"]}
            for budget in sorted({line["B"] for line in found["curves"]}):
                every.add_row(str(budget), *(accuracy.get((label, budget), "-") for label in labels))
            console.print(every)
        if "abstain_unanswerable_after" in first:
            abstain = Table(title=f"eval {task}: abstain rate, {first['before']} -> {first['after']}",
                            box=box.SIMPLE_HEAD)
            for column in ("budget", "unanswerable rows", "answerable rows"):
                abstain.add_column(column, justify="right")
            for line in lines:
                abstain.add_row(str(line["budget"]), *(
                    f"{line[f'abstain_{kind}_before']:.2f} -> {line[f'abstain_{kind}_after']:.2f}"
                    for kind in ("unanswerable", "answerable")))
            console.print(abstain)
    for warning in summary.get("warnings", []):
        errors.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def _change_table(task: str, found: dict, lines: list[dict]) -> Table:
    """One eval curve's change per budget, before -> after: accuracy and mean score, with paired CIs."""
    first = lines[0]
    what = (f"mean@{first['samples']} accuracy at T={found.get('temperature')} (what GRPO optimizes)"
            if found.get("kind") == "sampled" else "greedy accuracy")
    table = Table(title=f"eval {task}: {what} on {first['problems']} held-out problems, "
                        f"{first['before']} -> {first['after']}", box=box.SIMPLE_HEAD)
    level = f"[{first['level']:.0%} CI]"
    for column in ("budget", "before", "after", f"change {level}", "score", f"score change {level}"):
        table.add_column(column, justify="right")
    for line in lines:
        table.add_row(str(line["budget"]), f"{line['accuracy_before']:.3f}", f"{line['accuracy_after']:.3f}",
                      f"{line['change']:+.3f} [{line['change_lo']:+.2f}, {line['change_hi']:+.2f}]",
                      f"{line['score_before']:+.2f} -> {line['score_after']:+.2f}",
                      f"{line['score_change']:+.2f} [{line['score_change_lo']:+.2f}, {line['score_change_hi']:+.2f}]")
    return table


def _dry_run(run) -> None:
    from transformers import AutoTokenizer

    from ..builtin_models import BUILTIN_MODELS, DEFAULT_MODEL, ensure_builtin_cached
    from ..train.resolve import describe
    from ..train.trainer import dry_run

    chosen = run.recipe
    console.print(describe(run), highlight=False)
    path = str(ensure_builtin_cached(chosen.model)) if chosen.model in BUILTIN_MODELS else chosen.model
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except OSError:  # a hub model not downloaded here: the prompts' template differs, the rewards do not
            errors.print(f"[yellow]note:[/yellow] no local tokenizer for {chosen.model!r}; the dry run builds prompts "
                         f"with {DEFAULT_MODEL}'s", highlight=False)
            tokenizer = AutoTokenizer.from_pretrained(str(ensure_builtin_cached(DEFAULT_MODEL)))
        lines = dry_run(chosen, tokenizer)
    except (OSError, ValueError) as err:
        _fail(f"dry run: {err}")
    table = Table(title="scripted completions through the reward functions (no model loaded)", box=None)
    for column in ("task", "row", "completion", "reward", "value"):
        table.add_column(column)
    for line in lines:
        table.add_row(line["task"], str(line["row"]), line["completion"], line["reward"],
                      "None" if line["value"] is None else f"{line['value']:+.2f}")
    console.print(table)
