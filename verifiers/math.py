"""Math answers: strict extraction here, equivalence by math-verify in worker processes.

Extraction is ours and strict. The answer is the last ``\\boxed{...}`` of the answer
section (nested braces; ``base.boxed_contents``). Without a box, a task may declare a
format: ``answer_pattern``, a regex with one group (or a preset name from
``ANSWER_PATTERNS``: ``"gsm8k"`` for ``#### 42``, ``"answer_is"`` for "The answer is
42"), given to the constructor or per example as ``example["answer_pattern"]``. There
is no fallback to "the last number in the text": no box and no declared format is
``unparsed`` (``no_answer``); an empty box is ``unparsed`` (``empty_answer``). Two final
answers that are not equivalent (``\\boxed{3} ... \\boxed{4}``) are ``wrong``
(``multiple_answers``) even if one of them matches the gold: a policy must not be paid
for spreading bets. The same value boxed twice is fine.

The gold is ``example["answer"]``: a plain value (``42``, ``3/4``, ``\\frac{1}{2}``),
a GSM8K solution (what follows the last ``####``, commas stripped) or a MATH solution
(its last box). ``details["gold"]`` carries the normalised gold.

Equivalence of LaTeX answers is math-verify's (Kydlíček et al., Hugging Face,
https://github.com/huggingface/Math-Verify): it parses LaTeX and plain expressions
into sympy and compares them as strings, numerically (floats rounded to 6 places)
and symbolically, with sets, intervals, relations and matrices handled. We do not
write our own LaTeX-to-sympy layer. Around it, our exactness rules:

- **Plain numbers compare exactly, in-process.** When the gold and every answer are
  plain numbers (``-1,234``, ``0.50``, ``\\$18``, ``25\\%``), they are compared by
  canonical decimal strings (sign, digits without leading zeros, fraction without
  trailing zeros): exact like Python ints and ``Decimal``, never via floats, and
  linear in the length. So ``100000000000000000000001 != 100000000000000000000000``,
  and a 10,000-digit answer is judged in microseconds: we never call ``int()`` on it,
  so Python's 4,300-digit int-parsing limit (CVE-2020-10735) never applies and is
  never raised. math-verify would round a float to 15 significant digits here.
  Commas are thousands separators only in groups of three (``1,234``); ``1,2`` is
  left to math-verify (a tuple).
- **Percent is strict unless asked.** A percent sign on one side only is ``wrong``:
  ``50\\%`` equals ``50\\%``, not ``50`` nor ``0.5``. math-verify itself accepts both
  (it reads ``9%`` as ``9`` when both are integers), and so does ``lenient_percent=True``
  (``x%`` matches ``x`` and ``x/100``). Where only the percent sign stood between an
  answer and the gold, the reason is ``percent_mismatch``: a user sees what the option
  would change. GSM8K's "what percent" questions have bare golds (``25``): turn it on.

**Why worker processes.** math-verify bounds its work with ``signal.alarm``, which
only works in the main thread of the main interpreter; TRL calls reward functions
from wherever it likes, and a sympy ``simplify`` or a ``9^{9^{9^{9}}}`` can run for
minutes. So math-verify runs in a small pool of persistent worker processes
(``python -c``, not ``multiprocessing``: no re-import of the user's ``__main__``),
spoken to over pipes with one JSON line per request. The bound holds in any thread:

- the caller waits on the pipe with ``select`` until its deadline (``timeout``,
  default 2 s, counted from the start of the call);
- inside the worker (its main thread) an interval timer raises at 80% of what is
  left, which stops Python-level sympy work and keeps the worker alive;
- a worker that does not answer by the deadline (stuck in C code, where no signal
  handler runs) is killed and replaced in the background. Either way: ``unparsed``,
  reason ``timeout``. A worker that dies mid-request gives ``unparsed``, ``error``.

In practice the timer catches every hostile case we tried (exponent towers,
``(x+1)^{2000}`` expansions, deep nesting): sympy works at Python level. The kill is
the backstop, tested by stopping a worker with SIGSTOP.

Starting a worker (importing sympy, about a second) is not part of any call's bound;
``start()`` pays it up front, otherwise the first call that needs a worker does. By
default the pool keeps two workers or more, so one killed worker leaves another
ready. ``verify_batch`` runs ``verify`` from as many threads as workers, each taking
the next item: same verdicts, in order. One request per answer: a round trip costs
~0.1 ms against math-verify's 1-30 ms, so chunks would buy little and complicate kills.

Hostile input is rejected before it reaches sympy: an answer over
``max_answer_chars`` (default 4,000) that is not a plain number is ``unparsed``
(``too_long``); at most 16 distinct boxes are compared (more is ``multiple_answers``).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

from .base import Verdict, Verifier, boxed_contents
from .hedging import DEFAULT_LEXICON, HedgeLexicon

ANSWER_PATTERNS = {
    "gsm8k": r"####\s*([^\n]*)",
    "answer_is": r"(?i)\banswer is\s*:?\s*(\$[^$\n]+\$|[^\s$]+)",
}
MAX_DISTINCT_ANSWERS = 16
_UNICODE_MATH = str.maketrans({"\u2212": "-", "\uff0d": "-", "\u00d7": "\\times ", "\u00f7": "\\div ",
                               "\u22c5": "\\cdot ", "\u00b7": "\\cdot "})
_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[+-]?)\s*(?:\\?\$)?\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d+))?\s*(?P<percent>\\?%)?"
)
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ )(?=\d{3})")


class MathVerifier(Verifier):
    """Boxed (or pattern-declared) math answers against a gold; see the module docstring.

    ``timeout``: seconds per call, in any thread. ``answer_pattern``: regex with one
    group, or a name in ``ANSWER_PATTERNS``, used when the answer has no box.
    ``lenient_percent``: ``x%`` also matches ``x`` and ``x/100``. ``workers``: pool size
    (default: CPU count, between 2 and 4). ``max_answer_chars``: longer non-numeric
    answers are ``too_long``. ``startup_timeout``: seconds a new worker may take to start.
    """

    name = "math"

    def __init__(self, timeout: float = 2.0, answer_pattern: str | None = None, lenient_percent: bool = False,
                 workers: int | None = None, max_answer_chars: int = 4000, startup_timeout: float = 60.0,
                 lexicon: HedgeLexicon = DEFAULT_LEXICON):
        super().__init__(lexicon)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
            raise ValueError(f"timeout={timeout!r} must be a positive number of seconds, e.g. 2.0")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers={workers!r} must be a positive int, or None for the default")
        if not isinstance(max_answer_chars, int) or max_answer_chars < 1:
            raise ValueError(f"max_answer_chars={max_answer_chars!r} must be a positive int, e.g. 4000")
        self.timeout = float(timeout)
        self.answer_pattern = compile_answer_pattern(answer_pattern) if answer_pattern is not None else None
        self.lenient_percent = lenient_percent
        self.workers = workers or min(4, max(2, os.cpu_count() or 1))
        self.max_answer_chars = max_answer_chars
        self.startup_timeout = startup_timeout
        self._pool: _Pool | None = None
        self._pool_lock = threading.Lock()

    # -- the domain rule -------------------------------------------------------------

    def judge(self, answer: str, example: Mapping) -> Verdict:
        started = time.monotonic()
        gold = gold_answer(example)
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
        veto = not self.lenient_percent and _has_percent(final) != _has_percent(gold)
        exact = self._compare_plain(gold, distinct)
        if exact is not None:
            return _verdict(*exact, veto, final, {**details, "engine": "exact"})
        if any(len(a) > self.max_answer_chars for a in distinct):
            return Verdict("unparsed", reason="too_long", details={**details, "chars": max(map(len, distinct))})
        return self._compare_in_worker(gold, distinct, veto, started, details)

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

    def _compare_plain(self, gold: str, answers: list[str]) -> tuple[bool, bool] | None:
        """(consistent, correct) when the gold and every answer are plain numbers, else None.

        Percent is lenient here, like math-verify; ``_verdict`` vetoes a percent mismatch.
        """
        gold_number = plain_number(gold)
        numbers = [plain_number(a) for a in answers]
        if gold_number is None or any(n is None for n in numbers):
            return None
        final = numbers[-1]
        consistent = all(numbers_equal(n, final, lenient_percent=True) for n in numbers[:-1])
        return consistent, numbers_equal(final, gold_number, lenient_percent=True)

    def _compare_in_worker(self, gold: str, answers: list[str], veto: bool, started: float, details: dict) -> Verdict:
        spent = time.monotonic() - started
        pool = self._get_pool()
        worker = pool.acquire()  # waiting for a worker to start is not part of the bound
        deadline = time.monotonic() + self.timeout - spent
        healthy = False
        try:
            reply = worker.request({"gold": gold, "answers": answers}, deadline)
            healthy = reply is not None and reply.get("status") != "died"
        finally:
            pool.release(worker, healthy)
        final = answers[-1]
        details = {**details, "engine": "math-verify"}
        if reply is None or reply["status"] == "timeout":
            return Verdict("unparsed", answer=final, reason="timeout", details=details)
        if reply["status"] != "ok":
            return Verdict("unparsed", answer=final, reason="error", details={**details, "error": reply.get("error")})
        return _verdict(reply["consistent"], reply["correct"], veto, final, details)

    # -- throughput and lifecycle -------------------------------------------------------

    def verify_batch(self, completions: Sequence[str], examples: Sequence[Mapping]) -> list[Verdict]:
        """``verify`` on each pair, fanned out over the worker pool; results in order."""
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example each")
        results: list[Verdict | None] = [None] * len(completions)
        pending = iter(range(len(completions)))  # shared: each thread takes the next index (atomic in CPython)

        def drain() -> None:
            for i in pending:
                results[i] = self.verify(completions[i], examples[i])

        threads = min(self.workers, len(completions))
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

    def _get_pool(self) -> _Pool:
        with self._pool_lock:
            # After a fork the inherited pool's pipes belong to the parent: leave them alone.
            if self._pool is None or self._pool.owner_pid != os.getpid():
                self._pool = _Pool(self.workers, self.startup_timeout)
            return self._pool


# -- gold, extraction and plain numbers (pure functions) -----------------------------------


def gold_answer(example: Mapping) -> str:
    """The normalised gold of an example: a plain value, GSM8K's ``#### x`` or MATH's last box."""
    if "answer" not in example:
        raise ValueError(f"math example has no 'answer' field (keys: {sorted(example)}); put the gold answer there")
    gold = str(example["answer"])
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1].replace(",", "")
    else:
        boxes = boxed_contents(gold)
        if boxes:
            gold = boxes[-1]
    gold = _normalise(gold)
    if not gold:
        raise ValueError(f"math example's answer {str(example['answer'])[:80]!r} gives an empty gold; fix the data")
    return gold


def compile_answer_pattern(pattern: str) -> re.Pattern:
    """A task's answer format: a name in ``ANSWER_PATTERNS`` or a regex with exactly one group."""
    if not isinstance(pattern, str):
        raise TypeError(f"answer_pattern must be a str (a regex or one of {sorted(ANSWER_PATTERNS)})")
    compiled = re.compile(ANSWER_PATTERNS.get(pattern, pattern))
    if compiled.groups != 1:
        raise ValueError(f"answer_pattern {pattern!r} has {compiled.groups} groups; give exactly one, "
                         f"capturing the answer, e.g. r'####\\s*(.+)', or one of {sorted(ANSWER_PATTERNS)}")
    return compiled


