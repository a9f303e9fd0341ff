"""How fast a 10,000-row report opens and filters in a real browser, against drawing every row.

A sweep of 2,500 arith problems x 4 budgets (0, 32, 64, 128) = 10,000 rows is written
in the exact schema ``rlcot sweep`` stores (the questions are the task's own; the
thinking is synthetic text as long as the budget allows, with the forced spans a capped
trace has). ``rlcot report`` turns it into one page, timed in Python; then headless
Chromium (Debian's, driven by Playwright) opens it, in the same run, two ways:

1. **ours**: the table draws one page of 200 rows; filters run over all rows in JS;
2. **every row drawn**: the same page with the page size set to infinity, what a
   report that renders its whole table does (the peer doing the same work).

For each: *open*, from navigation start to the table drawn (``performance.now()``
read by the page when ready: HTML parsed, 10k records parsed, figures and table
drawn); *filter*, a click on the "correct" outcome chip until the next frame is
painted, best of 5. The issue's bar: open and filter in under 2 s.

Run: ``make bench``, or ``.venv/bin/python bench/report.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rlcot.evals.report import write_report
from rlcot.tasks import get_task

CHROMIUM = "/usr/bin/chromium"
BUDGETS = (0, 32, 64, 128)
PROBLEMS = 2500
CUE = "\n\nThe final answer is \\boxed{"


def sweep_rows(problems: int = PROBLEMS) -> list[dict]:
    """``problems`` x ``BUDGETS`` rows as ``rlcot.evals.sweep`` writes them; a budget's trace is a prefix of the next's."""
    task = get_task("arith")
    rows = []
    for i, example in enumerate(task.rows(problems, seed=0)):
        steps = "".join(f"Step {k}: {i % 97} + {k} = {i % 97 + k}\n" for k in range(1, 40))
        for budget in BUDGETS:
            thinking = steps[: budget * 4]  # ~4 characters a token
            answer = str(int(example["answer"]) + (0 if (i + budget) % 3 else 1))
            opening = "<think>\n" + thinking
            completion = opening + "\n</think>" + CUE + answer + "}."
            correct = answer == example["answer"]
            rows.append({
                "key": f"bench-{i}-{budget}", "model": "smollm2-135m", "row_id": str(example["id"]), "row": example,
                "task": {"name": "arith", "data": None, "options": {}}, "sample": 0, "budget": budget, "mode": "cap",
                "step": None, "prompt": f"<|im_start|>user\n{example['question']}<|im_end|>\n<|im_start|>assistant\n",
                "completion": completion, "answer": CUE + answer + "}.",
                "forced_spans": [[len(opening), len(opening) + len("\n</think>") + len(CUE)]],
                "thinking_tokens": len(thinking) // 4, "capped": budget < 128, "finish_reason": "capped",
                "verdict": {"outcome": "correct" if correct else "wrong", "hedged": False, "answer": answer,
                            "reason": None, "details": {"gold": example["answer"]}},
                "score": 1.0 if correct else -4.0, "scheme": "default", "gold_logprob": -1.0 - budget / 100})
    return rows


def measure(page_url: str, browser) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(page_url)
    page.wait_for_function("window.rlcotReport && window.rlcotReport.ready", timeout=120_000)
    open_ms = page.evaluate("window.rlcotReport.timings.readyAt")
    filter_ms = []
    for _ in range(5):
        filter_ms.append(page.evaluate("""async () => {
            const chip = document.querySelector('#f-outcome [data-outcome="correct"]');
            const t = performance.now();
            chip.click();
            await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
            return performance.now() - t;
        }"""))
    shown = page.locator("#trace-table tbody tr").count()
    page.close()
    if errors:
        raise RuntimeError(f"the page raised: {errors}")
    return {"open_ms": open_ms, "filter_ms": min(filter_ms), "filter_median_ms": statistics.median(filter_ms),
            "rows_drawn": shown}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help says what it is
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        sweep = Path(scratch) / "sweep"
        sweep.mkdir()
        rows = sweep_rows()
        (sweep / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        started = time.perf_counter()
        ours = write_report([sweep], Path(scratch) / "ours.html")
        written_s = time.perf_counter() - started
        every = Path(scratch) / "every.html"
        html = ours.read_text()
        every.write_text(html.replace("const PAGE = 200;", "const PAGE = Infinity;", 1))
        print(f"{len(rows):,} rows; `rlcot report` wrote {ours.stat().st_size / 1e6:.1f} MB in {written_s:.1f} s")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            print(f"Chromium {browser.version}, headless")
            results = {name: measure(path.as_uri(), browser) for name, path in (("ours", ours), ("every row", every))}
            browser.close()
    print(f"{'':<12}{'open (ms)':>11}{'filter (ms)':>13}{'median':>9}{'rows drawn':>12}")
    for name, r in results.items():
        print(f"{name:<12}{r['open_ms']:>11.0f}{r['filter_ms']:>13.0f}{r['filter_median_ms']:>9.0f}{r['rows_drawn']:>12,}")
    a, b = results["ours"], results["every row"]
    print(f"ours vs every row drawn: open {b['open_ms'] / a['open_ms']:.1f}x faster, "
          f"filter {b['filter_median_ms'] / a['filter_median_ms']:.1f}x faster")


if __name__ == "__main__":
    main()
