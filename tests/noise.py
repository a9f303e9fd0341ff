"""Comparing traces from runs with different batch shapes: equal up to float-noise ties.

The hf backend draws each token from (seed, position) and the logits, so a request
samples the same tokens in any batch, *given the same logits*. The logits are not
bit-identical across batch shapes: BLAS kernels sum in an order that depends on the
shape (a batch of one or of three, a prefill or one token a step) and on the CPU
(AVX2, AVX-512, AMX), so they differ in their last bits (measured between batch
shapes on an AMD EPYC: ~1.5e-6 of the largest |logit| on SmolLM2, 2.5e-7 on the tiny
test llama). When a draw lies within that noise of a boundary, the two runs pick
different tokens, and from there on anything may differ. The boundaries:

- sampled: the draw lies that close to the CDF boundary between the two tokens;
- top-p: a token sits at the nucleus edge and is kept in one run, dropped in the
  other, which shifts the CDF of every later token id. On the tiny random llama,
  whose next-token distribution is near uniform, some token is always at the edge:
  noise of 2.5e-6 of the logits already moves a pick to the neighbouring token id,
  the signature of the failure seen on a Xeon (7725 vs 7726);
- greedy: the top two logits are that close.

So "batched equals alone" is true only up to such ties, and
``assert_same_up_to_ties`` checks exactly that, no looser. A reference forward pass
of the shared prefix (batch of one, the model's own dtype) gives the logits the runs
should have had, and:

- up to the first difference, at completion index ``d``, the traces agree token for
  token and forced flag for forced flag, and every sampled token's logprob is the
  reference's within noise (``2 eps / T``);
- at ``d``, logits within noise of the reference could give either run's token for
  the draw ``uniform(seed, d)`` (``plausible_tokens``).

A genuine batch-dependence bug (a neighbour's seed, a wrong cache row, shifted
positions) fails one of the two: it changes the draw, so the first difference is no
tie (a random draw lands within noise of the boundary between two given tokens with
probability of the order of the tolerance), or it moves the logits by more than
noise, which the logprobs show at once. The logprobs matter on the tiny llama: its
tokens are ~2e-5 of the CDF each, so a tie between neighbouring ids is often
plausible, but completion positions off by one move its logprobs by ~3e-4, five
times the tolerance.

The noise model: every logit may move by ``eps = rtol * max(1, max|logit|)`` at that
position, independently. ``rtol`` is ``LOGIT_RTOL`` for the model's dtype: 2e-5 for
fp32, 13x the noise measured on SmolLM2 and 80x on the tiny llama, so a CPU with other
kernels stays green. ``tests/test_noise.py`` checks both directions: logits jittered
within the tolerance in one run pass (and flip tokens), provoked bugs fail.

Scope: draws happen at ``len(ids)`` when the token is sampled, which equals its
completion index in the final trace, also after an EOS inside thinking was taken
back (the forced delimiter takes its place). When the traces first differ by one
side's forced token against the other's sampled one, the forced side's draw was an
EOS that was taken back, and the EOS must be a tie. An extension ("Wait") takes back
sampled tokens the trace no longer shows, so a difference next to one cannot be
checked and raises ``ValueError``; runs that should be bit-identical by construction
(the same call twice, scripted models with one-hot logits) are compared with ``==``.
"""

from __future__ import annotations

import math

import torch

from rlcot.generation.base import GenerationRequest, SamplingConfig, Trace
from rlcot.generation.forcing import eos_ids
from rlcot.generation.sampling import uniform

# fp32: see the module docstring; half precision is not measured here (the CPU tests
# run fp32), so its entry is its own rounding (~4e-3) with a margin
LOGIT_RTOL = {torch.float32: 2e-5, torch.float64: 2e-5, torch.bfloat16: 2e-2, torch.float16: 2e-2}
# float32 rounding of the nucleus's cumulative sums (measured ~6e-8 over 49k tokens)
MASS_SLACK = 1e-6

# fields a trace derives from its tokens and the rules: equal whenever the tokens are
_BOOKKEEPING = ("thinking_end", "thinking_tokens", "answer_tokens", "finish_reason", "capped", "extensions", "budget")


