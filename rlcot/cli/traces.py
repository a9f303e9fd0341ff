"""``rlcot generate``: budget-forced traces for a task, scored and stored, resumed where a run stopped.

The output is a one-file trace store (``rlcot.store.TraceStore``): each trace is a
``rlcot.records.ScoredTrace`` line, scored by the task's scorer under the default
scheme, keyed by everything that decides it. The store does the resuming (keys already
there are not redone), the locking, the torn-tail repair, and refuses a file whose
traces were made with other settings (model and weights, task, budget, sampling, seed,
protocol, backend, dtype: one file, one run) with a line naming each one that differs.
``rlcot score --input FILE`` scores the file again under another scheme or verifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..files import check_output
from ..jsonl import describe_skipped
from .common import _fail, _progress, _task_options, _write_run_info, command, console, errors

GENERATED_ROWS = 4  # rows `rlcot generate` makes of a generated task (arith, chain, ...) without --n


@command()
def generate(
    out: Path = typer.Option(..., help="JSONL file of scored traces (rlcot.records.ScoredTrace lines); an existing "
                                       "one is resumed"),
    model: str = typer.Option("smollm2-135m", help="built-in name, local directory or hub id"),
    task: str = typer.Option("arith", help="arith, chain, gsm8k, sudoku, crossword, jsonl:PATH, or "
                                           "hf:NAME, hf:NAME@SPLIT, hf:NAME:CONFIG@SPLIT (a Hugging Face dataset: "
                                           "hub id, save_to_disk directory, parquet/JSON/CSV file)"),
    data: Optional[str] = typer.Option(None, help="JSONL file for file-backed tasks (gsm8k: default the shipped "
                                                "test split, --task-arg split=train for train)"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable: unanswerable=0.2, size=9, "
                                                "difficulty=hard; a file's columns: question_field=problem, "
                                                "answer_field, id_field"),
    n: Optional[int] = typer.Option(None, help="number of task rows (default: every row of a file-backed task: "
                                               f"jsonl, hf, gsm8k; {GENERATED_ROWS} of a generated one)"),
    samples: int = typer.Option(1, help="samples per row; sample j of row i draws with a seed from (seed, id, j)"),
    budget: Optional[int] = typer.Option(None, help="thinking-token cap (none: think until done)"),
    min_thinking: int = typer.Option(0, help="force 'Wait' while thinking is shorter than this"),
    max_answer_tokens: Optional[int] = typer.Option(None, help="bound on the answer (default: the task's)"),
    temperature: float = typer.Option(0.0, help="0 is greedy"),
    top_p: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="task rows (row i is built from seed + i) and sampling"),
    backend: str = typer.Option("hf", help="hf, vllm, or openai (running servers: --base-url)"),
    dtype: str = typer.Option("auto", help="auto (bf16 where the device runs it fast, else fp32), fp32, bf16, fp16"),
    batch_size: int = typer.Option(64),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, ... (default: cuda if available)"),
    overwrite: bool = typer.Option(False, help="start afresh instead of resuming --out"),
    base_url: list[str] = typer.Option([], help="--backend openai: a server's /v1 URL, e.g. http://localhost:8000/v1; "
                                                "repeatable (the servers share the requests)"),
    api_key_env: Optional[str] = typer.Option(None, help="environment variable holding the servers' API key "
                                                         "(default: OPENAI_API_KEY where set; never stored)"),
    max_in_flight: int = typer.Option(64, help="--backend openai: requests in flight over all servers"),
    tokenizer_from: Optional[str] = typer.Option(None, "--tokenizer", help="--backend openai: the served model's "
                                                 "tokenizer, a directory or hub id (default: --model)"),
    chat_template_kwarg: list[str] = typer.Option([], help="chat template option KEY=VALUE, repeatable: "
                                                           "enable_thinking=false (Qwen3)"),
) -> None:
    """Generate budget-forced reasoning traces for a task, score them, and store them as JSONL."""
    from dataclasses import replace

    from ..dtypes import default_device, resolve_dtype
    from ..generation import BACKENDS, Budget
    from ..generation.base import SamplingConfig, check_prompt_lengths, context_length, forced_spans
    from ..generation.openai import served_fingerprint
    from ..models import check_model, fingerprint
    from ..records import CompletionRow, Scorer
    from ..row_checks import check_rows
    from ..store import TraceStore, check_settings, content_key
    from ..tasks import get_task
    from ..thinking import ThinkingProtocol

    try:
        chosen = get_task(task, data=data, **_task_options(task_arg))
        forcing = Budget(max_thinking_tokens=budget, min_thinking_tokens=min_thinking,
                         max_answer_tokens=max_answer_tokens or chosen.max_answer_tokens)
        sampling = SamplingConfig(temperature=temperature, top_p=top_p)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if (backend == "openai") != bool(base_url):
            raise ValueError("--backend openai needs --base-url http://HOST:PORT/v1" if not base_url else
                             f"--base-url {base_url[0]} only applies to --backend openai")
        if samples < 1:
            raise ValueError(f"--samples {samples} must be >= 1")
        if samples > 1 and sampling.greedy:
            raise ValueError(f"--samples {samples} with greedy decoding gives {samples} copies of one trace; "
                             "set --temperature above 0")
        check_output(out, "file")
        device = device or default_device()
        store = TraceStore(out)
        before = [] if overwrite else store.stored([])
        recorded = next((t.dtype for t in before if t.dtype), None)
        if dtype == "auto" and backend == "hf" and recorded:  # resuming: the probe, a timing, may tip otherwise
            choice = replace(resolve_dtype(recorded, device),
                             reason=f"auto: {recorded}, as the traces already in {out}")
        else:
            choice = resolve_dtype(dtype, device) if backend == "hf" else None
        protocol = ThinkingProtocol(chat_template_kwargs=_task_options(
            chat_template_kwarg, "--chat-template-kwarg", "enable_thinking=false"))
        rows = chosen.rows(n if n is not None or chosen.file_backed else GENERATED_ROWS, seed=seed)
        check_rows(chosen, rows, protocol)
        if backend == "hf":
            check_model(model)  # a missing or broken directory: said now, not after the out file is made
        # one file, one run: what every trace stores, and what the traces already in --out must match
        weights = served_fingerprint(model) if backend == "openai" else fingerprint(model)
        settings = {"model": model, "weights": weights, "task": chosen.spec(), "budget": budget,
                    "min_thinking_tokens": min_thinking, "max_answer_tokens": forcing.max_answer_tokens,
                    "temperature": temperature, "top_p": top_p, "sweep_seed": seed, "protocol": protocol.to_dict(),
                    "backend": backend, "dtype": _dtype_name(choice, backend, dtype), "scheme": "default"}
        check_settings(out, before, settings, OVERWRITE)  # read-only: a refused run leaves the file as it was
    except ValueError as err:
        _fail(str(err))
    # one writer: a second run would append every trace again
    with store.writing("rlcot generate", settings, fix="pass another --out, or --overwrite to start afresh",
                       settings_fix=OVERWRITE, fresh=overwrite) as writer:
        keys = {(row["id"], j): content_key({"row": row, "sample": j, **settings}) for row in rows
                for j in range(samples)}
        pending = [(row, j) for row in rows for j in range(samples) if keys[row["id"], j] not in writer.done]
        if writer.skipped:
            errors.print(f"[yellow]note:[/yellow] {describe_skipped(writer.skipped)} (the traces they held count "
                         "as missing)", highlight=False)
        if not pending:
            console.print(f"{out}: all {len(rows) * samples} traces already done")
            return
        server = dict(base_urls=base_url, api_key_env=api_key_env, max_in_flight=max_in_flight,
                      tokenizer=tokenizer_from) if backend == "openai" else None
        generator, tokenizer = _load_generator(backend, model, device, batch_size, protocol, choice, server)
        requests = {(r.request_id, r.sample): r for r in chosen.requests(rows, tokenizer, protocol, seed, samples)}
        check_prompt_lengths(list(requests.values()), context_length(generator))
        _write_run_info(out, settings, dtype_reason=choice.reason if choice else None,  # the URLs, never a key
                        servers=server and {"base_urls": base_url, "api_key_env": api_key_env})
        scorer = Scorer(chosen, "default", protocol)
        done = len(rows) * samples - len(pending)
        with _progress() as bar:
            job = bar.add_task(f"generating ({done} resumed)", total=len(pending))
            # Chunks are stored as they finish: an interrupted run loses at most one chunk.
            for start in range(0, len(pending), batch_size):
                chunk = pending[start : start + batch_size]
                traces = generator.generate([requests[row["id"], j] for row, j in chunk], sampling, forcing,
                                            progress=lambda k: bar.advance(job, k))
                records = scorer.score_many([CompletionRow(row, t.completion, t.prompt, j, budget)
                                             for (row, j), t in zip(chunk, traces)], traces)
                writer.append([record.with_context(key=keys[row["id"], j], mode="generate",
                                                   forced_spans=forced_spans(trace, tokenizer), **settings)
                               for (row, j), trace, record in zip(chunk, traces, records)])
    console.print(f"wrote {len(pending)} traces to {out}")


OVERWRITE = " (or --overwrite to start afresh)"


def _dtype_name(choice, backend: str, dtype: str) -> str:
    """The dtype as traces record it: ``float32`` (hf, resolved), ``vllm:auto`` (vLLM decides)."""
    return str(choice.dtype).replace("torch.", "") if choice is not None else f"{backend}:{dtype}"


def _load_generator(backend: str, model: str, device: Optional[str], batch_size: int, protocol, dtype_choice=None,
                    server: Optional[dict] = None):
    from ..generation import get_generator

    try:
        if backend == "openai":
            from ..models import load_tokenizer

            options = dict(server)
            tokenizer, generation_config = load_tokenizer(options.pop("tokenizer") or model)
            generator = get_generator("openai", model, tokenizer, protocol, generation_config=generation_config,
                                      **options)
            return generator, generator.tokenizer
        if backend == "vllm":
            generator = get_generator("vllm", model, protocol=protocol)
            return generator, generator.tokenizer
        from ..models import load_policy

        dtype = dtype_choice.dtype if dtype_choice is not None else "auto"
        policy, tokenizer = load_policy(model, device=device, dtype=dtype)
        return get_generator("hf", policy, tokenizer, protocol, batch_size=batch_size), tokenizer
    except (ValueError, ImportError, RuntimeError) as err:
        _fail(str(err))
