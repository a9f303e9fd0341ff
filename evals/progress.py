"""Where a sweep reports its progress: ``ProgressSink`` (every method may do nothing) and ``SweepBar``.

A sweep (``rlcot.evals.sweep.run_sweep``) tells its sink when a generation pass starts,
as the generator finishes traces, and as chunks are stored; the CLI and the demo draw a
rich bar from it (``SweepBar``), a training run's eval curves a tqdm bar
(``rlcot.evals.training``), tests nothing at all.
"""

from __future__ import annotations

import time


class ProgressSink:
    """Where a sweep reports progress; the CLI draws a bar from it. Every method may do nothing.

    A sink is a context manager: leaving it calls ``close`` (a bar stops drawing).
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """The sweep is over, or failed: stop drawing."""

    def start(self, label: str, total: int) -> None:
        """A generation pass begins: ``total`` traces to write."""

    def step(self, sequences: int) -> None:
        """The generator finished ``sequences`` more traces (forks included)."""

    def written(self, traces: int, tokens: int) -> None:
        """A chunk is stored: ``traces`` written in all so far in this pass, ``tokens`` more decoded."""

    def note(self, message: str) -> None:
        """Something the user should read."""


class SweepBar(ProgressSink):
    """A sweep's progress (``ProgressSink``) as a rich bar: traces stored, tokens/s, ETA.

    The bar is drawn from the first pass on: a sweep with nothing left to do prints its note alone.
    """

    def __init__(self, console):
        self.console, self.bar, self.job, self.started, self.tokens = console, None, None, 0.0, 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, label: str, total: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.bar.start()
        self.job = self.bar.add_task(label, total=total, speed="")
        self.started, self.tokens = time.perf_counter(), 0

    def step(self, sequences: int) -> None:
        # traces finished in the generator; the count is set exactly when traces are stored
        task = self.bar.tasks[self.job]
        self.bar.update(self.job, completed=min(task.completed + sequences, task.total - 1))

    def written(self, traces: int, tokens: int) -> None:
        self.tokens += tokens
        speed = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.job, completed=traces, speed=f"{speed:,.0f} tok/s")

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)
