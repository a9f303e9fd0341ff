"""``hf:NAME[:CONFIG][@SPLIT]``: the rows of a Hugging Face dataset, read through ``datasets``.

The datasets people evaluate on (GSM8K, MATH-500, AIME, their own) live on the hub,
in a directory written by ``Dataset.save_to_disk``, or in parquet/JSON/CSV files. One
task name reads any of them:

    hf:data/math500.parquet            one file (.parquet, .json, .jsonl, .csv): its one split
    hf:data/math500                    a save_to_disk directory, or a folder of data files
    hf:data/gsm8k@test                 ... one of its splits
    hf:HuggingFaceH4/MATH-500@test     a hub dataset, where the hub is reachable
    hf:openai/gsm8k:main@test          ... with its config

The grammar: a NAME that is an existing file or directory is taken whole. Otherwise
``@SPLIT`` is what follows the last ``@`` and ``:CONFIG`` what follows the last ``:``
before it (neither may hold a ``/``), and NAME is read locally if it is a path there,
else from the hub (``datasets.load_dataset(NAME, CONFIG, split=SPLIT)``). A dataset
with several splits needs ``@SPLIT``; one with a single split uses it. Files go to
``datasets.load_dataset`` with their format's builder and a directory of data files to
``load_dataset(DIR)`` (which finds its splits from the file names); a ``save_to_disk``
directory is ``datasets.load_from_disk``'s, which ``load_dataset`` does not read.

Everything else is ``JsonlTask``'s: rows in dataset order (``rows(None)``: all of them),
the column mapping (``question_field=problem``, ``answer_field``, ``id_field``; a
column the dataset lacks is an error listing its columns), ids (the row's own, else
``PREFIX-N`` from 1, the prefix being the dataset's stem and split) and messages naming
``hf:NAME row N (id 'x')``. A hub name that cannot be reached is one line naming it and
saying how to read a local copy instead; nothing here downloads unless asked to.
Loaded datasets are cached per process (a local one by its files' mtimes), since a
sweep asks for its rows, their origins and whether any is unanswerable separately.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .jsonl import CANONICAL_COLUMNS, JsonlTask, missing_column

FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


@dataclass(frozen=True)
class HfDatasetTask(JsonlTask):
    """A Hugging Face dataset's rows (hub, saved directory, or data files) scored by a named verifier."""

    name: str = "hf"
    description: str = "rows of a Hugging Face dataset (the hub, a saved directory, or parquet/JSON/CSV files)"
    source: str = ""  # NAME[:CONFIG][@SPLIT], the task name after "hf:" (module docstring)

    def _records(self) -> Iterator[tuple[int, dict | None, str | None]]:
        data = self._dataset()
        for number, row in enumerate(data, 1):
            yield number, row, None

    def _dataset(self):
        """The split, loaded (cached), its mapped columns checked against the ones it has."""
        data = load_split(*parse_source(self.source), _stamp(self.source))
        columns = list(data.column_names)
        for option, canonical in CANONICAL_COLUMNS.items():
            source = getattr(self, option)
            if source not in columns and (canonical != "id" or source != canonical) and canonical not in columns:
                raise ValueError(f"{self._label()}: {missing_column(source, option, columns)}")
        return data

    _unit = "row"

    def _label(self) -> str:
        return f"hf:{self.source}"

    def _where(self, number: int) -> str:
        return f"{self._label()} row {number}"

    def _row_prefix(self) -> str:
        name, _, split = parse_source(self.source)
        stem = Path(name.rstrip("/\\")).name
        for suffix in FILE_BUILDERS:
            stem = stem.removesuffix(suffix)
        return self.id_prefix or "-".join(part for part in (stem, split) if part)

    @property
    def offers_abstention(self) -> bool:
        """True when any row is ``answerable: false`` (asked for every prompt: one pass, cached)."""
        self._dataset()  # the columns checked first
        return _has_unanswerable_rows(*parse_source(self.source), _stamp(self.source))


def parse_source(source: str) -> tuple[str, str | None, str | None]:
    """``NAME[:CONFIG][@SPLIT]`` -> ``(name, config, split)``; an existing path is a name whole."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"hf:{source} names no dataset; e.g. hf:data/math500.parquet, hf:DIR@test or "
                         "hf:openai/gsm8k:main@test")
    if Path(source).expanduser().exists():
        return source, None, None
    name, config, split = source, None, None
    head, at, tail = name.rpartition("@")
    if at and head and tail and "/" not in tail:
        name, split = head, tail
    head, colon, tail = name.rpartition(":")
    if colon and head and tail and "/" not in tail and not Path(name).expanduser().exists():
        name, config = head, tail
    return name, config, split


def _stamp(source: str) -> tuple:
    """What tells a rewritten local dataset from the one cached: its files' mtimes and sizes."""
    path = Path(parse_source(source)[0]).expanduser()
    if not path.exists():
        return ()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


