"""The ``rlcot`` command line: generate, score, sweep, plot, train (typer, rich output)."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .jsonl import DamagedLinesWarning, describe_skipped, exclusive, read_jsonl, repair_tail
from .files import atomic_write_text, check_output

HELP = ("rlcot: reinforcement learning on chains of thought, and the compute a model spends thinking.\n\n"
        "Generate budget-forced reasoning traces, score them with verifiers, sweep thinking budgets "
        "and plot accuracy against thinking tokens, and train a policy with GRPO from a recipe.")
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


def _click_style_metavar(param, ctx) -> str | None:
    """TEXT, INT, FLOAT, PATH, a|b (choices), with "..." when repeatable; nothing for a flag.

    typer 0.29 shows its annotation types instead (``<bool>`` beside every flag,
    ``<list[str]>``), which read like internals; click's metavars read like a tool's.
    """
    if param.metavar is not None:
        return param.metavar
    if getattr(param, "is_flag", False):
        return None
    shown = str(param.display_type(ctx) or "").strip("<>")
    repeatable = shown.startswith("list[") or param.nargs != 1
    if shown.startswith("list[") and shown.endswith("]"):
        shown = shown[len("list["):-1]
    shown = {"str": "TEXT", "int": "INT", "float": "FLOAT", "path": "PATH", "bool": "BOOL"}.get(shown, shown)
    return shown + ("..." if repeatable else "")


def _usage_name(argument) -> str:
    """RECIPE and [RUN_DIR] in the usage line, as click writes them (typer 0.29: {recipe})."""
    name = argument.display_name_raw.upper()
    return (name if argument.required else f"[{name}]") + ("..." if argument.nargs != 1 else "")


typer.core.TyperOption.display_type_rich = _click_style_metavar
typer.core.TyperArgument.display_type_rich = _click_style_metavar
typer.core.TyperArgument._usage_display_name = _usage_name
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def command(**options):
    """``app.command``, with the one place where a user's mistake becomes a line instead of a traceback.

    ``ValueError`` (our checks; ``UnicodeDecodeError`` too) and ``OSError`` (a read-only
    mount, a full disk, a file where a directory belongs: ``rlcot.files.os_error_line``)
    print one line and exit 2. A closed pipe (``rlcot score ... | head``) exits quietly.
    """

    def register(function):
        @functools.wraps(function)
        def guarded(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except BrokenPipeError:
                raise typer.Exit(141) from None
            except OSError as err:
                from .files import os_error_line

                _fail(os_error_line(err))
            except ValueError as err:
                _fail(str(err))

        return app.command(**options)(guarded)

    return register


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


@command()
def models() -> None:
    """List the built-in models: parameters, licence, where the weights come from, cache state."""
    from .builtin_models import BUILTIN_MODELS, DEFAULT_MODEL, cached_path, is_cached

    table = Table(title="built-in models")
    for column in ("name", "parameters", "licence", "weights from", "cached"):
        table.add_column(column)
    for spec in BUILTIN_MODELS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        cached = str(cached_path(spec.name)) if is_cached(spec.name) else "no (converted on first load, ~30 s)"
        table.add_row(name, f"{spec.parameters / 1e6:.0f}M", spec.licence, spec.source(), cached)
    console.print(table)


@command()
def generate(
    out: Path = typer.Option(..., help="JSONL file of completion rows; an existing one is resumed"),
    model: str = typer.Option("smollm2-135m", help="built-in name, local directory or hub id"),
    task: str = typer.Option("arith", help="arith, gsm8k, sudoku, crossword, or jsonl:PATH"),
    data: Optional[str] = typer.Option(None, help="JSONL file for file-backed tasks (gsm8k: default the shipped "
                                                "test split, --task-arg split=train for train)"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable: unanswerable=0.2, size=9, "
                                                "difficulty=hard"),
    n: int = typer.Option(4, help="number of task rows"),
    samples: int = typer.Option(1, help="samples per row; sample j of row i draws with a seed from (seed, id, j)"),
    budget: Optional[int] = typer.Option(None, help="thinking-token cap (none: think until done)"),
    min_thinking: int = typer.Option(0, help="force 'Wait' while thinking is shorter than this"),
    max_answer_tokens: Optional[int] = typer.Option(None, help="bound on the answer (default: the task's)"),
    temperature: float = typer.Option(0.0, help="0 is greedy"),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="task rows (row i is built from seed + i) and sampling"),
    backend: str = typer.Option("hf", help="hf or vllm"),
    dtype: str = typer.Option("auto", help="auto (bf16 where the device runs it fast, else fp32), fp32, bf16, fp16"),
    batch_size: int = typer.Option(64),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
    overwrite: bool = typer.Option(False, help="start afresh instead of resuming --out"),
) -> None:
    """Generate budget-forced reasoning traces for a task and write them as JSONL."""
    from dataclasses import asdict, replace

    from .generation import BACKENDS, Budget
    from .generation.base import SamplingConfig, check_prompt_lengths, context_length
    from .dtypes import default_device, resolve_dtype
    from .models import check_model
    from .records import check_rows
    from .tasks import get_task
    from .thinking import ThinkingProtocol

    try:
        chosen = get_task(task, data=data, **_task_options(task_arg))
        forcing = Budget(max_thinking_tokens=budget, min_thinking_tokens=min_thinking,
                         max_answer_tokens=max_answer_tokens or chosen.max_answer_tokens)
        sampling = SamplingConfig(temperature=temperature, top_p=top_p)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if samples < 1:
            raise ValueError(f"--samples {samples} must be >= 1")
        if samples > 1 and sampling.greedy:
            raise ValueError(f"--samples {samples} with greedy decoding gives {samples} copies of one trace; "
                             "set --temperature above 0")
        check_output(out, "file")
        device = device or default_device()
        recorded = _read_run_config(out).get("dtype") if out.is_file() and not overwrite else None
        if dtype == "auto" and backend == "hf" and recorded:  # resuming: the probe, a timing, may tip otherwise
            choice = replace(resolve_dtype(recorded.removeprefix("torch."), device),
                             reason=f"auto: {recorded}, as the traces already in {out}")
        else:
            choice = resolve_dtype(dtype, device) if backend == "hf" else None
        protocol = ThinkingProtocol()
        config = dict(model=model, task=chosen.spec(), seed=seed, budget=asdict(forcing), sampling=asdict(sampling),
                      protocol=asdict(protocol), backend=backend, dtype=str(choice.dtype) if choice else dtype)
        config_id = _config_id(config)
        rows = chosen.rows(n, seed=seed)
        check_rows(chosen, rows, protocol)
        if backend == "hf":
            check_model(model)  # a missing or broken directory: said now, not after the out file is made
    except ValueError as err:
        _fail(str(err))
    with exclusive(out, "rlcot generate"):  # one writer: a second run would append every trace again
        done = _resume(out, overwrite, config, config_id)
        pending = [(row, j) for row in rows for j in range(samples) if (str(row["id"]), j) not in done]
        if not pending:
            console.print(f"{out}: all {len(rows) * samples} traces already done")
            return
        generator, tokenizer = _load_generator(backend, model, device, batch_size, protocol, choice)
        requests = {(r.request_id, r.sample): r for r in chosen.requests(rows, tokenizer, protocol, seed, samples)}
        check_prompt_lengths(list(requests.values()), context_length(generator))
        _write_run_info(out, config, config_id=config_id, dtype_reason=choice.reason if choice else None)
        with _progress() as bar, out.open("a") as sink:
            job = bar.add_task(f"generating ({len(done)} resumed)", total=len(pending))
            # Chunks are appended as they finish: an interrupted run loses at most one chunk.
            for start in range(0, len(pending), batch_size):
                chunk = pending[start : start + batch_size]
                traces = generator.generate([requests[row["id"], j] for row, j in chunk], sampling, forcing,
                                            progress=lambda k: bar.advance(job, k))
                for (row, _), trace in zip(chunk, traces):
                    sink.write(json.dumps({"row": row, "config": config_id, **trace.to_dict()}) + "\n")
                sink.flush()
    console.print(f"wrote {len(pending)} traces to {out}")


@command()
def demo(
    out: Path = typer.Option(Path("demo"), help="where the runs, the plot and the report go"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
) -> None:
    """The whole story on the default model: sweep, a short GRPO run, sweep again, one plot, the report.

    About 20 minutes on 2 CPU cores. Run it again to go on after Ctrl-C: finished work is not redone.
    """
    from .demo import run_demo

    try:
        run_demo(out, console, device=device)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@command()
def score(
    run_dir: Optional[Path] = typer.Argument(None, help="a sweep directory to score again without regenerating; "
                                                        "the new scores sit beside the old, named by --scheme"),
    input: Optional[Path] = typer.Option(None, "--input", help="JSONL of completion rows: 'row' (the task row) and "
                                                               "'completion', as `rlcot generate` writes them"),
    out: Optional[Path] = typer.Option(None, help="JSONL: each row with its verdict, score and scheme"),
    task: Optional[str] = typer.Option(None, help="the task the rows come from (default: the one INPUT.run.json "
                                                  "names); it picks the verifier and its options"),
    data: Optional[str] = typer.Option(None, help="data file of a file-backed --task"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable"),
    verifier: Optional[str] = typer.Option(None, help="math, sudoku, crossword, a plugin name, or module.path:attr; "
                                                      "overrides the task's"),
    verifier_option: list[str] = typer.Option([], help="verifier option KEY=VALUE for RUN_DIR, repeatable: "
                                                       "lenient_percent=false"),
    scheme: str = typer.Option("default", help="default (hedge/abstain), binary, or a YAML file of HedgeScheme"),
    name: Optional[str] = typer.Option(None, "--as", help="name of RUN_DIR's new scoring (default: the scheme's, "
                                                          "plus the verifier and its options)"),
) -> None:
    """Score completions with a verifier (bad rows go to OUT.rejects.jsonl), or score a sweep directory again."""
    from dataclasses import asdict

    from .records import CompletionRow, Scorer

    if run_dir is not None and run_dir.is_file():
        if input is not None:
            _fail(f"{run_dir} is a file and --input is given too; pass the completions once, as --input {run_dir}")
        input, run_dir = run_dir, None  # `rlcot score done.jsonl --out scored.jsonl`: the file is the input
    if run_dir is not None:
        _rescore_sweep(run_dir, scheme, verifier, verifier_option, name, input or out or task or data or task_arg)
        return
    if input is None or out is None:
        _fail("pass a sweep directory (rlcot score RUN_DIR --scheme binary), or --input FILE and --out FILE")
    if not input.is_file():
        _fail(f"--input {str(input)!r} does not exist; pass a JSONL file of completion rows")
    rejects_path = out.with_name(out.name + ".rejects.jsonl")
    check_output(out, "file", inputs=[input])
    check_output(rejects_path, "file", flag="the rejects file of --out", inputs=[input])
    check_output(_run_info_path(out), "file", flag="the run info of --out", inputs=[input])
    try:
        chosen, protocol = _scoring_task(input, task, data, task_arg, verifier)
        scorer = Scorer(chosen, scheme, protocol)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    _write_run_info(out, dict(command="score", input=str(input), task=chosen.spec(), verifier=chosen.verifier,
                              scheme=scorer.scheme_name, scheme_values=asdict(scorer.scheme),
                              protocol=asdict(protocol)))
    summary = _ScoreSummary()
    # into temporary siblings, renamed over OUT at the end: an interrupted score leaves the old OUT whole
    partial, partial_rejects = (path.with_name(f".{path.name}.partial") for path in (out, rejects_path))
    with partial.open("w") as sink, partial_rejects.open("w") as rejects:
        for number, line, error in read_jsonl(input):
            record = None
            if error is None:
                try:
                    record = scorer.score_many([CompletionRow.from_dict(line)])[0]
                except (ValueError, TypeError, KeyError) as err:
                    error = f"{err.__class__.__name__}: {err}" if not isinstance(err, ValueError) else str(err)
            if record is None:
                summary.rejected += 1
                errors.print(f"{input}:{number}: {error}; written to {rejects_path.name}", highlight=False)
                rejects.write(json.dumps({"line": number, "error": error}) + "\n")
                continue
            sink.write(json.dumps({**line, "verdict": record.verdict.to_dict(), "score": record.score,
                                   "scheme": record.scheme}) + "\n")
            summary.add(record)
    partial.replace(out)
    partial_rejects.replace(rejects_path)
    summary.print(out)


@command()
def sweep(
    spec_file: Optional[Path] = typer.Argument(None, help="YAML sweep spec (keys as the flags); flags override it"),
    out: Path = typer.Option(..., help="run directory; an existing one is resumed (only missing rows are done)"),
    model: list[str] = typer.Option([], help="model name or directory, repeatable; a training run's directory "
                                             "counts as one model per checkpoint (RUN@last: its final weights, "
                                             "RUN@N: step N)"),
    task: Optional[str] = typer.Option(None, help="arith (default), gsm8k, sudoku, crossword, or jsonl:PATH"),
    data: Optional[str] = typer.Option(None, help="JSONL file of a file-backed task (gsm8k: default the shipped "
                                                  "test split)"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable: unanswerable=0.2, size=4"),
    budgets: Optional[str] = typer.Option(None, help="thinking caps, e.g. 0,16,32,64,128,256 (default); "
                                                     "one run at the largest, the rest by forking"),
    extend: Optional[str] = typer.Option(None, help="s1 'Wait' budgets, e.g. 64,128: think at least and at most B "
                                                    "tokens; one run each"),
    samples: Optional[int] = typer.Option(None, help="samples per row (default 1; >1 needs --temperature)"),
    temperature: Optional[float] = typer.Option(None, help="0 (default) is greedy"),
    top_p: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None, help="task rows and sampling seeds (default 0)"),
    backend: Optional[str] = typer.Option(None, help="hf (default) or vllm"),
    dtype: Optional[str] = typer.Option(None, help="auto (default), fp32, bf16, fp16"),
    limit: Optional[int] = typer.Option(None, help="task rows (default 64)"),
    skip: Optional[int] = typer.Option(None, help="start after this many task rows, e.g. 512 to sweep the rows "
                                                  "arith-grpo-cpu holds out (it trains on the first 512)"),
    batch_size: Optional[int] = typer.Option(None, help="rows decoded together (default 64)"),
    max_answer_tokens: Optional[int] = typer.Option(None, help="bound on the answer (default: the task's)"),
    gold_logprob: Optional[bool] = typer.Option(None, "--gold-logprob/--no-gold-logprob",
                                                help="measure log p(gold answer) after the cue at each budget "
                                                     "(default on; hf backend)"),
    scheme: Optional[str] = typer.Option(None, help="default (hedge/abstain), binary, or a YAML of HedgeScheme"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
    vllm_arg: list[str] = typer.Option([], help="vLLM engine option KEY=VALUE, repeatable: tensor_parallel_size=4"),
    shard: Optional[str] = typer.Option(None, help="i/n: do only this shard's rows (n jobs, one file each; "
                                                   "readers merge them)"),
) -> None:
    """Sweep thinking budgets and samples: trace, score and store every (model, row, sample, budget) once."""
    from rlcot.evals.store import Shard, load_rows
    from rlcot.evals.sweep_spec import SweepSpec

    flags = dict(models=model or None, task=task, data=data, task_args=_task_options(task_arg) or None,
                 budgets=budgets, extend=extend, samples=samples, temperature=temperature, top_p=top_p, seed=seed,
                 backend=backend, dtype=dtype, limit=limit, skip=skip, batch_size=batch_size,
                 max_answer_tokens=max_answer_tokens, gold_logprob=gold_logprob, scheme=scheme, device=device,
                 vllm_options=_task_options(vllm_arg) or None)
    flags = {key: value for key, value in flags.items() if value is not None}
    try:
        spec = SweepSpec.from_yaml(spec_file, **flags) if spec_file else SweepSpec.from_mapping(flags, "flags")
        part = Shard.parse(shard)
        check_output(out, "dir")
    except (ValueError, TypeError) as err:
        _fail(str(err))
    report = _run_sweep(spec, out, part)
    for note in report.notes:
        errors.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"{out}: {report.written} rows written, {report.skipped} already there"
                  + (f", {report.tokens / report.seconds:.0f} tokens/s" if report.tokens else ""))
    _print_headline(load_rows(out, skipped=[]), spec.scheme, out)  # damaged lines: in the notes above


@command()
def plot(
    run_dirs: list[Path] = typer.Argument(..., help="sweep directories; several are overlaid (before/after training)"),
    out: Optional[Path] = typer.Option(None, help="where the figures go (default: RUN_DIR/plots of the first)"),
    scheme: str = typer.Option("default", help="which scoring to plot: the sweep's own or a `rlcot score RUN_DIR` one"),
    fit: bool = typer.Option(False, "--fit", help="fit a sigmoid in log tokens to each accuracy curve (and a power "
                                                  "law to the gold log-probability) and draw it"),
    seed: int = typer.Option(0, help="bootstrap seed for the confidence intervals"),
) -> None:
    """Plot sweeps: accuracy vs thinking tokens with CIs, pass@k/maj@k, risk-coverage, training steps; PNG, SVG, CSV."""
    from rlcot.evals.analysis import label_rows, plot_runs
    from rlcot.evals.store import load_rows

    rows = []
    try:
        for run_dir in run_dirs:
            if not run_dir.is_dir():
                raise ValueError(f"{str(run_dir)!r} is not a directory; pass the --out of `rlcot sweep`")
        check_output(out or run_dirs[0] / "plots", "dir")
        skipped = []
        for run_dir in run_dirs:
            rows += label_rows(load_rows(run_dir, scheme, skipped=skipped), run_dir, len(run_dirs) > 1)
        if skipped:  # damaged lines before the end of a file: never dropped without a word
            errors.print(f"[yellow]warning:[/yellow] {describe_skipped(skipped)}", highlight=False)
        summary = plot_runs(rows, out or run_dirs[0] / "plots", scheme=scheme, fit=fit, seed=seed)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    _print_headline(rows, scheme, run_dirs[0], plotted=False)
    for label, info in summary["series"].items():
        shape, s1, last = info["shape"], info["s1"], info["calibration"][-1]
        line = f"{label}: shape {shape['label'] or '-'} ({shape['reason']})"
        line += (f"; s1 control {_num(s1['control'], '.2f')}, scaling {_num(s1['scaling'], '.2g')} per token, "
                 f"performance {_num(s1['performance'], '.3f')}")
        if "ece" in last:
            line += (f"; at B={last['budget']}: ECE {_num(last['ece'], '.3f')}, Brier {_num(last['brier'], '.3f')}, "
                     f"AURC {_num(last['aurc'], '.3f')}")
        if "sigmoid" in info:
            sig = info["sigmoid"]
            line += (f"; sigmoid midpoint {sig['params']['midpoint_x']:.0f} tokens, ceiling "
                     f"{sig['params']['ceiling']:.2f}" if sig["converged"] else f"; sigmoid fit failed: {sig['message']}")
        console.print(line, highlight=False)
    console.print("wrote " + ", ".join(p for p in summary["files"] if p.endswith(".png")) + " (+ .svg, .csv) and "
                  + str((out or run_dirs[0] / "plots") / "summary.json"))


@command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="sweep directories and/or training runs; several are overlaid"),
    out: Optional[Path] = typer.Option(None, help="the HTML file (default: report.html in the first RUN_DIR)"),
    scheme: str = typer.Option("default", help="which scoring to show: the sweep's own or a `rlcot score RUN_DIR` one"),
    seed: int = typer.Option(0, help="bootstrap seed for the confidence intervals"),
) -> None:
    """One self-contained HTML page: headline numbers, figures, and every trace, filterable, with forcing marked."""
    from rlcot.evals.report import write_report

    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        _fail(f"--out {out} is not an .html file; the report is one HTML page: pass e.g. --out report.html")
    if out is not None or run_dirs[0].is_dir():
        check_output(out or run_dirs[0] / "report.html", "file")
    try:
        with console.status("reading the runs and drawing the figures"), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", DamagedLinesWarning)
            path = write_report(run_dirs, out, scheme=scheme, seed=seed)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    for warning in seen:  # damaged lines the readers skipped: never dropped without a word
        if issubclass(warning.category, DamagedLinesWarning):
            errors.print(f"[yellow]warning:[/yellow] {warning.message}", highlight=False)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; self-contained, open it in a browser)")


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


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
) -> None:
    """Train a policy with GRPO (TRL's GRPOTrainer) from a recipe: verifier rewards, budget-forced rollouts."""
    from .train.preflight import preflight
    from .train.recipe import load_recipe
    from .train.resolve import resolve_run

    if not recipe.is_file():
        _fail(f"recipe {str(recipe)!r} does not exist; pass a YAML file such as recipes/arith-grpo-cpu.yaml")
    try:
        chosen = load_recipe(recipe, set_)
        start = preflight(chosen, out, resume)  # reads only: the out directory, the model, LoRA targets, --resume
        run = resolve_run(chosen, device, out)  # once: TRL's config, LoRA, the rollout budget, the eval curves
    except (ValueError, TypeError) as err:
        _fail(str(err))
    for note in run.notes:
        errors.print(f"[cyan]note:[/cyan] {note}", highlight=False)
    if dry_run:
        _dry_run(run)
        return
    from rlcot.evals.training import EvalCurves

    from .train.trainer import train_run

    try:
        summary = train_run(run, start, evals=EvalCurves)
    except ValueError as err:
        _fail(str(err))
    _print_training_summary(summary)
    console.print(f"run directory: {run.output_dir} (metrics.jsonl, traces.jsonl, checkpoints, "
                  f"summary.json; eval curves: rlcot plot {run.output_dir}/eval/<task>)")


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
        table = Table(title=f"eval {task}: accuracy on {first['problems']} held-out problems, "
                            f"{first['before']} -> {first['after']}", box=box.SIMPLE_HEAD)
        for column in ("budget", "before", "after", f"change [{first['level']:.0%} CI]"):
            table.add_column(column, justify="right")
        for line in lines:
            table.add_row(str(line["budget"]), f"{line['accuracy_before']:.3f}", f"{line['accuracy_after']:.3f}",
                          f"{line['change']:+.3f} [{line['change_lo']:+.2f}, {line['change_hi']:+.2f}]")
        console.print(table)
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


def _dry_run(run) -> None:
    from transformers import AutoTokenizer

    from .builtin_models import BUILTIN_MODELS, DEFAULT_MODEL, ensure_builtin_cached
    from .train.resolve import describe
    from .train.trainer import dry_run

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


def _run_sweep(spec, out: Path, part):
    from rlcot.evals.sweep import SweepBar, run_sweep

    try:
        with SweepBar(console) as bar:  # stopped before the error prints
            return run_sweep(spec, out, part, progress=bar)
    except (ValueError, ImportError) as err:
        _fail(str(err))


def _print_headline(rows: list[dict], scheme: str, out: Path, plotted: bool = True) -> None:
    from rlcot.evals.analysis import headline


    from rlcot.evals.series import series_of

    sizes = ", ".join(sorted({f"{len(s.problems)} problems x {s.samples} samples" for s in series_of(rows)}))
    table = Table(title=f"{out}: accuracy by thinking budget ({scheme} scoring; {sizes})", box=box.SIMPLE_HEAD,
                  caption="think: mean thinking tokens spent; cap: share capped; 95% CI: paired bootstrap by problem",
                  caption_justify="left")
    lines = headline(rows)
    if not lines:
        return
    for column in lines[0]:
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column != "model")
    for line in lines:
        table.add_row(*(str(value) for value in line.values()))
    # a table this wide wraps into nonsense at 80 columns; a wider line reads better, even in a log
    Console(width=max(console.width, 120)).print(table)
    if plotted:
        console.print(f"plots: rlcot plot {out}")


