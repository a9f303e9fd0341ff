"""The bounded worker pool on a scripted handler (tests/verifiers/pool_handlers.py), no sympy."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlcot.verifiers.workers import WorkerPool

HANDLER = "tests.verifiers.pool_handlers:make_handler"
MARGIN_S = 1.5  # a bounded call returns ~10 ms after its deadline; the margin is for a loaded machine


@pytest.fixture
def pool():
    pool = WorkerPool(HANDLER, size=1, startup_timeout=30)
    pool.wait_ready()
    yield pool
    pool.close()


def _in(seconds: float) -> float:
    return time.monotonic() + seconds


def test_a_reply_comes_back_and_the_worker_is_kept(pool):
    (pid,) = pool.pids()
    assert pool.call({"op": "echo"}, _in(10)) == {"status": "ok", "pid": pid}
    assert pool.pids() == [pid]


def test_an_exception_in_the_handler_is_an_error_reply_and_the_worker_is_kept(pool):
    (pid,) = pool.pids()
    reply = pool.call({"op": "raise"}, _in(10))
    assert reply["status"] == "error" and "ArithmeticError: scripted failure" in reply["error"]
    assert pool.pids() == [pid]


def test_python_level_work_is_stopped_by_the_soft_timer_without_a_kill(pool):
    (pid,) = pool.pids()
    start = time.monotonic()
    assert pool.call({"op": "sleep", "seconds": 30}, _in(0.5)) == {"status": "timeout"}
    assert time.monotonic() - start < 0.5 + MARGIN_S
    assert pool.pids() == [pid]  # the worker survived: no restart cost


def test_a_stuck_worker_is_killed_at_the_deadline_and_replaced(pool):
    (stuck,) = pool.pids()
    os.kill(stuck, signal.SIGSTOP)  # stands in for C code, where the soft timer cannot fire
    start = time.monotonic()
    assert pool.call({"op": "echo"}, _in(0.5)) == {"status": "timeout"}
    assert time.monotonic() - start < 0.5 + MARGIN_S
    pool.wait_ready()
    assert stuck not in pool.pids() and pool.call({"op": "echo"}, _in(10))["status"] == "ok"


def test_a_worker_that_dies_mid_request_is_reported_and_replaced(pool):
    (dead,) = pool.pids()
    assert pool.call({"op": "exit"}, _in(10)) == {"status": "died"}
    pool.wait_ready()
    assert dead not in pool.pids()


def test_waiting_for_a_busy_worker_counts_against_the_callers_deadline(pool, tmp_path):
    # One worker, held by a long call; a second call may wait only until its own deadline, then
    # returns while the first is still running, and kills nothing (no worker was asked).
    (pid,) = pool.pids()
    started = tmp_path / "started"
    with ThreadPoolExecutor(max_workers=1) as background:
        holder = background.submit(pool.call, {"op": "sleep", "seconds": 60, "started": str(started)}, _in(20))
        while not started.exists() and not holder.done():  # the holder's request is in the worker
            time.sleep(0.01)
        assert pool.call({"op": "echo"}, _in(0.3)) == {"status": "timeout"}
        assert not holder.done()
        assert pool.pids() == [pid]
        pool.close()  # ends the holder's request: its worker is killed


def test_the_first_start_can_be_waited_for_apart_from_any_deadline():
    pool = WorkerPool(HANDLER, size=2, startup_timeout=30)
    try:
        assert pool.wait_started() >= 0
        assert len(pool.pids()) == 2
        assert pool.call({"op": "echo"}, _in(10))["status"] == "ok"
    finally:
        pool.close()


def test_a_factory_that_cannot_start_is_a_runtime_error_naming_it():
    pool = WorkerPool("tests.verifiers.no_such_module:make", size=1, startup_timeout=30)
    try:
        with pytest.raises(RuntimeError, match="no_such_module:make"):
            pool.wait_ready()
    finally:
        pool.close()


@pytest.mark.parametrize("factory, size, message", [
    ("no_colon", 1, "factory='no_colon'"),  # a module without the function
    (HANDLER, 0, "size=0"),  # no workers at all
])
def test_bad_pool_arguments_say_what_to_give(factory, size, message):
    with pytest.raises(ValueError, match=message):
        WorkerPool(factory, size)
