"""The device and dtype a policy runs in, and the CPU speed probe behind ``"auto"``.

The dtype is a property of the machine, not of the code: ``resolve_dtype("auto",
device)`` picks bf16 on CUDA, and on a CPU times a 384-square matmul in fp32 and bf16
(as ``nn.Linear`` calls it) and picks bf16 only where it is clearly faster. CPUs
differ by more than an order of magnitude here: an AMD EPYC without bf16 units ran
bf16 linears ~5x slower than fp32 (~20 against 70-115 GFLOP/s; ~1 through a plain
``torch.mm``), an Intel Xeon with AMX ran bf16 ~6x faster (~2,280 against ~346
GFLOP/s). The choice comes back with its reason (the measured speeds), so a run can
record why it ran in the dtype it did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# bf16 must beat fp32 by this much before "auto" takes it on a CPU: it halves the
# weights' precision, so a marginal gain (or timing noise) is not worth it. Sweeps load
# in the dtype it picks; training runs under bf16 autocast where it picks bf16
# (rlcot.train.resolve.resolve_run): one probe, one threshold.
BF16_MIN_SPEEDUP = 1.5


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a run uses and why (measured speeds, or the spec that fixed it)."""

    dtype: torch.dtype
    reason: str


def parse_dtype(spec: str | torch.dtype) -> torch.dtype | None:
    """``torch.dtype`` for a spec; None for ``"auto"``."""
    if isinstance(spec, torch.dtype):
        return spec
    key = str(spec).strip().lower().removeprefix("torch.")
    if key == "auto":
        return None
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {spec!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[key]


def choose_cpu_dtype(fp32_gflops: float, bf16_gflops: float, min_speedup: float = BF16_MIN_SPEEDUP) -> DtypeChoice:
    """bf16 where native bf16 matmul beats fp32 by ``min_speedup``, fp32 otherwise."""
    speedup = bf16_gflops / fp32_gflops if fp32_gflops > 0 else float("inf")
    measured = f"matmul fp32 {fp32_gflops:.1f} GFLOP/s, bf16 {bf16_gflops:.1f} GFLOP/s ({speedup:.2f}x)"
    if speedup >= min_speedup:
        return DtypeChoice(torch.bfloat16, f"auto: {measured} >= {min_speedup}x, so bf16")
    return DtypeChoice(torch.float32, f"auto: {measured} < {min_speedup}x, so fp32")


def matmul_gflops(dtype: torch.dtype, size: int = 384, repeats: int = 5, deadline_s: float = 0.1) -> float:
    """Best-of-``repeats`` speed of a ``size``-square CPU matmul, stopping early past ``deadline_s``.

    Timed as ``F.linear`` (input times a transposed weight), the call ``nn.Linear``
    makes: bf16 speed depends on the kernel the layout selects, and the plain
    ``torch.mm`` path can be several times slower than the one a model uses. The
    deadline keeps the probe short where a dtype is emulated: a call that slow runs
    once, and that first (cold) call is already far too slow to win.
    """
    generator = torch.Generator().manual_seed(0)  # fixed operands; their values do not affect speed
    x = torch.randn(size, size, generator=generator).to(dtype)
    weight = torch.randn(size, size, generator=generator).to(dtype)
    best, start = float("inf"), time.perf_counter()
    for _ in range(repeats):
        tick = time.perf_counter()
        torch.nn.functional.linear(x, weight)
        best = min(best, time.perf_counter() - tick)
        if time.perf_counter() - start > deadline_s:
            break
    return 2 * size**3 / best / 1e9


def resolve_dtype(spec: str | torch.dtype | DtypeChoice = "auto", device: str | torch.device = "cpu") -> DtypeChoice:
    """The dtype to load a policy in on ``device``, with the reason.

    ``auto``: bf16 on CUDA; on a CPU, whichever of fp32 and bf16 a quick matmul probe
    (~0.15 s) finds faster, bf16 only at ``BF16_MIN_SPEEDUP`` or more; fp32 on any
    other device. An explicit spec (``fp32``, ``bf16``, ``fp16``, their long names, or
    a ``torch.dtype``) is taken as given.
    """
    if isinstance(spec, DtypeChoice):
        return spec
    dtype = parse_dtype(spec)
    if dtype is not None:
        return DtypeChoice(dtype, f"asked for {spec}")
    kind = torch.device(device).type
    if kind == "cuda":
        return DtypeChoice(torch.bfloat16, "auto: bf16 on CUDA")
    if kind != "cpu":
        return DtypeChoice(torch.float32, f"auto: fp32, no speed probe for device {kind!r}")
    return choose_cpu_dtype(matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16))
