"""The server backend's client against a local ``transformers serve``: throughput, overhead, agreement.

Three parts, all against ``transformers serve`` running the default model on this CPU
(started here on free ports, one thread each, and stopped at the end):

1. **Throughput vs requests in flight** (``max_in_flight`` 1, 2, 4, 8) on one server,
   and at 8 in flight over two servers (``--base-url`` twice, data-parallel): tokens the
   model sampled per second, end to end. ``transformers serve`` without continuous
   batching decodes one request at a time, so one server gains little from more in
   flight; a second server process is what scales it (on two cores, to about 2x).
2. **Client overhead per request**: at one request in flight, every second of the run
   not spent inside an HTTP call is ours (building the body, parsing, tokenizing the
   text again, replaying the forcing rules, threads). The HTTP call itself has a client
   side too (``requests``, JSON), so the same rows are also sent to an instant stub
   server in this process that answers every round with an EOS: all of that run's time
   per request is an upper bound on our whole cost (the stub's own handling counts in
   it). Both are reported against the real server's time per request; the goal is < 10%.
3. **Agreement with the hf backend**: greedy traces of the same rows through the server
   and through ``HFGenerator`` in this process; how many are identical, and how many
   differ where only re-tokenizing at a round boundary could make them differ.

Figures are ratios taken in the same run. The load check is ``common``'s, except
that the servers' own CPU time is part of what is measured, not load: a timing is
marked ``!`` when processes other than this one and its servers used more than
``common.BUSY`` of the machine meanwhile.

Run: ``.venv/bin/python bench/openai_client.py`` (~3 minutes), ``--rows``, ``--cap``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from common import BUSY, Timing, _machine_busy_seconds, flag, warn_if_busy_now

from rlcot.builtin_models import ensure_builtin_cached
from rlcot.generation import Budget, get_generator
from rlcot.generation.base import SamplingConfig
from rlcot.models import load_policy, load_tokenizer
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

MODEL = "smollm2-135m"


def start_server(model_dir: Path) -> tuple[subprocess.Popen, str]:
    """``transformers serve`` on a free port, one thread; ``(process, base URL)`` once ``/health`` answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).with_name("transformers")), "serve", str(model_dir), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    for _ in range(450):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return server, f"http://127.0.0.1:{port}/v1"
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("transformers serve did not start within 90 s")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has run, all its threads, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn, servers: list[subprocess.Popen]) -> tuple[object, Timing]:
    """``fn()`` and its timing; what other processes used excludes the servers' CPU (it is the work)."""
    pids = [server.pid for server in servers]
    busy, own, theirs = _machine_busy_seconds(), time.process_time(), sum(map(process_cpu_seconds, pids))
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    others = (_machine_busy_seconds() - busy) - (time.process_time() - own) - (
        sum(map(process_cpu_seconds, pids)) - theirs)
    return result, Timing(seconds, max(0.0, others) / (seconds * (os.cpu_count() or 1)))


def run(generator, requests_, budget) -> tuple[list, float, float, int]:
    """``(traces, wall seconds, seconds waiting on servers, requests)`` of one generate call."""
    client = generator.client
    wait0, sent0 = client.wait_s, client.requests
    began = time.perf_counter()
    traces = generator.generate(requests_, SamplingConfig(), budget)
    return traces, time.perf_counter() - began, client.wait_s - wait0, client.requests - sent0