def plain_number(text: str) -> tuple[str, str, str, bool] | None:
    """``(sign, integer digits, fraction digits, percent)`` of a plain number, canonical; else None.

    Canonical: no leading zeros in the integer part ("" for zero), no trailing zeros in
    the fraction, no sign on zero. Two plain numbers are equal exactly when these are.
    """
    text = _LATEX_THOUSANDS.sub(",", text.strip())
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None or not (match["int"] or match["frac"]):
        return None
    integer = match["int"].replace(",", "").lstrip("0")
    fraction = (match["frac"] or "").rstrip("0")
    sign = "-" if match["sign"] == "-" and (integer or fraction) else ""
    return sign, integer, fraction, bool(match["percent"])


def numbers_equal(a: tuple[str, str, str, bool], b: tuple[str, str, str, bool], lenient_percent: bool = False) -> bool:
    """Exact equality of two ``plain_number`` results; with ``lenient_percent``, x% also equals x and x/100."""
    if a[3] == b[3]:
        return a[:3] == b[:3]
    if not lenient_percent:
        return False
    percent, other = (a, b) if a[3] else (b, a)
    return percent[:3] == other[:3] or _shift_point(percent[:3], -2) == other[:3]


def _shift_point(number: tuple[str, str, str], places: int) -> tuple[str, str, str]:
    """The canonical number times 10**places (string arithmetic: exact at any length)."""
    sign, integer, fraction = number
    digits, point = integer + fraction, len(integer) + places
    if point < 0:
        digits, point = "0" * -point + digits, 0
    digits = digits.ljust(point, "0")
    integer, fraction = digits[:point].lstrip("0"), digits[point:].rstrip("0")
    return (sign if integer or fraction else ""), integer, fraction


