"""Inference-time compute sweeps: every (model, row, sample, budget) traced, scored and stored once.

A sweep asks how accuracy grows with the tokens a model may think (s1, Muennighoff et
al. 2025, arXiv:2501.19393) and the samples it may draw. For each model (a checkpoint
directory counts as one model per checkpoint) it generates each (row, sample) once at
the largest cap and gets every smaller cap by forking (``rlcot.generation.sweep``);
s1's "Wait" extensions (``extend`` budgets: think at least and at most B tokens) change
the thinking itself, so each runs as its own generation. Every trace is scored by the
one scorer (``rlcot.records.Scorer``), and the gold answer's log-probability is measured
beside it: a continuous metric, since accuracy curves that look emergent are often
smooth in one (Schaeffer et al. 2023, "Are emergent abilities of large language models
a mirage?", arXiv:2304.15004). It is ``log p(gold | prompt, thinking at B, delimiter,
cue)``, the gold continuation (``Task.gold_continuation``: ``42}`` after ``\\boxed{``)
teacher-forced on a twin of each budget's forked cache by the hf generator, so it
costs ~20 fed tokens per budget and no prefill.

Storage: one JSON line per (model, row, sample, budget), in ``DIR/rows.jsonl`` or, for
``shard i/n``, ``DIR/rows.shard-i-of-n.jsonl``. A line's ``key`` hashes everything that
decides it: the model's weights (a hash of its files), the task spec and row, the
sample and its seed, the budget and its mode, sampling, the thinking protocol, the
forcing settings, backend and dtype. So re-running a command does only the keys that
are missing. A directory holds rows of one setting (``SETTINGS``: task, sampling, seed,
protocol, answer tokens, backend, dtype, scheme), since its readers draw one curve per
model: a run whose settings differ from the rows already there is refused before it
writes anything, while more models, budgets, rows or samples extend it. One writer per
shard file at a time (``rlcot.jsonl.exclusive`` on ``rows.jsonl.lock``): a second run
into the same directory stops at once instead of doing every row twice. Lines are
appended a (row, sample) at a time in one ``write`` of whole lines, then flushed and
fsynced; a kill can leave only a torn last line, which the next run drops and redoes.
Readers (``load_rows``) merge every shard file of a directory and keep the first line
of each key; a line that is not a sweep row (``ROW_FIELDS``) anywhere but the torn tail
is damage, skipped and reported to the caller (``rlcot.jsonl.SkippedLine``).

Sharding (``--shard i/n``) splits the (model, row, sample) units by a hash of their
key, so n jobs on any scheduler each write their own file, and every reader merges
them. Re-scoring (``rescore``) writes ``DIR/scores.NAME.jsonl`` beside the rows, keyed
the same way, without regenerating (Inspect AI's ``inspect score``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rlcot.generation.base import forced_spans
from rlcot.runinfo import (checkpoints, has_final_weights, is_training_run, run_without_weights, saved_weights,
                           split_run_pick)

ROWS_GLOB = "rows*.jsonl"


# ------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep. ``rlcot sweep SPEC.yaml`` reads these fields; flags override them."""

    models: tuple[str, ...] = ("smollm2-135m",)  # names, directories, or a training run's output directory
    task: str = "arith"
    data: str | None = None  # the JSONL file of a file-backed task (gsm8k)
    task_args: dict[str, Any] = field(default_factory=dict, hash=False)  # task options: unanswerable, size, ...
    budgets: tuple[int, ...] = (0, 16, 32, 64, 128, 256)  # thinking caps; one run at the largest, forks below
    extend: tuple[int, ...] = ()  # s1 "Wait" budgets: think at least and at most B tokens, one run each
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    backend: str = "hf"
    dtype: str = "auto"
    limit: int = 64  # task rows
    skip: int = 0  # start after this many rows (e.g. the rows a training run trained on)
    max_answer_tokens: int | None = None  # default: the task's
    batch_size: int = 64
    gold_logprob: bool = True  # the continuous metric beside accuracy (hf backend)
    scheme: str = "default"
    device: str | None = None
    vllm_options: dict[str, Any] = field(default_factory=dict, hash=False)  # e.g. tensor_parallel_size: 4

    def __post_init__(self):
        for name in ("samples", "limit", "skip", "batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} is not a whole number; e.g. --{name.replace('_', '-')} 4")
        if self.max_answer_tokens is not None and (isinstance(self.max_answer_tokens, bool) or not isinstance(
                self.max_answer_tokens, int) or self.max_answer_tokens < 1):
            raise ValueError(f"max_answer_tokens={self.max_answer_tokens!r} is not a whole number >= 1; "
                             "e.g. --max-answer-tokens 32, or leave it out for the task's own")
        if not _is_number(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature={self.temperature!r} is not a finite number >= 0; "
                             "e.g. --temperature 0 (greedy) or 0.7")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:  # NaN fails both comparisons
            raise ValueError(f"top_p={self.top_p!r} is not in (0, 1]; e.g. --top-p 0.95, or 1 to keep every token")
        if not self.models:
            raise ValueError("no models to sweep; pass --model NAME (repeatable) or list them under 'models:'")
        if not self.budgets and not self.extend:
            raise ValueError("no budgets; pass --budgets 0,16,32,64 (or --extend 64,128)")
        bad = [b for b in (*self.budgets, *self.extend) if isinstance(b, bool) or not isinstance(b, int) or b < 0]
        if bad:
            raise ValueError(f"budgets {bad} are not whole numbers of thinking tokens >= 0; e.g. --budgets 0,16,64")
        if self.samples < 1:
            raise ValueError(f"samples={self.samples} must be >= 1")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples={self.samples} with greedy decoding gives {self.samples} copies of one trace; "
                             "set --temperature above 0 (e.g. 0.7)")
        if self.limit < 1:
            raise ValueError(f"limit={self.limit} must be >= 1 task rows")
        if self.skip < 0:
            raise ValueError(f"skip={self.skip} must be >= 0 rows")
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend {self.backend!r} is not hf or vllm")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")

    @classmethod
    def from_mapping(cls, values: dict, source: str = "the spec") -> "SweepSpec":
        """Build from a YAML mapping: unknown keys get a did-you-mean, lists become tuples."""
        import difflib

        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(known))}"
                raise ValueError(f"{source}: unknown key {key!r}; {hint}")
        values = dict(values)
        if isinstance(values.get("models"), str):
            values["models"] = [values["models"]]
        for key in ("models", "budgets", "extend"):
            if key in values:
                values[key] = tuple(parse_budgets(values[key]) if key != "models" else values[key])
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> "SweepSpec":
        import yaml

        from rlcot.files import read_text

        text = read_text(path, "sweep spec")
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: cannot read the sweep spec ({err.__class__.__name__}); "
                             "write one 'key: value' per line") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a sweep spec is a mapping of keys (models, task, budgets, ...)")
        return cls.from_mapping({**values, **overrides}, source=str(path))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_budgets(value) -> list[int]:
    """``"0,16,32"``, ``[0, 16, 32]`` or ``16`` -> ``[0, 16, 32]``; a clear error otherwise."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        items = [part.strip() for part in str(value).split(",") if part.strip()]
    try:
        return [int(item) for item in items]
    except (TypeError, ValueError):
        raise ValueError(f"budgets {value!r} are not comma-separated whole numbers; e.g. 0,16,32,64") from None


# ------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelRef:
    """One model a sweep runs: a built-in name, a directory, or one checkpoint of a run."""

    label: str  # what plots and tables call it
    path: str  # what load_policy (or vLLM) is given
    step: int | None = None  # the training step of a checkpoint
    run_dir: str | None = None  # the training run it belongs to (its trainer_state.json has the LR schedule)


def expand_models(names: Iterable[str]) -> list[ModelRef]:
    """Each name as a model; a training run's directory as one model per ``checkpoint-N`` (and its final one).

    ``RUN_DIR@last`` picks the run's final weights alone and ``RUN_DIR@N`` its step N;
    on a directory with neither checkpoints nor final weights, either is a ``ValueError``.
    Any other ``@`` (``org/model@main``, where no run directory is named) is part of the name.
    """
    refs = []
    for name in names:
        picked = split_run_pick(name)  # RUN@last, RUN@N; a ValueError where RUN saved nothing yet
        if picked:
            refs.append(_pick_step(*picked))
            continue
        path = Path(name).expanduser()
        if is_training_run(path) and not checkpoints(path) and not has_final_weights(path):
            raise run_without_weights(path, name)
        if not checkpoints(path):
            refs.append(ModelRef(label=path.name if path.is_dir() else name, path=name))
            continue
        refs += _run_steps(path)
    return refs


def _run_steps(path: Path) -> list[ModelRef]:
    """A training run's models by step: every kept ``checkpoint-N``, then its final weights (``saved_weights``)."""
    return [ModelRef(label=path.name if step is None else f"{path.name}@{step}", path=str(where), step=step,
                     run_dir=str(path)) for step, where in saved_weights(path)]


