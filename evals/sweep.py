"""Inference-time compute sweeps: every (model, row, sample, budget) traced, scored and stored once.

A sweep asks how accuracy grows with the tokens a model may think (s1, Muennighoff et
al. 2025, arXiv:2501.19393) and the samples it may draw. For each model (a checkpoint
directory counts as one model per checkpoint: ``rlcot.evals.sweep_spec``) it generates
each (row, sample) once at the largest cap and gets every smaller cap by forking
(``rlcot.generation.sweep``); s1's "Wait" extensions (``extend`` budgets: think at least
and at most B tokens) change the thinking itself, so each runs as its own generation.
So does a ``stated`` budget: the prompt states B ("Think for at most B tokens.",
``rlcot.tasks.BUDGET_SENTENCE``, as a recipe with ``thinking.state_cap`` trains on) and
forcing steps in only at ``STATED_SLACK * B``, so the model is asked, not forced. Its
traces are stored at budget B, mode "stated", and their thinking may run past B (up to
the slack); s1's Control (``rlcot.evals.series.s1_numbers``: the share within B) then
measures how well the model obeys. Twice B leaves room to see by how much a model
overruns while still bounding the cost of one that never stops.
Every trace is scored by the one scorer (``rlcot.records.Scorer``), and the gold answer's
log-probability is measured beside it: a continuous metric, since accuracy curves that
look emergent are often smooth in one (Schaeffer et al. 2023, "Are emergent abilities of
large language models a mirage?", arXiv:2304.15004). It is ``log p(gold | prompt, thinking
at B, delimiter, cue)``, the gold continuation (``Task.gold_continuation``: ``42}`` after
``\\boxed{``) teacher-forced on a twin of each budget's forked cache by the hf generator,
so it costs ~20 fed tokens per budget and no prefill.

This module is the run: it resolves the dtype, the settings and the prompts' system
message and chat template options (a training run's own: ``sweep_spec.sweep_protocol``),
refuses a directory whose rows were swept otherwise, and writes only the keys that are
missing, a (row, sample) at a time; how traces are keyed, stored, read back and rescored is ``rlcot.store``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from rlcot.generation.base import forced_spans

from rlcot.store import Shard, TraceStore, check_settings, content_key, write_run_info

from .progress import ProgressSink
from .sweep_spec import ModelRef, SweepSpec, expand_models, sweep_protocol

STATED_SLACK = 2  # a stated budget B is forced only at STATED_SLACK * B thinking tokens (module docstring)


@dataclass
class SweepReport:
    """What a sweep call did: traces written and skipped, tokens decoded, time."""

    written: int = 0
    skipped: int = 0
    tokens: int = 0  # tokens the model decoded (its own, forks' answers included)
    seconds: float = 0.0
    generate_s: float = 0.0  # of which generating
    score_s: float = 0.0  # verifying and scoring
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Pass:
    """One generation pass: the cap-only sweep (mode 'cap'), one 'Wait'-extended budget or one stated budget."""

    mode: str
    budgets: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.mode + ":" + ",".join(map(str, self.budgets))


def run_sweep(spec: SweepSpec, out_dir: Path, shard: Shard = Shard(), progress: ProgressSink | None = None,
              loader: Callable | None = None, step: int | None = None, run_dir: str | None = None) -> SweepReport:
    """Generate, score and store every missing row of ``spec`` in ``out_dir`` (this shard's share).

    ``step`` and ``run_dir`` say which training step of which run a ``loader``'s
    in-memory model is (a trainer's eval curve), so its traces plot over training.

    Everything that needs no model is checked before anything is written in ``out_dir``:
    the spec, the task's rows, the models' names, the settings of the traces already there
    (``check_settings``), and that no other run writes this shard (``rlcot.jsonl.exclusive``).
    """
    from rlcot.jsonl import describe_skipped
    from rlcot.generation.openai import served_fingerprint
    from rlcot.models import fingerprint
    from rlcot.records import resolve_scheme
    from rlcot.row_checks import usable_rows
    from rlcot.tasks import get_task

    progress = progress or ProgressSink()
    out_dir = Path(out_dir)
    task = get_task(spec.task, data=spec.data, **spec.task_args)
    limit = spec.row_limit(task)  # None: every row of a file-backed task
    rows = task.rows(None if limit is None else spec.skip + limit, seed=spec.seed)[spec.skip :]
    refs = expand_models(spec.models)
    protocol, protocol_notes = sweep_protocol(spec, refs)  # a trained model is asked as it was trained
    # a row that cannot be scored (a gold that cannot be read) is left out and named now, not after generating
    rows, left_out = usable_rows(task, rows, protocol)
    store = TraceStore(out_dir, shard)
    before = store.stored([])  # read once before the lock: the dtype and the settings check use it
    dtype = resolve_sweep_dtype(spec, before)
    # what every trace stores of these (_with_context), and what the traces already in out_dir must match
    settings = {"task": task.spec(), "temperature": spec.temperature, "top_p": spec.top_p, "sweep_seed": spec.seed,
                "protocol": protocol.to_dict(), "max_answer_tokens": spec.max_answer_tokens or task.max_answer_tokens,
                "backend": spec.backend, "dtype": dtype.name, "scheme": resolve_scheme(spec.scheme)[0]}
    if loader is None and spec.backend == "hf":  # a missing or broken model directory: said before any work
        from rlcot.models import check_model

        for ref in refs:
            check_model(ref.path)
            if rows:
                _check_template(task, rows[0], ref.path, protocol)
    check_settings(out_dir, before, settings)  # read-only: a refused run leaves no trace
    report = SweepReport(notes=protocol_notes + [f"left out, cannot be scored: {line}" for line in left_out])
    progress.note(f"{spec.task}: {len(rows) + len(left_out)} rows"
                  + (" (all of them)" if limit is None else f" (--limit {limit})")
                  + (f" after the first {spec.skip}" if spec.skip else "")
                  + (f"; {len(left_out)} left out as they cannot be scored (listed at the end), {len(rows)} swept"
                     if left_out else ""))
    with store.writing("rlcot sweep", settings) as writer:
        if writer.skipped:
            report.notes.append(f"{describe_skipped(writer.skipped)} (the traces they held count as missing)")
        started = time.perf_counter()
        write_run_info(out_dir, shard, {**asdict(spec), "task_spec": task.spec(), "rows": len(rows),
                                        "rows_left_out": left_out})
        for ref in refs:
            if step is not None:
                ref = replace(ref, step=step, run_dir=run_dir)
            weights = served_fingerprint(ref.path) if spec.backend == "openai" else fingerprint(ref.path)
            context = _ModelContext(spec, ref, task, protocol, weights, dtype.name)
            _sweep_model(context, dtype, rows, shard, writer, loader, progress, report)
        report.seconds = time.perf_counter() - started
    return report


def _check_template(task, row: dict, path: str, protocol) -> None:
    """A chat template that refuses the protocol's conversation (Gemma 2: no system role) is said before any write.

    Only a local model's (a built-in name, a directory): its tokenizer loads in a fraction of
    a second, while a hub id's would be a download; an adapter directory without tokenizer
    files is left to the load, which names what is missing.
    """
    from rlcot.builtin_models import BUILTIN_MODELS
    from rlcot.models import load_tokenizer, local_model_dir

    if path not in BUILTIN_MODELS and local_model_dir(path) is None:
        return
    try:
        tokenizer, _ = load_tokenizer(path)
    except ValueError:
        return
    task.prompt(row, tokenizer, protocol)


def _sweep_model(context, dtype, rows, shard, writer, loader, progress, report) -> None:
    """One model's missing traces: counted, then generated (its weights loaded only if some are missing)."""
    spec, ref = context.spec, context.ref
    todo = _missing(context, rows, writer.done, shard)
    report.models.append(ref.label)
    owned = sum(shard.owns(context.unit_key(row, s)) for row in rows for s in range(spec.samples))
    report.skipped += owned * sum(len(p.budgets) for p in context.passes) - sum(map(len, todo.values()))
    if not todo:
        progress.note(f"{ref.label}: every trace already done")
        return
    generator, tokenizer = (loader or _load)(spec, ref, context.protocol, dtype)
    model = getattr(generator, "model", None)  # hf: the module; vLLM: no parameter count here
    context.parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
    _run_model(context, generator, tokenizer, rows, todo, writer, progress, report)


@dataclass
class _ModelContext:
    spec: SweepSpec
    ref: ModelRef
    task: Any
    protocol: Any
    weights: str
    dtype: str
    parameters: int | None = None

    @property
    def passes(self) -> list[_Pass]:
        out = []
        if self.spec.budgets:
            out.append(_Pass("cap", tuple(sorted(set(self.spec.budgets)))))
        out += [_Pass("extend", (b,)) for b in sorted(set(self.spec.extend))]
        out += [_Pass("stated", (b,)) for b in sorted(set(self.spec.stated))]
        return out

    @property
    def max_answer_tokens(self) -> int:
        return self.spec.max_answer_tokens or self.task.max_answer_tokens

    def unit_key(self, row: dict, sample: int) -> str:
        spec = self.spec
        return content_key({
            "weights": self.weights, "task": self.task.spec(), "row": row, "sample": sample, "seed": spec.seed,
            "sampling": [spec.temperature, spec.top_p], "protocol": self.protocol.to_dict(),
            "max_answer_tokens": self.max_answer_tokens, "backend": spec.backend, "dtype": self.dtype,
        })

    def key(self, unit: str, mode: str, budget: int) -> str:
        return content_key({"unit": unit, "mode": mode, "budget": budget})


def _missing(context: _ModelContext, rows: list[dict], done: set[str], shard: Shard
             ) -> dict[tuple[int, int, str], list[int]]:
    """``{(row index, sample, mode): [budgets whose key is missing]}`` for this shard's units."""
    todo = {}
    for i, row in enumerate(rows):
        for sample in range(context.spec.samples):
            unit = context.unit_key(row, sample)
            if not shard.owns(unit):
                continue
            for run in context.passes:
                missing = [b for b in run.budgets if context.key(unit, run.mode, b) not in done]
                if missing:
                    todo[i, sample, run.name] = missing
    return todo


def _run_model(context, generator, tokenizer, rows, todo, writer, progress, report) -> None:
    from rlcot.generation import Budget, sweep
    from rlcot.generation.base import SamplingConfig, check_prompt_lengths, context_length
    from rlcot.records import Scorer

    spec = context.spec
    rows_by_id = {row["id"]: row for row in rows}
    sampling = SamplingConfig(temperature=spec.temperature, top_p=spec.top_p)
    scorer = Scorer(context.task, spec.scheme, context.protocol)
    if spec.gold_logprob and spec.backend != "hf":
        report.notes.append("the gold log-probability is measured by the hf backend only; not measured")

    def requests_for(stated: int | None) -> dict:
        """Every (row id, sample)'s request; ``stated``: its prompt states that budget."""
        made = {(r.request_id, r.sample): r for r in context.task.requests(
            rows, tokenizer, context.protocol, spec.seed, spec.samples, stated_budget=stated)}
        check_prompt_lengths(list(made.values()), context_length(generator))
        if spec.gold_logprob:
            made = {key: _with_gold(request, context.task, rows_by_id, tokenizer) for key, request in made.items()}
        return made

    plain = requests_for(None)
    for run in context.passes:
        units = [(i, s) for (i, s, name) in todo if name == run.name]
        if not units:
            continue
        total = sum(len(todo[i, s, run.name]) for i, s in units)
        what = {"cap": f"budgets {list(run.budgets)}", "extend": f"extend to {run.budgets[-1]}",
                "stated": f"stated {run.budgets[-1]}"}[run.mode]
        progress.start(f"{context.ref.label}: {what}", total)
        top = max(run.budgets)
        requests = requests_for(top) if run.mode == "stated" else plain
        budget = Budget(max_thinking_tokens=STATED_SLACK * top if run.mode == "stated" else top,
                        max_answer_tokens=context.max_answer_tokens,
                        min_thinking_tokens=top if run.mode == "extend" else 0)
        # Two batches of requests per call, so the generator can refill slots as sequences finish;
        # traces are stored after each call, so a kill loses at most the call in flight.
        chunk = 2 * (spec.max_in_flight if spec.backend == "openai" else spec.batch_size)
        written = 0
        for start in range(0, len(units), chunk):
            part = units[start : start + chunk]
            wanted = {b for i, s in part for b in todo[i, s, run.name]} | {top}
            reqs = [requests[rows[i]["id"], s] for i, s in part]
            began = time.perf_counter()
            if run.mode == "cap":
                traces = sweep(generator, reqs, sorted(wanted), sampling, budget, progress.step)
            else:  # 'Wait' and a stated budget change the thinking itself: no forks
                traces = {top: generator.generate(reqs, sampling, budget, progress.step)}
            report.generate_s += time.perf_counter() - began
            for unit in _score_units(context, scorer, rows, part, run, todo, traces, tokenizer, report):
                stored = writer.append(unit)  # a (row, sample) at a time: a kill loses at most a unit
                written += stored
                report.written += stored
            tokens = sum(t.thinking_tokens + t.answer_tokens for t in traces[top])
            tokens += sum(t.answer_tokens for b, ts in traces.items() if b != top for t in ts)
            report.tokens += tokens
            progress.written(written, tokens)


def _score_units(context, scorer, rows, part, run, todo, traces, tokenizer, report) -> list[list]:
    """The traces to store, grouped by (row, sample) unit: scored, with their context and forced spans."""
    from rlcot.records import CompletionRow

    items, where = [], []
    for j, (i, s) in enumerate(part):
        for b in todo[i, s, run.name]:
            trace = traces[b][j]
            items.append(CompletionRow(rows[i], trace.completion, trace.prompt, s, b))
            where.append((j, b, trace))
    began = time.perf_counter()
    records = scorer.score_many(items, [trace for _, _, trace in where])
    report.score_s += time.perf_counter() - began
    by_unit: dict[int, list] = {}
    for (j, b, trace), record in zip(where, records):
        i, s = part[j]
        unit = context.unit_key(rows[i], s)
        by_unit.setdefault(j, []).append(_with_context(context, unit, run.mode, b, record, tokenizer))
    return list(by_unit.values())


def _with_gold(request, task, rows_by_id, tokenizer):
    """The request with the gold continuation to teacher-force after the cue (none where the task has none)."""
    text = task.gold_continuation(rows_by_id[request.request_id])
    return request if text is None else replace(request, gold_ids=tokenizer.encode(text, add_special_tokens=False))


def _with_context(context, unit, mode, budget, record, tokenizer):
    """The scored trace as stored: where it comes from and the settings it was made under."""
    spec, ref = context.spec, context.ref
    return record.with_context(
        key=context.key(unit, mode, budget), unit=unit, mode=mode, model=ref.label, model_path=ref.path,
        weights=context.weights, step=ref.step, run_dir=ref.run_dir, parameters=context.parameters,
        task=context.task.spec(), temperature=spec.temperature, top_p=spec.top_p, dtype=context.dtype,
        backend=spec.backend, protocol=context.protocol.to_dict(), forced_spans=forced_spans(record.trace, tokenizer),
        sweep_seed=spec.seed, max_answer_tokens=context.max_answer_tokens)


@dataclass(frozen=True)
class ResolvedDtype:
    name: str  # part of every row's key
    choice: Any = None  # rlcot.models.DtypeChoice (hf), None (vLLM decides)
    reason: str = ""


def resolve_sweep_dtype(spec: SweepSpec, stored: Sequence = ()) -> ResolvedDtype:
    """The dtype traces are generated in, resolved before any model loads (keys depend on it).

    ``auto`` in a directory that already holds traces takes their dtype: the CPU probe is
    a timing, and a busy machine can tip it the other way between two runs of one sweep.
    """
    if spec.backend in ("vllm", "openai"):  # the engine or the server decides
        return ResolvedDtype(f"{spec.backend}:{spec.dtype}")
    from rlcot.dtypes import default_device, resolve_dtype

    earlier = next((row.dtype for row in stored if (row.backend or "hf") == "hf" and row.dtype), None)
    if spec.dtype == "auto" and earlier is not None:
        choice = resolve_dtype(earlier)
        return ResolvedDtype(earlier, choice, f"auto: {earlier}, as the rows already in the directory")
    choice = resolve_dtype(spec.dtype, spec.device or default_device())
    return ResolvedDtype(str(choice.dtype).replace("torch.", ""), choice, choice.reason)


def model_loader(model, tokenizer) -> Callable:
    """A ``run_sweep`` loader for a model already in memory (a trainer's policy, a test's tiny model)."""

    def load(spec: SweepSpec, ref: ModelRef, protocol, dtype: ResolvedDtype):
        from rlcot.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, protocol, batch_size=spec.batch_size), tokenizer

    return load


def _load(spec: SweepSpec, ref: ModelRef, protocol, dtype: ResolvedDtype):
    """``(generator, tokenizer)`` for one model."""
    from rlcot.generation import get_generator
    from rlcot.builtin_models import BUILTIN_MODELS, ensure_builtin_cached
    from rlcot.dtypes import default_device
    from rlcot.models import load_policy, load_tokenizer

    if spec.backend == "vllm":
        path = str(ensure_builtin_cached(ref.path)) if ref.path in BUILTIN_MODELS else ref.path
        options = dict(spec.vllm_options)
        if spec.dtype != "auto":
            options.setdefault("dtype", spec.dtype)
        generator = get_generator("vllm", path, protocol=protocol, **options)
        return generator, generator.tokenizer
    if spec.backend == "openai":
        tokenizer, generation_config = load_tokenizer(spec.tokenizer or ref.path)
        generator = get_generator("openai", ref.path, tokenizer, protocol, generation_config=generation_config,
                                  base_urls=spec.base_urls,
                                  api_key_env=spec.api_key_env, max_in_flight=spec.max_in_flight,
                                  **spec.server_options)
        return generator, generator.tokenizer
    model, tokenizer = load_policy(ref.path, spec.device or default_device(), dtype.choice)
    generator = get_generator("hf", model, tokenizer, protocol, batch_size=spec.batch_size)
    return generator, tokenizer
