"""The one store of scored traces: ``rlcot generate``, sweeps and training rollouts write it, every reader reads it.

A store holds ``rlcot.records.ScoredTrace`` lines (their format is documented there),
each stored once under its content key. It is either a directory of shard files,
``DIR/rows.jsonl`` or, for ``shard i/n``, ``DIR/rows.shard-i-of-n.jsonl`` (a sweep, a
training run's eval curves), or one ``.jsonl`` file (``rlcot generate --out``, a
training run's ``rollouts.jsonl``). What it guarantees, to every writer alike:

- **One line per key.** ``content_key`` hashes everything that decides a trace (the
  weights' hash, the task spec and row, sample and seed, budget and mode, sampling,
  protocol, forcing, backend, dtype), so a rerun does only the keys that are missing,
  and readers keep the first line of each key.
- **One setting per store.** Its readers draw one curve per model, so a run whose
  settings differ from the lines already there is refused before it writes anything,
  in one line naming each setting that differs, stored vs this run (``check_settings``).
- **One writer at a time.** ``TraceStore.writing`` takes ``rlcot.jsonl.exclusive`` on
  the file it appends to: a second run into it stops at once instead of doing every
  trace twice.
- **A kill loses at most a torn tail.** Lines go out a batch at a time in one
  ``write`` of whole lines, then fsync; the next writer cuts a torn last line
  (``rlcot.jsonl.repair_tail``) and redoes it.
- **Damage is reported, never merged or guessed at.** A line that is not a stored
  trace (``rlcot.records.line_problem``) anywhere but the torn tail is skipped and
  handed to the caller (``rlcot.jsonl.SkippedLine``).

Sharding (``--shard i/n``, ``Shard``) splits a sweep's (model, row, sample) units by a
hash of their key, so n jobs on any scheduler each write their own file, and every
reader merges them. A rescoring (``rlcot.evals.rescore``) sits beside the rows as
``DIR/scores.NAME.jsonl``, keyed the same way; ``load_traces(..., scheme=NAME)`` reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .records import ScoredTrace, line_problem, verdict_from_dict, verdict_problem
from .runinfo import is_training_run

ROWS_GLOB = "rows*.jsonl"


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


class TraceStore:
    """A store of scored traces: a directory of ``rows*.jsonl`` shards, or one ``.jsonl`` file."""

    def __init__(self, path: Path, shard: Shard = Shard()):
        self.path = Path(path)
        self.single_file = self.path.suffix == ".jsonl"
        self.shard = shard

    @property
    def file(self) -> Path:
        """The file this store's writer appends to."""
        return self.path if self.single_file else self.path / self.shard.filename

    def files(self) -> list[Path]:
        """Every file a reader merges."""
        if self.single_file:
            return [self.path] if self.path.is_file() else []
        return sorted(p for p in self.path.glob(ROWS_GLOB) if p.is_file())

    def stored(self, skipped: list) -> list[ScoredTrace]:
        """Every readable line of every file, duplicates kept (none where it has none); damage into ``skipped``."""
        return [trace for path in self.files() for trace in read_traces(path, skipped)]

    def read(self, skipped: list) -> list[ScoredTrace]:
        """Every trace, files merged, each key once (the first written)."""
        out, seen = [], set()
        for trace in self.stored(skipped):
            if trace.key not in seen:
                seen.add(trace.key)
                out.append(trace)
        return out

    @contextlib.contextmanager
    def writing(self, what: str, settings: dict | None = None, fix: str = "repair or delete the file and rerun",
                settings_fix: str = "", fresh: bool = False) -> Iterator["StoreWriter"]:
        """Be this store's one writer: lock, cut a torn tail, check the settings against every stored line.

        Yields a ``StoreWriter``: the keys already stored (``done``), the damaged lines
        skipped, and ``append``. ``what`` names the writer in the lock's error; ``fix`` the
        way out of a file with a complete line that has no key (damage, or another format),
        ``settings_fix`` the writer's own way out of other settings (``check_settings``);
        ``fresh`` empties the file first, under the lock. A line with a key that is not a
        stored trace is skipped and reported, and the trace it held counts as missing.
        """
        from .jsonl import exclusive, repair_tail

        self.file.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(self.file, what):
            if self.file.exists() and not fresh:
                repair_tail(self.file, lambda line: isinstance(line.get("key"), str), what="a stored trace", fix=fix)
            else:
                self.file.write_bytes(b"")
            skipped: list = []
            stored = self.stored(skipped)
            if settings is not None:  # again: another run may have written before the lock was ours
                check_settings(self.path, stored, settings, settings_fix)
            yield StoreWriter(self.file, {trace.key for trace in stored}, skipped)