def _rescore_sweep(run_dir: Path, scheme: str, verifier, verifier_option: list[str], name, stray) -> None:
    from rlcot.evals.store import rescore, scorings

    if stray:
        _fail("RUN_DIR is scored with the task its rows record; drop --input/--out/--task/--data/--task-arg")
    if not run_dir.is_dir():
        _fail(f"{str(run_dir)!r} is not a sweep directory; pass the --out of `rlcot sweep`")
    try:
        label, count = rescore(run_dir, scheme, verifier, _task_options(verifier_option), name)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    console.print(f"{run_dir}: scored {count} rows as {label!r} -> {run_dir / f'scores.{label}.jsonl'}")
    console.print(f"scorings: {', '.join(scorings(run_dir))} (choose one with `rlcot plot {run_dir} --scheme NAME`)")


def _scoring_task(input: Path, task: Optional[str], data: Optional[str], task_arg: list[str],
                  verifier: Optional[str]):
    """The task (and protocol) to score ``input`` with: --task, else the run info's, else --verifier alone."""
    from .tasks import Task, get_task
    from .thinking import ThinkingProtocol

    recorded = _read_run_config(input)
    protocol = ThinkingProtocol(**recorded["protocol"]) if "protocol" in recorded else ThinkingProtocol()
    if task is not None:
        return get_task(task, data=data, verifier=verifier, **_task_options(task_arg)), protocol
    if task_arg or data:
        raise ValueError("--data and --task-arg describe a --task; pass --task too")
    if "task" in recorded:
        return get_task(**recorded["task"], verifier=verifier), protocol
    if verifier is None:
        raise ValueError(f"{input} has no run info naming its task; pass --task (e.g. arith) or --verifier "
                         "(e.g. math, or module.path:function)")
    return Task(name="rows", description="completion rows scored by a named verifier", verifier=verifier), protocol