def _pick_step(path: Path, pick: str) -> ModelRef:
    refs = _run_steps(path)
    if not refs:
        raise run_without_weights(path, f"{path}@{pick}")
    if pick == "last":
        return refs[-1]
    chosen = [ref for ref in refs if pick.isdigit() and ref.step == int(pick)]
    if not chosen:
        raise ValueError(f"{path}@{pick}: the run has steps {', '.join(str(r.step) for r in refs)}; "
                         f"pick one of them or {path}@last")
    return chosen[0]


# ------------------------------------------------------------------ storage


def content_key(parts: dict) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls()
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
            raise ValueError(f"--shard {text!r} is not i/n with 0 <= i < n; e.g. --shard 0/4 ... --shard 3/4")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def filename(self) -> str:
        return "rows.jsonl" if self.count == 1 else f"rows.shard-{self.index}-of-{self.count}.jsonl"

    def owns(self, unit_key: str) -> bool:
        return int(unit_key[:12], 16) % self.count == self.index


class RowFile:
    """One shard's append-only file of sweep rows."""

    def __init__(self, path: Path):
        self.path = path

    def repair(self) -> int:
        """Drop a torn last line (a write cut by a kill); a bad line before the end is an error. Returns lines kept."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            return 0
        from rlcot.jsonl import repair_tail

        rows = repair_tail(self.path, _is_sweep_row, what="a sweep row", fix="repair or delete the file and rerun")
        return len(rows)

    def append(self, rows: Sequence[dict]) -> None:
        """Whole lines in one write, then fsync: a kill leaves at most a torn tail, never a gap."""
        if not rows:
            return
        payload = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as err:  # write and fsync name no file (a full disk): say which
            if err.filename is not None:
                raise
            raise OSError(err.errno, err.strerror, str(self.path)) from err
        finally:
            os.close(fd)


def row_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob(ROWS_GLOB) if p.is_file())


def load_rows(run_dir: Path, scheme: str | None = None, skipped: list | None = None) -> list[dict]:
    """Every row of a sweep directory, shards merged, each key once (the first written).

    ``scheme`` picks a scoring: the sweep's own, or one written by ``rescore``
    (``scores.NAME.jsonl``); its verdict and score replace the row's. Damaged lines
    (anything but a torn last line that is not a sweep row, ``ROW_FIELDS``) are skipped
    and handed to the caller as ``rlcot.jsonl.SkippedLine``: appended to ``skipped``, or,
    where it is None, warned as one ``rlcot.jsonl.DamagedLinesWarning``.
    """
    from rlcot.jsonl import describe_skipped, hand_over

    run_dir = Path(run_dir)
    files = row_files(run_dir)
    if not files:
        raise ValueError(_no_rows(run_dir))
    found: list = []
    rows, seen = [], set()
    for path in files:
        for row in _read_rows(path, found):
            if row["key"] not in seen:
                seen.add(row["key"])
                rows.append(row)
    if found and not rows:
        raise ValueError(f"{run_dir} holds no readable sweep row: {describe_skipped(found)}; "
                         "repair or delete the file(s) and rerun the sweep")
    if scheme is not None and not all(row.get("scheme") == scheme for row in rows):
        scores = _read_scores(run_dir, scheme, found)
        missing = sum(row["key"] not in scores for row in rows)
        if missing:
            raise ValueError(f"scoring {scheme!r} covers {len(rows) - missing} of {len(rows)} rows in {run_dir}; "
                             f"run `rlcot score {run_dir} --scheme {scheme}` to score the rest")
        rows = [{**row, **scores[row["key"]]} for row in rows]
    hand_over(found, skipped)
    return rows


def _no_rows(run_dir: Path) -> str:
    """Why a directory has no sweep rows, and where they are if it is a training run."""
    eval_dirs = sorted(d for d in (run_dir / "eval").glob("*") if d.is_dir() and row_files(d))
    if eval_dirs:
        return (f"{run_dir} is a training run; its eval curves are in {', '.join(str(d) for d in eval_dirs)}: "
                f"run `rlcot plot {eval_dirs[0]}` (one task), or `rlcot report {run_dir}` for the whole run")
    if is_training_run(run_dir):
        return (f"{run_dir} is a training run with no eval curves (eval/<task>/rows.jsonl) yet; run "
                f"`rlcot report {run_dir}`, or sweep its checkpoints: `rlcot sweep --model {run_dir} "
                f"--out {run_dir}-sweep`")
    return f"{run_dir} holds no sweep rows ({ROWS_GLOB}); run `rlcot sweep --out {run_dir}` first"


def scorings(run_dir: Path) -> list[str]:
    """The scorings a sweep directory holds: its own scheme(s) and every rescoring's name."""
    names = {row.get("scheme", "default") for path in row_files(run_dir) for row in _read_rows(path, [])}
    names |= {p.name[len("scores."):-len(".jsonl")] for p in Path(run_dir).glob("scores.*.jsonl")}
    return sorted(names)


