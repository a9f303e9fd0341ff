"""Programmatic verifiers: turn a completion into a Verdict (pure Python, no torch)."""
