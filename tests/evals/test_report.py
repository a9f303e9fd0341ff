"""``rlcot report``: what the page holds, read back from its embedded JSON, and the page itself in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlcot.evals.page_data import read_run, report_data
from rlcot.evals.report import write_report
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.cli import app
from rlcot.tasks import get_task
from tests.evals.test_sweep import hash_lm, spec
from rlcot.verifiers import get_verifier

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RLCOT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def embedded(page: Path) -> dict:
    """The data a written page carries, as the browser will parse it."""
    html = page.read_text()
    match = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


@pytest.fixture
def sweep_dir(tmp_path, tokenizer):
    out = tmp_path / "sweep"
    run_sweep(spec(), out, loader=model_loader(hash_lm(tokenizer), tokenizer))  # 3 rows x 2 samples x budgets 0, 4, 8
    return out


def training_dir(tmp_path: Path, tokenizer) -> Path:
    """A training run as ``rlcot train`` leaves it: metrics, kept rollouts, eval curves at steps 0 and 2."""
    run = tmp_path / "train"
    run.mkdir()
    lines = [{"step": s, "loss": 0.1, "reward": 0.25 * s, "outcomes/correct": 0.25 * s, "outcomes/wrong": 1 - 0.25 * s,
              "thinking/cap_rate": 0.5} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    example = get_task("arith").rows(1, seed=0)[0]
    rollout = {"v": 1, "key": "r1", "model": "m", "mode": "rollout", "sample": 0, "budget": None, "step": 1,
               "prompt": "<|im_start|>user\nq", "completion": "<think>\nhm\n</think>\n\\boxed{3}",
               "answer": "\n\\boxed{3}", "forced_spans": [[11, 19]], "thinking_tokens": 2, "capped": True,
               "finish_reason": "capped", "task": {"name": "arith"}, "row_id": example["id"], "row": example,
               "verdict": {"outcome": "wrong", "hedged": False, "answer": "3", "reason": None, "details": {}},
               "score": 0.0, "scheme": "binary"}
    (run / "rollouts.jsonl").write_text(json.dumps(rollout) + "\n")
    for step in (0, 2):
        run_sweep(spec(models=(f"step {step}",)), run / "eval" / "arith",
                  loader=model_loader(hash_lm(tokenizer), tokenizer), step=step, run_dir=str(run))
    return run


def test_every_trace_is_kept_once_with_prompts_and_problems_shared(sweep_dir):
    data = report_data([read_run(sweep_dir)])
    assert len(data["traces"]) == 3 * 2 * 3
    assert len(data["problems"]) == 3 and len(data["prompts"]) == 3  # stored once, not once per trace
    assert {(t["b"], t["n"]) for t in data["traces"]} == {(b, s) for b in (0, 4, 8) for s in (0, 1)}
    capped = [t for t in data["traces"] if t["cap"]]
    # a capped trace: budget forcing wrote the end of thinking, and the span points at it
    assert capped and all(any("</think>" in t["c"][a:b] for a, b in t["fs"]) for t in capped)
    assert data["tasks"][0]["headline"][0]["B"] == 0
    assert [f["title"] for f in data["figures"]] == [
        "Accuracy vs thinking tokens", "pass@k, maj@k, best@k", "Risk-coverage",
        "Think longer or sample more? Accuracy vs tokens generated per problem"]  # 3 budgets x 2 samples
    compute = data["figures"][-1]
    # what wins where, in words, for both ways to pick among k samples
    assert [line.split(":")[0] for line in compute["note"]] == ["m, maj@k", "m, pass@k"]
    assert data["figure_notes"] == []


def test_forced_spans_are_browser_string_offsets_past_astral_characters(tmp_path):
    # "🙂" is one code point in Python and two UTF-16 units in the browser: offsets after it shift by one
    completion = "<think>\n🙂 so 4\n</think>\nThe final answer is \\boxed{4}."
    start = completion.index("\n</think>")
    row = {"key": "k", "model": "m", "row_id": "q1", "budget": 8, "sample": 0, "mode": "cap", "prompt": "p",
           "completion": completion, "answer": "\nThe final answer is \\boxed{4}.", "forced_spans": [[start, start + 9]],
           "thinking_tokens": 8, "capped": True, "task": {"name": "arith"}, "row": {"question": "2+2?", "answer": "4"},
           "verdict": {"outcome": "correct", "hedged": False, "answer": "4"}, "score": 1.0, "scheme": "default"}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    trace = report_data([read_run(tmp_path)])["traces"][0]
    as_js = completion.encode("utf-16-le")
    a, b = trace["fs"][0]
    assert as_js[2 * a: 2 * b].decode("utf-16-le") == "\n</think>"
    assert as_js[2 * trace["ans"]:].decode("utf-16-le") == row["answer"]


def test_a_sudoku_carries_its_box_shape_for_the_grid(tmp_path):
    rows = []
    for size in (4, 6, 9):
        example = get_task("sudoku", size=size).rows(1, seed=0)[0]
        rows.append({"key": f"s{size}", "model": "m", "row_id": example["id"], "row": example, "budget": 0,
                     "sample": 0, "mode": "cap", "completion": "", "thinking_tokens": 0, "capped": True, "task": {"name": "sudoku"},
                     "verdict": {"outcome": "unparsed", "hedged": False}, "score": -4.0, "scheme": "default"})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    problems = report_data([read_run(tmp_path)])["problems"]
    assert [list(p["box"]) for p in problems] == [[2, 2], [2, 3], [3, 3]]  # 6x6: boxes of 2 rows by 3 columns


def test_no_text_in_a_trace_can_close_the_pages_script(sweep_dir, tmp_path):
    path = next(sweep_dir.glob("rows*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    hostile = "</script><script>alert(1)</script><!-- "
    rows[0]["completion"] += hostile
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page = write_report([sweep_dir], tmp_path / "page.html")
    assert page.read_text().count("</script>") == 2  # the data block's and the code's, nothing from the data
    assert any(t["c"].endswith(hostile) for t in embedded(page)["traces"])


def test_a_training_run_shows_its_curves_over_steps_its_rollouts_and_its_rates(tmp_path, tokenizer):
    run = training_dir(tmp_path, tokenizer)
    page = write_report([run])
    assert page == run / "report.html"
    data = embedded(page)
    titles = [f["title"] for f in data["figures"]]
    assert {"Accuracy vs thinking tokens", "Accuracy over checkpoints", "Training reward",
            "Outcome rates over training"} <= set(titles)
    assert "Accuracy by model size" not in titles  # checkpoints of one run are not models of different sizes
    assert data["tasks"][0]["before_after"][0]["before"] == "step 0"
    rollouts = [t for t in data["traces"] if data["series"][t["s"]] == "training rollouts"]
    assert len(rollouts) == 1 and rollouts[0]["b"] is None and rollouts[0]["st"] == 1
    assert data["problems"][rollouts[0]["p"]]["question"]  # the rollout's row came with it


def test_several_runs_are_overlaid_as_curves_named_by_run(sweep_dir, tmp_path, tokenizer):
    other = tmp_path / "other"
    run_sweep(spec(), other, loader=model_loader(hash_lm(tokenizer), tokenizer))
    data = report_data([read_run(sweep_dir), read_run(other)])
    assert data["series"] == ["sweep: m", "other: m"]
    assert data["tasks"][0]["before_after"][0]["after"] == "other: m"


def test_the_cli_writes_the_page_and_bad_directories_get_one_line_errors(sweep_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(sweep_dir), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").is_file() and "r.html" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "is not a directory" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code != 0 and "neither sweep traces" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ------------------------------------------------------------------ in a real browser


def puzzle_row(task: str, answer: str) -> dict:
    """A sweep row of ``task``'s first row answered with ``answer``, scored by the task's own verifier."""
    example = get_task(task).rows(1, seed=0)[0]
    completion = "<think>\nfill the blanks\n</think>" + answer
    verdict = get_verifier(task).verify(completion, example)
    return {"key": f"{task}-1", "model": "m", "row_id": example["id"], "row": example, "budget": 16, "sample": 0,
            "mode": "cap", "prompt": example["question"], "completion": completion, "answer": answer,
            "forced_spans": [], "thinking_tokens": 4, "capped": False, "task": {"name": task},
            "verdict": verdict.to_dict(), "score": -4.0, "scheme": "default"}


def sudoku_row(answer_grid: str) -> dict:
    """A scored sudoku row whose answer is ``answer_grid``."""
    shown = "\n".join(" ".join(answer_grid[r * 4:(r + 1) * 4]) for r in range(4))
    return puzzle_row("sudoku", f"\nThe completed grid:\n{shown}")


def crossword_row() -> dict:
    """A scored crossword row whose grid has one wrong letter."""
    rows = list(get_task("crossword").rows(1, seed=0)[0]["solution"])
    rows[1] = ("E" if rows[1][0] != "E" else "O") + rows[1][1:]
    return puzzle_row("crossword", "\n" + "\n".join(rows))


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `make test` installs Debian's chromium where apt-get can run (as root); "
                    "elsewhere install it by hand")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras: make install")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield launched
        launched.close()


def test_the_page_filters_opens_traces_with_forcing_marked_and_draws_grids(browser, sweep_dir, tmp_path):
    wrong_cells = "3124241313424231"[:-2] + "12"  # the sudoku's solution with its last two cells swapped
    puzzles = tmp_path / "puzzles"
    puzzles.mkdir()
    (puzzles / "rows.jsonl").write_text(json.dumps(sudoku_row(wrong_cells)) + "\n" + json.dumps(crossword_row()) + "\n")
    page_path = write_report([sweep_dir, puzzles], tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.as_uri())
    page.wait_for_function("window.rlcotReport && window.rlcotReport.ready")
    assert errors == []
    assert page.locator("#figures img").count() >= 1
    # think longer or sample more, in words under its figure; the puzzle tasks (one budget, one sample) say why not
    assert page.locator("#figures figure ul.figure-note li").count() == 2
    assert page.locator("#figures p.figure-note").count() == 2
    assert "no think-longer-or-sample-more figure" in page.locator("#figures p.figure-note").first.inner_text()
    page.locator("#figures ul.figure-note").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-compute.png"))

    everything = page.locator("#trace-table tbody tr").count()
    assert everything == 3 * 2 * 3 + 2
    outcomes = page.evaluate("[...new Set(DATA.traces.map((t) => t.o))]")
    page.click(f'#f-outcome [data-outcome="{outcomes[0]}"]')
    picked = page.locator("#trace-table tbody tr").count()
    assert 0 < picked < everything
    assert picked == page.evaluate("(o) => DATA.traces.filter((t) => t.o === o).length", outcomes[0])
    page.click("#f-reset")
    page.select_option("#f-budget", "0|cap")
    assert page.locator("#trace-table tbody tr").count() == 3 * 2  # budget 0: every problem and sample once

    page.locator("#trace-table tbody tr").first.click()
    forced = page.locator("#detail mark.forced")
    assert forced.count() >= 1 and "</think>" in " ".join(forced.all_inner_texts())
    assert page.locator("#detail .budgets .col").count() == 3  # the same problem at budgets 0, 4 and 8
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-trace.png"))

    page.keyboard.press("Escape")
    page.click("#f-reset")
    page.select_option("#f-task", "sudoku")
    page.locator("#trace-table tbody tr").first.click()
    assert page.locator("#detail table.grid").count() == 2  # the answer beside the solution
    assert page.locator("#detail table.grid td.bad").count() == 2  # exactly the two swapped cells
    answer_grid = page.locator("#detail table.grid").first
    # 2x2 boxes: a thick line right of column 2 in each of 4 rows, and below row 2 in each of 4 columns
    assert answer_grid.locator("td.box-right").count() == 4 and answer_grid.locator("td.box-bottom").count() == 4
    page.locator("#detail table.grid").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "report-sudoku.png"))

    page.keyboard.press("Escape")
    page.select_option("#f-task", "crossword")
    page.locator("#trace-table tbody tr").first.click()
    assert page.locator("#detail table.grid").count() == 2
    assert page.locator("#detail table.grid td.bad").count() == 1  # the one wrong letter
    black = sum(row.count("#") for row in get_task("crossword").rows(1, seed=0)[0]["solution"])
    assert page.locator("#detail table.grid td.black").count() == 2 * black  # black squares in both grids
    page.locator("#detail table.grid").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "report-crossword.png"))
    assert errors == []
    page.close()


def test_two_training_runs_compare_each_with_itself_and_the_first_with_the_other(tmp_path, tokenizer):
    """``rlcot report RUN CONTROL_RUN``: never one run's start against the other's end."""
    runs = []
    for name in ("rl", "control"):
        (tmp_path / name).mkdir()
        runs.append(Path(shutil.move(training_dir(tmp_path / name, tokenizer), tmp_path / f"{name}-run")))
    task = report_data([read_run(run) for run in runs])["tasks"][0]
    assert task["before_after"] == []
    pairs = [(lines[0]["before"], lines[0]["after"]) for lines in task["comparisons"]]
    assert pairs == [("rl-run: step 0", "rl-run: step 2"), ("control-run: step 0", "control-run: step 2"),
                     ("control-run: step 2", "rl-run: step 2")]
    assert all(len(lines) == 3 and "score_change_lo" in lines[0] for lines in task["comparisons"])  # budgets 0, 4, 8