# What every reader of a sweep row relies on; a line without it is damage, not a row. (A row
# carries more: "prompt" and "protocol" for rescoring, "step" for training curves.)
ROW_FIELDS = {"key": str, "model": str, "task": dict, "row_id": str, "row": dict, "sample": int, "budget": int,
              "mode": str, "completion": str, "thinking_tokens": int, "verdict": dict,
              "score": (int, float, type(None))}
SCORE_FIELDS = {"key": str, "verdict": dict, "score": (int, float, type(None)), "scheme": str}


def row_problem(row: dict, required: dict = ROW_FIELDS) -> str | None:
    """Why ``row`` is not a sweep row (a field missing or of the wrong type, a verdict without an outcome), or None."""
    missing = [name for name in required if name not in row]
    if missing:
        return f"not a sweep row: missing {', '.join(missing)}"
    for name, kind in required.items():
        if not isinstance(row[name], kind) or (kind is int and isinstance(row[name], bool)):
            return f"not a sweep row: {name} is {json.dumps(row[name], default=str)[:40]}, not {_kind_name(kind)}"
    if not isinstance(row["verdict"].get("outcome"), str):
        return "not a sweep row: its verdict has no outcome"
    return None


def _kind_name(kind) -> str:
    names = {str: "a string", int: "a whole number", dict: "an object"}
    return names.get(kind, "a number or null")


