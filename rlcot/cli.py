"""The ``rlcot`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


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


@app.command()
def models() -> None:
    """List the built-in models: parameters, licence, where the weights come from, cache state."""
    from .models import BUILTIN_MODELS, DEFAULT_MODEL, cached_path, is_cached

    table = Table(title="built-in models")
    for column in ("name", "parameters", "licence", "weights from", "cached"):
        table.add_column(column)
    for spec in BUILTIN_MODELS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_MODEL else "")
        cached = str(cached_path(spec.name)) if is_cached(spec.name) else "no (converted on first load, ~30 s)"
        table.add_row(name, f"{spec.parameters / 1e6:.0f}M", spec.licence, spec.source(), cached)
    console.print(table)


@app.command()
def generate(
    out: Path = typer.Option(..., help="JSONL file of traces; an existing one is resumed"),
    model: str = typer.Option("smollm2-135m", help="built-in name, local directory or hub id"),
    task: str = typer.Option("arith", help="arith, gsm8k, sudoku, crossword, or jsonl:PATH"),
    data: Optional[str] = typer.Option(None, help="JSONL file for file-backed tasks (gsm8k)"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable: unanswerable=0.2, size=9, "
                                                "difficulty=hard"),
    n: int = typer.Option(4, help="number of task rows"),
    budget: Optional[int] = typer.Option(None, help="thinking-token cap (none: think until done)"),
    min_thinking: int = typer.Option(0, help="force 'Wait' while thinking is shorter than this"),
    max_answer_tokens: Optional[int] = typer.Option(None, help="bound on the answer (default: the task's)"),
    temperature: float = typer.Option(0.0, help="0 is greedy"),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="task rows and sampling: row i uses seed + i"),
    backend: str = typer.Option("hf", help="hf or vllm"),
    batch_size: int = typer.Option(64),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
    overwrite: bool = typer.Option(False, help="start afresh instead of resuming --out"),
) -> None:
    """Generate budget-forced reasoning traces for a task and write them as JSONL."""
    from .generation import Budget
    from .generation import BACKENDS
    from .generation.base import SamplingConfig
    from .tasks import get_task

    try:
        chosen = get_task(task, data=data, **_task_options(task_arg))
        forcing = Budget(max_thinking_tokens=budget, min_thinking_tokens=min_thinking,
                         max_answer_tokens=max_answer_tokens or chosen.max_answer_tokens)
        sampling = SamplingConfig(temperature=temperature, top_p=top_p)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        rows = chosen.rows(n, seed=seed)
    except ValueError as err:
        _fail(str(err))
    done = _resume(out, overwrite)
    todo = [row for row in rows if row["id"] not in done]
    if not todo:
        console.print(f"{out}: all {len(rows)} rows already done")
        return
    generator, tokenizer, protocol = _load_generator(backend, model, device, batch_size)
    requests = chosen.requests(rows, tokenizer, protocol, seed=seed)
    pending = [(row, req) for row, req in zip(rows, requests) if row["id"] not in done]
    _write_run_info(out, dict(command="generate", model=model, task=task, data=data, task_args=task_arg, n=n,
                              budget=forcing.__dict__, sampling=sampling.__dict__, seed=seed, backend=backend))
    with _progress() as bar, out.open("a") as sink:
        job = bar.add_task(f"generating ({len(done)} resumed)", total=len(pending))
        # Chunks are appended as they finish: an interrupted run loses at most one chunk.
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            traces = generator.generate([req for _, req in chunk], sampling, forcing,
                                        progress=lambda k: bar.advance(job, k))
            for (row, _), trace in zip(chunk, traces):
                sink.write(json.dumps({"row": row, **trace.to_dict()}) + "\n")
            sink.flush()
    console.print(f"wrote {len(pending)} traces to {out}")


@app.command()
def demo(
    n: int = typer.Option(4, help="arith problems"),
    budgets: str = typer.Option("0,16,64", help="comma-separated thinking budgets"),
    model: str = typer.Option("smollm2-135m"),
) -> None:
    """Budget-forced generation on the default model: one run at the largest budget, forked below it."""
    from .generation import Budget, sweep
    from .generation.base import SamplingConfig
    from .tasks import get_task

    try:
        caps = sorted({int(b) for b in budgets.split(",")})
    except ValueError:
        _fail(f"--budgets {budgets!r} is not a comma-separated list of integers; e.g. 0,16,64")
    if caps[0] < 0:
        _fail(f"--budgets {budgets!r} has a negative budget; budgets count thinking tokens, 0 or more")
    task = get_task("arith")
    rows = task.rows(n, seed=0)
    with console.status(f"loading {model}"):
        generator, tokenizer, protocol = _load_generator("hf", model, "cpu", 64)
    requests = task.requests(rows, tokenizer, protocol)
    with _progress() as bar:
        job = bar.add_task(f"thinking up to {caps[-1]} tokens, forking at {caps[:-1]}", total=len(requests) * len(caps))
        traces = sweep(generator, requests, caps, SamplingConfig(), Budget(max_answer_tokens=16),
                       progress=lambda k: bar.advance(job, k))
        bar.update(job, completed=len(requests) * len(caps))
    table = Table(title=f"{model}: answers by thinking budget (greedy)")
    table.add_column("question", max_width=48)
    table.add_column("gold")
    for cap in caps:
        table.add_column(f"B={cap}", max_width=22)
    for i, row in enumerate(rows):
        cells = [_answer_cell(traces[cap][i]) for cap in caps]
        table.add_row(row["question"], row["answer"], *cells)
    console.print(table)
    console.print("cell: answer text after thinking, then [dim](thinking tokens, how thinking ended)[/dim]")


@app.command()
def score(
    input: Path = typer.Option(..., "--input", help="JSONL: rows with 'completion' and the example's fields, "
                                                    "or traces from `rlcot generate`"),
    out: Path = typer.Option(..., help="JSONL: each row with its verdict and score"),
    verifier: str = typer.Option(..., help="math, sudoku, crossword, a plugin name, or module.path:attr"),
    scheme: str = typer.Option("default", help="default (hedge/abstain), binary, or a YAML file of HedgeScheme"),
) -> None:
    """Score completions with a verifier; bad rows go to OUT.rejects.jsonl with their line numbers."""
    from verifiers import get_verifier

    from .tasks import read_jsonl

    try:
        judge = get_verifier(verifier)
        rewards = _load_scheme(scheme)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    if not input.is_file():
        _fail(f"--input {str(input)!r} does not exist; pass a JSONL file of completions")
    rejects_path = out.with_name(out.name + ".rejects.jsonl")
    counts: dict[str, int] = {}
    hedged = total = rejected = 0
    score_sum = 0.0
    with out.open("w") as sink, rejects_path.open("w") as rejects:
        for number, row, error in read_jsonl(input, required=("completion",)):
            verdict = None
            if error is None:
                example = row.get("row", row)  # traces from `rlcot generate` nest the task row
                try:
                    verdict = judge.verify(row["completion"], example)
                except (ValueError, TypeError, KeyError) as err:
                    error = f"{err.__class__.__name__}: {err}"
            if verdict is None:
                rejected += 1
                errors.print(f"{input}:{number}: {error}; written to {rejects_path.name}")
                rejects.write(json.dumps({"line": number, "error": error}) + "\n")
                continue
            points = rewards.score(verdict)
            sink.write(json.dumps({**row, "verdict": verdict.to_dict(), "score": points}) + "\n")
            counts[verdict.outcome] = counts.get(verdict.outcome, 0) + 1
            hedged += verdict.hedged
            total += 1
            score_sum += points
    _print_score_summary(counts, total, hedged, score_sum, rejected, out)


def _load_scheme(scheme: str):
    from verifiers import BINARY, HedgeScheme

    if scheme == "default":
        return HedgeScheme()
    if scheme == "binary":
        return BINARY
    path = Path(scheme)
    if not path.is_file():
        raise ValueError(f"--scheme {scheme!r} is not default, binary or an existing YAML file")
    import yaml

    values = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(values) - set(HedgeScheme.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path}: unknown scheme field(s) {', '.join(unknown)}; "
                         f"use {', '.join(HedgeScheme.__dataclass_fields__)}")
    return HedgeScheme(**values)


def _print_score_summary(counts: dict, total: int, hedged: int, score_sum: float, rejected: int, out: Path) -> None:
    table = Table(title=f"scored {total} rows -> {out}")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for outcome in ("correct", "wrong", "abstain", "unparsed"):
        count = counts.get(outcome, 0)
        table.add_row(outcome, str(count), f"{count / total:.1%}" if total else "-")
    console.print(table)
    if total:
        console.print(f"hedge rate {hedged / total:.1%} | mean score {score_sum / total:+.3f}")
    if rejected:
        console.print(f"[yellow]{rejected} rejected row(s)[/yellow] in {out.name}.rejects.jsonl")


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


def _answer_cell(trace) -> str:
    answer = (trace.answer or "").strip().replace("The final answer is ", "")
    return f"{answer[-16:]} [dim]({trace.thinking_tokens}, {trace.finish_reason})[/dim]"


def _load_generator(backend: str, model: str, device: Optional[str], batch_size: int):
    from .generation import get_generator
    from .thinking import ThinkingProtocol

    protocol = ThinkingProtocol()
    try:
        if backend == "vllm":
            generator = get_generator("vllm", model, protocol=protocol)
            return generator, generator.tokenizer, protocol
        from .models import load_policy

        policy, tokenizer = load_policy(model, device=device)
        return get_generator("hf", policy, tokenizer, protocol, batch_size=batch_size), tokenizer, protocol
    except (ValueError, ImportError, RuntimeError) as err:
        _fail(str(err))


def _resume(out: Path, overwrite: bool) -> set:
    """Row ids already in ``out``; a torn last line (killed mid-write) is dropped."""
    if overwrite or not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
        return set()
    done, kept = set(), []
    for number, line in enumerate(out.read_text().splitlines(), 1):
        try:
            done.add(json.loads(line)["row"]["id"])
            kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            errors.print(f"{out}:{number}: not a trace line; dropped (use --overwrite to start afresh)")
    out.write_text("".join(line + "\n" for line in kept))
    return done


def _write_run_info(out: Path, config: dict) -> None:
    from .runinfo import run_info

    out.with_name(out.name + ".run.json").write_text(json.dumps(run_info(config, argv=sys.argv), indent=2) + "\n")


if __name__ == "__main__":
    app()