def _normalise(text: str) -> str:
    return " ".join(text.translate(_UNICODE_MATH).split())


def _clean_pattern_match(text: str) -> str:
    text = text.strip().rstrip(".").strip()
    if len(text) >= 2 and text[0] == text[-1] == "$":
        text = text[1:-1]
    return text


def _distinct(answers: list[str]) -> list[str]:
    """Distinct answers in order of last appearance: the final answer stays last."""
    seen: dict[str, None] = {}
    for a in reversed(answers):
        seen.setdefault(a, None)
    return list(reversed(seen))


def _has_percent(text: str) -> bool:
    return "%" in text or "\\percent" in text


def _verdict(consistent: bool, correct: bool, percent_veto: bool, final: str, details: dict) -> Verdict:
    """The outcome of a comparison. ``percent_veto``: the match went through a percent sign on one side only."""
    if not consistent:
        return Verdict("wrong", answer=final, reason="multiple_answers", details=details)
    if correct and percent_veto:
        return Verdict("wrong", answer=final, reason="percent_mismatch", details=details)
    return Verdict("correct" if correct else "wrong", answer=final, details=details)


# -- the worker pool (caller side) ----------------------------------------------------------


class _Worker:
    """One worker process: a JSON line in, a JSON line out."""

    def __init__(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from verifiers.math import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root,  # cwd: no shadowing `verifiers`
            start_new_session=True,  # the terminal's Ctrl-C goes to the caller, not the workers
        )
        self._buffer = b""

    def wait_ready(self, timeout: float) -> bool:
        line = self._read_line(time.monotonic() + timeout)
        return line is not None and json.loads(line).get("status") == "ready"

    def request(self, payload: dict, deadline: float) -> dict | None:
        """The worker's reply; None when it did not come by the deadline; status 'died' if the worker died."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # the call's time went before the worker was asked: nothing to kill
            return {"status": "timeout"}
        payload = {**payload, "soft": 0.8 * remaining}
        try:
            self.process.stdin.write(json.dumps(payload).encode() + b"\n")
            self.process.stdin.flush()
            line = self._read_line(deadline)
            return None if line is None else json.loads(line)
        except (EOFError, OSError, ValueError):  # BrokenPipeError is an OSError; a garbled line a ValueError
            return {"status": "died"}

    def _read_line(self, deadline: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("math worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _Pool:
    """Persistent workers; a killed or dead one is replaced in the background."""

    def __init__(self, size: int, startup_timeout: float):
        self.size, self.startup_timeout = size, startup_timeout
        self.owner_pid = os.getpid()
        self._ready = threading.Condition()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()  # idle, busy and starting
        self._starting = 0
        self._failure: str | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._live, self.owner_pid)
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        with self._ready:
            self._starting += 1
        threading.Thread(target=self._start_one, name="math-verify-start", daemon=True).start()

    def _start_one(self) -> None:
        worker, error = None, None
        try:
            worker = _Worker()
            with self._ready:
                self._live.add(worker)
            if not worker.wait_ready(self.startup_timeout):
                error = f"a math-verify worker did not start within {self.startup_timeout:.0f} s"
        except (OSError, EOFError, ValueError) as err:
            error = f"a math-verify worker failed to start ({err}); check that `math-verify` is installed"
        with self._ready:
            self._starting -= 1
            if error is None and not self._closed:
                self._idle.append(worker)
                self._failure = None
            else:
                self._failure = error or self._failure
                if worker is not None:
                    self._live.discard(worker)
                    worker.kill()
            self._ready.notify_all()

    def acquire(self) -> _Worker:
        with self._ready:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the math verifier was closed; make a new MathVerifier")
                if not self._starting and len(self._live) < self.size:
                    if self._failure:
                        raise RuntimeError(self._failure)
                    self._spawn()  # the condition's lock is an RLock: re-entering it is fine
                    continue
                self._ready.wait(self.startup_timeout)
            return self._idle.pop()

    def release(self, worker: _Worker, healthy: bool) -> None:
        if healthy:
            with self._ready:
                self._idle.append(worker)
                self._ready.notify()
            return
        with self._ready:
            self._live.discard(worker)
        worker.kill()
        if not self._closed:
            self._spawn()

    def wait_ready(self) -> None:
        with self._ready:
            ok = self._ready.wait_for(lambda: len(self._idle) >= self.size or self._failure, self.startup_timeout)
            if self._failure or not ok:
                raise RuntimeError(self._failure or f"math-verify workers did not start in {self.startup_timeout} s")

    def pids(self) -> list[int]:
        with self._ready:
            return sorted(worker.process.pid for worker in self._live)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._idle.clear()
            self._ready.notify_all()
        self._finalizer()


def _kill_all(workers: set, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked child must not kill its parent's workers
        return
    for worker in list(workers):
        worker.kill()
    workers.clear()


# -- the worker process ------------------------------------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by the worker's interval timer; a BaseException so math-verify's ``except Exception`` can't eat it."""


