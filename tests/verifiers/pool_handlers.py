"""A scripted stand-in for math-verify, run inside ``rlcot.verifiers.workers`` processes by test_workers.py.

Not a test module: a worker imports it by name (``tests.verifiers.pool_handlers:make_handler``),
so it imports nothing heavy.
"""

from __future__ import annotations

import os
import time


def make_handler():
    def handle(op: str, seconds: float = 0.0, started: str | None = None) -> dict:
        if started:  # tells the test the request has reached the worker
            open(started, "w").close()
        if op == "sleep":  # Python-level work: the worker's soft timer interrupts it
            time.sleep(seconds)
        elif op == "raise":
            raise ArithmeticError("scripted failure")
        elif op == "exit":  # the worker dies mid-request
            os._exit(3)
        return {"status": "ok", "pid": os.getpid()}

    return handle
