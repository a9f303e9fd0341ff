"""Verifier throughput and worst-case latency.

1. Verdicts/s of every registered verifier that imports (``math``; ``sudoku`` and
   ``crossword`` when their modules exist, on their own generators' puzzles), one
   call at a time (``verify``) and batched (``verify_batch``), on a mix of right and
   wrong completions. A verifier that cannot be imported or fed is skipped with a note.
2. ``math`` against its peer: math-verify's ``parse``/``verify`` called directly, in
   the main thread with its own signal timeouts. Two sets: GSM8K golds with
   plain-number answers (our in-process exact path) and MATH-style LaTeX pairs (our
   worker pool, a pipe round trip each). Each timing runs on its own cases from the
   same generator, so none rides on parse caches another warmed; "agrees" is the
   share of math-verify's cases where our verdict is correct exactly when it says True.
3. ``math`` worst latency over hostile answers, against the time bound.
4. ``math`` under contention: 8 threads on 2 workers, 6 exponent towers and 2 easy
   answers (that still need math-verify) at once, then the same with both workers
   stopped (SIGSTOP); every call's latency against the bound (waiting for a busy worker
   counts against it). Before the fix the easy calls took 4.8 s and 2.5 s.
5. Oversized answer sections: 4 MB for ``sudoku`` and ``crossword`` (refused unread as
   ``too_long``), 1 MB of brace soup for every verifier.

Latency lives here, not in the tests: a test asserts a time only for the bound that is
a feature (math's timeout), with a margin machine load cannot flip.

Run: ``make bench``, or ``.venv/bin/python bench/verifier_speed.py`` (about a minute; ``--quick`` for
less).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from rlcot.tasks import GSM8K_DIR
from rlcot.verifiers import get_verifier

GSM8K = GSM8K_DIR / "test.jsonl"  # the copy the package ships

LATEX_TEMPLATES = [  # (answer, gold) for a case number k: MATH-style answers, right and wrong, all distinct
    lambda k: (f"\\frac{{{k}}}{{4}}", f"{k / 4}"), lambda k: (f"\\frac{{{k}}}{{5}}", f"{k / 4}"),
    lambda k: (f"{k + 2}\\sqrt{{2}}", f"\\sqrt{{{2 * (k + 2) ** 2}}}"),
    lambda k: (f"{k + 3}\\sqrt{{2}}", f"\\sqrt{{{2 * (k + 2) ** 2}}}"),
    lambda k: (f"(x+{k})^2", f"x^2+{2 * k}x+{k * k}"), lambda k: (f"(x-{k})^2", f"x^2+{2 * k}x+{k * k}"),
    lambda k: (f"\\frac{{{k}\\pi}}{{2}}", f"{k}\\pi/2"), lambda k: (f"({k}, {k + 1})", f"({k},{k + 1})"),
    lambda k: (f"({k + 1}, {k})", f"({k},{k + 1})"), lambda k: (f"[0, {k})", f"[0,{k})"),
    lambda k: (f"x = {k}", f"{k}"), lambda k: (f"10^{{{k % 20 + 1}}}", f"{10 ** (k % 20 + 1)}"),
]

HOSTILE = {  # name -> (answer section, gold)
    "exponent tower": ("\\boxed{9^{9^{9^{9}}}}", "4"),
    "cancelling towers": ("\\boxed{10^{10^{10^{10}}} - 10^{10^{10^{10}}} + 1}", "1"),
    "1 MB of braces in a box": ("\\boxed{" + "{" * 500_000 + "}" * 500_000 + "}", "4"),
    "1 MB unclosed box": ("\\boxed{" + "{" * 1_000_000, "4"),
    "1,000 nested unclosed boxes": ("\\boxed{" * 1000, "4"),
    "10,000 digits vs 7": ("\\boxed{" + "9" * 10_000 + "}", "7"),
    "10,000 digits vs \\frac12": ("\\boxed{" + "9" * 10_000 + "}", "\\frac12"),
    "300 nested roots": ("\\boxed{" + "\\sqrt{" * 300 + "2" + "}" * 300 + "}", "4"),
    "(x+1)^2000 expansion": ("\\boxed{(x+1)^{2000} - (x-1)^{2000}}", "4"),
    "200 nested fractions": ("\\boxed{" + "\\frac{" * 200 + "1" + "}{2}" * 200 + "}", "4"),
    "1,000 different boxes": ("".join(f"\\boxed{{{i}}}" for i in range(1000)), "4"),
    "1 MB of hedged text": ("I think maybe " * 75_000 + "\\boxed{4}", "4"),
    "99 KB of brace soup (read)": ("}{\\boxed{" * 11_000, "4"),  # just under max_section_chars: in-process
}


def rate(fn, items) -> tuple[float, list]:
    start = time.perf_counter()
    out = fn(items)
    return len(items) / (time.perf_counter() - start), out


def gsm8k_cases(n: int, first: int = 0) -> list[tuple[str, dict]]:
    rows = [json.loads(line) for line in GSM8K.open()][first:first + n]
    cases = []
    for i, row in enumerate(rows):
        gold = int(row["answer"].rsplit("####", 1)[1].replace(",", ""))
        answers = [f"\\boxed{{{gold}}}", f"\\boxed{{{gold + 1}}}", f"I think \\boxed{{{gold}}}", f"\\boxed{{{gold:,}}}"]
        thinking = row["answer"].split("####")[0]
        cases.append((f"<think>{thinking}</think>The answer is {answers[i % 4]}.", {"answer": row["answer"]}))
    return cases


def latex_cases(n: int, first: int = 0) -> list[tuple[str, dict]]:
    pairs = [LATEX_TEMPLATES[i % len(LATEX_TEMPLATES)](i // len(LATEX_TEMPLATES) + 1) for i in range(first, first + n)]
    return [(f"<think>work</think>So the answer is $\\boxed{{{a}}}$.", {"answer": g}) for a, g in pairs]


def ours(verifier, one_cases, batch_cases) -> dict:
    """verify and verify_batch timed on disjoint cases, so neither rides on caches the other warmed."""
    one, verdicts = rate(lambda cs: [verifier.verify(c, e) for c, e in cs], one_cases)
    batch, _ = rate(lambda cs: verifier.verify_batch([c for c, _ in cs], [e for _, e in cs]), batch_cases)
    sample = one_cases[:50]
    if verifier.verify_batch([c for c, _ in sample], [e for _, e in sample]) != verdicts[:50]:
        raise RuntimeError(f"{verifier.name}: verify_batch disagrees with verify")
    return {"one": one, "batch": batch, "correct": sum(v.outcome == "correct" for v in verdicts) / len(verdicts)}


def math_verify_direct(cases) -> tuple[float, list[bool]]:
    """Verdicts/s of math-verify alone (parse the gold and the answer section, verify), and its results."""
    from math_verify import parse, verify

    from rlcot.verifiers.math_answers import gold_answer

    def run(items):
        return [verify(parse(f"${gold_answer(e)}$"), parse(c.split("</think>")[-1])) for c, e in items]

    return rate(run, cases)


def bench_math(n: int) -> list[list[str]]:
    rows = []
    verifier = get_verifier("math")
    start = time.perf_counter()
    verifier.start()
    print(f"math: {verifier.workers} workers started in {time.perf_counter() - start:.1f} s")
    sets = [("MATH-style LaTeX", latex_cases, n // 2)]
    if GSM8K.exists():
        sets.insert(0, ("gsm8k, plain numbers", gsm8k_cases, n))
    else:
        print(f"math: GSM8K set skipped ({GSM8K} not found)")
    for label, make, size in sets:
        one_cases, batch_cases, direct_cases = make(size), make(size, size), make(size, 2 * size)
        figures = ours(verifier, one_cases, batch_cases)
        direct, direct_results = math_verify_direct(direct_cases)
        agree = sum((verifier.verify(c, e).outcome == "correct") == bool(r)
                    for (c, e), r in zip(direct_cases, direct_results)) / len(direct_cases)
        rows.append([f"math ({label})", str(size), f"{figures['one']:,.0f}", f"{figures['batch']:,.0f}",
                     f"{direct:,.0f}", f"{figures['batch'] / direct:.1f}x", f"{agree:.0%}"])
    worst = []
    for name, (section, gold) in HOSTILE.items():
        start = time.perf_counter()
        verdict = verifier.verify(f"<think>x</think>{section}", {"answer": gold})
        worst.append((time.perf_counter() - start, name, f"{verdict.outcome}/{verdict.reason}"))
    verifier.close()
    print(f"\nmath, hostile answers (bound {verifier.timeout:.1f} s):")
    for seconds, name, outcome in sorted(worst, reverse=True):
        over = "  OVER THE BOUND" if seconds > verifier.timeout else ""
        print(f"  {seconds * 1000:8.1f} ms  {name:28s} {outcome}{over}")
    return rows


def timed_in_threads(verifier, cases: list[tuple[str, dict]]) -> list[tuple[float, object]]:
    """Each case verified in its own thread, all released at once: (seconds, verdict) in order."""
    barrier = threading.Barrier(len(cases))

    def call(case):
        barrier.wait()
        start = time.perf_counter()
        verdict = verifier.verify(*case)
        return time.perf_counter() - start, verdict

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        return list(pool.map(call, cases))


def bench_contention() -> None:
    """More threads than workers: every call's latency against the bound, towers and easy answers apart."""
    from rlcot.verifiers.math import MathVerifier

    tower = ("<think>x</think>\\boxed{9^{9^{9^{9^{9}}}}}", {"answer": "4"})
    easy = ("<think>x</think>\\boxed{\\frac{1}{2}}", {"answer": "0.5"})  # not a plain number: needs a worker
    for stopped in (False, True):
        with MathVerifier(timeout=2.0, workers=2).start() as verifier:
            if stopped:
                for pid in verifier.worker_pids():
                    os.kill(pid, signal.SIGSTOP)
            results = timed_in_threads(verifier, [tower] * 6 + [easy] * 2)
        label = "both workers stopped" if stopped else "6 towers + 2 easy"
        print(f"\nmath, 8 threads on 2 workers, {label} (bound {verifier.timeout:.1f} s):")
        for name, part in (("towers", results[:6]), ("easy", results[6:])):
            outcomes = sorted({f"{v.outcome}/{v.reason}" for _, v in part})
            worst = max(seconds for seconds, _ in part)
            over = "  OVER THE BOUND" if worst > verifier.timeout + 0.1 else ""
            print(f"  {name:7s} worst {worst * 1000:8.1f} ms  {', '.join(outcomes)}{over}")


