"""What a run shows and keeps: TRL callbacks and the repair of a run's logs on resume.

- ``RunLog`` writes every log line to ``metrics.jsonl`` and warns loudly of runs that
  cannot learn (truncated completions, constant rewards, zero-variance groups);
- ``RunStart`` writes ``run.json`` and drops the log lines after the step a resume
  starts from, once TRL has loaded the checkpoint: a resume that fails leaves the
  run directory as it was;
- ``NoEvals`` is the eval hook of a run that draws no eval curves.

The run's logs (``metrics.jsonl``, ``rollouts.jsonl``) are append-only, one JSON object
with its ``step`` a line. A run killed mid-write may leave a torn last line, which is
cut when the resumed training begins; damage before it is an error naming the line,
found by ``check_run_logs`` (from ``rlcot.train.preflight``) before the model loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from transformers import TrainerCallback

from ..jsonl import parse_line, repair_tail
from ..runinfo import ROLLOUTS

if TYPE_CHECKING:
    from .resolve import ResolvedRun


class RunLog(TrainerCallback):
    """Every log line to ``metrics.jsonl``, and loud warnings for runs that cannot learn."""

    ZERO_STD_STEPS = 3  # frac_reward_zero_std near 1 for this many logs in a row: no signal

    def __init__(self, output_dir: Path, warn: Callable[[str], None] | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.warn = warn or _warn
        self.zero_std_streak = 0
        self.warnings: list[str] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        with self.path.open("a") as sink:
            sink.write(json.dumps({"step": state.global_step, **logs}) + "\n")
        for message in self.check(logs):
            self.warnings.append(f"step {state.global_step}: {message}")
            self.warn(f"step {state.global_step}: {message}")

    def check(self, logs: dict) -> list[str]:
        found = []
        if logs.get("completions/clipped_ratio", 0) >= 0.9:
            found.append("nearly all completions are truncated (clipped_ratio >= 0.9): raise max_completion_length "
                         "or the answer budget")
        if logs.get("thinking/cap_rate", 0) >= 0.95:
            found.append("nearly all rollouts hit the thinking cap: the policy never finishes a thought")
        zero = logs.get("frac_reward_zero_std")
        self.zero_std_streak = self.zero_std_streak + 1 if zero is not None and zero >= 0.95 else 0
        if self.zero_std_streak >= self.ZERO_STD_STEPS:
            found.append(f"frac_reward_zero_std >= 0.95 for {self.zero_std_streak} logs: every group scores the "
                         "same, so advantages are zero and nothing is learned (easier tasks, more generations, "
                         "or an SFT warm-up)")
        if "reward_std" in logs and logs["reward_std"] == 0 and "reward" in logs:
            found.append(f"rewards are constant ({logs['reward']:+.3f}) across the batch")
        if logs.get("outcomes/unparsed", 0) >= 0.999:
            found.append("no answer was parsed in any rollout: check the answer cue and max_answer_tokens")
        return found


def _warn(message: str) -> None:
    import sys

    print(f"\n!! WARNING: {message}", file=sys.stderr, flush=True)


class NoEvals(TrainerCallback):
    """The eval hook of a run that draws no eval curves."""

    def __init__(self, run: ResolvedRun, tokenizer):
        pass

    def curve(self, model, label: str, step: int) -> None:
        pass

    def summary(self) -> dict:
        return {}


class RunStart(TrainerCallback):
    """Writes ``run.json`` and drops the log lines after ``step`` once training begins.

    TRL calls ``on_train_begin`` after it has loaded the checkpoint's weights, trainer
    state, optimizer and scheduler, so a resume that cannot load them rewrites nothing.
    """

    def __init__(self, output_dir: Path, info: dict, step: int):
        self.output_dir, self.info, self.step = Path(output_dir), info, step

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            (self.output_dir / "run.json").write_text(json.dumps(self.info, indent=2, default=str) + "\n")
            _forget_after(self.output_dir, self.step)


RUN_LOGS = ("metrics.jsonl", ROLLOUTS)  # append-only, one JSON object with its "step" a line
_LOG_LINE = "a log line with a whole-number step"
_LOG_FIX = "the run's logs are damaged: delete the line, or drop --resume and start afresh"


def _is_log_row(row: dict) -> bool:
    return isinstance(row.get("step"), int) and not isinstance(row.get("step"), bool)


def check_run_logs(output_dir: Path) -> None:
    """Raise where ``_forget_after`` would, reading only: a bad line before a log's last one is damage.

    The last line may be torn (a run killed mid-write); ``_forget_after`` cuts it
    (``rlcot.jsonl.repair_tail``) when the resumed training begins.
    """
    for name in RUN_LOGS:
        path = Path(output_dir) / name
        if not path.is_file():
            continue
        lines = path.read_bytes().split(b"\n")
        for number, raw in enumerate(lines[:-2], 1):  # the last line and the text after the last newline may be torn
            if raw.strip():
                row, error = parse_line(raw)
                if error is not None or not _is_log_row(row):
                    raise ValueError(f"{path}:{number}: not {_LOG_LINE} ({error or 'no step'}); {_LOG_FIX}")


def _forget_after(output_dir: Path, step: int) -> None:
    """Drop log lines of steps after ``step`` (where a resume starts) and the rollouts generated for them.

    A rollout is stamped with the steps done when it was generated, so the one for step
    ``step + 1`` carries ``step``: rollouts are kept below ``step``, log lines up to it.
    From step 0 (a fresh run, or GRPO afresh on a finished warm-up) nothing is kept, so
    nothing is read. Otherwise a torn last line is cut (``repair_tail``) and damage
    before it is a ValueError naming the line (``check_run_logs`` finds it before the
    model loads).
    """
    for name, keep in (("metrics.jsonl", lambda s: s <= step), (ROLLOUTS, lambda s: s < step)):
        path = output_dir / name
        if path.exists():
            rows = repair_tail(path, _is_log_row, _LOG_LINE, _LOG_FIX) if step > 0 else []
            path.write_text("".join(json.dumps(row) + "\n" for row in rows if keep(row["step"])))
