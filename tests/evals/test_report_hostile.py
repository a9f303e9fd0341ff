"""``rlcot report`` of hostile run directories: opening the page runs no code, and junk is shown, not a traceback.

People share run directories, so every string a run's files hold is treated here as
an attack: each one carries a script injection, and the page must show it as text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rlcot.evals.report import write_report
from rlcot.evals.sweep import model_loader, run_sweep
from tests.evals import test_report
from tests.evals.test_report import crossword_row, embedded, training_dir
from tests.evals.test_sweep import hash_lm, spec

browser, sweep_dir = test_report.browser, test_report.sweep_dir  # its fixtures: Debian's Chromium, a finished sweep

PAYLOADS = (
    '"><img src=x onerror=alert(1)><script>alert(2)</script>',  # leaves an attribute, then adds markup and a script
    "</script><script>alert(3)</script><!-- <img src=x onerror=alert(4)>",  # closes the data's script, opens a comment
)
DIR_PAYLOAD = '"><img src=x onerror=alert(5)>'  # a directory's name cannot hold the others' "/"
SCHEME = PAYLOADS[0]  # the scoring's name is shown too
TASK = PAYLOADS[1] + "arith"  # one task for every row: one set of figures to draw, not one per payload

# Records, from now on, anything the data adds to the page: a script (the page's own two are the body's children),
# an image that is not a figure, an element with an event handler. What is already drawn is checked at once.
WATCH_INJECTED = """() => {
  const injected = (e) => (e.tagName === "SCRIPT" && e.parentElement !== document.body) ||
    (e.tagName === "IMG" && !(e.getAttribute("src") || "").startsWith("data:")) ||
    [...e.attributes].some((a) => a.name.startsWith("on"));
  const found = (node) => [node, ...node.querySelectorAll("*")].filter(injected).map((e) => e.outerHTML);
  window.injected = found(document.documentElement);
  new MutationObserver((records) => { for (const record of records) for (const node of record.addedNodes)
    if (node.nodeType === 1) window.injected.push(...found(node));
  }).observe(document.documentElement, { childList: true, subtree: true });
}"""


def hostile(value, payload: str):
    """``value`` with ``payload`` before each string in it (so names stay distinct); other values kept."""
    if isinstance(value, str):
        return payload + value
    if isinstance(value, list):
        return [hostile(v, payload) for v in value]
    if isinstance(value, dict):
        return {k: hostile(v, payload) for k, v in value.items()}
    return value


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def hostile_rows(run_dir: Path) -> None:
    """Every string of a sweep directory's rows made hostile, the payloads alternating by row.

    The verdict's outcome stays one the numbers know, so the headline tables and
    figures are drawn and carry the hostile names too; the scoring is ``SCHEME``, the
    task ``TASK``, and a problem keeps one id (``PAYLOADS[1]`` before it) in every row.
    """
    path = next(run_dir.glob("rows*.jsonl"))
    rows = []
    for i, row in enumerate(json.loads(line) for line in path.read_text().splitlines()):
        outcome, problem = row["verdict"]["outcome"], PAYLOADS[1] + row["row_id"]
        row = hostile(row, PAYLOADS[i % 2])
        row["verdict"]["outcome"], row["scheme"], row["task"]["name"], row["row_id"] = outcome, SCHEME, TASK, problem
        row["verdict"]["details"][PAYLOADS[1]] = PAYLOADS[0]  # an object's keys are shown too
        rows.append(row)
    write_jsonl(path, rows)


def hostile_training_run(tmp_path: Path, tokenizer) -> Path:
    """``training_dir``'s run with every string hostile: eval rows, rollouts, metrics, run.json, summary.json,
    and its directory's name."""
    run = training_dir(tmp_path, tokenizer)
    hostile_rows(run / "eval" / "arith")
    rollout = json.loads((run / "rollouts.jsonl").read_text())
    rollouts = [hostile(rollout, payload) for payload in PAYLOADS]
    for step, line in enumerate(rollouts, 1):  # the outcome one the numbers know, the step a number: a stored trace
        line["verdict"]["outcome"], line["step"] = rollout["verdict"]["outcome"], step
    write_jsonl(run / "rollouts.jsonl", rollouts)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    metrics[0][PAYLOADS[0]] = PAYLOADS[1]  # a key and a value no figure knows
    metrics += [{"step": PAYLOADS[0], "loss": PAYLOADS[1], "reward": PAYLOADS[0]},  # a string step: not a step
                {"step": 3, "loss": 0.1, "reward": PAYLOADS[1], PAYLOADS[1]: 0.5}]
    write_jsonl(run / "metrics.jsonl", metrics)
    (run / "run.json").write_text(json.dumps({"config": {PAYLOADS[0]: PAYLOADS[1]}, "argv": list(PAYLOADS)}))
    (run / "summary.json").write_text(json.dumps({
        "start": {"reward": 0.25, PAYLOADS[0]: PAYLOADS[1]}, "end": {"reward": 0.5, PAYLOADS[1]: PAYLOADS[0]},
        "window": PAYLOADS[0], "warnings": list(PAYLOADS)}))
    return Path(shutil.move(run, tmp_path / DIR_PAYLOAD))