def bench_oversized() -> None:
    """Latency of answer sections no honest model writes: 4 MB for the puzzles, 1 MB of braces for all."""
    from rlcot.verifiers.crossword_generator import generate as crosswords
    from rlcot.verifiers.sudoku_generator import generate as sudokus

    rows = {"math": {"answer": "4"}, "sudoku": sudokus(1, size=9, seed=0)[0], "crossword": crosswords(1, seed=0)[0]}
    sections = {"sudoku": "5 3 4 6 7 8 9 1 2\n" * 230_000, "crossword": "CAT\nO#O\nBYE\n" * 350_000}
    print("\noversized answer sections:")
    for name, row in rows.items():
        verifier = get_verifier(name)
        cases = [("1 MB of brace soup", "}{\\boxed{" * 125_000)]
        if name in sections:
            cases.append(("4 MB of grid rows", sections[name]))
        for label, section in cases:
            start = time.perf_counter()
            verdict = verifier.verify(f"<think>x</think>{section}", row)
            seconds = time.perf_counter() - start
            print(f"  {name:9s} {label:20s} {seconds * 1000:8.1f} ms  {verdict.outcome}/{verdict.reason}")
        if hasattr(verifier, "close"):
            verifier.close()


def puzzle_completion(module, example: dict, rng: random.Random, right: bool) -> str | None:
    """A completion stating the example's solution, or with one square changed; None if we can't.

    Solutions are a string of cells (sudoku) or a list of row strings (crossword); a
    module's own ``format_answer`` writes the answer when it has one.
    """
    solution, side = example.get("solution"), example.get("size", 9)
    rows = [solution[i:i + side] for i in range(0, len(solution), side)] if isinstance(solution, str) else solution
    if not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows):
        return None
    rows = list(rows)
    if not right:
        r = rng.randrange(len(rows))
        columns = [c for c, ch in enumerate(rows[r]) if ch.isalnum()]
        c = rng.choice(columns)
        cell = rows[r][c]
        new = ("2" if cell == "1" else "1") if cell.isdigit() else ("B" if cell == "A" else "A")
        rows[r] = rows[r][:c] + new + rows[r][c + 1:]
    fixed = {**example, "solution": "".join(rows) if isinstance(solution, str) else rows}
    if hasattr(module, "format_answer"):
        text = module.format_answer(fixed, style="grid")
    else:
        text = "\n".join(" ".join(row) for row in rows)
    return f"<think>solving</think>\n{text}\n"