def _read_rows(path: Path, skipped: list, required: dict = ROW_FIELDS) -> Iterable[dict]:
    """Every complete sweep row of ``path``; a torn tail is skipped silently, other bad lines into ``skipped``."""
    from rlcot.jsonl import complete_rows

    return complete_rows(path, lambda row: row_problem(row, required), skipped)


def _is_sweep_row(row: dict) -> bool:
    """What the writer's repair keeps: a whole JSON object with a key (readers ask more: ``row_problem``)."""
    return isinstance(row.get("key"), str)


def _read_scores(run_dir: Path, name: str, skipped: list) -> dict[str, dict]:
    path = Path(run_dir) / f"scores.{name}.jsonl"
    if not path.is_file():
        raise ValueError(f"{run_dir} has no scoring {name!r} (it has: {', '.join(scorings(run_dir))}); "
                         f"run `rlcot score {run_dir} --scheme {name}`")
    out = {}
    for row in _read_rows(path, skipped, SCORE_FIELDS):
        out.setdefault(row["key"], {k: row[k] for k in ("verdict", "score", "scheme")})
    return out


# ------------------------------------------------------------------ one setting per directory

# The fields of a row that decide what it means; rows that differ in one belong to different curves.
# ("sweep_seed" and "max_answer_tokens" are stored from this version on; older rows are compared on the rest.)
SETTINGS = ("task", "temperature", "top_p", "sweep_seed", "protocol", "max_answer_tokens", "backend", "dtype",
            "scheme")
SETTING_NAMES = {"sweep_seed": "seed", "protocol": "thinking protocol"}


def row_settings(row: dict) -> dict:
    """The settings a row records (``SETTINGS``; a row written by an older version lacks some)."""
    return {name: row[name] for name in SETTINGS if name in row}


def settings_differences(old: dict, new: dict) -> list[str]:
    """The names of the settings recorded in both that differ."""
    return [name for name in SETTINGS if name in old and name in new and _canonical(old[name]) != _canonical(new[name])]


