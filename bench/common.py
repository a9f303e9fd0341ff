"""What the timing benches share: the model they run, the load check and the roof.

``generation.py``, ``sweep.py`` and ``train.py`` time the default model on whatever
CPU they land on; what they need alike is kept here once, so that no bench imports
another:

- **the model**: ``MODEL``, and ``start_run``, which checks the machine is quiet,
  loads the model in fp32, prints the machine (``machine``), measures the roof and
  returns the ``LoadLog`` the run's timings go into;
- **the load check**: ``LoadLog`` times a call and reads ``/proc/stat`` around it to
  see what share of the machine's CPU other processes used meanwhile (over ``BUSY``
  spoils a timing); ``flag`` marks a figure taken under such load ``!``;
  ``LoadLog.report`` ends a run with a loud warning if any was; ``warn_if_busy_now``
  samples the machine for a second before a run starts;
- **the roof**: ``measure_roof``, GFLOP/s of one decode step's matmuls through the
  model's own weights, measured in the same run as the figures divided by it
  (``bench/generation.py``'s docstring says how and why).

The scripts are run as ``python bench/NAME.py``, so Python puts ``bench/`` first on
``sys.path`` and they import this module as ``common``; ``rlcot`` comes from the
editable install. No file in ``bench/`` is named after an importable package (the
reason ``verifiers.py`` became ``verifier_speed.py``): one would shadow it for the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlcot.models import load_policy

MODEL = "smollm2-135m"
ROOF_ROWS = 64  # the roof is for decoding at batch 64
BUSY = 0.10  # other processes using more than this share of the machine's CPU spoil a timing


# ------------------------------------------------------------------ machine load


def _machine_busy_seconds() -> float:
    """CPU seconds all processes have run (user, nice, system, irq, softirq, steal), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    seconds: float
    others: float  # share of the machine's CPU other processes used meanwhile (0..1)

    @property
    def loaded(self) -> bool:
        return self.others > BUSY


class LoadLog:
    """Times calls and remembers which ran while other processes loaded the CPU."""

    def __init__(self):
        self.timings: list[tuple[str, Timing]] = []  # (what, how long and under how much load)

    def time(self, label: str, fn):
        busy, own, start = _machine_busy_seconds(), time.process_time(), time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        others = (_machine_busy_seconds() - busy) - (time.process_time() - own)
        timing = Timing(seconds, max(0.0, others) / (seconds * (os.cpu_count() or 1)))
        self.timings.append((label, timing))
        return result, timing

    def report(self) -> None:
        loaded = [(label, t) for label, t in self.timings if t.loaded]
        if not loaded:
            print(f"\nLoad check: no other process used more than {BUSY:.0%} of the CPU during any of "
                  f"{len(self.timings)} timed measurements.")
            return
        print("\n" + "!" * 78)
        print(f"!! WARNING: other processes loaded the CPU during {len(loaded)} of {len(self.timings)} measurements;")
        print("!! figures marked ! include such measurements and are not this code's speed; throughput pairs")
        print("!! taken under load were run again and left out. Rerun on a quiet machine if any figure is marked.")
        for label, t in loaded[:12]:
            print(f"!!   {label}: others used {t.others:.0%} of the CPU")
        print("!" * 78)


def flag(*timings: Timing) -> str:
    """``!`` beside a figure if any timing it rests on ran under load, else a space."""
    return "!" if any(t.loaded for t in timings) else " "


def warn_if_busy_now() -> None:
    """Sample the machine for a second before starting (the load average lags by minutes)."""
    _, timing = LoadLog().time("idle", lambda: time.sleep(1.0))
    if timing.loaded:
        print(f"!! WARNING: other processes use {timing.others:.0%} of the CPU right now; timings may be unreliable")