class StoreWriter:
    """The writing end of a ``TraceStore``, held under its lock."""

    def __init__(self, path: Path, done: set[str], skipped: list):
        self.path, self.done, self.skipped = path, done, skipped

    def append(self, traces: Sequence[ScoredTrace]) -> int:
        """Store the traces whose key is not stored yet; whole lines in one write, then fsync. Returns how many."""
        lines = []
        for trace in traces:
            if trace.key not in self.done:
                self.done.add(trace.key)
                lines.append(json.dumps(trace.to_dict(), ensure_ascii=False).encode() + b"\n")
        if not lines:
            return 0
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(b"".join(lines))
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
        return len(lines)


def read_traces(path: Path, skipped: list) -> Iterable[ScoredTrace]:
    """Every stored trace of ``path``; a torn tail is skipped silently, any other bad line into ``skipped``."""
    from .jsonl import complete_rows

    for line in complete_rows(path, line_problem, skipped):
        yield ScoredTrace.from_dict(line)


def trace_files(run_dir: Path) -> list[Path]:
    return TraceStore(run_dir).files()


def write_run_info(out_dir: Path, shard: Shard, config: dict) -> None:
    """The run's config (its shard added) and versions, beside the shard file it writes: ``rows....jsonl.run.json``."""
    import sys

    from .runinfo import run_info

    config = {**config, "shard": [shard.index, shard.count]}
    path = out_dir / (shard.filename + ".run.json")
    path.write_text(json.dumps(run_info(config, argv=sys.argv), indent=2, default=str) + "\n")


def load_traces(run_dir: Path, scheme: str | None = None, skipped: list | None = None) -> list[ScoredTrace]:
    """Every trace of a sweep directory, shards merged, each key once (the first written).

    ``scheme`` picks a scoring: the sweep's own, or one written by ``rescore``
    (``scores.NAME.jsonl``); its verdict and score replace the trace's. Damaged lines
    (anything but a torn last line that is not a stored trace) are skipped and handed
    to the caller as ``rlcot.jsonl.SkippedLine``: appended to ``skipped``, or, where it
    is None, warned as one ``rlcot.jsonl.DamagedLinesWarning``.
    """
    from .jsonl import describe_skipped, hand_over

    run_dir = Path(run_dir)
    store = TraceStore(run_dir)
    if not store.files():
        raise ValueError(_no_rows(run_dir))
    found: list = []
    rows = store.read(found)
    if found and not rows:
        raise ValueError(f"{run_dir} holds no readable stored trace: {describe_skipped(found)}; "
                         "repair or delete the file(s) and rerun the sweep")
    if scheme is not None and not all(row.scheme == scheme for row in rows):
        scores = _read_scores(run_dir, scheme, found)
        missing = sum(row.key not in scores for row in rows)
        if missing:
            raise ValueError(f"scoring {scheme!r} covers {len(rows) - missing} of {len(rows)} rows in {run_dir}; "
                             f"run `rlcot score {run_dir} --scheme {scheme}` to score the rest")
        rows = [row.with_context(**scores[row.key]) for row in rows]
    hand_over(found, skipped)
    return rows


def _no_rows(run_dir: Path) -> str:
    """Why a directory has no stored traces, and where they are if it is a training run."""
    eval_dirs = sorted(d for d in (run_dir / "eval").glob("*") if d.is_dir() and trace_files(d))
    if eval_dirs:
        return (f"{run_dir} is a training run; its eval curves are in {', '.join(str(d) for d in eval_dirs)}: "
                f"run `rlcot plot {eval_dirs[0]}` (one task), or `rlcot report {run_dir}` for the whole run")
    if is_training_run(run_dir):
        return (f"{run_dir} is a training run with no eval curves (eval/<task>/rows.jsonl) yet; run "
                f"`rlcot report {run_dir}`, or sweep its checkpoints: `rlcot sweep --model {run_dir} "
                f"--out {run_dir}-sweep`")
    return f"{run_dir} holds no sweep traces ({ROWS_GLOB}); run `rlcot sweep --out {run_dir}` first"


