"""Budget forcing: control how many tokens a model thinks (s1, Muennighoff et al. 2025,
arXiv:2501.19393; Qwen3's thinking budget).

*Cap*: once the model has sampled ``max_thinking_tokens`` thinking tokens without
closing its thinking, append the end-of-thinking delimiter and the task's answer cue
(for math ``The final answer is \\boxed{``), both marked as forced, and let the model
write the answer, at most ``max_answer_tokens`` tokens. When the cue opens braces,
the answer ends as soon as they balance again: the boxed value is all the cue asks
for, and stopping there is what makes probing cheap.

*EOS inside thinking*: models not trained to think (the default SmolLM2) end their
turn without ever writing the delimiter. With ``answer_after_eos`` (the default)
that EOS is taken back and treated as the end of thinking: the delimiter and cue
are forced, exactly as at the cap. Without it the trace has no answer section.

*Extend*: when the model closes its thinking before ``min_thinking_tokens``, the
delimiter is taken back and s1's ``Wait`` is forced in its place, at most
``max_extensions`` times. Departure from s1: the budget is counted in the model's own
sampled tokens; forced tokens never count towards it.

*Sweep* (the cheap sweep): under cap-only forcing, a trace capped at B is the first
B thinking tokens of the same trace generated with a larger cap, because the cap
does not change any token before it. So ``probe`` takes traces generated once at
B_max and, for each smaller budget, only truncates the thinking, forces the
delimiter and cue, and decodes the short answer. The generators draw each token's
randomness from (seed, position), so a probed trace is the trace a fresh capped run
with the same seed produces, under sampling as well as greedy (up to float noise
between batch shapes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from .generation.base import GenerationRequest, Generator, ProgressCallback, SamplingConfig, Trace


@dataclass(frozen=True)
class Budget:
    max_thinking_tokens: int | None = None  # the cap B; None: no cap
    min_thinking_tokens: int = 0  # extend with "Wait" below this
    max_extensions: int = 2
    extension: str = "Wait"
    max_answer_tokens: int = 64
    answer_after_eos: bool = True  # EOS inside thinking ends the thinking: force delimiter + cue

    def __post_init__(self):
        cap = self.max_thinking_tokens
        if cap is not None and cap < 0:
            raise ValueError(f"max_thinking_tokens={cap} is negative; use 0 to answer without thinking, or None")
        if self.min_thinking_tokens < 0 or self.max_extensions < 0:
            raise ValueError(
                f"min_thinking_tokens={self.min_thinking_tokens} and max_extensions={self.max_extensions} "
                "must be >= 0"
            )
        if cap is not None and self.min_thinking_tokens > cap:
            raise ValueError(
                f"min_thinking_tokens={self.min_thinking_tokens} exceeds max_thinking_tokens={cap}; "
                "lower the minimum or raise the cap"
            )
        if not self.extension:
            raise ValueError("extension is empty; give the text forced in place of an early delimiter, e.g. 'Wait'")
        if self.max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens={self.max_answer_tokens} must be >= 1")

    @property
    def cap_only(self) -> bool:
        return self.min_thinking_tokens == 0


def cue_opens_braces(answer_cue: str) -> bool:
    return answer_cue.count("{") > answer_cue.count("}")


def answer_complete(answer_text: str, answer_cue: str) -> bool:
    """True once the braces a forced cue opened are closed (``\\boxed{42}`` is done).

    ``answer_text`` is the answer section so far, the cue included.
    """
    if not cue_opens_braces(answer_cue):
        return False
    depth = 0
    for char in answer_text:
        depth += (char == "{") - (char == "}")
        if depth < 0:  # a stray '}' before any '{': the box cannot balance any more
            return True
    return depth == 0


def reusable_at(trace: Trace, budget: int) -> bool:
    """Whether a fresh run capped at ``budget`` would produce ``trace`` unchanged.

    A trace whose model closed its thinking at its k-th token is the same under any
    cap >= k (the close is checked before the cap). One whose model sampled EOS after
    k thinking tokens needs a cap > k: at exactly k the cap fires first.
    """
    if trace.capped:
        return budget == trace.budget
    if trace.finish_reason == "eos" or (trace.answer is None):
        return budget > trace.thinking_tokens
    return budget >= trace.thinking_tokens


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
    if not budget.cap_only:
        raise ValueError(
            f"a sweep needs cap-only forcing, but min_thinking_tokens={budget.min_thinking_tokens}: "
            "'Wait' extensions change the thinking itself, so run each budget separately"
        )
    lower = sorted({b for b in budgets if b < top})
    if hasattr(generator, "sweep"):
        return generator.sweep(requests, sampling, budget, lower, progress)
    traces = generator.generate(requests, sampling, budget, progress)
    out = probe(generator, requests, traces, lower, sampling, budget, progress) if lower else {}
    out[top] = traces
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
    if not budget.cap_only:
        raise ValueError(
            f"probing needs cap-only forcing, but min_thinking_tokens={budget.min_thinking_tokens}: "
            "'Wait' extensions change the thinking itself, so run each budget separately"
        )
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