def machine() -> str:
    """The torch build and CPU the figures were taken on, for the top of a bench's output."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs")


# ------------------------------------------------------------------ roof


def _linears(model) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def streamed_gflops(model, dtype, rows: int = ROOF_ROWS, budget_s: float = 4.0) -> float:
    """GFLOP/s of one decode step's matmuls: every ``nn.Linear`` of the model, in order,
    through its own weights (cast to ``dtype``), on ``rows`` rows; best of up to 3 passes.

    Each weight is read once a pass, as in a real decode step, so this is the speed the
    step's arithmetic can reach. (Timing one weight again and again keeps it in cache
    and reads ~20-30% higher here: not a speed any decode step sees.)
    """
    weights = [m.weight.detach().to(dtype) for m in _linears(model)]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]).to(dtype) for w in weights}
    flops = sum(2 * rows * w.numel() for w in weights)
    for w in weights[:8]:  # warm-up: first-call kernel selection
        F.linear(inputs[w.shape[1]], w)
    best, spent = float("inf"), 0.0
    for _ in range(3):
        start = time.perf_counter()
        for w in weights:
            F.linear(inputs[w.shape[1]], w)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:  # an emulated dtype: one slow pass says enough
            break
    return flops / best / 1e9


def hot_gflops(model, dtype, rows: int = ROOF_ROWS) -> float:
    """The same matmuls with each shape timed alone, its weight reused (and so cached), for reference."""
    shapes: dict[tuple[int, int], int] = {}
    for m in _linears(model):
        shapes[m.out_features, m.in_features] = shapes.get((m.out_features, m.in_features), 0) + 1
    flops = sum(count * 2 * rows * o * i for (o, i), count in shapes.items())
    return flops / sum(count * linear_seconds(*shape, dtype, rows) for shape, count in shapes.items()) / 1e9


def linear_seconds(out_features: int, in_features: int, dtype, rows: int = ROOF_ROWS) -> float:
    """Best time of one ``F.linear`` of ``rows`` rows through an (out, in) weight; an LM head
    (more than 8,192 outputs) is timed on 8,192 of them and scaled."""
    timed_out = min(out_features, 8192)
    weight = torch.randn(timed_out, in_features).to(dtype)
    x = torch.randn(rows, in_features).to(dtype)
    F.linear(x, weight)  # warm-up
    best, spent, calls = float("inf"), 0.0, 0
    while calls < 2 or (spent < 0.1 and calls < 20):
        start = time.perf_counter()
        F.linear(x, weight)
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best * out_features / timed_out


@dataclass
class Roof:
    gflop_per_token: float
    gflops: dict[torch.dtype, float]

    def tokens_per_s(self, dtype=torch.float32) -> float:
        return self.gflops[dtype] / self.gflop_per_token


def measure_roof(model, log: LoadLog) -> Roof:
    """The roof in fp32 and bf16, measured now and printed as a table; timed into ``log``."""
    linears = _linears(model)
    per_token = sum(2 * m.weight.numel() for m in linears) / 1e9
    params = sum(p.numel() for p in model.parameters())
    print(f"\n## Roof: one decode step's matmuls ({len(linears)} nn.Linear, the model's own weights, "
          f"{ROOF_ROWS} rows, F.linear), measured now")
    print(f"GFLOP per token: {per_token:.3f} (2 x linear weights; 2 x all {params / 1e6:.1f}M parameters: "
          f"{2 * params / 1e9:.3f})")
    print(f"{'dtype':>6} | {'GFLOP/s':>8} | {'roof tokens/s':>13} | {'hot GFLOP/s':>11}")
    gflops = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        (streamed, hot), timing = log.time(f"roof {name}", lambda: (streamed_gflops(model, dtype),
                                                                     hot_gflops(model, dtype)))
        gflops[dtype] = streamed
        print(f"{name:>6} | {streamed:>8.1f} | {streamed / per_token:>13.0f} | {hot:>11.1f} {flag(timing)}")
    print("(hot: each shape timed alone with its weight in cache, time-weighted; shown for reference, "
          "a decode step streams every weight once)")
    return Roof(per_token, gflops)


# ------------------------------------------------------------------ a run's start


def start_run():
    """Begin a timed run on ``MODEL``: check the machine is quiet, load the model (fp32, CPU),
    print the machine, measure the roof. Returns ``(model, tokenizer, log, roof)``."""
    warn_if_busy_now()
    model, tokenizer = load_policy(MODEL, device="cpu", dtype="fp32")
    print(machine())
    log = LoadLog()
    return model, tokenizer, log, measure_roof(model, log)
