"""rlcot: reinforcement learning on chains of thought, and inference-time compute sweeps."""

__version__ = "0.1.0"