def assert_same_up_to_ties(
    model,
    tokenizer,
    request: GenerationRequest,
    a: Trace,
    b: Trace,
    sampling: SamplingConfig,
    rtol: float | None = None,
) -> int | None:
    """Assert traces ``a`` and ``b`` of ``request`` are one trace up to a float-noise tie.

    Both must come from ``request`` under ``sampling`` and one budget, from runs that
    may batch differently. Returns None when they are identical (tokens, forced flags,
    bookkeeping), or the completion index of their first difference, a tie. Before
    that index, every sampled token's logprob must be within noise of the
    reference's. Raises AssertionError otherwise.
    """
    for name, trace in (("a", a), ("b", b)):
        assert trace.seed == request.seed and trace.prompt_ids == list(request.prompt_ids), (
            f"trace {name} is not of this request (seed {trace.seed} vs {request.seed}, or another prompt)"
        )
    rtol = LOGIT_RTOL[next(model.parameters()).dtype] if rtol is None else rtol
    d = first_difference(a, b)
    shared = a.completion_ids[: len(a.completion_ids) if d is None else d]
    logits = reference_logits(model, request.prompt_ids, shared)
    temperature = 1.0 if sampling.greedy else sampling.temperature
    for k in range(len(shared)):
        for name, trace in (("a", a), ("b", b)):
            _assert_logprob_within_noise(name, trace, k, logits[k], temperature, rtol)
    if d is None:
        for name in _BOOKKEEPING:
            x, y = getattr(a, name), getattr(b, name)
            assert x == y, f"same tokens but {name} {x!r} vs {y!r}"
        return None
    _assert_tie_at(model, tokenizer, request, a, b, d, logits[d], sampling, rtol)
    return d


def first_difference(a: Trace, b: Trace) -> int | None:
    """The first completion index where the tokens or forced flags differ; None if none
    (then the lengths must agree too)."""
    for k, (x, y) in enumerate(zip(zip(a.completion_ids, a.forced), zip(b.completion_ids, b.forced))):
        if x != y:
            return k
    n, m = len(a.completion_ids), len(b.completion_ids)
    assert n == m, (
        f"one trace stops after {min(n, m)} tokens where the other goes on to {max(n, m)}, "
        "with the same tokens: the rules stop both or neither"
    )
    return None


