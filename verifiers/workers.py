"""A pool of persistent worker processes that bounds every call in time, from any thread.

Why processes. Libraries like math-verify bound their work with ``signal.alarm``,
which only works in the main thread of the main interpreter; TRL calls reward
functions from wherever it likes, and a sympy ``simplify`` can run for minutes. So the
work runs in worker processes (``python -c``, not ``multiprocessing``: no re-import of
the user's ``__main__``), spoken to over pipes with one JSON line per request.

What runs in a worker is named by its caller: ``WorkerPool("pkg.module:factory")``.
The worker imports the module, calls ``factory()`` once (imports, warm-up) and then
answers each request ``{"args": {...}, "soft": seconds}`` with ``handler(**args)``, a
JSON object with ``"status": "ok"``. ``rlcot.verifiers.math`` names ``make_comparer``.

The bound of a call (``WorkerPool.call(args, deadline)``), with the caller's deadline:

- Waiting for a busy worker counts against the deadline. A call that finds every
  worker busy waits for one at most until its deadline, then gets ``timeout`` (no
  worker was asked, so none is killed): with more threads than workers, a call queued
  behind slow ones still returns on time. Waiting for the pool's *first* start
  (each worker importing its libraries, about a second for sympy) does not count:
  ``wait_started()`` blocks until then and says how long it waited, so the caller can
  move its deadline by that much. Waiting for the replacement of a killed worker does
  count: the pool had started, and a respawn is part of the load.
- Inside the worker (its main thread) an interval timer raises at 80% of what is left
  (``soft``), which stops Python-level work and keeps the worker alive: ``timeout``.
- A worker that does not answer by the deadline (stuck in C code, where no signal
  handler runs) is killed and replaced in the background: ``timeout``. A worker that
  dies mid-request: ``died``. An exception in the handler: ``error``, with its text.

Workers run in their own session (the terminal's Ctrl-C goes to the caller) with
their address space capped (``memory_limit``), so a runaway allocation fails with
MemoryError instead of swapping. A pool belongs to the process that made it: a forked
child must make its own, and never kills its parent's workers.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding `verifiers`


class WorkerPool:
    """Persistent workers running ``factory``'s handler; a killed or dead one is replaced in the background."""

    def __init__(self, factory: str, size: int, startup_timeout: float = 60.0, memory_limit: int | None = 4 << 30):
        if not isinstance(factory, str) or ":" not in factory:
            raise ValueError(f"factory={factory!r}; name it as 'package.module:function'")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size={size!r}; give a positive number of workers")
        self.factory, self.size, self.startup_timeout, self.memory_limit = factory, size, startup_timeout, memory_limit
        self.owner_pid = os.getpid()
        self._ready = threading.Condition()  # guards everything below; its lock is an RLock
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()  # idle, busy and starting
        self._starting = 0
        self._first_start_left = size  # spawns of the first start still under way
        self._failure: str | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._live, self.owner_pid)
        for _ in range(size):
            self._spawn(first=True)

    def call(self, args: dict, deadline: float) -> dict:
        """The handler's reply to ``args``, or ``{"status": "timeout"}`` when none came by ``deadline``."""
        worker = self._acquire(deadline)
        if worker is None:
            return {"status": "timeout"}
        reply = None
        try:
            reply = worker.request(args, deadline)
        finally:
            self._release(worker, healthy=reply is not None and reply.get("status") != "died")
        return {"status": "timeout"} if reply is None else reply

    def wait_started(self) -> float:
        """Block until the first start is over (every first worker ready or failed); the seconds waited."""
        begun = time.monotonic()
        with self._ready:
            self._ready.wait_for(lambda: self._first_start_left == 0 or self._closed, self.startup_timeout)
        return time.monotonic() - begun

    def wait_ready(self) -> None:
        """Block until every worker is idle and ready; RuntimeError when they cannot start."""
        with self._ready:
            ok = self._ready.wait_for(lambda: len(self._idle) >= self.size or self._failure, self.startup_timeout)
            if self._failure or not ok:
                raise RuntimeError(self._failure or f"workers for {self.factory} did not start in "
                                                     f"{self.startup_timeout} s; raise startup_timeout")

    def pids(self) -> list[int]:
        with self._ready:
            return sorted(worker.process.pid for worker in self._live)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._idle.clear()
            self._ready.notify_all()
        self._finalizer()

    # -- internals ---------------------------------------------------------------------------------

    def _spawn(self, first: bool = False) -> None:
        with self._ready:
            self._starting += 1
        threading.Thread(target=self._start_one, args=(first,), name="worker-start", daemon=True).start()

    def _start_one(self, first: bool) -> None:
        worker, error = None, None
        try:
            worker = _Worker(self.factory, self.memory_limit)
            with self._ready:
                self._live.add(worker)
            if not worker.wait_ready(self.startup_timeout):
                error = f"a worker for {self.factory} did not start within {self.startup_timeout:.0f} s"
        except (OSError, EOFError, ValueError) as err:
            error = f"a worker for {self.factory} failed to start ({err}); check that its imports are installed"
        with self._ready:
            self._starting -= 1
            self._first_start_left -= first
            if error is None and not self._closed:
                self._idle.append(worker)
                self._failure = None
            else:
                self._failure = error or self._failure
                if worker is not None:
                    self._live.discard(worker)
                    worker.kill()
            self._ready.notify_all()

    def _acquire(self, deadline: float) -> _Worker | None:
        """An idle worker, or None when none came free by ``deadline``."""
        with self._ready:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the worker pool was closed; make a new verifier")
                if not self._starting and len(self._live) < self.size:
                    if self._failure:
                        raise RuntimeError(self._failure)
                    self._spawn()  # re-entering the condition's RLock is fine
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._idle.pop()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if healthy:
            with self._ready:
                self._idle.append(worker)
                self._ready.notify_all()  # waiters whose deadline passed leave; the others compete
            return
        with self._ready:
            self._live.discard(worker)
        worker.kill()
        if not self._closed:
            self._spawn()


