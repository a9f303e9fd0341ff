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

The cheap sweep over budgets that these rules allow lives in ``rlcot.generation.sweep``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Trace


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