def bench_puzzles(name: str, n: int) -> list[list[str]]:
    try:
        verifier = get_verifier(name)
        module = importlib.import_module(f"rlcot.verifiers.{name}")
        generator = importlib.import_module(f"rlcot.verifiers.{name}_generator")
        start = time.perf_counter()
        examples = generator.generate(n, seed=0)
        made = time.perf_counter() - start
    except Exception as err:  # noqa: BLE001 - a module being written by others may not be ready
        print(f"{name}: skipped ({type(err).__name__}: {err})")
        return []
    rng = random.Random(0)
    cases = [(puzzle_completion(module, e, rng, i % 2 == 0), e) for i, e in enumerate(examples)]
    if any(c is None for c, _ in cases):
        print(f"{name}: skipped (its examples carry no 'solution' string to write a completion from)")
        return []
    print(f"{name}: generated {n} puzzles in {made:.1f} s")
    half = len(cases) // 2
    figures = ours(verifier, cases[:half], cases[half:])
    return [[name, str(half), f"{figures['one']:,.0f}", f"{figures['batch']:,.0f}", "", "", ""]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    args = parser.parse_args()
    n = 150 if args.quick else 400
    rows = bench_math(n)
    bench_contention()
    bench_oversized()
    for name in ("sudoku", "crossword"):
        rows += bench_puzzles(name, 40 if args.quick else 120)
    header = ["verifier (cases)", "n", "verify/s", "batch/s", "math-verify/s", "batch vs mv", "agrees with mv"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print()
    for row in [header] + rows:
        cells = [str(cell).rjust(w) if i else str(cell).ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells))


if __name__ == "__main__":
    main()
