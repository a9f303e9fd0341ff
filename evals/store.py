"""Where sweep rows live: one JSON line per (model, row, sample, budget), each stored once.

Storage: lines go in ``DIR/rows.jsonl`` or, for ``shard i/n``, ``DIR/rows.shard-i-of-n.jsonl``.
A line's ``key`` (``content_key``) hashes everything that decides it: the model's weights
(a hash of its files), the task spec and row, the sample and its seed, the budget and its
mode, sampling, the thinking protocol, the forcing settings, backend and dtype. So
re-running a command does only the keys that are missing. A directory holds rows of one
setting (``SETTINGS``: task, sampling, seed, protocol, answer tokens, backend, dtype,
scheme), since its readers draw one curve per model: a run whose settings differ from the
rows already there is refused before it writes anything (``check_settings``), while more
models, budgets, rows or samples extend it. One writer per shard file at a time
(``rlcot.jsonl.exclusive`` on ``rows.jsonl.lock``): a second run into the same directory
stops at once instead of doing every row twice. Lines are appended a (row, sample) at a
time in one ``write`` of whole lines, then flushed and fsynced (``RowFile``); a kill can
leave only a torn last line, which the next run drops and redoes. Readers (``load_rows``)
merge every shard file of a directory and keep the first line of each key; a line that
is not a sweep row (``ROW_FIELDS``) anywhere but the torn tail is damage, skipped and
reported to the caller (``rlcot.jsonl.SkippedLine``).

Sharding (``--shard i/n``, ``Shard``) splits the (model, row, sample) units by a hash of
their key, so n jobs on any scheduler each write their own file, and every reader merges
them. Re-scoring (``rescore``) writes ``DIR/scores.NAME.jsonl`` beside the rows, keyed the
same way, without regenerating (Inspect AI's ``inspect score``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from rlcot.runinfo import is_training_run

ROWS_GLOB = "rows*.jsonl"


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


def stored_rows(out_dir: Path, skipped: list) -> list[dict]:
    """Every readable row of every shard file in ``out_dir`` (none where it has none), duplicates kept."""
    return [row for path in row_files(out_dir) for row in _read_rows(path, skipped)]



def write_run_info(out_dir: Path, shard: Shard, config: dict) -> None:
    """The run's config (its shard added) and versions, beside the shard file it writes: ``rows....jsonl.run.json``."""
    import sys

    from rlcot.runinfo import run_info

    config = {**config, "shard": [shard.index, shard.count]}
    path = out_dir / (shard.filename + ".run.json")
    path.write_text(json.dumps(run_info(config, argv=sys.argv), indent=2, default=str) + "\n")


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