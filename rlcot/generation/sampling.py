"""Seeded sampling for the hf backend: a token per batch slot from one uniform draw.

Each sampled token comes from one uniform draw fixed by (seed, position), turned
into a token by inverse-CDF search, so a sequence samples the same tokens whatever
batch it is in, and a probed or forked trace equals a fresh capped run. No
per-request ``torch.Generator``: a counter-based draw has no state to carry, fork
or share between slots, and per-slot ``torch.multinomial`` costs ~1.5 ms a slot at a
49k-token vocabulary.

Logprobs are of the temperature-scaled distribution before top-p (what TRL's GRPO
recomputes); under greedy decoding, of the raw distribution.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .base import SamplingConfig


def choose(logits: torch.Tensor, sampling: SamplingConfig, draws: Sequence[tuple[int, int]]):
    """A token and its logprob for each slot of ``logits``; slot i's draw is fixed by ``draws[i]``, (seed, position)."""
    if sampling.greedy:
        tokens = logits.argmax(-1)
        logprobs = torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
        return tokens.tolist(), logprobs.tolist()
    logp = torch.log_softmax(logits / sampling.temperature if sampling.temperature != 1 else logits, -1)
    probs = logp.exp()
    if sampling.top_p < 1:
        probs = top_p_filter(probs, sampling.top_p)
    uniforms = torch.tensor([uniform(seed, position) for seed, position in draws], dtype=torch.float64)
    tokens = inverse_cdf(probs, uniforms.to(probs.device))
    return tokens.tolist(), logp.gather(-1, tokens[:, None])[:, 0].tolist()


_MASK64 = (1 << 64) - 1


def uniform(seed: int, position: int) -> float:
    """The uniform draw in [0, 1) for the token at ``position``: fixed by (seed, position)
    alone, so a sequence samples the same tokens in any batch, and when resumed.

    A counter-based draw (SplitMix64's finaliser, Steele et al. 2014, over the pair)
    rather than a seeded generator: no state to share between threads or calls, and
    about a microsecond in plain Python.
    """
    z = _mix64(_mix64(seed) + (position + 1) * 0x9E3779B97F4A7C15)
    return (z >> 11) / float(1 << 53)


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor, block: int = 256) -> torch.Tensor:
    """For each slot, the first token whose cumulative probability exceeds ``uniform * total``.

    In two levels, block sums and then one block, with float64 sums: a float64 cumsum
    over the whole vocabulary (49k tokens x 64 slots) took ~20 ms a step, this ~3 ms. Only
    the order of float64 additions differs from the one-level search (~1e-16, far below
    the model's own float noise), so it picks the same tokens.
    """
    slots, vocab = probs.shape
    if vocab % block:
        probs = torch.nn.functional.pad(probs, (0, block - vocab % block))  # zero mass: never picked
    blocks = probs.view(slots, -1, block)
    mass = blocks.sum(-1, dtype=torch.float64)
    ends = mass.cumsum(-1)
    targets = (uniforms * ends[:, -1])[:, None]
    chosen = torch.searchsorted(ends, targets, right=True).clamp(max=ends.shape[1] - 1)
    inside = blocks.gather(1, chosen[:, :, None].expand(-1, -1, block))[:, 0].cumsum(-1, dtype=torch.float64)
    offset = torch.searchsorted(inside + (ends - mass).gather(-1, chosen), targets, right=True).clamp(max=block - 1)
    return (chosen * block + offset)[:, 0].clamp(max=vocab - 1)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set with mass >= top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
