"""``gsm8k``: GSM8K's word problems, a file task whose test and train splits ship with rlcot.

The shipped copy lives in ``rlcot/data/gsm8k`` (its README says whence), found from
this file's place in the ``rlcot`` package, so an installed wheel reads it with no
download; a user's file (``--data``) or a hub dataset (``hub_id``) may stand in for
it. Rows and ids follow ``JsonlTask``, with the prefix ``gsm8k-STEM`` so that train
and test rows never share an id. Golds are GSM8K's ``#### x``; the math verifier is
lenient about ``%`` because "what percent" questions have bare golds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .base import Task, check_n, register_task
from .jsonl import JsonlTask

GSM8K_DIR = Path(__file__).resolve().parents[1] / "data" / "gsm8k"  # the shipped copy; its README says whence
GSM8K_SPLITS = ("test", "train")


@dataclass(frozen=True)
class GSM8KTask(JsonlTask):
    """GSM8K (Cobbe et al. 2021): grade-school word problems, gold after ``####``.

    Rows come from the copy shipped in ``rlcot/data/gsm8k`` (``split``: test, 1,319 rows,
    or train, 7,473), from a user's file (``--data``), or from a hub dataset
    (``hub_id=openai/gsm8k``) where one is reachable. A row's id is ``gsm8k-STEM-LINE``
    for a file (the shipped ones are ``test.jsonl`` and ``train.jsonl``) and
    ``gsm8k-SPLIT-INDEX`` (from 1) on the hub: line n of the published split gets the
    same id whichever copy it is read from, and ids enter the keys of stored traces.
    """

    name: str = "gsm8k"
    description: str = "GSM8K word problems (the shipped test/train split, a JSONL file, or the hub)"
    verifier: str = "math"
    path: str = ""
    hub_id: str = ""  # e.g. openai/gsm8k: read the split from the hub instead of the shipped copy
    split: str = "test"
    # "what percent" questions have bare golds ("25"): an answer "25%" is right
    verifier_options: dict[str, Any] = field(default_factory=lambda: {"lenient_percent": True}, hash=False)

    def __post_init__(self):
        if self.path and self.hub_id:
            raise ValueError(f"both a file ({self.path!r}) and hub_id={self.hub_id!r} give GSM8K's rows; keep one")
        if not (self.path or self.hub_id) and self.split not in GSM8K_SPLITS:
            raise ValueError(f"split={self.split!r} is not shipped; choose {' or '.join(GSM8K_SPLITS)}, "
                             "or pass your own file with --data")

    @property
    def offers_abstention(self) -> bool:
        return not self.hub_id and JsonlTask.offers_abstention.fget(self)

    def rows(self, n: int | None = None, seed: int = 0) -> list[dict]:
        return self._hub_rows(n) if self.hub_id else JsonlTask.rows(self, n, seed)

    def origins(self, rows: Sequence[dict]) -> list[str]:
        return Task.origins(self, rows) if self.hub_id else JsonlTask.origins(self, rows)

    def _file(self) -> Path:
        if self.path:
            return JsonlTask._file(self)
        path = GSM8K_DIR / f"{self.split}.jsonl"
        if not path.is_file():
            raise ValueError(f"the shipped GSM8K {self.split} split {str(path)!r} is missing (an incomplete "
                             "install?); reinstall rlcot, or pass the split's JSONL file with --data")
        return path

    def _id_prefix(self, path: Path) -> str:
        return f"gsm8k-{path.stem}"  # ids name the split's file, so train and test rows never share one

    def _hub_rows(self, n: int | None) -> list[dict]:
        if n is not None:
            check_n(n)
        try:
            import datasets

            data = datasets.load_dataset(self.hub_id, "main", split=self.split)
        except Exception as err:  # noqa: BLE001 - any hub failure gets the same advice
            raise ValueError(
                f"cannot load {self.hub_id!r} from the hub ({err.__class__.__name__}); drop hub_id to read the "
                f"{self.split} split shipped with rlcot, or pass a local file with --data"
            ) from None
        count = len(data) if n is None else min(n, len(data))
        return [{**data[i], "id": f"gsm8k-{self.split}-{i + 1}"} for i in range(count)]


register_task(GSM8KTask())