class _Worker:
    """One worker process: a JSON line in, a JSON line out."""

    def __init__(self, factory: str, memory_limit: int | None):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        code = f"from rlcot.verifiers.workers import serve; serve({factory!r}, {memory_limit!r})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT,  # cwd: no shadowing `verifiers`
            start_new_session=True,  # the terminal's Ctrl-C goes to the caller, not the workers
        )
        self._buffer = b""

    def wait_ready(self, timeout: float) -> bool:
        line = self._read_line(time.monotonic() + timeout)
        return line is not None and json.loads(line).get("status") == "ready"

    def request(self, args: dict, deadline: float) -> dict | None:
        """The worker's reply; None when it did not come by the deadline; status 'died' if the worker died."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # the call's time went before the worker was asked: nothing to kill
            return {"status": "timeout"}
        try:
            self.process.stdin.write(json.dumps({"args": args, "soft": 0.8 * remaining}).encode() + b"\n")
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
                raise EOFError("the worker exited")
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


def _kill_all(workers: set, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked child must not kill its parent's workers
        return
    for worker in list(workers):
        worker.kill()
    workers.clear()


# -- the worker process ------------------------------------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by the worker's interval timer; a BaseException so a library's ``except Exception`` can't eat it."""


def serve(factory: str, memory_limit: int | None = None) -> None:
    """Entry point of a worker process: read requests from stdin, answer on the original stdout."""
    import logging
    import signal
    import warnings

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints from libraries go to stderr, not into the protocol
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    if memory_limit:
        _limit_memory(memory_limit)

    def on_alarm(signum, frame):
        raise _SoftTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    module_name, _, attr = factory.partition(":")
    handle = getattr(importlib.import_module(module_name), attr)()
    replies.write('{"status": "ready"}\n')
    replies.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        replies.write(json.dumps(_answer(handle, request)) + "\n")
        replies.flush()


def _answer(handle, request: dict) -> dict:
    """``handle(**args)`` under the soft timer; a timeout or an exception as a reply."""
    import signal

    try:
        signal.setitimer(signal.ITIMER_REAL, max(request["soft"], 1e-3))
        try:
            return handle(**request["args"])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        return {"status": "timeout"}
    except Exception as err:  # noqa: BLE001 - reported to the caller as status 'error'
        return {"status": "error", "error": f"{type(err).__name__}: {err}"[:300]}


def _limit_memory(limit_bytes: int) -> None:
    """Cap the worker's address space, so a runaway allocation fails with MemoryError rather than swapping."""
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard == resource.RLIM_INFINITY or hard > limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    except (ImportError, ValueError, OSError):
        pass
