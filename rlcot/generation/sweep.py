"""The cheap sweep: traces under many thinking budgets for about the cost of one run.

Under cap-only forcing, a trace capped at B is the first B thinking tokens of the
same trace generated with a larger cap, because the cap changes no token before it
(s1, Muennighoff et al. 2025, arXiv:2501.19393, measure their scaling curves by
running each budget separately; this is the same curve without the repeated work).
So a sweep over B1 < ... < BK generates once at BK and, for each smaller budget, only
truncates the thinking, forces the delimiter and cue, and decodes the short answer.

There is one sweep API, ``sweep``; every backend implements ``Generator.sweep``:

- the hf backend forks a sequence as it reaches each smaller budget, copying its KV
  cache slot, so nothing is recomputed (``rlcot.generation.hf``);
- a backend that cannot fork (vLLM) generates at BK and then ``probe``s: it
  re-prefills each truncated thinking and decodes the answer (``sweep_by_probing``).

``probe`` also serves traces already on disk. The generators draw each token's
randomness from (seed, position), so a probed or forked trace is the trace a fresh
capped run with the same seed produces, greedy or sampled, up to float noise: the
batch shapes differ, and on a near-tie the noise can flip a token (see the tests'
``assert_same_up_to_ties``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .base import GenerationRequest, Generator, ProgressCallback, SamplingConfig, Trace
from .budget import Budget, reusable_at


def sweep(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    budgets: Sequence[int],
    sampling: SamplingConfig,
    budget: Budget | None = None,
    progress: ProgressCallback | None = None,
) -> dict[int, list[Trace]]:
    """Traces for every budget in ``budgets`` at about the cost of one run at the largest.

    ``budget`` gives the other forcing settings (its cap is replaced by ``max(budgets)``).
    Returns ``{B: [trace per request]}``.
    """
    if not budgets:
        raise ValueError("budgets is empty; give the thinking caps to sweep, e.g. [16, 32, 64]")
    if min(budgets) < 0:
        raise ValueError(f"budgets {sorted(budgets)} include a negative cap; budgets are 0 or more tokens")
    top = max(budgets)
    budget = replace(budget or Budget(), max_thinking_tokens=top)
    _require_cap_only(budget, "a sweep")
    lower = sorted({b for b in budgets if b < top})
    return generator.sweep(requests, sampling, budget, lower, progress)


def sweep_by_probing(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    sampling: SamplingConfig,
    budget: Budget,
    budgets: Sequence[int],
    progress: ProgressCallback | None = None,
) -> dict[int, list[Trace]]:
    """``Generator.sweep`` for a backend that cannot fork: one run at the top cap, then ``probe``."""
    traces = generator.generate(requests, sampling, budget, progress)
    out = probe(generator, requests, traces, budgets, sampling, budget, progress) if budgets else {}
    out[budget.max_thinking_tokens] = traces
    return out


def probe(
    generator: Generator,
    requests: Sequence[GenerationRequest],
    traces: Sequence[Trace],
    budgets: Sequence[int],
    sampling: SamplingConfig,
    budget: Budget,
    progress: ProgressCallback | None = None,
) -> dict[int, list[Trace]]:
    """Traces for every budget in ``budgets`` from ``traces`` generated once under ``budget``.

    ``traces[i]`` must come from ``requests[i]`` under ``budget`` with cap-only forcing
    and a cap at least ``max(budgets)``. Returns ``{B: [trace per request]}``.
    """
    _require_cap_only(budget, "probing")
    if len(requests) != len(traces):
        raise ValueError(f"{len(requests)} requests but {len(traces)} traces; pass the requests the traces came from")
    top = budget.max_thinking_tokens
    if top is None:
        raise ValueError("probing needs traces generated with a cap; set max_thinking_tokens to the largest budget")
    too_big = [b for b in budgets if b > top or b < 0]
    if too_big:
        raise ValueError(f"budgets {too_big} lie outside [0, {top}], the cap the traces were generated with")
    out: dict[int, list[Trace]] = {}
    for cap in sorted(set(budgets)):
        fresh_idx = [i for i, trace in enumerate(traces) if not reusable_at(trace, cap)]
        fresh = [
            replace(
                requests[i],
                resume_ids=traces[i].completion_ids[:cap],
                resume_logprobs=traces[i].logprobs[:cap],
            )
            for i in fresh_idx
        ]
        made = generator.generate(fresh, sampling, replace(budget, max_thinking_tokens=cap), progress)
        result = [replace(trace, budget=cap) for trace in traces]
        for i, trace in zip(fresh_idx, made):
            result[i] = trace
        out[cap] = result
    return out


def _require_cap_only(budget: Budget, what: str) -> None:
    if not budget.cap_only:
        raise ValueError(
            f"{what} needs cap-only forcing, but min_thinking_tokens={budget.min_thinking_tokens}: "
            "'Wait' extensions change the thinking itself, so run each budget separately"
        )
