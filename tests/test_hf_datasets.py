"""Any dataset: ``hf:NAME`` (parquet, save_to_disk, the hub), column mapping, golds that cannot be read, flat rows.

MATH-500's shape (``problem``, a LaTeX ``answer``, ``unique_id``), built here in
``tmp_path``: nothing is downloaded. Two rows carry a gold no verifier can read (an
empty one, an unbalanced ``\\frac{``): each must be named as that row's error, never
scored 0 or 1.
"""

from __future__ import annotations

import json

import datasets
import pytest
from typer.testing import CliRunner

from rlcot.cli import app
from rlcot.evals.sweep_spec import GENERATED_ROWS, SweepSpec
from rlcot.tasks import get_task
from rlcot.tasks.hf_dataset import parse_source

runner = CliRunner()


def _unwrapped(text: str) -> str:
    """Output with every white space gone: rich wraps a long line anywhere, paths included."""
    return "".join(text.split())

MATH500 = [
    {"problem": "Compute $\\frac{28}{6}$ in lowest terms.", "answer": "\\frac{14}{3}", "unique_id": "test/a/1.json"},
    {"problem": "Convert $(0,3)$ to polar coordinates.", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
     "unique_id": "test/a/2.json"},
    {"problem": "Simplify $\\sqrt{12}$.", "answer": "2\\sqrt{3}", "unique_id": "test/a/3.json"},
    {"problem": "What is $6 \\times 7$?", "answer": "42", "unique_id": "test/a/4.json"},
    {"problem": "A row whose gold was lost.", "answer": "", "unique_id": "test/bad/empty.json"},
    {"problem": "A row whose gold is broken LaTeX.", "answer": "\\frac{", "unique_id": "test/bad/frac.json"},
]
GOOD = MATH500[:4]
MAPPED = ["--task-arg", "question_field=problem", "--task-arg", "id_field=unique_id"]


@pytest.fixture(scope="module")
def math500(tmp_path_factory):
    """The rows as a parquet file and as a save_to_disk directory with a test and a train split."""
    root = tmp_path_factory.mktemp("math500")
    data = datasets.Dataset.from_list(MATH500)
    data.to_parquet(str(root / "math500.parquet"))
    datasets.DatasetDict({"test": data, "train": data.select(range(2))}).save_to_disk(str(root / "saved"))
    return root


@pytest.mark.parametrize("source, parsed", [
    ("openai/gsm8k:main@test", ("openai/gsm8k", "main", "test")),
    ("HuggingFaceH4/MATH-500@test", ("HuggingFaceH4/MATH-500", None, "test")),
    ("data/math500", ("data/math500", None, None)),
    ("user@host/data", ("user@host/data", None, None)),  # an @ followed by a path is part of the name
])
def test_an_hf_name_splits_into_dataset_config_and_split(source, parsed):
    assert parse_source(source) == parsed


def test_an_existing_path_is_a_dataset_name_whole_even_with_an_at_or_a_colon(tmp_path):
    odd = tmp_path / "runs@v2:final.parquet"
    datasets.Dataset.from_list(GOOD).to_parquet(str(odd))
    assert parse_source(str(odd)) == (str(odd), None, None)
    assert len(get_task(f"hf:{odd}", question_field="problem").rows()) == 4


def test_a_parquet_file_reads_in_order_with_mapped_columns_and_rebuilds_from_its_spec(math500):
    task = get_task(f"hf:{math500 / 'math500.parquet'}", question_field="problem", id_field="unique_id")
    rows = task.rows()
    assert [row["id"] for row in rows] == [row["unique_id"] for row in MATH500]
    assert rows[1]["question"] == MATH500[1]["problem"] and rows[1]["answer"] == MATH500[1]["answer"]
    assert "problem" not in rows[1] and task.rows(2) == rows[:2]
    assert task.file_backed and get_task(**task.spec()) == task
    assert task.origins(rows[1:2]) == [f"hf:{math500 / 'math500.parquet'} row 2 (id 'test/a/2.json')"]


def test_a_saved_directory_needs_a_split_when_it_has_several(math500):
    saved = math500 / "saved"
    with pytest.raises(ValueError, match=r"has several splits; it has test, train: pick one, e.g. hf:.*saved@test"):
        get_task(f"hf:{saved}", question_field="problem").rows()
    with pytest.raises(ValueError, match="has no split 'validation'; it has test, train"):
        get_task(f"hf:{saved}@validation", question_field="problem").rows()
    train = get_task(f"hf:{saved}@train", question_field="problem").rows()
    assert [row["id"] for row in train] == ["saved-train-1", "saved-train-2"]  # no id column mapped: named by place