def _read_run_config(path: Path) -> dict:
    """The config recorded next to ``path`` by the command that wrote it (empty if none)."""
    info = _run_info_path(path)
    if not info.is_file():
        return {}
    try:
        config = json.loads(info.read_text()).get("config", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ValueError(f"{info} is not a run-info JSON object; delete it or pass --task") from None
    return config if isinstance(config, dict) else {}


class _ScoreSummary:
    def __init__(self):
        self.counts: dict[str, int] = {}
        self.total = self.hedged = self.rejected = 0
        self.score_sum = 0.0

    def add(self, record) -> None:
        self.counts[record.verdict.outcome] = self.counts.get(record.verdict.outcome, 0) + 1
        self.hedged += record.verdict.hedged
        self.total += 1
        self.score_sum += record.score

    def print(self, out: Path) -> None:
        table = Table(title=f"scored {self.total} rows -> {out}")
        table.add_column("outcome")
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        from rlcot.verifiers.base import OUTCOMES

        for outcome in OUTCOMES:
            count = self.counts.get(outcome, 0)
            table.add_row(outcome, str(count), f"{count / self.total:.1%}" if self.total else "-")
        console.print(table)
        if self.total:
            console.print(f"hedge rate {self.hedged / self.total:.1%} | mean score {self.score_sum / self.total:+.3f}")
        if self.rejected:
            console.print(f"[yellow]{self.rejected} rejected row(s)[/yellow] in {out.name}.rejects.jsonl")


def _task_options(pairs: list[str]) -> dict:
    """``["size=9", "difficulty=hard"]`` -> ``{"size": 9, "difficulty": "hard"}`` (JSON values, else strings)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--task-arg {pair!r} is not KEY=VALUE; e.g. --task-arg unanswerable=0.2")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _load_generator(backend: str, model: str, device: Optional[str], batch_size: int, protocol, dtype_choice=None):
    from .generation import get_generator

    try:
        if backend == "vllm":
            generator = get_generator("vllm", model, protocol=protocol)
            return generator, generator.tokenizer
        from .models import load_policy

        dtype = dtype_choice.dtype if dtype_choice is not None else "auto"
        policy, tokenizer = load_policy(model, device=device, dtype=dtype)
        return get_generator("hf", policy, tokenizer, protocol, batch_size=batch_size), tokenizer
    except (ValueError, ImportError, RuntimeError) as err:
        _fail(str(err))


def _config_id(config: dict) -> str:
    """A short content hash of what decides a run's traces (not how many rows it has)."""
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def _resume(out: Path, overwrite: bool, config: dict, config_id: str) -> set[tuple[str, int]]:
    """(row id, sample) pairs already in ``out``; a torn last line (killed mid-write) is dropped.

    Lines written under another configuration (model, task, budget, sampling, seed,
    protocol, backend, dtype) are refused with the settings that differ: mixing them
    would silently average two experiments.
    """
    if overwrite or not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
        return set()
    before = out.stat().st_size

    def is_completion(line: dict) -> bool:
        return isinstance(line.get("row"), dict) and "id" in line["row"] and isinstance(line.get("sample", 0), int)

    lines = repair_tail(out, is_completion, what="a completion row", fix="repair the file or pass --overwrite")
    if out.stat().st_size != before:
        errors.print(f"{out}: torn last line (an interrupted write); dropped and redone")
    done = set()
    for line in lines:
        if line.get("config") != config_id:
            recorded = _read_run_config(out)
            changed = sorted(k for k in set(config) | set(recorded) if config.get(k) != recorded.get(k)) or ["config"]
            raise ValueError(f"{out} holds traces made with other settings ({', '.join(changed)} differ); "
                             "pass another --out, or --overwrite to start afresh")
        done.add((str(line["row"]["id"]), int(line.get("sample", 0))))
    return done


def _run_info_path(out: Path) -> Path:
    return out.with_name(out.name + ".run.json")


def _write_run_info(out: Path, config: dict, **extra) -> None:
    from .runinfo import run_info

    info = {**run_info(config, argv=sys.argv), **{k: v for k, v in extra.items() if v is not None}}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(_run_info_path(out), json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    app()
