"""The long-form table of a sweep's plotted points: ``Point``, and its CSV.

Another module turns scored traces into ``Point`` rows (one plotted point each: a
series, a metric, x, y and its confidence interval); ``plots`` draws them, and writes
beside every figure ``stem.csv``, the points actually drawn, so any number on a figure
can be looked up and the figure redrawn without the sweep. ``write_points_csv`` writes
that file and ``read_points_csv`` reads it back to equal ``Point`` objects (floats are
written with ``repr``, which round-trips exactly; ``None`` is an empty cell).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping


@dataclass(frozen=True)
class Point:
    """One plotted point of the long-form table (the contract with the module that computes them)."""

    series: str          # a model, checkpoint or run label, e.g. "smollm2-135m" or "step 200"
    metric: str          # "accuracy", "gold_logprob", "pass@k", "maj@k", "risk", "aurc", ...
    x: float             # mean thinking tokens spent (accuracy, gold_logprob), k (pass@k, maj@k), coverage (risk);
                         # in compute.csv: tokens generated per problem, k x the mean per sample at the budget
    y: float
    lo: float | None = None   # 95% paired bootstrap CI by problem; None when not computed
    hi: float | None = None
    budget: int | None = None  # the thinking cap the point ran under
    k: int | None = None
    n_problems: int = 0
    samples: int = 1          # samples per problem
    scheme: str = "default"   # the scoring scheme's name


_FIELDS = [field.name for field in fields(Point)]
_FLOAT_FIELDS = {"x", "y", "lo", "hi"}
_INT_FIELDS = {"budget", "k", "n_problems", "samples"}
_OPTIONAL_FIELDS = {"lo", "hi", "budget", "k"}


def write_points_csv(points: Iterable[Point], path: str | Path) -> Path:
    """Write points as CSV, one row each, columns in ``Point``'s field order; returns the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_FIELDS)
        for point in points:
            writer.writerow([_cell(name, getattr(point, name)) for name in _FIELDS])
    return path


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if name in _FLOAT_FIELDS:
        return repr(float(value))  # float() first: repr of a numpy float is "np.float64(...)"
    if name in _INT_FIELDS:
        return str(int(value))
    return str(value)


def read_points_csv(path: str | Path) -> list[Point]:
    """Read a CSV written by ``write_points_csv`` back into equal ``Point`` objects."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in _FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(missing)}; "
                             f"read only CSVs written by write_points_csv (columns {', '.join(_FIELDS)})")
        return [_point_from_row(row, path, number) for number, row in enumerate(reader, 2)]


def _point_from_row(row: Mapping[str, str], path: Path, line: int) -> Point:
    values = {}
    for name in _FIELDS:
        cell = row[name]
        try:
            values[name] = _parse(name, cell)
        except ValueError:
            raise ValueError(f"{path} line {line}: column {name!r} holds {cell!r}, which is not "
                             f"a valid {name}; fix or drop that row") from None
    return Point(**values)


def _parse(name: str, cell: str):
    if cell == "" and name in _OPTIONAL_FIELDS:
        return None
    if name in _FLOAT_FIELDS:
        return float(cell)
    if name in _INT_FIELDS:
        return int(cell)
    return cell