def describe_setting(name: str, value) -> str:
    """A setting as a person reads it: a task as ``gsm8k data=x.jsonl size=6``, numbers as they are."""
    if name == "task" and isinstance(value, dict):
        extra = {"data": value.get("data"), **(value.get("options") or {})}
        return " ".join([str(value.get("name"))] + [f"{k}={v}" for k, v in extra.items() if v is not None])
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_settings(out_dir: Path, rows: Iterable[dict], settings: dict) -> None:
    """``ValueError`` if a stored row was swept with other settings than ``settings``: its curve would pool both."""
    seen: list[dict] = []  # the distinct settings met so far: one, in a healthy directory
    for row in rows:
        stored = row_settings(row)
        if stored in seen:
            continue
        seen.append(stored)
        differences = settings_differences(stored, settings)
        if differences:
            named = "; ".join(f"{SETTING_NAMES.get(name, name)} {describe_setting(name, stored[name])} (stored) vs "
                              f"{describe_setting(name, settings[name])} (this run)" for name in differences)
            fix = (f" (to score the stored rows another way without regenerating: `rlcot score {out_dir} "
                   "--scheme SCHEME`)" if differences == ["scheme"] else "")
            raise ValueError(f"{out_dir} holds rows swept with other settings ({named}); one directory holds one "
                             "setting, or its curves would pool both: pass another --out, or rerun with the stored "
                             f"settings{fix}")


# ------------------------------------------------------------------ the run


@dataclass
class SweepReport:
    """What a sweep call did: rows written and skipped, tokens decoded, time."""

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
    """One generation pass: the cap-only sweep (mode 'cap') or one 'Wait'-extended budget."""

    mode: str
    budgets: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.mode + ":" + ",".join(map(str, self.budgets))


class ProgressSink:
    """Where a sweep reports progress; the CLI draws a bar from it. Every method may do nothing."""

    def start(self, label: str, total: int) -> None:
        """A generation pass begins: ``total`` rows to write."""

    def step(self, sequences: int) -> None:
        """The generator finished ``sequences`` more traces (forks included)."""

    def written(self, rows: int, tokens: int) -> None:
        """A chunk is stored: ``rows`` written in all so far in this pass, ``tokens`` more decoded."""

    def note(self, message: str) -> None:
        """Something the user should read."""


class SweepBar(ProgressSink):
    """A sweep's progress (``rlcot.evals.sweep.ProgressSink``) as a rich bar: rows stored, tokens/s, ETA.

    The bar is drawn from the first pass on: a sweep with nothing left to do prints its note alone.
    """

    def __init__(self, console):
        self.console, self.bar, self.job, self.started, self.tokens = console, None, None, 0.0, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def start(self, label: str, total: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.bar.start()
        self.job = self.bar.add_task(label, total=total, speed="")
        self.started, self.tokens = time.perf_counter(), 0

    def step(self, sequences: int) -> None:
        # traces finished in the generator; the count is set exactly when rows are stored
        task = self.bar.tasks[self.job]
        self.bar.update(self.job, completed=min(task.completed + sequences, task.total - 1))

    def written(self, rows: int, tokens: int) -> None:
        self.tokens += tokens
        speed = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.job, completed=rows, speed=f"{speed:,.0f} tok/s")

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)


