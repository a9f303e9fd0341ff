"""Score a finished sweep again (another scheme, verifier or verifier option) without regenerating.

Inspect AI's ``inspect score``: the stored completions are scored by the one scorer
(``rlcot.records.Scorer``) under the new setting, and written beside the rows as
``DIR/scores.NAME.jsonl``, one line per row key (key, verdict, score, scheme).
``rlcot.store.load_traces(DIR, scheme=NAME)`` reads them in place of the sweep's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from rlcot.store import load_traces


def rescore(run_dir: Path, scheme: str = "default", verifier: str | None = None,
            verifier_options: dict | None = None, name: str | None = None) -> tuple[str, int]:
    """Write ``DIR/scores.NAME.jsonl`` (NAME: the scheme's name, or ``name``); returns ``(NAME, rows scored)``.

    A second call with the same name replaces it.
    """
    from rlcot.files import atomic_write_text
    from rlcot.records import CompletionRow, Scorer
    from rlcot.tasks import get_task
    from rlcot.thinking import ThinkingProtocol

    rows = load_traces(run_dir)
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(json.dumps([row.task, row.protocol], sort_keys=True), []).append(row)
    lines, label = [], None
    for group in groups.values():
        task = get_task(**group[0].task, verifier=verifier)
        if verifier_options:
            task = replace(task, verifier_options={**task.verifier_options, **verifier_options})
        scorer = Scorer(task, scheme, ThinkingProtocol.from_dict(group[0].protocol or {}))
        label = name or scorer.scheme_name + (f"+{verifier}" if verifier else "") + (
            "+" + ",".join(f"{k}={v}" for k, v in sorted(verifier_options.items())) if verifier_options else "")
        records = scorer.score_many([CompletionRow(r.row, r.completion, r.prompt, r.sample, r.budget) for r in group])
        lines += [{"key": r.key, "scheme": label, "verdict": rec.verdict.to_dict(), "score": rec.score}
                  for r, rec in zip(group, records)]
    if not re.fullmatch(r"[\w.+=,-]+", label or ""):
        raise ValueError(f"scoring name {label!r} must be letters, digits and . + = , - only; pass --as NAME")
    atomic_write_text(Path(run_dir) / f"scores.{label}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    return label, len(lines)
