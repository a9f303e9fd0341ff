"""``rlcot score``: completions scored with a verifier, or a sweep directory scored again.

With it, what only it uses: choosing the task (and thinking protocol) to score a file
with, the rescoring of a sweep directory, and the outcome table printed at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..files import check_output
from ..jsonl import read_jsonl
from .common import (_fail, _read_run_config, _run_info_path, _task_options, _write_run_info, command, console,
                     errors)


@command()
def score(
    run_dir: Optional[Path] = typer.Argument(None, help="a sweep directory to score again without regenerating; "
                                                        "the new scores sit beside the old, named by --scheme"),
    input: Optional[Path] = typer.Option(None, "--input", help="JSONL of completion rows: flat ({id, question, "
                                                               "answer, completion, ...}) or nested ({row: {...}, "
                                                               "completion}, as `rlcot generate` writes them)"),
    out: Optional[Path] = typer.Option(None, help="JSONL: each row with its verdict, score and scheme"),
    task: Optional[str] = typer.Option(None, help="the task the rows come from (default: the one INPUT.run.json "
                                                  "names); it picks the verifier and its options"),
    data: Optional[str] = typer.Option(None, help="data file of a file-backed --task"),
    task_arg: list[str] = typer.Option([], help="task option KEY=VALUE, repeatable; the rows' columns: "
                                                "answer_field=gold, question_field=problem, id_field=unique_id"),
    verifier: Optional[str] = typer.Option(None, help="math, sudoku, crossword, a plugin name, or module.path:attr; "
                                                      "overrides the task's"),
    verifier_option: list[str] = typer.Option([], help="verifier option KEY=VALUE for RUN_DIR, repeatable: "
                                                       "lenient_percent=false"),
    scheme: str = typer.Option("default", help="default (hedge/abstain), binary, or a YAML file of HedgeScheme"),
    name: Optional[str] = typer.Option(None, "--as", help="name of RUN_DIR's new scoring (default: the scheme's, "
                                                          "plus the verifier and its options)"),
) -> None:
    """Score completions with a verifier (bad rows go to OUT.rejects.jsonl), or score a sweep directory again."""
    from dataclasses import asdict, replace

    from ..records import CompletionRow, Scorer

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
                              protocol=protocol.to_dict()))
    summary = _ScoreSummary()
    # into temporary siblings, renamed over OUT at the end: an interrupted score leaves the old OUT whole
    partial, partial_rejects = (path.with_name(f".{path.name}.partial") for path in (out, rejects_path))
    with partial.open("w") as sink, partial_rejects.open("w") as rejects:
        for number, line, error in read_jsonl(input):
            record = None
            if error is None:
                try:
                    item = CompletionRow.from_dict(line)
                    record = scorer.score_many([replace(item, row=chosen.map_columns(item.row, mapped_ok=True))])[0]
                except (ValueError, TypeError, KeyError) as err:
                    error = f"{err.__class__.__name__}: {err}" if not isinstance(err, ValueError) else str(err)
            if record is None:  # a bad line, or a row that cannot be scored (a gold that cannot be read): named
                summary.rejected += 1
                row_id = _row_id(line, getattr(chosen, "id_field", "id"))
                named = f"{input}:{number}" + (f" (id {row_id!r})" if row_id is not None else "")
                errors.print(f"{named}: {error}; written to {rejects_path.name}", highlight=False)
                rejects.write(json.dumps({"line": number, "id": row_id, "error": error}) + "\n")
                continue
            sink.write(json.dumps({**line, "verdict": record.verdict.to_dict(), "score": record.score,
                                   "scheme": record.scheme}) + "\n")
            summary.add(record)
    partial.replace(out)
    partial_rejects.replace(rejects_path)
    summary.print(out)


def _rescore_sweep(run_dir: Path, scheme: str, verifier, verifier_option: list[str], name, stray) -> None:
    from rlcot.evals.rescore import rescore
    from rlcot.store import scorings

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
    from ..tasks import JsonlTask, get_task
    from ..thinking import ThinkingProtocol

    recorded = _read_run_config(input)
    protocol = ThinkingProtocol.from_dict(recorded["protocol"]) if "protocol" in recorded else ThinkingProtocol()
    if task is not None:
        return get_task(task, data=data, verifier=verifier, **_task_options(task_arg)), protocol
    if data:
        raise ValueError("--data describes a --task; pass --task too")
    if "task" in recorded:  # the task the rows were made with; --task-arg may map their columns anew
        spec = recorded["task"]
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError(f"{_run_info_path(input)} records task {spec!r}, not a task spec; pass --task")
        options = {**(spec.get("options") or {}), **_task_options(task_arg)}
        return get_task(spec["name"], data=spec.get("data"), options=options, verifier=verifier), protocol
    if verifier is None:
        raise ValueError(f"{input} has no run info naming its task; pass --task (e.g. arith) or --verifier "
                         "(e.g. math, or module.path:function)")
    # the rows are the task: only their columns may be mapped (--task-arg answer_field=gold)
    options = _task_options(task_arg)
    unknown = [key for key in options if key not in _COLUMN_OPTIONS]
    if unknown:
        raise ValueError(f"--task-arg {', '.join(unknown)} describes a --task; pass --task too, or map the rows' "
                         f"columns alone ({', '.join(_COLUMN_OPTIONS)})")
    return JsonlTask(name="rows", description="completion rows scored by a named verifier", verifier=verifier,
                     **options), protocol


_COLUMN_OPTIONS = ("question_field", "answer_field", "id_field")


def _row_id(line, id_field: str) -> str | None:
    """The id of a completion line (flat or nested; its own column, or the task's ``id_field``) for its reject."""
    if not isinstance(line, dict):
        return None
    row = line.get("row") if isinstance(line.get("row"), dict) else line
    row_id = row.get(id_field, row.get("id"))
    return str(row_id) if isinstance(row_id, (str, int)) and not isinstance(row_id, bool) else None


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