def run_sweep(spec: SweepSpec, out_dir: Path, shard: Shard = Shard(), progress: ProgressSink | None = None,
              loader: Callable | None = None, step: int | None = None, run_dir: str | None = None) -> SweepReport:
    """Generate, score and store every missing row of ``spec`` in ``out_dir`` (this shard's share).

    ``step`` and ``run_dir`` say which training step of which run a ``loader``'s
    in-memory model is (a trainer's eval curve), so its rows plot over training.

    Everything that needs no model is checked before anything is written in ``out_dir``:
    the spec, the task's rows, the models' names, the settings of the rows already there
    (``check_settings``), and that no other run writes this shard (``rlcot.jsonl.exclusive``).
    """
    from rlcot.jsonl import describe_skipped, exclusive
    from rlcot.models import fingerprint
    from rlcot.records import check_rows, resolve_scheme
    from rlcot.tasks import get_task
    from rlcot.thinking import ThinkingProtocol

    progress = progress or ProgressSink()
    out_dir = Path(out_dir)
    task = get_task(spec.task, data=spec.data, **spec.task_args)
    rows = task.rows(spec.skip + spec.limit, seed=spec.seed)[spec.skip :]
    protocol = ThinkingProtocol()
    check_rows(task, rows, protocol)  # a row that cannot be scored is named now, not after generating
    dtype = resolve_sweep_dtype(spec, _stored_rows(out_dir, []))
    # what every row stores of these (_row_line), and what the rows already in out_dir must match
    settings = {"task": task.spec(), "temperature": spec.temperature, "top_p": spec.top_p, "sweep_seed": spec.seed,
                "protocol": asdict(protocol), "max_answer_tokens": spec.max_answer_tokens or task.max_answer_tokens,
                "backend": spec.backend, "dtype": dtype.name, "scheme": resolve_scheme(spec.scheme)[0]}
    refs = expand_models(spec.models)
    if loader is None and spec.backend == "hf":  # a missing or broken model directory: said before any work
        from rlcot.models import check_model

        for ref in refs:
            check_model(ref.path)
    check_settings(out_dir, _stored_rows(out_dir, []), settings)  # read-only: a refused run leaves no trace
    store = RowFile(out_dir / shard.filename)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = SweepReport()
    with exclusive(store.path, "rlcot sweep"):
        store.repair()
        skipped: list = []
        stored = _stored_rows(out_dir, skipped)
        check_settings(out_dir, stored, settings)  # again: another run may have written before the lock was ours
        if skipped:
            report.notes.append(f"{describe_skipped(skipped)} (the rows they held count as missing)")
        done = {row["key"] for row in stored}
        started = time.perf_counter()
        _write_run_info(out_dir, shard, spec, task)
        for ref in refs:
            if step is not None:
                ref = replace(ref, step=step, run_dir=run_dir)
            context = _ModelContext(spec, ref, task, protocol, fingerprint(ref.path), dtype.name)
            _sweep_model(context, dtype, rows, done, shard, store, loader, progress, report)
        report.seconds = time.perf_counter() - started
    return report


def _stored_rows(out_dir: Path, skipped: list) -> list[dict]:
    return [row for path in row_files(out_dir) for row in _read_rows(path, skipped)]


