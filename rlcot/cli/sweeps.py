"""``rlcot sweep``, ``rlcot plot`` and ``rlcot report``: the commands over sweep directories.

``sweep`` writes a run directory, ``plot`` and ``report`` read one or several; all three
print the same headline table of accuracy by thinking budget (``_print_headline``). The
work itself is in ``rlcot.evals``, imported inside the commands so that ``rlcot --help``
does not load it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..files import check_output
from ..jsonl import DamagedLinesWarning, describe_skipped
from .common import _fail, _task_options, command, console, errors


@command()
def sweep(
    spec_file: Optional[Path] = typer.Argument(None, help="YAML sweep spec (keys as the flags); flags override it"),
    out: Path = typer.Option(..., help="run directory; an existing one is resumed (only missing rows are done)"),
    model: list[str] = typer.Option([], help="model name or directory, repeatable; a training run's directory "
                                             "counts as one model per checkpoint (RUN@last: its final weights, "
                                             "RUN@N: step N)"),
    task: Optional[str] = typer.Option(None, help="arith (default), chain, gsm8k, sudoku, crossword, jsonl:PATH, or "
                                                  "hf:NAME, hf:NAME@SPLIT, hf:NAME:CONFIG@SPLIT (a Hugging Face "
                                                  "dataset: hub id, save_to_disk directory, parquet/JSON/CSV file)"),
    data: Optional[str] = typer.Option(None, help="JSONL file of a file-backed task (gsm8k: default the shipped "
                                                  "test split)"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable: unanswerable=0.2, size=4; a "
                                                "file's columns: question_field=problem, answer_field, id_field"),
    budgets: Optional[str] = typer.Option(None, help="thinking caps, e.g. 0,16,32,64,128,256 (default); "
                                                     "one run at the largest, the rest by forking"),
    extend: Optional[str] = typer.Option(None, help="s1 'Wait' budgets, e.g. 64,128: think at least and at most B "
                                                    "tokens; one run each"),
    stated: Optional[str] = typer.Option(None, help="budgets the prompt states, e.g. 32,64,128 ('Think for at most B "
                                                    "tokens.'), forced only at 2B: how well the model obeys (s1's "
                                                    "Control); one run each"),
    samples: Optional[int] = typer.Option(None, help="samples per row (default 1; >1 needs --temperature)"),
    temperature: Optional[float] = typer.Option(None, help="0 (default) is greedy"),
    top_p: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None, help="task rows and sampling seeds (default 0)"),
    backend: Optional[str] = typer.Option(None, help="hf (default), vllm, or openai (running servers: --base-url)"),
    dtype: Optional[str] = typer.Option(None, help="auto (default), fp32, bf16, fp16"),
    limit: Optional[int] = typer.Option(None, help="task rows (default: every row of a file-backed task: jsonl, "
                                                   "hf, gsm8k; 64 of a generated one: arith, chain, sudoku, ...)"),
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
    base_url: list[str] = typer.Option([], help="--backend openai: a server's /v1 URL, e.g. http://localhost:8000/v1; "
                                                "repeatable (the servers share the requests)"),
    api_key_env: Optional[str] = typer.Option(None, help="environment variable holding the servers' API key "
                                                         "(default: OPENAI_API_KEY where set; never stored)"),
    max_in_flight: Optional[int] = typer.Option(None, help="--backend openai: requests in flight over all servers "
                                                           "(default 64)"),
    tokenizer: Optional[str] = typer.Option(None, help="--backend openai: the served model's tokenizer, a directory "
                                                       "or hub id (default: --model)"),
    server_arg: list[str] = typer.Option([], help="--backend openai option KEY=VALUE, repeatable: token_ids=auto|on|"
                                                  "off, retries=5, backoff=0.5, timeout=600"),
    system_prompt: Optional[str] = typer.Option(None, help="the prompts' system message ('' for an empty one; "
                                                           "default: the one a swept training run trained with, "
                                                           "else the chat template's)"),
    shard: Optional[str] = typer.Option(None, help="i/n: do only this shard's rows (n jobs, one file each; "
                                                   "readers merge them)"),
    chat_template_kwarg: list[str] = typer.Option([], help="chat template option KEY=VALUE, repeatable: "
                                                           "enable_thinking=false (Qwen3); default: the ones a swept "
                                                           "training run trained with"),
) -> None:
    """Sweep thinking budgets and samples: trace, score and store every (model, row, sample, budget) once."""
    from rlcot.store import Shard, load_traces
    from rlcot.evals.sweep_spec import SweepSpec

    flags = dict(models=model or None, task=task, data=data, task_args=_task_options(task_arg) or None,
                 budgets=budgets, extend=extend, stated=stated, samples=samples, temperature=temperature, top_p=top_p,
                 seed=seed, backend=backend, dtype=dtype, limit=limit, skip=skip, batch_size=batch_size,
                 max_answer_tokens=max_answer_tokens, gold_logprob=gold_logprob, scheme=scheme, device=device,
                 vllm_options=_task_options(vllm_arg) or None, system_prompt=system_prompt,
                 base_urls=tuple(base_url) or None, api_key_env=api_key_env, max_in_flight=max_in_flight,
                 tokenizer=tokenizer, server_options=_task_options(server_arg, "--server-arg", "retries=3") or None,
                 chat_template_kwargs=_task_options(chat_template_kwarg, "--chat-template-kwarg",
                                                    "enable_thinking=false") or None)
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
    console.print(f"{out}: {report.written} traces written, {report.skipped} already there"
                  + (f", {report.tokens / report.seconds:.0f} tokens/s" if report.tokens else ""))
    _print_headline(load_traces(out, skipped=[]), spec.scheme, out)  # damaged lines: in the notes above


@command()
def plot(
    run_dirs: list[Path] = typer.Argument(..., help="sweep directories; several are overlaid (before/after training)"),
    out: Optional[Path] = typer.Option(None, help="where the figures go (default: RUN_DIR/plots of the first)"),
    scheme: str = typer.Option("default", help="which scoring to plot: the sweep's own or a `rlcot score RUN_DIR` one"),
    fit: bool = typer.Option(False, "--fit", help="fit a sigmoid in log tokens to each accuracy curve (and a power "
                                                  "law to the gold log-probability) and draw it"),
    seed: int = typer.Option(0, help="bootstrap seed for the confidence intervals"),
) -> None:
    """Plot sweeps: accuracy vs thinking tokens with CIs, pass@k/maj@k, risk-coverage, think longer or sample more
    (accuracy vs tokens per problem), training steps; PNG, SVG, CSV."""
    from rlcot.evals.analysis import plot_runs
    from rlcot.evals.series import label_runs
    from rlcot.store import load_traces

    traces = []
    try:
        for run_dir in run_dirs:
            if not run_dir.is_dir():
                raise ValueError(f"{str(run_dir)!r} is not a directory; pass the --out of `rlcot sweep`")
        check_output(out or run_dirs[0] / "plots", "dir")
        skipped = []
        loaded = [(run_dir, load_traces(run_dir, scheme, skipped=skipped)) for run_dir in run_dirs]
        traces = [trace for run in label_runs(loaded) for trace in run]  # a curve per model, named once
        if skipped:  # damaged lines before the end of a file: never dropped without a word
            errors.print(f"[yellow]warning:[/yellow] {describe_skipped(skipped)}", highlight=False)
        summary = plot_runs(traces, out or run_dirs[0] / "plots", scheme=scheme, fit=fit, seed=seed)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    _print_headline(traces, scheme, run_dirs[0], plotted=False)
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
    for label, by_metric in summary["compute"].items():  # think longer or sample more (rlcot.evals.compute)
        for metric, found in by_metric.items():
            console.print(f"{label}, {metric} per tokens generated: {found['says']}", highlight=False, markup=False)
    for note in summary["notes"]:  # a model's name is the user's text: never read as markup
        errors.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
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


def _run_sweep(spec, out: Path, part):
    from rlcot.evals.progress import SweepBar
    from rlcot.evals.sweep import run_sweep

    try:
        with SweepBar(console) as bar:  # stopped before the error prints
            return run_sweep(spec, out, part, progress=bar)
    except (ValueError, ImportError) as err:
        _fail(str(err))


def _print_headline(traces: list, scheme: str, out: Path, plotted: bool = True) -> None:
    from rlcot.evals.analysis import headline


    from rlcot.evals.series import series_of

    sizes = ", ".join(sorted({f"{len(s.problems)} problems x {s.samples} samples" for s in series_of(traces)}))
    table = Table(title=f"{out}: accuracy by thinking budget ({scheme} scoring; {sizes})", box=box.SIMPLE_HEAD,
                  caption="think: mean thinking tokens spent; cap: share capped; 95% CI: paired bootstrap by problem",
                  caption_justify="left")
    lines = headline(traces)
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
