"""What every generation backend takes and returns.

A backend turns ``GenerationRequest``s into ``Trace``s under one ``SamplingConfig``
and one ``Budget`` (see ``rlcot.generation.budget``). Both backends implement the same
per-sequence rules, so a trace means the same thing whichever produced it:

- Thinking tokens are the tokens the model itself samples while its thinking is
  open, its own closing delimiter included. A budget caps exactly that count.
- Forced tokens (the delimiter and answer cue appended at the cap, s1's "Wait")
  are written into the trace but marked ``forced``; their logprob is ``None``.
  Training masks them out of the loss.
- ``finish_reason`` says how the thinking ended: ``closed`` by the model, ``capped``
  by the budget, ``eos``: the model ended its turn inside thinking (the EOS is
  taken back and the delimiter and cue forced, unless ``Budget.answer_after_eos``
  is off, when there is no answer section); or ``length``: the answer hit
  ``max_answer_tokens``. ``capped`` is also kept as its own flag.

Samples: a row can be asked for k samples. Request and trace carry the sample index,
and ``derive_seed(seed, row_id, sample)`` gives sample j of row i a seed of its own,
so it draws the same tokens whatever else is in the run (other rows, other samples,
another ``--limit``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol, Sequence


@dataclass(frozen=True)
class SamplingConfig:
    """Greedy when ``temperature == 0``. Each request carries its own seed."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 4096  # hard bound on a completion, forced tokens included: finish "length"

    def __post_init__(self):
        if not 0 <= self.temperature < float("inf"):  # NaN fails every comparison: refused too
            raise ValueError(f"temperature={self.temperature} is not a finite number >= 0; use 0 for greedy or a "
                             "positive value")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must lie in (0, 1]; use 1 to disable nucleus sampling")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens} must be >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate.

    ``resume_ids`` continues a completion that is already decided (e.g. the first B
    thinking tokens of an earlier trace, as probing does): they are fed, not sampled,
    and count as the model's own thinking tokens with ``resume_logprobs``.
    """

    prompt: str
    prompt_ids: list[int]
    answer_cue: str = ""
    seed: int = 0
    request_id: int | str = 0
    sample: int = 0  # which of a row's k samples this is
    resume_ids: list[int] = field(default_factory=list)
    resume_logprobs: list[float | None] = field(default_factory=list)
    # teacher-forced after the answer cue to measure log p(gold | thinking) (sweeps; hf backend)
    gold_ids: list[int] = field(default_factory=list)


@dataclass
class Trace:
    request_id: int | str
    prompt: str
    prompt_ids: list[int]
    completion: str  # the whole assistant turn, from the (pre-filled) <think> on
    thinking: str
    answer: str | None  # None: the thinking never closed, no answer section
    completion_ids: list[int]  # every token after the prompt, forced ones included
    forced: list[bool]  # per completion token: appended by budget forcing, not sampled
    logprobs: list[float | None]  # per completion token: logprob of the sampled token; None if forced
    thinking_end: int  # completion_ids[:thinking_end] is the thinking section, delimiter included
    thinking_tokens: int  # tokens the model sampled in its thinking (the budget counts these)
    answer_tokens: int  # tokens the model sampled in its answer
    finish_reason: str
    capped: bool  # the budget ended the thinking (the answer may still have hit its length)
    seed: int
    budget: int | None  # the thinking cap it ran under
    extensions: int = 0  # how many times "Wait" replaced an early close
    sample: int = 0  # which of the row's samples this is
    # log p(request.gold_ids | prompt, thinking, delimiter, cue) at temperature 1; None if not asked or no answer
    gold_logprob: float | None = None

    @property
    def thinking_ids(self) -> list[int]:
        return self.completion_ids[: self.thinking_end]

    @property
    def answer_ids(self) -> list[int]:
        return self.completion_ids[self.thinking_end :]

    def to_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[int], None]  # called with the number of sequences just finished


class Generator(Protocol):
    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget: "Budget",  # noqa: F821 - rlcot.generation.budget.Budget
        progress: ProgressCallback | None = None,
    ) -> list[Trace]: ...

    def sweep(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget: "Budget",  # noqa: F821
        budgets: Sequence[int],
        progress: ProgressCallback | None = None,
    ) -> dict[int, list[Trace]]:
        """Traces under ``budget``'s cap and every (smaller) cap in ``budgets``; see ``rlcot.generation.sweep``."""
        ...


def derive_seed(seed: int, row_id: int | str, sample: int = 0) -> int:
    """The sampling seed of sample ``sample`` of row ``row_id`` in a run seeded ``seed``.

    A hash, not ``seed + index``: it depends on the row's id, not its position in the
    run, so adding rows or samples, or resuming, never changes another sample's draws.
    62 bits keep collisions negligible for any sweep (p ~ n^2 / 2^63).
    """
    key = f"{int(seed)}\x1f{row_id}\x1f{int(sample)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 2


def context_length(generator) -> int | None:
    """The most tokens the generator's model can attend to (vLLM's ``max_model_len``, else the config's positions)."""
    if getattr(generator, "max_model_len", None):
        return int(generator.max_model_len)
    config = getattr(getattr(generator, "model", None), "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_lengths(requests: Sequence[GenerationRequest], context: int | None) -> None:
    """``ValueError`` naming every row whose prompt fills the model's context, before anything is generated.

    Such a prompt cannot be answered: a transformers model would try to attend over it
    all (a 5 MB question asked for 5 GB), and past the trained positions the output is
    noise. Checked once per row, over the tokenised prompt, so nothing is truncated silently.
    """
    if context is None:
        return
    too_long = {}
    for request in requests:
        if len(request.prompt_ids) >= context:
            too_long.setdefault(request.request_id, len(request.prompt_ids))
    if too_long:
        listed = [f"{row_id!s} ({tokens:,} tokens)" for row_id, tokens in list(too_long.items())[:5]]
        more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
        raise ValueError(f"the prompt of row(s) {', '.join(listed)}{more} is longer than the model's context of "
                         f"{context:,} tokens; shorten or drop those rows")


def forced_spans(trace, tokenizer) -> list[list[int]]:
    """Character ranges ``[start, end)`` of the completion text that budget forcing wrote."""
    opening = len(trace.completion) - len(tokenizer.decode(trace.completion_ids, skip_special_tokens=True))
    spans, i, ids = [], 0, trace.completion_ids
    while i < len(ids):
        if not trace.forced[i]:
            i += 1
            continue
        j = i
        while j < len(ids) and trace.forced[j]:
            j += 1
        start = len(tokenizer.decode(ids[:i], skip_special_tokens=True))
        end = len(tokenizer.decode(ids[:j], skip_special_tokens=True))
        spans.append([opening + start, opening + end])
        i = j
    return spans
