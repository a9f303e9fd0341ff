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
    The numbers keep their width on any terminal. Left to itself, rich shares a narrow one
    (80 columns, or a log file's) among all columns and cuts the counts and times to "51…"
    under a long label; here the label gives way first (ending in "…"), then the bar, down
    to ``BAR_WIDTH[0]`` columns.
    """

    BAR_WIDTH = (10, 40)  # the bar's narrowest and widest
    NUMBERS = len("99,999 tok/s") + 2 * len("0:00:00") + 5  # right of the counts: speed, two times, the gaps

    def __init__(self, console):
        self.console, self.bar, self.job, self.started, self.tokens = console, None, None, 0.0, 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, label: str, total: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.table import Column

        if self.bar is None:
            def whole():  # a column rich must not cut
                return Column(no_wrap=True)

            description = Column(no_wrap=True, overflow="ellipsis")  # cut to its max_width (``_fit``), ending in "…"
            self.bar = Progress(TextColumn("{task.description}", table_column=description),
                                BarColumn(table_column=whole()), MofNCompleteColumn(table_column=whole()),
                                TextColumn("{task.fields[speed]}", table_column=whole()),
                                TimeElapsedColumn(table_column=whole()), TimeRemainingColumn(table_column=whole()),
                                console=self.console)
            self.bar.start()
        self._fit(label, total)
        self.job = self.bar.add_task(label, total=total, speed="")
        self.started, self.tokens = time.perf_counter(), 0

    def _fit(self, label: str, total: int) -> None:
        """This pass's widths: the numbers whole, the bar what the label leaves (``BAR_WIDTH``), the label the rest."""
        description, bar = self.bar.columns[0], self.bar.columns[1]
        room = self.console.width - (2 * len(str(total)) + 1) - self.NUMBERS
        bar.bar_width = min(self.BAR_WIDTH[1], max(self.BAR_WIDTH[0], room - len(label)))
        description.get_table_column().max_width = max(10, room - bar.bar_width)

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
