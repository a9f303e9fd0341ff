"""Synthetic scaling curves the evals tests share: the true sigmoid their fits should recover."""

from __future__ import annotations

import numpy as np

SIGMOID = {"floor": 0.1, "ceiling": 0.85, "midpoint": 10.0, "slope": 1.0}  # midpoint: 2**10 tokens


def sigmoid(t, floor, ceiling, midpoint, slope):
    return floor + (ceiling - floor) / (1 + np.exp(-slope * (t - midpoint)))