def open_page(browser, page_path: Path):
    """The page, ready, with every dialog and error it raises recorded."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.as_uri())
    page.wait_for_function("window.rlcotReport && window.rlcotReport.ready")
    return page, dialogs, errors


def click_everything(page) -> list[str]:
    """Each outcome chip, each option of each filter, then every trace opened in turn; what was injected on the way."""
    page.evaluate(WATCH_INJECTED)
    for chip in page.locator("#f-outcome button").all():
        chip.click()
        page.click("#f-reset")
    for select in ("#f-budget", "#f-hedged", "#f-task", "#f-series"):
        for value in page.eval_on_selector_all(f"{select} option", "options => options.map((o) => o.value)"):
            page.select_option(select, value)
        page.click("#f-reset")
    page.locator("#trace-table tbody tr").first.click()
    for _ in range(page.locator("#trace-table tbody tr").count() - 1):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Escape")
    return page.evaluate("window.injected")


def test_a_report_of_hostile_runs_runs_no_script_and_shows_every_payload_as_text(browser, tmp_path, tokenizer):
    sweep = tmp_path / "sweep"
    run_sweep(spec(limit=2), sweep, loader=model_loader(hash_lm(tokenizer), tokenizer))
    hostile_rows(sweep)
    run = hostile_training_run(tmp_path, tokenizer)
    page_path = write_report([sweep, run], tmp_path / "report.html", scheme=SCHEME)
    assert page_path.read_text().count("</script>") == 2  # the data's and the code's: the data closed none

    page, dialogs, errors = open_page(browser, page_path)
    injected = click_everything(page)
    page.wait_for_timeout(200)  # an injected image's error handler would run by now
    assert injected == []
    assert dialogs == []
    assert errors == []  # nothing raised, and nothing the page's policy had to block

    # the payloads are there as text: escaped, not dropped
    assert all(p in page.inner_text("#headline") for p in (*PAYLOADS, DIR_PAYLOAD))  # tables, summary, warnings
    assert DIR_PAYLOAD in " ".join(page.locator("#figures figcaption").all_inner_texts())
    assert DIR_PAYLOAD in page.inner_text("#runs") and SCHEME in page.inner_text("#runs")
    for select in ("#f-task", "#f-series"):
        assert set(PAYLOADS) <= {p for text in page.locator(f"{select} option").all_inner_texts()
                                 for p in PAYLOADS if p in text}, select
    budgets = page.eval_on_selector_all("#f-budget option", "options => options.map((o) => o.value)")
    assert any(PAYLOADS[0] in value for value in budgets)  # the forcing mode, part of each budget option's value
    data = embedded(page_path)
    rollouts = [t for t in data["traces"] if data["series"][t["s"]].endswith("rollouts")]
    assert [(t["st"], t["c"].startswith(p)) for t, p in zip(rollouts, PAYLOADS)] == [(1, True), (2, True)]
    page.click("#f-reset")
    page.locator("#trace-table tbody tr").first.click()
    detail = page.inner_text("#detail")
    assert detail.count(PAYLOADS[0]) >= 5  # question, prompt, completion, answer read, gold, reason, details
    page.close()


def test_the_pages_policy_runs_no_inline_handler_and_loads_nothing_from_outside(browser, sweep_dir, tmp_path):
    page, dialogs, errors = open_page(browser, write_report([sweep_dir], tmp_path / "report.html"))
    requests = []
    page.on("request", lambda request: requests.append(request))
    # what an escape the page missed would add: inline handlers, an image from elsewhere
    page.evaluate("""() => document.body.insertAdjacentHTML("beforeend", '<img src="x" onerror="window.ran = true">' +
        '<img src="https://example.com/pixel.png"><svg onload="window.ran = true"></svg>')""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.ran") is None and dialogs == []
    outside = [request for request in requests if request.url.startswith("http")]
    assert outside and all(request.failure == "csp" for request in outside)  # refused by the policy, not the network
    assert any("Content Security Policy" in e for e in errors)  # blocked, and said so
    page.close()


