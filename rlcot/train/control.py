"""Controls for a training run: is it the RL, or would any reward of that size have done it?

``rlcot train RECIPE --control random-reward`` (the recipe field ``control``) trains the
same recipe, same seeds, same rows, with each reward replaced by a coin flip.

**What the control measures.** Shao et al. 2025, "Spurious Rewards: Rethinking Training
Signals in RLVR" (arXiv:2506.10947), found that GRPO with *random* rewards alone moved
some models (Qwen2.5-Math) by about 20 points on MATH-500: the update itself (clipping,
the policy sharpening toward what it already does) can lift accuracy with no information
about which answers were right. A gain a recipe shows is the verifier's only where the
same run with rewards that carry no information gains less. So each completion's reward
becomes a draw, independent of the completion, between its scheme's lowest and highest
score (``HedgeScheme``: the binary scheme's 0 and 1, the hedge scheme's -4 and +1).

**Why the same mean.** The probability of the high value is chosen per batch so that the
expected value of the batch's rewards equals the mean of the real rewards of that batch
(``q = (mean - low) / (high - low)``). The coin flips then have about the spread of a
two-valued reward at that success rate, so GRPO's groups have a similar share of
zero-std groups and advantages of a similar size; the rewards' level follows the policy as
the real one would: only the information in the signal (which completion earned what)
is removed, not the update's size. The real reward function still runs on every batch,
so the run's logs (``outcomes/*``, ``score/mean``) show what the policy really earned
while trained on noise; TRL's ``rewards/<name>/mean`` and ``reward`` are of the coin flips.

**What it does not control for.** The batch mean still carries one number of real
signal per batch (how well the batch did overall), though nothing about which completion
earned it: every group of the batch flips the same coin q. The flips
are two-valued, so a hedge-scheme run's middle scores (+0.5, 0, -2) and the real
rewards' structure across groups (a hard prompt's group all wrong, hence zero std) are
not reproduced: the control's zero-std groups are spread by chance (a group of G is
constant with probability q^G + (1-q)^G), so it may update on groups the real run would
have skipped. Everything else is the recipe's and stays the same in both runs: the SFT
warm-up (its gain is in both; compare from the "after SFT warm-up" curve on), the
budget-forced rollouts, the KL and clipping settings. The control separates "the
verifier's information" from "the optimiser on this policy", not any of those.

**Determinism.** Each draw is seeded from (recipe seed, the reward's index, the
trainer's global step from TRL's ``trainer_state`` (or, called without it, a count of
calls), the call's index within that step, the process (``RANK``) and the completion's
position), hashed by ``rlcot.generation.derive_seed``: a rerun or a resume from a
checkpoint draws the same flips for the same step, and the flips never depend on what
the completions say.

**Logged** per batch through TRL's ``log_metric``: ``control/random_reward_mean`` (the mean
of the values handed to TRL) and ``control/real_reward_mean`` (of the real rewards), for
the first reward; further rewards log the same with ``/<name>`` appended (as
``rlcot.train.rewards`` logs outcomes from the first reward). The wrapper keeps the
wrapped function's ``__name__``, so TRL's metric names stay the same.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any, Callable, Sequence

from ..generation.base import derive_seed
from ..records import resolve_scheme
from rlcot.verifiers import HedgeScheme

CONTROLS = ("random-reward",)  # the recipe's ``control`` values (None: no control)


def random_reward(functions: Sequence[Callable[..., list]], seed: int,
                  schemes: Sequence[str | HedgeScheme] | None = None) -> list[Callable[..., list]]:
    """Each TRL reward function wrapped to hand TRL a coin flip of the batch's real mean (module docstring).

    ``schemes``: each function's scheme (a name, a YAML file or a ``HedgeScheme``), whose
    lowest and highest scores the flips take; default: read from each function's scorers
    (``rlcot.train.rewards.reward_functions`` builds them).
    """
    functions = list(functions)
    if schemes is None:
        schemes = [_scheme_of(function) for function in functions]
    if len(schemes) != len(functions):
        raise ValueError(f"random_reward got {len(functions)} reward functions but {len(schemes)} schemes; "
                         "give one scheme per function")
    return [RandomReward(function, scheme, seed, index) for index, (function, scheme)
            in enumerate(zip(functions, schemes))]


def score_range(scheme: str | HedgeScheme) -> tuple[float, float]:
    """The lowest and highest score of a scheme (``unparsed`` counted when the scheme sets it)."""
    _, scheme = resolve_scheme(scheme)
    values = [scheme.correct, scheme.correct_hedged, scheme.abstain, scheme.wrong_hedged, scheme.wrong]
    if scheme.unparsed is not None:
        values.append(scheme.unparsed)
    return float(min(values)), float(max(values))


class RandomReward:
    """One reward function under the random-reward control: calls it, returns seeded coin flips of its mean."""

    def __init__(self, function: Callable[..., list], scheme: str | HedgeScheme, seed: int, index: int = 0):
        self.function = function
        self.__name__ = function.__name__  # TRL names its metrics after it: rewards/<name>/mean
        self.low, self.high = score_range(scheme)
        self.seed, self.index = int(seed), index
        self.calls = 0  # every call; the step when TRL passes no trainer_state
        self._step: Any = None
        self._step_calls = 0  # calls at the current step

    def __getattr__(self, name: str) -> Any:  # the wrapped function's attributes (unscorable, scorers)
        if name == "function":
            raise AttributeError(name)
        return getattr(self.function, name)

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float | None]:
        real = self.function(prompts, completions, **kwargs)  # outcome metrics are still logged
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        step = f"step{step}" if step is not None else f"call{self.calls}"
        self.calls += 1
        if step != self._step:
            self._step, self._step_calls = step, 0
        key = f"random-reward:{self.index}:{step}:{self._step_calls}:proc{os.environ.get('RANK', '0')}"
        self._step_calls += 1
        flips = self.flips(real, key)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            suffix = "" if self.index == 0 else f"/{self.__name__}"
            for name, values in (("random_reward_mean", flips), ("real_reward_mean", real)):
                kept = [v for v in values if v is not None]
                if kept:
                    log_metric(f"control/{name}{suffix}", sum(kept) / len(kept))
        return flips

    def flips(self, real: Sequence[float | None], key: str) -> list[float | None]:
        """The scheme's high score with probability q, else its low one, where q makes E[mean] the real mean."""
        scored = [float(v) for v in real if v is not None and not math.isnan(v)]
        if not scored:
            return [None] * len(real)
        span = self.high - self.low
        q = 0.0 if span == 0 else min(1.0, max(0.0, (sum(scored) / len(scored) - self.low) / span))
        return [None if v is None or math.isnan(v) else
                (self.high if random.Random(derive_seed(self.seed, key, position)).random() < q else self.low)
                for position, v in enumerate(real)]


def _scheme_of(function: Callable[..., list]) -> HedgeScheme:
    scorers = getattr(function, "scorers", None) or {}
    schemes = {scorer.scheme for scorer in scorers.values()}
    if len(schemes) != 1:
        raise ValueError(f"cannot tell reward {getattr(function, '__name__', function)!r}'s scheme; "
                         "pass random_reward(..., schemes=[...])")
    return schemes.pop()
