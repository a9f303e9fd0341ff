"""The trace comparison of ``tests.noise``: it accepts float-noise ties and nothing else.

Flips are provoked deliberately here, since a given CPU may never flip a token on its
own: a wrapper model reshapes, nudges or jitters the logits (at one completion index
or all), in one run only. Both runs of a pair have the same batch shape, so
everything else is bit-identical and the only difference is the one provoked. The
same wrapper provokes genuine bugs (a nudge far beyond noise, shifted positions),
which must fail, as must a neighbour's seed or prompt.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from rlcot.generation import Budget
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.generation.sampling import uniform
from tests.conftest import make_request
from tests.noise import assert_same_up_to_ties, plausible_tokens

GREEDY = SamplingConfig()
SAMPLED = SamplingConfig(temperature=1.0)
NUCLEUS = SamplingConfig(temperature=1.0, top_p=0.9)
BUDGET = Budget(max_thinking_tokens=10, max_answer_tokens=4)
NOISE = 1e-4  # a logit nudge that counts as float noise: under the fp32 tolerance (2e-5 of 30, the -30 below)
HIGH, LOW = 1000, 2000  # the two token ids a provoked tie is between


class Wrapped(torch.nn.Module):
    """``inner`` with the logits predicting completion index ``at`` (every index if None)
    passed through ``reshape``, and the completion's position ids shifted by ``shift``
    (a bug that skips or repeats a position between prompt and completion; shifting
    every position would change nothing, rotary embeddings being relative)."""

    def __init__(self, inner, prompt_len: int, at: int | None = None, reshape=None, shift: int = 0):
        super().__init__()
        self.inner, self.prompt_len, self.at, self.reshape, self.shift = inner, prompt_len, at, reshape, shift
        self.config, self.generation_config = inner.config, inner.generation_config

    def forward(self, input_ids, attention_mask, position_ids, **kwargs):
        shifted = position_ids + self.shift * (position_ids >= self.prompt_len)
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=shifted, **kwargs)
        logits = out.logits.clone()
        # the logits at a position predict the completion token after it
        predicts = position_ids[:, -logits.shape[1]:] + 1 - self.prompt_len
        chosen = predicts >= 0 if self.at is None else predicts == self.at
        if self.reshape is not None:
            for r, k in chosen.nonzero().tolist():
                logits[r, k] = self.reshape(logits[r, k])
        return SimpleNamespace(logits=logits, past_key_values=getattr(out, "past_key_values", None))


def _two_token_tie(draw: float, margin: float, nudge: float = 0.0, first: int = HIGH):
    """Logits where token ``first`` covers the CDF up to ``draw + margin`` and LOW the
    rest (every other token ~1e-13), ``first``'s logit lowered by ``nudge``: the draw
    picks ``first`` unless the nudge moves the boundary past it."""

    def reshape(row):
        row = torch.full_like(row, -30.0)
        row[first] = torch.log(torch.tensor(draw + margin)) - nudge
        row[LOW] = torch.log(torch.tensor(1 - draw - margin))
        return row

    return reshape


def _greedy_tie(gap: float, nudge: float = 0.0):
    def reshape(row):
        row = torch.full_like(row, -30.0)
        row[HIGH], row[LOW] = gap - nudge, 0.0
        return row

    return reshape


def test_greedy_ties_are_the_logits_within_twice_the_noise_of_the_top():
    logits = torch.tensor([1.0, 3.0, 3.0 - 1.5e-4, 3.0 - 3e-4])
    assert plausible_tokens(logits, GREEDY, None, eps=1e-4).tolist() == [False, True, True, False]


@pytest.mark.parametrize(
    "top_p, plausible",
    [
        (0.9, [False, True, True, False]),  # B's more probable tokens hold exactly top_p: B is at the edge
        (0.95, [False, True, False, False]),  # B is surely kept
    ],
)
def test_a_token_at_the_nucleus_edge_makes_both_picks_plausible(top_p, plausible):
    # tokens A, B, C, D with probabilities 0.4, 0.1, 0.5, ~0. The draw 0.47 picks B
    # when B is kept (its CDF interval is [0.4, 0.5)), C when it is dropped (A's ends at 0.44)
    logits = torch.tensor([0.4, 0.1, 0.5, 1e-20]).log()
    sampling = SamplingConfig(temperature=1.0, top_p=top_p)
    assert plausible_tokens(logits, sampling, 0.47, eps=1e-6).tolist() == plausible


def _run(model, tokenizer, protocol, request, sampling, **wrap):
    wrapped = Wrapped(model, len(request.prompt_ids), **wrap)
    return HFGenerator(wrapped, tokenizer, protocol).generate([request], sampling, BUDGET)[0], wrapped


def _tie_index(seed: int) -> int:
    """A completion index whose draw is well inside (0.2, 0.8), so both tokens survive top-p 0.9."""
    return next(k for k in range(2, 9) if 0.2 < uniform(seed, k) < 0.8)


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED, NUCLEUS], ids=["greedy", "sampled", "top-p"])
def test_identical_traces_have_no_difference(tiny_model, tokenizer, protocol, sampling):
    request = make_request(tokenizer, protocol, seed=4)
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    a, b = (generator.generate([request], sampling, BUDGET)[0] for _ in range(2))
    assert assert_same_up_to_ties(tiny_model, tokenizer, request, a, b, sampling) is None


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED, NUCLEUS], ids=["greedy", "sampled", "top-p"])
def test_a_token_flipped_by_noise_at_a_tie_is_accepted_and_located(tiny_model, tokenizer, protocol, sampling):
    request = make_request(tokenizer, protocol, seed=4)
    at = _tie_index(request.seed)
    draw = uniform(request.seed, at)
    # a boundary just past the draw: NOISE moves it by ~draw * (1 - draw) * NOISE, twice the margin
    margin = draw * (1 - draw) * NOISE / 2
    tie = _greedy_tie(NOISE / 2) if sampling.greedy else _two_token_tie(draw, margin)
    nudged = _greedy_tie(NOISE / 2, NOISE) if sampling.greedy else _two_token_tie(draw, margin, NOISE)
    a, model = _run(tiny_model, tokenizer, protocol, request, sampling, at=at, reshape=tie)
    b, _ = _run(tiny_model, tokenizer, protocol, request, sampling, at=at, reshape=nudged)
    assert (a.completion_ids[at], b.completion_ids[at]) == (HIGH, LOW)  # the flip was provoked
    assert assert_same_up_to_ties(model, tokenizer, request, a, b, sampling) == at


def test_an_eos_flipped_by_noise_inside_thinking_is_accepted(tiny_model, tokenizer, protocol):
    """The EOS is taken back and the delimiter forced in its place: forced against sampled."""
    request = make_request(tokenizer, protocol, seed=4)
    at = _tie_index(request.seed)
    draw = uniform(request.seed, at)
    margin = draw * (1 - draw) * NOISE / 2
    eos = tokenizer.eos_token_id
    assert eos < LOW  # the EOS's CDF interval comes first, as HIGH's does
    tie, nudged = _two_token_tie(draw, margin, first=eos), _two_token_tie(draw, margin, NOISE, first=eos)
    a, model = _run(tiny_model, tokenizer, protocol, request, SAMPLED, at=at, reshape=tie)
    b, _ = _run(tiny_model, tokenizer, protocol, request, SAMPLED, at=at, reshape=nudged)
    assert a.forced[at] and not a.capped  # the EOS was taken back, the delimiter forced
    assert (b.completion_ids[at], b.forced[at]) == (LOW, False)
    assert assert_same_up_to_ties(model, tokenizer, request, a, b, SAMPLED) == at


def test_runs_under_logit_noise_pass_though_top_p_flips_tokens(tiny_model, tokenizer, protocol):
    """The failure seen on a Xeon: on the near-uniform tiny llama, noise moves a token
    across the nucleus edge, which shifts the pick to a neighbouring token id."""
    requests = [make_request(tokenizer, protocol, q, seed=i, rid=i)
                for i, q in enumerate(["What is 2 + 3?", "Compute 7 * 6.", "Halve 10.", "Name a prime."])]
    noise = torch.Generator().manual_seed(0)

    def jitter(row):  # up to three quarters of the fp32 tolerance, every logit, independently
        scale = 1.5e-5 * max(1.0, row.abs().max().item())
        return row + scale * (2 * torch.rand(row.shape, generator=noise) - 1)

    flips = []
    for request in requests:
        a, model = _run(tiny_model, tokenizer, protocol, request, NUCLEUS)
        b, _ = _run(tiny_model, tokenizer, protocol, request, NUCLEUS, reshape=jitter)
        flips.append(assert_same_up_to_ties(model, tokenizer, request, a, b, NUCLEUS))
    assert any(flip is not None for flip in flips), "the noise flipped no token: nothing was tested"


@pytest.mark.parametrize("sampling", [GREEDY, NUCLEUS], ids=["greedy", "top-p"])
def test_a_token_changed_where_the_draw_is_no_tie_fails(tiny_model, tokenizer, protocol, sampling):
    request = make_request(tokenizer, protocol, seed=4)
    at = _tie_index(request.seed)
    draw = uniform(request.seed, at)
    # the boundary 0.1 past the draw (greedy: a logit gap of 0.5), moved past it by a nudge of 1
    tie = _greedy_tie(0.5) if sampling.greedy else _two_token_tie(draw, 0.1)
    nudged = _greedy_tie(0.5, 1.0) if sampling.greedy else _two_token_tie(draw, 0.1, 1.0)
    a, model = _run(tiny_model, tokenizer, protocol, request, sampling, at=at, reshape=tie)
    b, _ = _run(tiny_model, tokenizer, protocol, request, sampling, at=at, reshape=nudged)
    assert (a.completion_ids[at], b.completion_ids[at]) == (HIGH, LOW)
    with pytest.raises(AssertionError, match=f"differ at completion index {at} .* not a tie"):
        assert_same_up_to_ties(model, tokenizer, request, a, b, sampling)


def test_a_neighbours_seed_fails(tiny_model, tokenizer, protocol):
    """A batch that hands a row its neighbour's seed: the right prompt, other draws."""
    request = make_request(tokenizer, protocol, seed=4)
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    a = generator.generate([request], NUCLEUS, BUDGET)[0]
    b = replace(generator.generate([replace(request, seed=5)], NUCLEUS, BUDGET)[0], seed=request.seed)
    with pytest.raises(AssertionError, match="not a tie"):
        assert_same_up_to_ties(tiny_model, tokenizer, request, a, b, NUCLEUS)