def test_lines_of_the_wrong_type_are_left_out_and_named_on_the_page_not_a_traceback(browser, sweep_dir, tmp_path,
                                                                                  tokenizer):
    path = next(sweep_dir.glob("rows*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    good = rows[0]
    junk = [  # each a line a writer of another version, a hand edit or an attacker could leave
        {**good, "key": "outcome", "verdict": {**good["verdict"], "outcome": PAYLOADS[0]}},  # not an outcome
        {**good, "key": "score", "score": None},  # no score: the rates cannot average it
        {**good, "key": "budget", "budget": PAYLOADS[1]},  # a string budget
        {**good, "key": "types", "sample": "0", "thinking_tokens": "many", "capped": "yes", "task": 7, "row": [1],
         "verdict": PAYLOADS[0], "forced_spans": [["a", 2], [5], "x", [3, 10 ** 6]], "completion": 12345},
        {**good, "key": "answer", "verdict": {**good["verdict"], "answer": [[PAYLOADS[0]]]}},  # answers are text
    ]
    shown = [  # odd but well-typed: shown, and counted
        {**good, "key": "math", "model": "$\\frac{$"},  # TeX matplotlib cannot parse, in a curve's label
        {**good, "key": "surrogate", "completion": "\ud800 a lone surrogate"},  # JSON holds it, UTF-8 cannot
        {**good, "key": "deep", "verdict": {**good["verdict"], "details": {"deep": json.loads("[" * 900 + "]" * 900)}}},
    ]
    crossword = crossword_row()
    crossword["verdict"]["answer"] += "\nEXTRA\nLINES"  # more lines than the grid has
    write_jsonl(path, rows + junk + shown + [crossword])
    run = training_dir(tmp_path, tokenizer)
    write_jsonl(run / "rollouts.jsonl", [{"completion": 42, "prompt": ["a", PAYLOADS[0]], "step": {"at": PAYLOADS[1]},
                                          "verdict": PAYLOADS[0], "forced_spans": PAYLOADS[1], "row": PAYLOADS[0],
                                          "task": {"name": [PAYLOADS[0]]}, "thinking_tokens": PAYLOADS[1]}])
    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": NaN, "loss": 0.1, "reward": Infinity}\n{"step": "3", "loss": "x"}\n')
    (run / "summary.json").write_text(json.dumps(list(PAYLOADS)))  # not an object

    page_path = write_report([sweep_dir, run], tmp_path / "report.html")
    data = embedded(page_path)
    left_out = " ".join(data["left_out"])
    for reason in ("verdict's outcome is", "score is null", "budget is", "task is 7", "verdict's answer is",
                   "not a stored trace: missing key"):  # the last: the rollout line
        assert reason in left_out, reason
    assert f"{path}:{len(rows) + 1}:" in left_out and str(run / "rollouts.jsonl") + ":1:" in left_out
    assert len(data["traces"]) == len(rows) + len(shown) + 1 + 2 * 3 * 3 * 2  # + the crossword, the eval curves
    assert "is not a JSON object" in data["training"][0]["warnings"][0]  # the summary, named, not a traceback
    assert any(t["c"].startswith("\ud800") for t in data["traces"])  # the lone surrogate kept, as JSON's escape

    page, dialogs, errors = open_page(browser, page_path)
    assert click_everything(page) == [] and dialogs == [] and errors == []  # every trace opened without an error
    assert "verdict's outcome is" in page.inner_text("body")  # the left-out lines are named on the page
    page.close()