def _worker_main() -> None:
    """Entry point of a worker process: read requests from stdin, answer on the original stdout."""
    import logging
    import signal
    import warnings

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from sympy go to stderr, not into the protocol
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    _limit_memory(4 << 30)

    def on_alarm(signum, frame):
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    compare = _worker_compare()
    replies.write('{"status": "ready"}\n')
    replies.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(request["soft"], 1e-3))
            try:
                reply = compare(request["gold"], request["answers"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            reply = {"status": "timeout"}
        except Exception as err:  # noqa: BLE001 - reported to the caller as reason 'error'
            reply = {"status": "error", "error": f"{type(err).__name__}: {err}"[:300]}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _worker_compare():
    """math-verify with its own (signal) timeouts off: the worker's timer and the caller's kill bound it."""
    from functools import lru_cache

    import math_verify
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    @lru_cache(maxsize=4096)
    def parse_gold(text: str):
        return parse_answer(text)

    def parse_answer(text: str):
        return parse("\\boxed{" + text + "}", extraction_config=configs, parsing_timeout=None)

    def compare(gold: str, answers: list[str]) -> dict:
        parsed = [parse_answer(a) for a in answers]
        final = parsed[-1]
        consistent = all(verify(final, p, timeout_seconds=None) for p in parsed[:-1])
        correct = verify(parse_gold(gold), final, timeout_seconds=None)
        return {"status": "ok", "consistent": bool(consistent), "correct": bool(correct)}

    compare("1", ["\\frac{1}{2}", "x^2"])  # warm the LaTeX parser and sympy's caches before "ready"
    return compare


def _limit_memory(limit_bytes: int) -> None:
    """Cap the worker's address space, so an exponent tower fails with MemoryError rather than swapping."""
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard == resource.RLIM_INFINITY or hard > limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    except (ImportError, ValueError, OSError):
        pass
