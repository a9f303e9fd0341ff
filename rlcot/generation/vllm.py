"""The vLLM backend: budget-forced generation in rounds of ``LLM.generate`` (GPU only).

Same ``generate(requests, sampling, budget, progress) -> list[Trace]`` and the same
per-sequence state machine as the hf backend (see ``rlcot.generation.hf``): a trace
from either backend means the same thing.

Why rounds: vLLM schedules whole requests; nothing can append a forced token to one
sequence, or take tokens back, in the middle of its decoding. So every point where
budget forcing acts ends a request, and the sequence continues as a new request
whose prompt is the old prompt plus the completion so far (forced tokens included).
Prefix caching (on by default here) makes that cheap: a continuation prefills only
the tokens that are not cached yet. A thinking round ends exactly where the state
machine acts:

- the cap: ``max_tokens`` is the cap minus the thinking tokens so far, so the
  request stops on the cap-th thinking token;
- the delimiter: ``stop=[close_tag]`` (with ``include_stop_str_in_output``) stops
  on the token that completes it;
- EOS: ``stop_token_ids`` are the model's EOS ids.

The output's tokens are then replayed through the hf rules one by one (EOS, then
delimiter, then cap, the order hf checks them), decoding them ourselves rather than
reading vLLM's text (which ends at the stop string, not at a token boundary), so
the decisions are hf's. Anything vLLM sampled past the point where a rule fired is
dropped: that happens only when a delimiter straddles a round boundary, which
vLLM's stop check (it looks at new text only) cannot see. A round that vLLM stopped
without a rule firing simply continues in the next round.
Then: a delimiter before ``min_thinking_tokens`` is taken back exactly as hf's
``_extend`` does and the extension forced, and the sequence goes round again; an
EOS inside thinking is taken back and the delimiter and cue forced (or the trace
ends, with ``answer_after_eos`` off); the cap forces the delimiter and cue. The
answer round asks for ``max_answer_tokens`` and stops at EOS; when the forced cue
opens braces, the answer is cut after the first token at which
``rlcot.generation.budget.answer_complete`` holds, where hf stops, so the traces agree (the
tokens vLLM sampled after it are wasted work, at most ``max_answer_tokens``). All
active sequences of a round, thinking or answering, go in one ``generate`` call.
No round samples past ``SamplingConfig.max_tokens``; forced tokens that would pass
it are cut there, where hf stops feeding them (``finish_reason == "length"``).

Departures from the hf backend:

- Randomness is vLLM's: each request carries a seed, so a sample is reproducible
  for a seed (same vLLM version and GPU), but not token-identical to the hf backend,
  which seeds every draw with (seed, position). The first round of a request uses
  ``request.seed``; a continuation round uses a seed derived from (seed, completion
  length), so rounds do not replay the same random stream, and a probed trace's
  answer round gets the seed of the fresh capped run it stands for.
- Logprobs are what vLLM reports for the sampled token, with
  ``logprobs_mode="processed_logprobs"`` set on ``LLM`` (an option overrides it).
  vLLM's default, ``raw_logprobs``, is the model's distribution before any
  processing, so at temperature T it is not the distribution the token was drawn
  from, nor what TRL's GRPO recomputes. Processed logprobs are taken after
  temperature (greedy requests: of the unscaled distribution), as hf's are, so the
  two agree at ``top_p == 1``. With ``top_p < 1`` vLLM takes them after the nucleus
  filter too: renormalised over the nucleus, so higher than hf's (taken before
  top-p) by minus the log of the nucleus mass. (In vLLM's V1 sampler the processed
  modes also skip its FlashInfer top-p/top-k kernel; a small cost.)
- A sequence that runs out of context (``max_model_len``) without a cap ends with
  ``finish_reason == "length"``; if it was still thinking, with no answer section.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from ..thinking import ThinkingProtocol
from .base import GenerationRequest, ProgressCallback, SamplingConfig, Trace
from .forcing import ForcingRules, SequenceState, check_request, eos_ids
from .sweep import sweep_by_probing

INSTALL_HINT = "pip install 'rlcot[vllm]'"
LOGPROBS_MODE = "processed_logprobs"  # temperature-scaled, like hf's (module docstring)
_SEED_MODULUS = 2**31 - 1


class VLLMGenerator:
    """Budget-forced generation with vLLM; ``llm_options`` go to ``vllm.LLM``."""

    def __init__(self, model, protocol: ThinkingProtocol | None = None, tokenizer=None, llm=None, **llm_options):
        self.vllm = import_vllm()
        if llm is not None and llm_options:
            raise ValueError(
                f"options {sorted(llm_options)} only apply when VLLMGenerator builds the engine; "
                "pass them to your own vllm.LLM or leave out llm"
            )
        self.model = str(model)
        self.protocol = protocol or ThinkingProtocol()
        self.llm = llm if llm is not None else build_llm(self.vllm, self.model, llm_options)
        self.tokenizer = tokenizer if tokenizer is not None else self.llm.get_tokenizer()
        self.eos_ids = eos_ids(self.tokenizer, _generation_config(self.model))
        self.rules = ForcingRules(self.tokenizer, self.protocol, self.eos_ids)
        self.max_model_len = _max_model_len(self.llm)

    # ------------------------------------------------------------------ public

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget,
        progress: ProgressCallback | None = None,
    ) -> list[Trace]:
        for request in requests:
            check_request(request, budget)
        sequences = [self.rules.start(i, request, budget.max_thinking_tokens) for i, request in enumerate(requests)]
        active = sequences
        while active:
            self._run_round(active, sampling, budget)
            still = [seq for seq in active if seq.finish is None]
            if progress and len(still) < len(active):
                progress(len(active) - len(still))
            active = still
        return [self.rules.to_trace(seq) for seq in sequences]

    def sweep(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig,
        budget,
        budgets: Sequence[int],
        progress: ProgressCallback | None = None,
    ) -> dict[int, list[Trace]]:
        """vLLM cannot fork a running request: one run at the top cap, then a probe per budget
        (the truncated thinking is a cached prefix, so each probe prefills little)."""
        return sweep_by_probing(self, requests, sampling, budget, budgets, progress)

    # --------------------------------------------------------------- rounds

    def _run_round(self, active: list[SequenceState], sampling: SamplingConfig, budget) -> None:
        """One ``generate`` call for every sequence that still has room; consume the outputs."""
        bound = sampling.max_tokens  # the whole completion, forced tokens included
        jobs = []
        for seq in active:
            params = self._params(seq, sampling, budget)
            if params is None:  # no room: the context is full, or the completion at max_tokens
                seq.cut(bound)
            else:
                jobs.append((seq, params))
        if not jobs:
            return
        prompts = [self.vllm.TokensPrompt(prompt_token_ids=seq.request.prompt_ids + seq.ids) for seq, _ in jobs]
        outputs = self.llm.generate(prompts, [params for _, params in jobs], use_tqdm=False)
        for (seq, _), output in zip(jobs, outputs):
            self._consume(seq, output.outputs[0], budget)
            if seq.finish is None and len(seq.ids) >= bound:
                seq.cut(bound)  # hf stops there, even inside forced tokens

    def _room(self, seq: SequenceState, sampling: SamplingConfig) -> int | None:
        """Tokens the sequence may still take: what the context has left, and ``max_tokens``."""
        used = len(seq.request.prompt_ids) + len(seq.ids)
        context = None if self.max_model_len is None else self.max_model_len - used
        return _smallest(context, sampling.max_tokens - len(seq.ids))

    def _params(self, seq: SequenceState, sampling: SamplingConfig, budget):
        """This sequence's SamplingParams for the next round; None when it has no room left."""
        room = self._room(seq, sampling)
        if seq.thinking:
            cap = budget.max_thinking_tokens
            limit = _smallest(None if cap is None else cap - seq.thinking_tokens, room)
            stop = [self.protocol.close_tag]
        else:
            limit = _smallest(budget.max_answer_tokens - seq.answer_tokens, room)
            stop = []
        if limit is not None and limit < 1:
            return None
        return self.vllm.SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=_round_seed(seq.request.seed, len(seq.ids)),
            max_tokens=limit,
            stop=stop,
            include_stop_str_in_output=True,
            stop_token_ids=list(self.eos_ids),
            logprobs=0,  # the sampled token's logprob only
            skip_special_tokens=True,  # the text hf's delimiter check decodes
        )

    def _consume(self, seq: SequenceState, output, budget) -> None:
        """Replay one round's tokens through the forcing rules; drop what follows a rule firing."""
        token_ids = list(output.token_ids)
        logprobs = _sampled_logprobs(output, token_ids)
        # vLLM also stops on EOS ids it knows and we may not: a stop not caused by a string is an EOS.
        eos_at_end = output.finish_reason == "stop" and not isinstance(output.stop_reason, str)
        for j, (token, logprob) in enumerate(zip(token_ids, logprobs)):
            eos = token in self.rules.eos_ids or (eos_at_end and j == len(token_ids) - 1)
            seq.append(token, logprob)
            if self.rules.advance(seq, budget, eos):
                return
        if output.finish_reason == "length" or not token_ids:
            seq.finish = "length"  # out of context with no rule firing
        # Otherwise a stop string matched text the delimiter check does not see: go round again.

