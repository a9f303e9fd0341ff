"""Math answers: strict extraction (``math_answers``), equivalence by math-verify in worker processes.

How answers are extracted, what the gold is, normalisation and the plain-number reading
live in ``math_answers`` (pure functions); this module judges with them.

Equivalence of LaTeX answers is math-verify's (Kydlíček et al., Hugging Face,
https://github.com/huggingface/Math-Verify): it parses LaTeX and plain expressions
into sympy and compares them as strings, numerically (floats rounded to 6 places)
and symbolically, with sets, intervals, relations and matrices handled. We do not
write our own LaTeX-to-sympy layer. Around it, our exactness rules:

- **Plain numbers compare exactly, in-process.** See ``math_answers``: when the gold
  and every answer are plain numbers they never reach math-verify.
- **Percent is strict unless asked.** A percent sign on one side only is ``wrong``:
  ``50\\%`` equals ``50\\%``, not ``50`` nor ``0.5``. math-verify itself accepts both
  (it reads ``9%`` as ``9`` when both are integers), and so does ``lenient_percent=True``
  (``x%`` matches ``x`` and ``x/100``). Where only the percent sign stood between an
  answer and the gold, the reason is ``percent_mismatch``: a user sees what the option
  would change. GSM8K's "what percent" questions have bare golds (``25``): turn it on.

**The time bound.** math-verify runs in a ``workers.WorkerPool`` (why processes, and
how a worker is stopped, in that module), each worker running ``make_comparer``. A
call's deadline is ``timeout`` (default 2 s) after judging starts (the shared rules
before it read at most ``max_section_chars``); in-process work and any wait for a busy
worker count against it, so with more threads than workers a call queued behind
exponent towers still returns on time (``unparsed``, ``timeout``). Only the pool's
first start (importing sympy, about a second) is not counted:
``start()`` pays it up front, otherwise the first calls that need a worker do. By
default the pool keeps two workers or more, so one killed worker leaves another
ready. ``verify_answer_batch`` (and so ``verify_batch``) runs ``verify_answer`` from
as many threads as workers, each taking the next item: same verdicts, in order. One
request per answer: a round trip costs ~0.1 ms against math-verify's 1-30 ms, so
chunks would buy little and complicate kills.

**A gold that cannot be read is the row's error, never a score.** math-verify keeps the
raw string of what it cannot parse and compares strings, so a broken gold (``\\frac{``,
``---``) would score every answer wrong but a copy of itself right. ``check_example``
(run before every verdict) asks a worker once per distinct gold whether every part
parses to a value, and raises ``ValueError`` (``gold_unreadable: ...``) if not, as an
empty or missing gold does (``math_answers.gold_parts``): ``rlcot score`` writes the
row to its rejects file, a sweep leaves the row out and names it, training refuses the
recipe's rows up front (``rlcot.row_checks``) and a reward function gives the row None.

Hostile input is rejected before it reaches sympy: an answer over
``max_answer_chars`` (default 4,000) that is not a plain number is ``unparsed``
(``too_long``); at most 16 distinct boxes are compared (more is ``multiple_answers``).
An answer section over ``max_section_chars`` (default 100,000) is ``too_long`` unread:
reading boxes and hedges runs in the caller's process at up to ~1 s per MB of brace
soup, work no worker's bound covers, and no honest answer section is that long.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from .base import Verdict, Verifier, _check_lengths
from .hedging import DEFAULT_LEXICON, HedgeLexicon
from .math_answers import (_clean_pattern_match, _distinct, _has_percent, _normalise, compile_answer_pattern,
                           gold_parts, numbers_equal, plain_number)
from .sections import boxed_contents
from .workers import WorkerPool

MAX_DISTINCT_ANSWERS = 16
COMPARER = "rlcot.verifiers.math:make_comparer"  # what each worker runs


class MathVerifier(Verifier):
    """Boxed (or pattern-declared) math answers against a gold; see the module docstring.

    ``timeout``: seconds per call, in any thread. ``answer_pattern``: regex with one
    group, or a name in ``ANSWER_PATTERNS``, used when the answer has no box.
    ``lenient_percent``: ``x%`` also matches ``x`` and ``x/100``. ``workers``: pool size
    (default: CPU count, between 2 and 4). ``max_answer_chars``: longer non-numeric
    answers are ``too_long``. ``max_section_chars``: longer answer sections are
    ``too_long``, unread. ``startup_timeout``: seconds a new worker may take to start.
    ``numbers_only``: the final answer must be a plain number; anything else (``4*7``,
    which math-verify would work out) is ``wrong`` (``not_a_number``). A task whose
    question is itself an expression sets it (``chain``): copying the question into the
    box must not score as solving it.
    """

    name = "math"

    def __init__(self, timeout: float = 2.0, answer_pattern: str | None = None, lenient_percent: bool = False,
                 workers: int | None = None, max_answer_chars: int = 4000, max_section_chars: int = 100_000,
                 startup_timeout: float = 60.0, numbers_only: bool = False,
                 lexicon: HedgeLexicon = DEFAULT_LEXICON):
        super().__init__(lexicon)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive number of seconds, e.g. 2.0")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers={workers!r} must be a positive int, or None for the default")
        for option, value, example in (("max_answer_chars", max_answer_chars, 4000),
                                        ("max_section_chars", max_section_chars, 100_000)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{option}={value!r} must be a positive int, e.g. {example}")
        self.timeout = float(timeout)
        self.answer_pattern = compile_answer_pattern(answer_pattern) if answer_pattern is not None else None
        self.lenient_percent = lenient_percent
        self.numbers_only = bool(numbers_only)
        self.workers = workers or min(4, max(2, os.cpu_count() or 1))
        self.max_answer_chars = max_answer_chars
        self.max_section_chars = max_section_chars
        self.startup_timeout = startup_timeout
        self._pool: WorkerPool | None = None
        self._pool_lock = threading.Lock()
        self._readable_golds: set[tuple[str, ...]] = set()  # golds a worker has read (check_example)

    # -- the domain rule -------------------------------------------------------------

    def answer_section_limit(self, example: Mapping) -> int:
        return self.max_section_chars

    def check_example(self, example: Mapping) -> None:
        golds = gold_parts(example)
        if example.get("answer_pattern") is not None:
            compile_answer_pattern(example["answer_pattern"])
        self._check_gold_reads(tuple(golds))

    def _check_gold_reads(self, golds: tuple[str, ...]) -> None:
        """ValueError (``gold_unreadable``) when math-verify reads no value in a part of the gold.

        math-verify falls back to comparing the raw strings of what it cannot parse, so an
        unreadable gold (``\\frac{``, ``---``) would score every answer wrong but its own
        copy right, without a word. Plain numbers are read here; anything else asks a
        worker once per distinct gold (cached). A worker that does not answer in time
        leaves the gold to the comparison, which refuses it there too.
        """
        if (len(golds) == 1 and plain_number(golds[0]) is not None) or golds in self._readable_golds:
            return
        pool = self._get_pool()
        first_start = pool.wait_started()
        reply = pool.call({"gold": list(golds)}, time.monotonic() + first_start + self.timeout)
        if reply.get("status") == "gold_unreadable":
            raise gold_unreadable(golds)
        if reply.get("status") == "ok":
            self._readable_golds.add(golds)

    def judge(self, answer: str, example: Mapping) -> Verdict:
        started = time.monotonic()
        golds = gold_parts(example)
        gold = ", ".join(golds)
        details = {"gold": gold}
        answers = self.extract_answers(answer, example)
        if not answers:
            return Verdict("unparsed", reason="no_answer", details=details)
        answers = [a for a in answers if a]
        if not answers:
            return Verdict("unparsed", reason="empty_answer", details=details)
        distinct = _distinct(answers)
        final = distinct[-1]
        if len(distinct) > MAX_DISTINCT_ANSWERS:
            return Verdict("wrong", answer=final, reason="multiple_answers", details=details)
        if self.numbers_only and plain_number(final) is None:
            return Verdict("wrong", answer=final, reason="not_a_number", details=details)
        veto = not self.lenient_percent and _has_percent(final) != _has_percent(gold)
        exact = self._compare_plain(golds, distinct)
        if exact is not None:
            return _verdict(*exact, veto, final, {**details, "engine": "exact"})
        if any(len(a) > self.max_answer_chars for a in distinct):
            return Verdict("unparsed", reason="too_long", details={**details, "chars": max(map(len, distinct))})
        return self._compare_in_worker(golds, distinct, veto, started, details)

    def extract_answers(self, answer: str, example: Mapping) -> list[str]:
        """Every final answer the section states, in order, normalised (empty strings kept)."""
        boxes = boxed_contents(answer)
        if not boxes:
            pattern = self.answer_pattern
            if example.get("answer_pattern") is not None:
                pattern = compile_answer_pattern(example["answer_pattern"])
            if pattern is None:
                return []
            boxes = [_clean_pattern_match(m.group(1)) for m in pattern.finditer(answer)]
        return [_normalise(b) for b in boxes]

    def _compare_plain(self, golds: list[str], answers: list[str]) -> tuple[bool, bool] | None:
        """(consistent, correct) when the gold is one plain number and so is every answer, else None.

        Percent is lenient here, like math-verify; ``_verdict`` vetoes a percent mismatch.
        """
        if len(golds) != 1:
            return None
        gold_number = plain_number(golds[0])
        answer_numbers = [plain_number(a) for a in answers]
        if gold_number is None or any(n is None for n in answer_numbers):
            return None
        final = answer_numbers[-1]
        consistent = all(numbers_equal(n, final, lenient_percent=True) for n in answer_numbers[:-1])
        return consistent, numbers_equal(final, gold_number, lenient_percent=True)

    def _compare_in_worker(self, golds: list[str], answers: list[str], veto: bool, started: float,
                           details: dict) -> Verdict:
        pool = self._get_pool()
        first_start = pool.wait_started()  # the pool's first start is not part of any call's bound
        reply = pool.call({"gold": golds, "answers": answers}, started + first_start + self.timeout)
        final = answers[-1]
        details = {**details, "engine": "math-verify"}
        if reply["status"] == "timeout":
            return Verdict("unparsed", answer=final, reason="timeout", details=details)
        if reply["status"] == "gold_unreadable":
            raise gold_unreadable(tuple(golds))
        if reply["status"] != "ok":
            return Verdict("unparsed", answer=final, reason="error", details={**details, "error": reply.get("error")})
        return _verdict(reply["consistent"], reply["correct"], veto, final, details)

    # -- throughput and lifecycle -------------------------------------------------------

    def verify_answer_batch(self, sections: Sequence[str | None], examples: Sequence[Mapping]) -> list[Verdict]:
        """``verify_answer`` on each pair, fanned out over the worker pool; results in order."""
        _check_lengths(sections, examples, "answer sections")
        results: list[Verdict | None] = [None] * len(sections)
        pending = iter(range(len(sections)))  # shared: each thread takes the next index (atomic in CPython)

        def drain() -> None:
            for i in pending:
                results[i] = self.verify_answer(sections[i], examples[i])

        threads = min(self.workers, len(sections))
        if threads <= 1:
            drain()
            return results
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="math-verify") as pool:
            for future in [pool.submit(drain) for _ in range(threads)]:
                future.result()  # re-raises a ValueError (a bad example) from any thread
        return results

    def start(self) -> MathVerifier:
        """Start every worker now and wait until they are ready (otherwise the first call does)."""
        self._get_pool().wait_ready()
        return self

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring; empty before the first need)."""
        pool = self._pool
        return [] if pool is None else pool.pids()

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # a copy (pickled into another process) makes its own pool
        state = dict(self.__dict__)
        state["_pool"], state["_pool_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()

    def _get_pool(self) -> WorkerPool:
        with self._pool_lock:
            # After a fork the inherited pool's pipes belong to the parent: leave them alone.
            if self._pool is None or self._pool.owner_pid != os.getpid():
                self._pool = WorkerPool(COMPARER, self.workers, self.startup_timeout)
            return self._pool


def gold_unreadable(golds: tuple[str, ...]) -> ValueError:
    """The error of a row whose gold math-verify reads no value in (``check_example``)."""
    gold = ", ".join(golds)
    shown = repr(gold) if len(gold) <= 80 else repr(gold[:77] + "...")
    return ValueError(f"gold_unreadable: math-verify reads no value in the gold {shown}; fix the row's answer "
                      "(a number or a LaTeX expression), or mark the row answerable: false")


def _verdict(consistent: bool, correct: bool, percent_veto: bool, final: str, details: dict) -> Verdict:
    """The outcome of a comparison. ``percent_veto``: the match went through a percent sign on one side only."""
    if not consistent:
        return Verdict("wrong", answer=final, reason="multiple_answers", details=details)
    if correct and percent_veto:
        return Verdict("wrong", answer=final, reason="percent_mismatch", details=details)
    return Verdict("correct" if correct else "wrong", answer=final, details=details)


# -- what each worker runs (``workers.serve`` calls it once, then answers with the result) ---------


def make_comparer():
    """math-verify's comparison, its own (signal) timeouts off: the worker's timer and the caller's kill bound it."""
    from functools import lru_cache

    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    def parse_answer(text: str):
        return parse("\\boxed{" + text + "}", extraction_config=configs, parsing_timeout=None)

    def equal(a, b) -> bool:
        return verify(a, b, timeout_seconds=None)

    @lru_cache(maxsize=4096)
    def parse_gold(parts: tuple[str, ...]):
        """One part; or several, spellings of one value merged, read as the tuple of the rest."""
        kept = []
        for text in parts:
            parsed = parse_answer(text)
            if not any(equal(other, parsed) for _, other in kept):
                kept.append((text, parsed))
        return kept[0][1] if len(kept) == 1 else parse_answer(", ".join(text for text, _ in kept))

    @lru_cache(maxsize=4096)
    def reads(parts: tuple[str, ...]) -> bool:
        """Whether every part parses to a value (math-verify keeps the raw string of what it cannot parse)."""
        return all(any(not isinstance(value, str) for value in parse_answer(text)) for text in parts)

    def compare(gold: list[str], answers: list[str] | None = None) -> dict:
        """Whether the answers agree and match the gold; without answers, only whether the gold reads."""
        if not reads(tuple(gold)):
            return {"status": "gold_unreadable"}
        if answers is None:
            return {"status": "ok"}
        parsed = [parse_answer(a) for a in answers]
        final = parsed[-1]
        consistent = all(equal(final, p) for p in parsed[:-1])
        correct = equal(parse_gold(tuple(gold)), final)
        return {"status": "ok", "consistent": bool(consistent), "correct": bool(correct)}

    compare(["1"], ["\\frac{1}{2}", "x^2"])  # warm the LaTeX parser and sympy's caches before "ready"
    return compare