def stub_cost(tokenizer, protocol, requests_, budget, repeats: int = 8) -> tuple[float, int]:
    """Seconds and requests for ``requests_`` (``repeats`` times) against a stub that answers EOS at once."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answer = json.dumps({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}).encode()

    class Instant(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    stub = ThreadingHTTPServer(("127.0.0.1", 0), Instant)
    threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        generator = get_generator("openai", "stub", tokenizer, protocol, max_in_flight=1,
                                  base_urls=[f"http://127.0.0.1:{stub.server_address[1]}/v1"], token_ids="off")
        began, sent = time.perf_counter(), generator.client.requests
        for _ in range(repeats):
            generator.generate(requests_, SamplingConfig(), budget)
        return time.perf_counter() - began, generator.client.requests - sent
    finally:
        stub.shutdown()
        stub.server_close()


def sampled(traces) -> int:
    return sum(t.thinking_tokens + t.answer_tokens for t in traces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cap", type=int, default=32)
    args = parser.parse_args()
    model_dir = ensure_builtin_cached(MODEL)
    protocol, task, timings = ThinkingProtocol(), get_task("arith"), []
    warn_if_busy_now()
    servers = [start_server(model_dir) for _ in range(2)]
    try:
        urls = [url for _, url in servers]
        tokenizer, generation_config = load_tokenizer(str(model_dir))
        make = lambda urls, k: get_generator("openai", str(model_dir), tokenizer, protocol,  # noqa: E731
                                             generation_config=generation_config, base_urls=urls, max_in_flight=k)
        first = make(urls[:1], 1)
        requests_ = task.requests(task.rows(args.rows, seed=0), first.tokenizer, protocol)
        budget = Budget(max_thinking_tokens=args.cap, max_answer_tokens=8)
        first.generate(requests_[:2], SamplingConfig(), budget)  # warm-up: the dialect probe, the server's first call
        print(f"{args.rows} arith rows, greedy, cap {args.cap}, answer <= 8; transformers serve, default model, "
              f"CPU, one thread per server; {os.cpu_count()} CPUs")

        print("\n1. throughput vs requests in flight")
        base = None
        for servers_used, in_flight in [(1, 1), (1, 2), (1, 4), (1, 8), (2, 8)]:
            generator = make(urls[:servers_used], in_flight)
            generator.token_ids = False
            (traces, wall, _, _), timing = timed(lambda: run(generator, requests_, budget),
                                                 [server for server, _ in servers[:servers_used]])
            timings.append(timing)
            rate = sampled(traces) / wall
            base = base or rate
            print(f"  {servers_used} server(s), {in_flight} in flight: {rate:6.1f} tokens/s{flag(timing)} "
                  f"({rate / base:.2f}x of 1 in flight)")

        print("\n2. client overhead (1 request in flight, one server)")
        generator = make(urls[:1], 1)
        generator.token_ids = False
        (traces, wall, waiting, sent), timing = timed(lambda: run(generator, requests_, budget), [servers[0][0]])
        timings.append(timing)
        ours = wall - waiting
        per_request = waiting / sent
        print(f"  {sent} requests in {wall:.2f} s: inside HTTP calls {waiting:.2f} s ({1e3 * per_request:.0f} ms per "
              f"request), outside them {ours:.3f} s = {1e3 * ours / sent:.2f} ms per request, "
              f"{ours / waiting:.2%} of the server's time (goal < 10%){flag(timing)}")
        stub_s, stub_sent = stub_cost(generator.tokenizer, protocol, requests_, budget)
        print(f"  against an instant stub server: {stub_sent} requests, {1e3 * stub_s / stub_sent:.2f} ms per request "
              f"all told (HTTP client included), {stub_s / stub_sent / per_request:.2%} of the real server's time "
              "per request")

        print("\n3. agreement with the hf backend (greedy, same rows)")
        model, tokenizer = load_policy(MODEL, "cpu", "fp32")
        hf = get_generator("hf", model, tokenizer, protocol).generate(requests_, SamplingConfig(), budget)
        same = sum(a.completion == b.completion for a, b in zip(traces, hf))
        same_first_round = sum(a.completion_ids[: min(a.thinking_end, args.cap)] == b.completion_ids[
            : min(b.thinking_end, args.cap)] for a, b in zip(traces, hf))
        print(f"  identical traces: {same}/{len(hf)}; identical first round (thinking): {same_first_round}/{len(hf)}; "
              f"so {same_first_round - same} differ only after a round boundary (re-tokenized prompt)")
    finally:
        for server, _ in servers:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    loaded = sum(t.loaded for t in timings)
    print(f"\nLoad check: other processes (not these servers) used more than {BUSY:.0%} of the CPU during {loaded} "
          f"of {len(timings)} timings" + ("; figures marked ! are not this code's speed" if loaded else ""))


if __name__ == "__main__":
    main()