def test_a_neighbours_logits_fail(tiny_model, tokenizer, protocol):
    """A wrong cache row: the right draws applied to another prompt's logits."""
    request = make_request(tokenizer, protocol, seed=4)
    neighbour = make_request(tokenizer, protocol, "Compute 7 * 6.", seed=4)
    generator = HFGenerator(tiny_model, tokenizer, protocol)
    a = generator.generate([request], NUCLEUS, BUDGET)[0]
    b = replace(generator.generate([neighbour], NUCLEUS, BUDGET)[0], prompt_ids=a.prompt_ids)
    with pytest.raises(AssertionError, match="not a tie|not float noise"):
        assert_same_up_to_ties(tiny_model, tokenizer, request, a, b, NUCLEUS)


@pytest.mark.parametrize("sampling", [GREEDY, NUCLEUS], ids=["greedy", "top-p"])
def test_positions_shifted_by_one_fail(tiny_model, tokenizer, protocol, sampling):
    """Completion positions off by one: every logit after the prompt moves, by far more than noise."""
    request = make_request(tokenizer, protocol, seed=4)
    a, model = _run(tiny_model, tokenizer, protocol, request, sampling)
    b, _ = _run(tiny_model, tokenizer, protocol, request, sampling, shift=1)
    with pytest.raises(AssertionError, match="not a tie|not float noise"):
        assert_same_up_to_ties(model, tokenizer, request, a, b, sampling)


def test_a_trace_that_stops_early_fails(tiny_model, tokenizer, protocol):
    request = make_request(tokenizer, protocol, seed=4)
    a = HFGenerator(tiny_model, tokenizer, protocol).generate([request], NUCLEUS, BUDGET)[0]
    b = replace(a, completion_ids=a.completion_ids[:-1], forced=a.forced[:-1], logprobs=a.logprobs[:-1])
    with pytest.raises(AssertionError, match="stops after"):
        assert_same_up_to_ties(tiny_model, tokenizer, request, a, b, NUCLEUS)