def _sweep_model(context, dtype, rows, done, shard, store, loader, progress, report) -> None:
    """One model's missing rows: counted, then generated (its weights loaded only if some are missing)."""
    spec, ref = context.spec, context.ref
    todo = _missing(context, rows, done, shard)
    report.models.append(ref.label)
    owned = sum(shard.owns(context.unit_key(row, s)) for row in rows for s in range(spec.samples))
    report.skipped += owned * sum(len(p.budgets) for p in context.passes) - sum(map(len, todo.values()))
    if not todo:
        progress.note(f"{ref.label}: every row already done")
        return
    generator, tokenizer = (loader or _load)(spec, ref, context.protocol, dtype)
    model = getattr(generator, "model", None)  # hf: the module; vLLM: no parameter count here
    context.parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
    _run_model(context, generator, tokenizer, rows, todo, store, done, progress, report)


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
        return out

    @property
    def max_answer_tokens(self) -> int:
        return self.spec.max_answer_tokens or self.task.max_answer_tokens

    def unit_key(self, row: dict, sample: int) -> str:
        spec = self.spec
        return content_key({
            "weights": self.weights, "task": self.task.spec(), "row": row, "sample": sample, "seed": spec.seed,
            "sampling": [spec.temperature, spec.top_p], "protocol": asdict(self.protocol),
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


def _run_model(context, generator, tokenizer, rows, todo, store, done, progress, report) -> None:
    from rlcot.generation import Budget, sweep
    from rlcot.generation.base import SamplingConfig, check_prompt_lengths, context_length
    from rlcot.records import Scorer

    spec = context.spec
    rows_by_id = {row["id"]: row for row in rows}
    sampling = SamplingConfig(temperature=spec.temperature, top_p=spec.top_p)
    scorer = Scorer(context.task, spec.scheme, context.protocol)
    requests = {(r.request_id, r.sample): r
                for r in context.task.requests(rows, tokenizer, context.protocol, spec.seed, spec.samples)}
    check_prompt_lengths(list(requests.values()), context_length(generator))
    if spec.gold_logprob:
        requests = {key: _with_gold(request, context.task, rows_by_id, tokenizer) for key, request in requests.items()}
        if spec.backend != "hf":
            report.notes.append("the gold log-probability is measured by the hf backend only; not measured")
    for run in context.passes:
        units = [(i, s) for (i, s, name) in todo if name == run.name]
        if not units:
            continue
        total = sum(len(todo[i, s, run.name]) for i, s in units)
        what = f"{context.ref.label}: " + (f"budgets {list(run.budgets)}" if run.mode == "cap"
                                           else f"extend to {run.budgets[0]}")
        progress.start(what, total)
        top = max(run.budgets)
        budget = Budget(max_thinking_tokens=top, max_answer_tokens=context.max_answer_tokens,
                        min_thinking_tokens=top if run.mode == "extend" else 0)
        # Two batches of requests per call, so the generator can refill rows as others finish;
        # rows are stored after each call, so a kill loses at most the call in flight.
        chunk = 2 * spec.batch_size
        written = 0
        for start in range(0, len(units), chunk):
            part = units[start : start + chunk]
            wanted = {b for i, s in part for b in todo[i, s, run.name]} | {top}
            reqs = [requests[rows[i]["id"], s] for i, s in part]
            began = time.perf_counter()
            if run.mode == "cap":
                traces = sweep(generator, reqs, sorted(wanted), sampling, budget, progress.step)
            else:  # 'Wait' changes the thinking itself: no forks
                traces = {top: generator.generate(reqs, sampling, budget, progress.step)}
            report.generate_s += time.perf_counter() - began
            lines = _score_unit_rows(context, scorer, rows, part, run, todo, traces, tokenizer, done, report)
            for unit_lines in lines:
                store.append(unit_lines)
                written += len(unit_lines)
            report.written += sum(map(len, lines))
            tokens = sum(t.thinking_tokens + t.answer_tokens for t in traces[top])
            tokens += sum(t.answer_tokens for b, ts in traces.items() if b != top for t in ts)
            report.tokens += tokens
            progress.written(written, tokens)


def _score_unit_rows(context, scorer, rows, part, run, todo, traces, tokenizer, done, report) -> list[list[dict]]:
    """The rows to write, grouped by (row, sample) unit: scored, with forced spans."""
    from rlcot.records import CompletionRow

    items, where = [], []
    name = run.name
    for j, (i, s) in enumerate(part):
        for b in todo[i, s, name]:
            trace = traces[b][j]
            items.append(CompletionRow(rows[i], trace.completion, trace.prompt, s, b))
            where.append((j, b, trace))
    began = time.perf_counter()
    records = scorer.score_many(items, [trace for _, _, trace in where])
    report.score_s += time.perf_counter() - began
    by_unit: dict[int, list[dict]] = {}
    for (j, b, trace), record in zip(where, records):
        i, s = part[j]
        unit = context.unit_key(rows[i], s)
        key = context.key(unit, run.mode, b)
        if key in done:
            continue
        done.add(key)
        by_unit.setdefault(j, []).append(_row_line(context, rows[i], unit, key, run.mode, b, trace, record,
                                                   tokenizer))
    return list(by_unit.values())


def _with_gold(request, task, rows_by_id, tokenizer):
    """The request with the gold continuation to teacher-force after the cue (none where the task has none)."""
    text = task.gold_continuation(rows_by_id[request.request_id])
    return request if text is None else replace(request, gold_ids=tokenizer.encode(text, add_special_tokens=False))


def _row_line(context, row, unit, key, mode, budget, trace, record, tokenizer) -> dict:
    spec = context.spec
    sampled = [lp for lp in trace.logprobs if lp is not None]
    return {
        "key": key, "unit": unit, "model": context.ref.label, "model_path": context.ref.path,
        "weights": context.weights, "step": context.ref.step,
        "run_dir": context.ref.run_dir, "parameters": context.parameters, "task": context.task.spec(),
        "row_id": str(row["id"]), "row": row, "sample": trace.sample, "seed": trace.seed,
        "budget": budget, "mode": mode, "temperature": spec.temperature, "top_p": spec.top_p,
        "dtype": context.dtype, "backend": spec.backend, "protocol": asdict(context.protocol),
        "prompt": trace.prompt, "completion": record.completion, "answer": trace.answer,
        "forced_spans": forced_spans(trace, tokenizer), "thinking_tokens": trace.thinking_tokens,
        "answer_tokens": trace.answer_tokens, "capped": trace.capped, "finish_reason": trace.finish_reason,
        "extensions": trace.extensions, "sum_logprob": float(sum(sampled)), "sampled_tokens": len(sampled),
        "gold_logprob": trace.gold_logprob, "verdict": record.verdict.to_dict(), "score": record.score,
        "scheme": record.scheme, "sweep_seed": spec.seed, "max_answer_tokens": context.max_answer_tokens,
    }


@dataclass(frozen=True)
class ResolvedDtype:
    name: str  # part of every row's key
    choice: Any = None  # rlcot.models.DtypeChoice (hf), None (vLLM decides)
    reason: str = ""


def resolve_sweep_dtype(spec: SweepSpec, stored: Sequence[dict] = ()) -> ResolvedDtype:
    """The dtype rows are generated in, resolved before any model loads (keys depend on it).

    ``auto`` in a directory that already holds rows takes their dtype: the CPU probe is
    a timing, and a busy machine can tip it the other way between two runs of one sweep.
    """
    if spec.backend == "vllm":
        return ResolvedDtype(f"vllm:{spec.dtype}")
    from rlcot.models import default_device, resolve_dtype

    earlier = next((row.get("dtype") for row in stored if row.get("backend", "hf") == "hf" and row.get("dtype")), None)
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
    from rlcot.models import BUILTIN_MODELS, default_device, ensure_builtin_cached, load_policy

    if spec.backend == "vllm":
        path = str(ensure_builtin_cached(ref.path)) if ref.path in BUILTIN_MODELS else ref.path
        options = dict(spec.vllm_options)
        if spec.dtype != "auto":
            options.setdefault("dtype", spec.dtype)
        generator = get_generator("vllm", path, protocol=protocol, **options)
        return generator, generator.tokenizer
    model, tokenizer = load_policy(ref.path, spec.device or default_device(), dtype.choice)
    generator = get_generator("hf", model, tokenizer, protocol, batch_size=spec.batch_size)
    return generator, tokenizer


def _write_run_info(out_dir: Path, shard: Shard, spec: SweepSpec, task) -> None:
    import sys

    from rlcot.runinfo import run_info

    config = {**asdict(spec), "task_spec": task.spec(), "shard": [shard.index, shard.count]}
    path = out_dir / (shard.filename + ".run.json")
    path.write_text(json.dumps(run_info(config, argv=sys.argv), indent=2, default=str) + "\n")


# ------------------------------------------------------------------ rescoring


def rescore(run_dir: Path, scheme: str = "default", verifier: str | None = None,
            verifier_options: dict | None = None, name: str | None = None) -> tuple[str, int]:
    """Score a finished sweep again (another scheme or verifier option) without regenerating.

    Writes ``DIR/scores.NAME.jsonl`` (NAME: the scheme's name, or ``name``), one line per
    row key; returns ``(NAME, rows scored)``. A second call with the same name replaces it.
    """
    from rlcot.records import CompletionRow, Scorer
    from rlcot.tasks import get_task
    from rlcot.thinking import ThinkingProtocol

    rows = load_rows(run_dir)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row["task"], row["protocol"]], sort_keys=True), []).append(row)
    lines, label = [], None
    for group in groups.values():
        task = get_task(**group[0]["task"], verifier=verifier)
        if verifier_options:
            task = replace(task, verifier_options={**task.verifier_options, **verifier_options})
        scorer = Scorer(task, scheme, ThinkingProtocol(**group[0]["protocol"]))
        label = name or scorer.scheme_name + (f"+{verifier}" if verifier else "") + (
            "+" + ",".join(f"{k}={v}" for k, v in sorted(verifier_options.items())) if verifier_options else "")
        records = scorer.score_many([CompletionRow(r["row"], r["completion"], r["prompt"], r["sample"], r["budget"])
                                     for r in group])
        lines += [{"key": r["key"], "scheme": label, "verdict": rec.verdict.to_dict(), "score": rec.score}
                  for r, rec in zip(group, records)]
    if not re.fullmatch(r"[\w.+=,-]+", label or ""):
        raise ValueError(f"scoring name {label!r} must be letters, digits and . + = , - only; pass --as NAME")
    path = Path(run_dir) / f"scores.{label}.jsonl"
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(line) + "\n" for line in lines))
    partial.replace(path)
    return label, len(lines)
