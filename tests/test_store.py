"""One trace record and one store (issue 17): the line format round-trips, damage is named, the store's guarantees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlcot.jsonl import SkippedLine
from rlcot.records import SCHEMA_VERSION, ScoredTrace, Scorer, line_problem
from rlcot.store import Shard, TraceStore, check_settings, load_traces
from rlcot.tasks import get_task

GOLDEN_SWEEP = Path(__file__).parent / "fixtures" / "golden" / "sweep-v0"


def scored(key: str = "k", **context) -> ScoredTrace:
    task = get_task("arith")
    row = task.rows(1)[0]
    record = Scorer(task).score("", "<think>so</think>\\boxed{" + row["answer"] + "}", row, sample=1, budget=8)
    return record.with_context(key=key, model="m", task=task.spec(), mode="cap", temperature=0.7,
                               forced_spans=[[2, 5]], **context)


def test_a_record_round_trips_through_its_line_and_says_its_schema_version():
    record = scored(step=3, protocol={"open_tag": "<think>"})
    line = json.loads(json.dumps(record.to_dict()))
    assert line["v"] == SCHEMA_VERSION and line["verdict"]["outcome"] == "correct" and "trace" not in line
    again = ScoredTrace.from_dict(line)
    assert again == record and again.forced_spans == ((2, 5),)
    assert again.verdict == record.verdict and again.verdict.details == record.verdict.details


def test_every_line_of_the_store_written_before_the_record_existed_reads_as_a_record():
    lines = [json.loads(text) for text in (GOLDEN_SWEEP / "rows.jsonl").read_text().splitlines()]
    assert all("v" not in line for line in lines)  # version 0: the sweep lines of 97c2f20
    records = [ScoredTrace.from_dict(line) for line in lines]
    for line, record in zip(lines, records):
        assert {name: line[name] for name in line if name != "forced_spans"} == {
            name: value for name, value in record.to_dict().items() if name in line and name != "forced_spans"}
        assert [list(span) for span in record.forced_spans] == line["forced_spans"]


@pytest.mark.parametrize("change, reason", [
    ({"v": 99}, "schema version 99 is not one this rlcot reads"),
    ({"v": "1"}, "schema version \"1\""),
    ({"score": None}, "its score is null, not a number"),
    ({"score": float("nan")}, "its score is NaN, not a number"),
    ({"budget": "8"}, "its budget is \"8\", not a whole number >= 0 or null"),
    ({"sample": True}, "its sample is true, not a whole number >= 0"),
    ({"capped": 1}, "its capped is 1, not true or false"),
    ({"forced_spans": [[5, 2]]}, "its forced_spans is [[5, 2]], not a list of [start, end] offsets"),
    ({"verdict": {"outcome": "right"}}, "its verdict's outcome is \"right\", not one of correct, wrong"),
    ({"verdict": {"outcome": "wrong", "answer": ["4"]}}, "its verdict's answer is [\"4\"], not a string or null"),
])
def test_a_line_of_the_wrong_shape_is_named_by_its_field_not_read(change, reason):
    line = {**scored().to_dict(), **change}
    assert line_problem(line).startswith(reason)
    with pytest.raises(ValueError, match="^" + reason.replace("[", r"\[").replace("]", r"\]")):
        ScoredTrace.from_dict(line)


def test_a_line_missing_what_readers_count_with_names_every_missing_field():
    line = scored().to_dict()
    for name in ("key", "model", "verdict"):
        del line[name]
    assert line_problem(line) == "not a stored trace: missing key, model, verdict"


def test_a_single_file_store_keeps_one_line_per_key_and_refuses_other_settings(tmp_path):
    store = TraceStore(tmp_path / "traces.jsonl")
    settings = {"temperature": 0.7, "model": "m"}
    with store.writing("a test", settings) as writer:
        assert writer.append([scored("a"), scored("b"), scored("a")]) == 2  # one line per key, the first kept
    with store.writing("a test", settings) as writer:
        assert writer.done == {"a", "b"} and writer.append([scored("b"), scored("c")]) == 1
    assert [t.key for t in store.read([])] == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"holds traces made with other settings \(temperature 0.7 \(stored\) vs "
                                         r"1.0 \(this run\)\).*or --overwrite"):
        with store.writing("a test", {**settings, "temperature": 1.0}, settings_fix=" (or --overwrite)"):
            pass
    with store.writing("a test", {**settings, "temperature": 1.0}, fresh=True) as writer:
        assert writer.done == set()
    assert store.file.read_bytes() == b""


def test_a_complete_line_of_another_format_is_refused_not_cut_as_a_torn_tail(tmp_path):
    path = tmp_path / "traces.jsonl"
    old = json.dumps({"row": {"id": "arith-0"}, "sample": 0, "config": "0123456789ab", "completion": "x"}) + "\n"
    path.write_text(old)
    with pytest.raises(ValueError, match=r"traces.jsonl:1: not a stored trace \(fields missing\); pass --overwrite"):
        with TraceStore(path).writing("a test", fix="pass --overwrite"):
            pass
    assert path.read_text() == old  # nothing already there is lost
    path.write_text(json.dumps(scored("a").to_dict()) + "\n" + '{"key": "b", "mod')  # a writer killed mid-line
    with TraceStore(path).writing("a test") as writer:
        assert writer.done == {"a"}
    assert path.read_text().count("\n") == 1 and path.read_text().endswith("}\n")


def test_a_line_with_a_key_but_the_wrong_shape_is_skipped_reported_and_redone(tmp_path):
    store = TraceStore(tmp_path)
    bad = {**scored("a").to_dict(), "score": "high"}
    (tmp_path / "rows.jsonl").write_text(json.dumps(bad) + "\n" + json.dumps(scored("b").to_dict()) + "\n")
    with store.writing("a test") as writer:
        assert writer.done == {"b"}  # "a" counts as missing
        assert [(s.line, s.reason) for s in writer.skipped] == [(1, 'its score is "high", not a number')]
    skipped: list[SkippedLine] = []
    assert [t.key for t in load_traces(tmp_path, skipped=skipped)] == ["b"] and len(skipped) == 1


def test_shards_are_files_of_one_directory_every_reader_merges(tmp_path):
    for index, key in enumerate(("a", "b", "c")):
        with TraceStore(tmp_path, Shard(index, 3)).writing("a test") as writer:
            writer.append([scored(key)])
    assert sorted(p.name for p in tmp_path.glob("rows*.jsonl")) == [f"rows.shard-{i}-of-3.jsonl" for i in range(3)]
    assert sorted(t.key for t in load_traces(tmp_path)) == ["a", "b", "c"]


def test_settings_an_older_line_did_not_record_are_not_held_against_it():
    old = scored("a", sweep_seed=None, max_answer_tokens=None)
    check_settings(Path("d"), [old], {"temperature": 0.7, "sweep_seed": 3, "max_answer_tokens": 16})
    with pytest.raises(ValueError, match=r"seed 1 \(stored\) vs 3"):
        check_settings(Path("d"), [scored("b", sweep_seed=1)], {"sweep_seed": 3})