@functools.lru_cache(maxsize=8)
def load_split(name: str, config: str | None, split: str | None, stamp: tuple = ()):
    """One split of the dataset ``name`` (a file, a directory or a hub id), as a ``datasets.Dataset``."""
    import datasets

    shown = f"hf:{name}" + (f":{config}" if config else "") + (f"@{split}" if split else "")
    path = Path(name).expanduser()
    quiet = not datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # "Generating train split" bars say nothing a user needs
    try:
        if path.is_file():
            return _load_file(path, config, split, shown)
        if path.is_dir():
            return _pick_split(_load_dir(path, config, shown), split, shown)
        if _looks_local(name):
            raise ValueError(f"{shown}: no such file or directory ({path}); pass a parquet/JSON/CSV file, a "
                             "save_to_disk directory or a hub dataset name")
        return _pick_split(_load_hub(name, config, split, shown), split, shown)
    finally:
        if not quiet:
            datasets.enable_progress_bars()


@functools.lru_cache(maxsize=8)
def _has_unanswerable_rows(name: str, config: str | None, split: str | None, stamp: tuple) -> bool:
    data = load_split(name, config, split, stamp)
    return "answerable" in data.column_names and any(value is False for value in data["answerable"])


def _load_file(path: Path, config: str | None, split: str | None, shown: str):
    import datasets

    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{shown}: cannot read a {path.suffix or 'suffix-less'} file; give a "
                         f"{'/'.join(FILE_BUILDERS)} file, or a dataset directory")
    if config or split:
        raise ValueError(f"{shown}: a single file is one split with no config; drop the "
                         f"{'@' + split if split else ':' + config}")
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:  # noqa: BLE001 - a broken file, whatever the reader raised, is one line
        raise ValueError(f"{shown}: cannot read it as {builder} ({_first_line(err)}); fix the file") from None


def _load_dir(path: Path, config: str | None, shown: str):
    import datasets

    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        if config:
            raise ValueError(f"{shown}: a save_to_disk directory has no configs; drop :{config}")
        return datasets.load_from_disk(str(path))
    try:
        return datasets.load_dataset(str(path), config)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{shown}: cannot read the directory as a dataset ({_first_line(err)}); give a "
                         "save_to_disk directory or a folder of parquet/JSON/CSV files") from None


def _load_hub(name: str, config: str | None, split: str | None, shown: str):
    """A hub dataset; where the hub cannot be reached, only ``datasets``' local cache is asked.

    Asked first because ``datasets`` retries a dead network five times with backoff
    (~25 s of "Retrying in 8s" lines) before it gives up.
    """
    import datasets

    from ..models import hub_unreachable

    why_offline = hub_unreachable()
    offline = why_offline is not None
    was = datasets.config.HF_HUB_OFFLINE
    try:
        datasets.config.HF_HUB_OFFLINE = was or offline
        return datasets.load_dataset(name, config, split=split)
    except Exception as err:  # noqa: BLE001 - no network, no such dataset, a wrong config: the same advice
        said = why_offline.replace("has no copy", "has no copy of it") if offline else _first_line(err)
        raise ValueError(
            f"{shown}: cannot load {name!r} from the Hugging Face hub ({said}), and there is no local "
            f"file or directory of that name; save it where the hub is reachable (load_dataset(...)"
            ".save_to_disk(DIR), or .to_parquet(FILE)) and pass hf:DIR or hf:FILE"
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE = was


def _pick_split(data, split: str | None, shown: str):
    """The split asked for, or a dataset's only one; several and none asked for is an error naming them."""
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    splits = list(data)
    if split is None and len(splits) == 1:
        return data[splits[0]]
    if split in data:
        return data[split]
    base = shown.rsplit("@", 1)[0] if split else shown
    asked = f"has no split {split!r}" if split else "has several splits"
    raise ValueError(f"{shown} {asked}; it has {', '.join(splits)}: pick one, e.g. {base}@{splits[0]}")


def _looks_local(name: str) -> bool:
    """A name no hub id can be: absolute, ``./``, ``~``, three parts or more, or a data file's suffix."""
    return (name.startswith((".", "/", "~")) or os.sep != "/" and os.sep in name or name.count("/") >= 2
            or Path(name).suffix.lower() in FILE_BUILDERS)


def _first_line(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
    return text if len(text) <= 200 else text[:197] + "..."