def reference_logits(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """fp32 next-token logits for completion indices 0..len(completion_ids), from one
    forward pass of batch one (positions count the real tokens, as the generator's do)."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)], device=device)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            position_ids=torch.arange(ids.shape[1], device=device)[None],
            use_cache=False,
        )
    return out.logits[0, len(prompt_ids) - 1 :].float().cpu()


def logit_noise(logits: torch.Tensor, rtol: float) -> float:
    """How far each logit may move between kernels: ``rtol`` of the largest |logit|."""
    return rtol * max(1.0, logits.abs().max().item())


def plausible_tokens(logits: torch.Tensor, sampling: SamplingConfig, draw: float | None, eps: float) -> torch.Tensor:
    """Which tokens ``HFGenerator`` could pick with the draw ``draw`` if every logit
    moved by at most ``eps``: a boolean mask over the vocabulary (``draw`` is unused
    under greedy decoding).

    An over-approximation, so it never rejects a noise flip: greedy keeps every token
    within ``2 eps`` of the top logit. Sampling bounds each token's weight
    ``exp(logit / T)`` by a factor ``exp(+-eps / T)``; top-p splits tokens into surely
    kept, surely dropped and ambiguous (the nucleus edge), and a token is plausible if
    some choice of the ambiguous ones and of the weights puts the draw in its CDF
    interval: ``lo[t-1] <= draw < hi[t]``.
    """
    if sampling.greedy:
        return logits >= logits.max() - 2 * eps
    z = logits.double() / sampling.temperature
    eta = eps / sampling.temperature
    weights = torch.exp(z - z.max())
    if sampling.top_p < 1:
        sure, ambiguous = _nucleus_bounds(weights / weights.sum(), sampling.top_p, eta)
    else:
        sure, ambiguous = torch.ones_like(weights, dtype=torch.bool), torch.zeros_like(weights, dtype=torch.bool)
    low, high = math.exp(-eta), math.exp(eta)
    sure_below = torch.cumsum(weights * sure, 0)  # sure mass at token ids <= t
    sure_above = sure_below[-1] - sure_below
    ambiguous_below = torch.cumsum(weights * ambiguous, 0)
    ambiguous_above = ambiguous_below[-1] - ambiguous_below
    # lowest and highest normalised CDF at each t over the choices
    lo = low * sure_below / (low * sure_below + high * (sure_above + ambiguous_above))
    up_below = high * (sure_below + ambiguous_below)
    hi = up_below / (up_below + low * sure_above)
    lo_before = torch.cat([lo.new_zeros(1), lo[:-1]])
    return (sure | ambiguous) & (lo_before <= draw) & (draw < hi)


def _nucleus_bounds(probs: torch.Tensor, top_p: float, eta: float):
    """(surely kept, ambiguous) under top-p when each prob may move by a factor exp(+-2 eta).

    ``sampling.top_p_filter`` keeps a token iff the mass of the more probable tokens is < top_p.
    Under noise, token j surely precedes i if p_j > p_i exp(4 eta), and may if
    p_j >= p_i exp(-4 eta).
    """
    ascending = probs.sort().values
    total = torch.cat([ascending.new_zeros(1), ascending.cumsum(0)])  # total[k]: mass of the k smallest

    def mass_above(threshold, strict):
        count_below = torch.searchsorted(ascending, threshold, right=strict)  # how many are <= (or <) it
        return total[-1] - total[count_below]

    surely_before = mass_above(probs * math.exp(4 * eta), strict=True)
    maybe_before = mass_above(probs * math.exp(-4 * eta), strict=False) - probs
    sure = maybe_before * math.exp(2 * eta) + MASS_SLACK < top_p
    maybe = surely_before * math.exp(-2 * eta) - MASS_SLACK < top_p
    return sure, maybe & ~sure


def _assert_logprob_within_noise(name, trace, k, logits, temperature, rtol) -> None:
    logprob = trace.logprobs[k]
    if logprob is None:  # forced, or resumed without logprobs
        return
    reference = torch.log_softmax(logits.double() / temperature, -1)[trace.completion_ids[k]].item()
    # a logprob is a logit minus a log-sum-exp of logits: it moves by at most 2 eps / T
    tol = 2 * logit_noise(logits, rtol) / temperature
    assert abs(logprob - reference) <= tol, (
        f"trace {name}: logprob {logprob:.6g} of token {trace.completion_ids[k]} at completion index {k} "
        f"is not the reference's {reference:.6g} within {tol:.2g}: not float noise"
    )


def _assert_tie_at(model, tokenizer, request, a, b, d, logits, sampling, rtol) -> None:
    """At the first difference ``d``, both runs' draws must be plausible under the reference."""
    eps = logit_noise(logits, rtol)
    draw = None if sampling.greedy else uniform(request.seed, d)
    plausible = plausible_tokens(logits, sampling, draw, eps)
    picks = []
    for name, trace, other in (("a", a, b), ("b", b, a)):
        if not trace.forced[d]:
            picks.append((name, [trace.completion_ids[d]]))
            continue
        # forced here: unless the other run samples here, the forcing rules differ
        if other.forced[d]:
            raise AssertionError(
                f"the traces differ at completion index {d} with no sampled token on either side "
                f"({a.completion_ids[d:d + 3]} vs {b.completion_ids[d:d + 3]}): the forcing rules differ"
            )
        if a.extensions or b.extensions:
            raise ValueError(
                f"trace {name} is forced at completion index {d} where the other samples, and the traces have "
                "extensions: what an extension took back is not in the trace; compare cap-only traces"
            )
        # so this run's draw was an EOS in thinking, taken back with the delimiter forced in
        # its place (a cap is no draw: both runs would be capped here)
        assert not trace.capped, f"trace {name} is capped at completion index {d}, the other samples there"
        picks.append((name, eos_ids(tokenizer, getattr(model, "generation_config", None))))
    for name, tokens in picks:
        assert any(plausible[t] for t in tokens), _not_a_tie(tokenizer, d, picks, name, logits, sampling, draw, eps)


def _not_a_tie(tokenizer, d, picks, name, logits, sampling, draw, eps) -> str:
    described = ", ".join(f"{n}: {tokenizer.convert_ids_to_tokens(t)}" for n, t in picks)
    top = logits.topk(3)
    return (
        f"the traces differ at completion index {d} ({described}), and run {name}'s token is not within "
        f"float noise (logits +-{eps:.2g}) of the reference's pick for draw {draw} under {sampling}: "
        f"a real difference, not a tie (reference top logits {top.values.tolist()} at {top.indices.tolist()})"
    )