# ------------------------------------------------------------------ helpers


def import_vllm():
    """The ``vllm`` module, or a one-line ImportError saying how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError:
        raise ImportError(
            f"the vllm backend needs vLLM, which is not installed; run `{INSTALL_HINT}` on a CUDA machine "
            "or use `--backend hf`"
        ) from None


def build_llm(vllm, model: str, options: dict):
    """``vllm.LLM`` with prefix caching, a fixed engine seed and hf-like logprobs; options override."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("vLLM needs a CUDA GPU and none is visible; use `--backend hf` on this machine")
    settings = {"enable_prefix_caching": True, "seed": 0, "logprobs_mode": LOGPROBS_MODE, **options}
    return vllm.LLM(model=model, **settings)


def _generation_config(model: str):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model)
    except (OSError, ValueError):  # no generation_config.json, or a hub id that cannot be reached
        return None


def _max_model_len(llm) -> int | None:
    """The engine's context length, where this vLLM exposes it."""
    for path in (("llm_engine", "model_config"), ("llm_engine", "vllm_config", "model_config")):
        config = llm
        for name in path:
            config = getattr(config, name, None)
        value = getattr(config, "max_model_len", None)
        if isinstance(value, int):
            return value
    return None


def _sampled_logprobs(output, token_ids: list[int]) -> list[float | None]:
    """The logprob vLLM reported for each sampled token (``logprobs=0`` returns just that one)."""
    entries = list(output.logprobs or [])
    entries += [None] * (len(token_ids) - len(entries))
    values = []
    for token, entry in zip(token_ids, entries):
        logprob = entry.get(token) if entry else None
        values.append(None if logprob is None else logprob.logprob)
    return values


def _round_seed(seed: int, offset: int) -> int:
    """The request's seed for its first round; a derived one for a round that continues at ``offset``."""
    return seed if offset == 0 else (seed * 1_000_003 + offset) % _SEED_MODULUS


def _smallest(*limits: int | None) -> int | None:
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None
