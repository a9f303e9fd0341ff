"""Evaluation: budget x sample sweeps, metrics, fits, plots and reports over rlcot traces."""