def test_a_mapped_column_the_data_lacks_is_one_line_listing_the_columns(math500, tmp_path):
    with pytest.raises(ValueError) as caught:
        get_task(f"hf:{math500 / 'math500.parquet'}", question_field="question_text").rows()
    message = str(caught.value)
    assert "no column 'question_text' (the question_field); the columns are 'problem', 'answer', 'unique_id'" \
        in message and "--task-arg question_field=NAME" in message and "\n" not in message
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in GOOD))
    assert [row["question"] for row in get_task(f"jsonl:{jsonl}", question_field="problem").rows()] \
        == [row["problem"] for row in GOOD]  # the same mapping for a JSONL file
    with pytest.raises(ValueError, match=r"rows.jsonl:1: no column 'gold' \(the answer_field\); the columns are "
                                         r"'problem', 'answer', 'unique_id'"):
        get_task(f"jsonl:{jsonl}", question_field="problem", answer_field="gold").rows()


def test_an_unreachable_hub_name_is_one_line_naming_it_and_the_local_way(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # no retries against a hub that is not there
    result = runner.invoke(app, ["sweep", "--task", "hf:rlcot-tests/no-such-dataset:main@test", "--out",
                                 str(tmp_path / "run"), "--model", str(tmp_path / "never-loaded")])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "cannot load 'rlcot-tests/no-such-dataset' from the Hugging Face hub" in line
    assert "save_to_disk(DIR)" in line and "hf:DIR" in line


def test_a_hub_that_cannot_be_reached_is_asked_offline_so_datasets_never_retries_it(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("rlcot.models._reachable", lambda url, timeout=5.0: False)
    was, seen = datasets.config.HF_HUB_OFFLINE, []

    def load_dataset(*args, **kwargs):  # what datasets is asked with: offline, only its cache
        seen.append(datasets.config.HF_HUB_OFFLINE)
        raise ConnectionError("Couldn't reach it on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(ValueError, match=r"cannot load 'rlcot-tests/no-such-dataset' from the Hugging Face hub "
                                         r"\(the hub \(https?://[^)]+\) cannot be reached from here\)"):
        get_task("hf:rlcot-tests/no-such-dataset@test").rows()
    assert seen == [True] and datasets.config.HF_HUB_OFFLINE == was  # offline for the call only


def test_a_sweep_of_a_parquet_file_sweeps_its_good_rows_and_names_each_bad_gold(math500, tmp_path, tiny_dir):
    out = tmp_path / "run"
    result = runner.invoke(app, ["sweep", "--task", f"hf:{math500 / 'math500.parquet'}", *MAPPED, "--out", str(out),
                                 "--model", str(tiny_dir), "--budgets", "0", "--dtype", "fp32",
                                 "--max-answer-tokens", "2", "--no-gold-logprob"])
    assert result.exit_code == 0, result.output
    swept = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted(line["row_id"] for line in swept) == sorted(row["unique_id"] for row in GOOD)
    text = _unwrapped(result.output)
    assert _unwrapped("6 rows (all of them); 2 left out as they cannot be scored (listed at the end), 4 swept") in text
    for number, why in ((5, "gives an empty gold"), (6, "reads no value in the gold")):
        row_id = MATH500[number - 1]["unique_id"]
        assert _unwrapped(f"row {number} (id '{row_id}'): gold_unreadable") in text and _unwrapped(why) in text
    info = json.loads(next(out.glob("*.run.json")).read_text())
    assert info["config"]["rows"] == 4 and len(info["config"]["rows_left_out"]) == 2


def test_score_takes_flat_rows_with_mapped_columns_and_rejects_each_bad_gold_by_id(math500, tmp_path):
    rows = [{**row, "completion": f"<think>done</think>The answer is \\boxed{{{row['answer']}}}."}
            for row in MATH500]
    rows.append({**MATH500[0], "completion": "<think>hmm</think>\\boxed{5}"})  # a wrong answer stays wrong
    rows.append({**MATH500[1], "completion": "<think>hmm</think>\\boxed{(3, \\frac{\\pi}{2})}"})  # another spelling
    data = tmp_path / "flat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["score", "--input", str(data), "--out", str(out),
                                 "--task", f"hf:{math500 / 'saved'}@test", *MAPPED])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["unique_id"], line["verdict"]["outcome"]) for line in scored] == [
        *[(row["unique_id"], "correct") for row in GOOD], ("test/a/1.json", "wrong"), ("test/a/2.json", "correct")]
    assert scored[0]["problem"] == MATH500[0]["problem"]  # the line is kept as it came, verdict added
    rejects = [json.loads(line) for line in (tmp_path / "scored.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["id"]) for r in rejects] == [(5, "test/bad/empty.json"), (6, "test/bad/frac.json")]
    assert all(r["error"].startswith("gold_unreadable:") for r in rejects)
    assert _unwrapped("flat.jsonl:6 (id 'test/bad/frac.json'): gold_unreadable") in _unwrapped(result.output)


def test_score_maps_the_columns_of_flat_rows_without_a_task(tmp_path):
    data = tmp_path / "flat.jsonl"
    data.write_text(json.dumps({"qid": 7, "gold": "\\frac{14}{3}", "completion": "</think>\\boxed{\\dfrac{14}{3}}"})
                    + "\n" + json.dumps({"qid": 8, "completion": "</think>\\boxed{1}"}) + "\n")
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["score", "--input", str(data), "--out", str(out), "--verifier", "math",
                                 "--task-arg", "answer_field=gold", "--task-arg", "id_field=qid"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["verdict"]["outcome"] for line in out.read_text().splitlines()] == ["correct"]
    rejects = [json.loads(line) for line in (tmp_path / "scored.jsonl.rejects.jsonl").read_text().splitlines()]
    assert rejects[0]["line"] == 2
    assert "no column 'gold' (the answer_field); the columns are 'qid'" in rejects[0]["error"]
    result = runner.invoke(app, ["score", "--input", str(data), "--out", str(out), "--verifier", "math",
                                 "--task-arg", "size=9"])
    assert result.exit_code == 2 and "--task-arg size describes a --task" in result.output


def test_training_refuses_a_dataset_with_a_gold_it_cannot_read_before_a_model_loads(math500, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {tmp_path / 'never-loaded'}\ntasks:\n  - name: hf:{math500 / 'math500.parquet'}\n"
                      "    size: 5\n    eval_size: 1\n    options:\n      question_field: problem\n"
                      "      id_field: unique_id\n")
    result = runner.invoke(app, ["train", str(recipe), "--out", str(tmp_path / "run")])
    text = _unwrapped(result.output)
    assert result.exit_code == 2 and _unwrapped("2 of 6 task rows cannot be scored") in text, result.output
    assert _unwrapped("(id 'test/bad/frac.json'): gold_unreadable") in text and not (tmp_path / "run").exists()


def test_a_file_backed_task_sweeps_every_row_by_default_and_a_generated_one_a_stated_count(tmp_path, tiny_dir):
    data = tmp_path / "hundred.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(100)))
    assert SweepSpec().row_limit(get_task("arith")) == GENERATED_ROWS
    assert SweepSpec().row_limit(get_task(f"jsonl:{data}")) is None and SweepSpec(limit=5).row_limit(get_task(
        f"jsonl:{data}")) == 5
    out = tmp_path / "run"
    result = runner.invoke(app, ["sweep", "--task", f"jsonl:{data}", "--out", str(out), "--model", str(tiny_dir),
                                 "--budgets", "0", "--dtype", "fp32", "--max-answer-tokens", "1",
                                 "--no-gold-logprob"])
    assert result.exit_code == 0, result.output
    assert len((out / "rows.jsonl").read_text().splitlines()) == 100
    assert _unwrapped(f"jsonl:{data}: 100 rows (all of them)") in _unwrapped(result.output)


def test_generate_takes_every_row_of_a_dataset_without_n(math500, tmp_path, tiny_dir):
    good = tmp_path / "good.parquet"
    datasets.Dataset.from_list(GOOD).to_parquet(str(good))
    out = tmp_path / "traces.jsonl"
    result = runner.invoke(app, ["generate", "--task", f"hf:{good}", *MAPPED, "--out", str(out), "--model",
                                 str(tiny_dir), "--budget", "0", "--max-answer-tokens", "1", "--dtype", "fp32"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["row_id"] for line in out.read_text().splitlines()] == [r["unique_id"] for r in GOOD]
    # scored again with the task its run info records: its rows, stored mapped, pass the same mapping
    result = runner.invoke(app, ["score", "--input", str(out), "--out", str(tmp_path / "scored.jsonl")])
    assert result.exit_code == 0, result.output
    assert _unwrapped("scored 4 rows") in _unwrapped(result.output) and "rejected" not in result.output


def test_a_reward_gives_a_row_whose_gold_cannot_be_read_none_never_one(math500):
    from rlcot.thinking import ThinkingProtocol
    from rlcot.train.recipe import RewardSpec
    from rlcot.train.rewards import reward_functions

    task = get_task(f"hf:{math500 / 'math500.parquet'}", question_field="problem", id_field="unique_id")
    (reward,), _ = reward_functions({"m": task}, [RewardSpec(scheme="binary")], ThinkingProtocol())
    rows = [{**row, "question": row.pop("problem")} for row in (dict(r) for r in MATH500)]
    # each completion copies its own gold: right for a readable gold, and no reward at all for the others
    completions = [f"done</think>\\boxed{{{row['answer']}}}" for row in rows]
    got = reward(["<think>\n"] * len(rows), completions, task=["m"] * len(rows), row=[json.dumps(r) for r in rows])
    assert got == [1.0, 1.0, 1.0, 1.0, None, None] and reward.unscorable == 2
