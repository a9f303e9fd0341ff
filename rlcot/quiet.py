"""Library output a user need not read: named warnings filtered, a run's library logs sent to its log file.

Two kinds of noise reach a terminal from the libraries under rlcot, and each has one home here:

- **Warnings that say nothing about the user's run.** ``NOISE`` lists them, one line
  each with its reason, matched by message, category and the module that warns; the CLI
  installs them once at its entry (``filter_noise``). Anything else a library warns of
  still reaches the terminal: a blanket ignore would hide the warnings that matter too.
  ``checkpointing_alias_warnings`` is the one case that depends on the recipe: transformers 5
  renamed ``gradient_checkpointing``, and TRL's configs default the old name, so every
  ``GRPOConfig``/``SFTConfig`` warns of it unless the user wrote the key themselves.
- **Logs and bars of a training run.** transformers, TRL, datasets, accelerate and PEFT
  log through Python's ``logging`` and draw tqdm bars (``Map:``, ``Loading weights``,
  ``Writing model shards``) at every stage; a run has its own bars and step lines
  (``rlcot.train.callbacks.StepLines``). ``library_logs_to(path)`` sends those libraries'
  records, and rlcot's own (``rlcot.train`` writes TRL's raw log dicts there), to the
  run's log file for the duration, with their bars off, and puts everything back after.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

# (message regex, category, module regex): warnings no user action follows from
NOISE = (
    # PEFT's and TRL's own code asks the property transformers 5 renamed, on every LoRA merge
    # (each sweep of a trained model) and around every rollout; nothing in a recipe or flag calls it
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
)
ROUTED_LOGGERS = ("rlcot", "transformers", "trl", "datasets", "accelerate", "peft", "huggingface_hub")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def filter_noise() -> None:
    """Install ``NOISE``'s filters (the CLI's entry calls it; calling again adds nothing: ``warnings`` dedups)."""
    for message, category, module in NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


@contextlib.contextmanager
def checkpointing_alias_warnings(quiet: bool = True):
    """Silence transformers 5's ``gradient_checkpointing`` rename warnings inside, unless ``quiet`` is False.

    TRL's ``GRPOConfig`` and ``SFTConfig`` default the old name and toggle it around every
    generation: the warning is about TRL, not the run. Where the user's recipe sets the key
    itself, pass ``quiet=False``: then the rename is theirs to make.
    """
    with warnings.catch_warnings():
        if quiet:
            warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
        yield


@contextlib.contextmanager
def library_logs_to(path: Path):
    """The libraries' log records (``ROUTED_LOGGERS``) appended to ``path`` while inside, their bars off.

    Each library keeps its own level (transformers': warnings and up; ``rlcot`` logs its
    records at INFO), and the file is opened at the first record: an attempt that logs
    nothing (a resume refused before training) leaves no file behind. Each logger's
    handlers, level and propagation, and each library's progress-bar switch, are restored
    on the way out, so a process that trains twice (tests, notebooks) gets its terminal
    back between runs.
    """
    path = Path(path)
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved = []
    for name in ROUTED_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.level, logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    logging.getLogger("rlcot").setLevel(logging.INFO)
    restore_bars = _bars_off()
    try:
        yield path
    finally:
        restore_bars()
        for logger, handlers, old_level, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(old_level)
        handler.close()


def _bars_off():
    """Turn transformers', huggingface_hub's and datasets' tqdm bars off; returns what restores those that were on."""
    import datasets
    import huggingface_hub.utils as hub
    from transformers.utils import logging as transformers_logging

    was = (transformers_logging.is_progress_bar_enabled(), not hub.are_progress_bars_disabled(),
           datasets.is_progress_bar_enabled())
    transformers_logging.disable_progress_bar()  # huggingface_hub's too
    hub.disable_progress_bars()
    datasets.disable_progress_bars()

    def restore() -> None:
        if was[0]:
            transformers_logging.enable_progress_bar()  # huggingface_hub's too: set it after
        if was[1]:
            hub.enable_progress_bars()
        else:
            hub.disable_progress_bars()
        if was[2]:
            datasets.enable_progress_bars()

    return restore