def scorings(run_dir: Path) -> list[str]:
    """The scorings a sweep directory holds: its own scheme(s) and every rescoring's name."""
    names = {trace.scheme for trace in TraceStore(run_dir).stored([])}
    names |= {p.name[len("scores."):-len(".jsonl")] for p in Path(run_dir).glob("scores.*.jsonl")}
    return sorted(names)


SCORE_FIELDS = {"key": str, "verdict": dict, "score": (int, float), "scheme": str}


def _score_problem(line: dict) -> str | None:
    """Why ``line`` is not a rescoring's line (key, verdict, score, scheme), or None."""
    for name, kind in SCORE_FIELDS.items():
        if not isinstance(line.get(name), kind) or isinstance(line.get(name), bool):
            return f"not a scoring line: its {name} is missing or of the wrong type"
    return verdict_problem(line["verdict"])


def _read_scores(run_dir: Path, name: str, skipped: list) -> dict[str, dict]:
    """``{key: {"verdict", "score", "scheme"}}`` of the rescoring ``name``."""
    from .jsonl import complete_rows

    path = Path(run_dir) / f"scores.{name}.jsonl"
    if not path.is_file():
        raise ValueError(f"{run_dir} has no scoring {name!r} (it has: {', '.join(scorings(run_dir))}); "
                         f"run `rlcot score {run_dir} --scheme {name}`")
    out = {}
    for line in complete_rows(path, _score_problem, skipped):
        out.setdefault(line["key"], {"verdict": verdict_from_dict(line["verdict"]), "score": line["score"],
                                     "scheme": line["scheme"]})
    return out


# ------------------------------------------------------------------ one setting per store

# A sweep's settings: the fields of a trace that decide what it means; traces that differ in one belong to
# different curves. A writer passes its own (``rlcot generate`` adds the model and the budget: one file, one run).
SETTINGS = ("task", "temperature", "top_p", "sweep_seed", "protocol", "max_answer_tokens", "backend", "dtype",
            "scheme")
SETTING_NAMES = {"sweep_seed": "seed", "protocol": "thinking protocol", "min_thinking_tokens": "min thinking"}
UNRECORDED_BEFORE_V1 = ("sweep_seed", "max_answer_tokens")  # a version-0 row lacks them: None is "not recorded"


def trace_settings(trace: ScoredTrace, names: Iterable[str] = SETTINGS) -> dict:
    """The settings a trace records (an older trace lacks some)."""
    return {name: getattr(trace, name) for name in names
            if not (name in UNRECORDED_BEFORE_V1 and getattr(trace, name) is None)}


def settings_differences(old: dict, new: dict) -> list[str]:
    """The names of the settings recorded in both that differ."""
    return [name for name in new if name in old and _canonical(old[name]) != _canonical(new[name])]


def describe_setting(name: str, value) -> str:
    """A setting as a person reads it: a task as ``gsm8k data=x.jsonl size=6``, numbers as they are."""
    if name == "task" and isinstance(value, dict):
        extra = {"data": value.get("data"), **(value.get("options") or {})}
        return " ".join([str(value.get("name"))] + [f"{k}={v}" for k, v in extra.items() if v is not None])
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def check_settings(where: Path, traces: Iterable[ScoredTrace], settings: dict, fix: str = "") -> None:
    """``ValueError`` if a stored trace was made with other ``settings`` than this run's: its curve would pool both.

    ``fix`` is the writer's own way out, said after the usual one (another output, or the stored settings).
    """
    seen: list[dict] = []  # the distinct settings met so far: one, in a healthy store
    for trace in traces:
        stored = trace_settings(trace, settings)
        if stored in seen:
            continue
        seen.append(stored)
        differences = settings_differences(stored, settings)
        if differences:
            named = "; ".join(f"{SETTING_NAMES.get(name, name)} {describe_setting(name, stored[name])} (stored) vs "
                              f"{describe_setting(name, settings[name])} (this run)" for name in differences)
            if differences == ["scheme"]:
                fix += (f" (to score the stored rows another way without regenerating: `rlcot score {where} "
                        "--scheme SCHEME`)")
            raise ValueError(f"{where} holds traces made with other settings ({named}); one store holds one "
                             "setting, or its curves would pool both: pass another --out, or rerun with the stored "
                             f"settings{fix}")
