"""What a run shows and keeps: TRL callbacks and the repair of a run's logs on resume.

- ``RunLog`` writes every log line to ``metrics.jsonl`` and warns loudly of runs that
  cannot learn (truncated completions, constant rewards, zero-variance groups);
- ``RunStart`` writes ``run.json`` and drops the log lines after the step a resume
  starts from, once TRL has loaded the checkpoint: a resume that fails leaves the
  run directory as it was;
- ``NoEvals`` is the eval hook of a run that draws no eval curves;
- ``StepLines`` is what a stage (the SFT warm-up, GRPO) shows on the terminal: one rich
  bar over its steps and one line per logged step (``step_line``). ``show_steps`` puts it
  in place of transformers' ``ProgressCallback``/``PrinterCallback``, which print TRL's
  raw log dicts (some forty keys a step) beside a tqdm bar; those dicts go to the run's
  log file instead (the ``rlcot.train`` logger, which ``rlcot.quiet.library_logs_to``
  sends there), and ``metrics.jsonl`` keeps every value.

What ``metrics.jsonl`` holds is TRL's log dict itself, so every ``report_to`` integration
(tensorboard, trackio, wandb) sees the same keys: the outcome rates and thinking tokens
reach that dict through the reward functions' ``log_metric`` (``rlcot.train.rewards``),
which TRL averages into each step's log before any callback runs.

The run's logs (``metrics.jsonl``, ``rollouts.jsonl``) are append-only, one JSON object
with its ``step`` a line. A run killed mid-write may leave a torn last line, which is
cut when the resumed training begins; damage before it is an error naming the line,
found by ``check_run_logs`` (from ``rlcot.train.preflight``) before the model loads.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from transformers import TrainerCallback

from ..jsonl import parse_line, repair_tail
from ..runinfo import ROLLOUTS

if TYPE_CHECKING:
    from .resolve import ResolvedRun

LOG = logging.getLogger("rlcot.train")  # TRL's raw log dicts: the run's log file (rlcot.quiet.library_logs_to)
# (log key, its name on a step line, format), in the order a line shows them; a key a stage does not log is left out
STEP_LINE = (("reward", "reward", "{:+.3f}"), ("outcomes/correct", "correct", "{:.2f}"),
             ("thinking/mean_tokens", "thinking", "{:.1f} tok"), ("thinking/cap_rate", "capped", "{:.2f}"),
             ("mean_token_accuracy", "token accuracy", "{:.3f}"), ("loss", "loss", "{:.4g}"),
             ("learning_rate", "lr", "{:.2g}"))


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


def step_line(stage: str, step: int, max_steps: int, logs: dict, seconds: float | None) -> str:
    """One logged step in a line: ``GRPO step 3/10: reward +0.250, correct 0.25, thinking 6.0 tok, ..., 1.2 s/step``."""
    parts = [f"{name} {template.format(logs[key])}" for key, name, template in STEP_LINE
             if isinstance(logs.get(key), (int, float)) and not isinstance(logs.get(key), bool)]
    if seconds is not None:
        parts.append(f"{seconds:.1f} s/step")
    return f"{stage} step {step}/{max_steps}: " + ", ".join(parts)


class StepLines(TrainerCallback):
    """A stage on the terminal: a rich bar over its steps, a line per logged step; TRL's dicts to the log file.

    ``close()`` stops the bar: call it where the training may end without ``on_train_end``
    (an exception, Ctrl-C), or the terminal keeps a live display that captures its output.
    """

    def __init__(self, stage: str, console):
        self.stage, self.console = stage, console
        self.progress = self.job = None
        self.since, self.since_step = 0.0, 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.close()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self.job = self.progress.add_task(f"{self.stage} steps", total=state.max_steps, completed=state.global_step)
        self.progress.start()
        self.since, self.since_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.job, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        LOG.info("%s step %d: %s", self.stage, state.global_step, logs)
        if "loss" not in logs:  # the end-of-training totals (train_runtime, train_loss): the log file has them
            return
        now, steps = time.perf_counter(), state.global_step - self.since_step
        seconds = (now - self.since) / steps if steps > 0 else None
        self.since, self.since_step = now, state.global_step
        self.console.print(step_line(self.stage, state.global_step, state.max_steps, logs, seconds), highlight=False,
                           soft_wrap=True)  # one line, however narrow the terminal: a log reads line by line

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def show_steps(trainer, stage: str, console) -> StepLines:
    """``trainer`` shows its steps as ``StepLines`` on ``console`` instead of transformers' bar and printed dicts."""
    from transformers import PrinterCallback, ProgressCallback
    from transformers.trainer import DEFAULT_PROGRESS_CALLBACK  # a notebook's own bar

    for printer in (ProgressCallback, PrinterCallback, DEFAULT_PROGRESS_CALLBACK):
        trainer.remove_callback(printer)
    lines = StepLines(stage, console)
    trainer.add_callback(lines)
    return lines


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


TRAIN_LOG = "train.log"  # the libraries' logs and TRL's raw log dicts (rlcot.quiet.library_logs_to)
TENSORBOARD_DIR = "tensorboard"  # grpo.report_to: tensorboard writes its event files here
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
