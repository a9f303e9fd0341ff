"""``rlcot report``: one self-contained HTML page for a sweep, a training run, or several overlaid.

Reading traces is how people learn what a model does, so the page is built around a
table of every trace, not around the figures: headline numbers, figures, and the traces,
each openable beside the table. ``page_data`` reads the run directories into what the
page shows; this module writes the page.

Self-contained means no network: data, style and script are inside the one file
(``report_page.html`` is its template), so it can be mailed or archived with a run.
Traces are stored once each with their prompts deduplicated, and the table draws
only the rows in view (a page at a time), so 10,000 rows open and filter in well
under 2 s (``bench/report.py`` measures it in headless Chromium).

Run directories are shared, so any file in one may be hostile, and opening its report
must never run code. Every value reaches the page as JSON (``render``) and is escaped
where the page draws it; the page's Content-Security-Policy runs only its own script
and style (they carry a nonce drawn per page), so an escape the code missed still runs
no injected handler and loads nothing.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Sequence

from . import analysis
from .page_data import read_run, report_data

REPORT_FILE = "report.html"
TEMPLATE = Path(__file__).with_name("report_page.html")
NONCE = "{{nonce}}"  # in the template: where each page's own nonce goes
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON can hold one; UTF-8 cannot encode it


def write_report(run_dirs: Sequence[Path], out: Path | None = None, scheme: str = "default", seed: int = 0) -> Path:
    """Read the runs, compute the numbers and figures, and write the page; returns its path."""
    if not run_dirs:
        raise ValueError("no run directories; pass the --out of `rlcot sweep` or `rlcot train` (several overlay)")
    runs = [read_run(Path(d), scheme) for d in run_dirs]
    if not any(run.traces or run.rollouts or run.metrics for run in runs):
        raise ValueError(f"{', '.join(str(r.path) for r in runs)}: no rows, rollouts or training steps yet; "
                         "run the sweep or training first")
    out = Path(out) if out is not None else Path(run_dirs[0]) / REPORT_FILE
    data = report_data(runs, scheme=scheme, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a page
    return out


def render(data: dict) -> str:
    """The template with the data embedded as JSON and a fresh nonce for its Content-Security-Policy.

    Every ``<`` in the JSON is escaped, so no string can close the script or open a comment.
    The policy runs only the script and style that carry the nonce, never an inline
    event handler, and loads nothing but data: images. A nonce rather than a hash of
    the script: ``bench/report.py`` edits the script (every row drawn) to compare.
    """
    payload = json.dumps(analysis.finite_or_null(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                         default=analysis.jsonable)
    payload = payload.replace("<", "\\u003c")
    payload = LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", payload)
    page = TEMPLATE.read_text(encoding="utf-8").replace(NONCE, secrets.token_urlsafe(18))
    return page.replace("/*REPORT_DATA*/null", payload, 1)  # after the nonce: the data may hold its placeholder
