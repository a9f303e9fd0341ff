"""GRPO training on TRL's GRPOTrainer: a resolved recipe in, a run directory out.

The trainer is TRL's (``trl.GRPOTrainer``); this module only assembles what it takes
from a recipe resolved once (``rlcot.train.resolve.resolve_run``: TRL's config, the
LoRA config, the rollouts' budget, the eval curves):

- the dataset (``rlcot.train.data``): each task's rows as a plain-text ``prompt``
  column built with the run's protocol (its system message: ``thinking.system_prompt``),
  with the task's key and the row as columns the reward functions read, tasks
  interleaved by their weights, held-out rows never trained on;
- the reward functions (``rlcot.train.rewards``): the scored record, the same code
  ``rlcot score`` and sweeps use;
- the rollouts: with the hf backend, ``BudgetForcedRollout`` (budget forcing, forced
  tokens masked out of the loss; with ``thinking.state_cap``, each rollout's prompt
  restated with its cap: ``_restate``; on a CPU under bf16, drawn from a merged bf16 copy
  of the policy: ``rlcot.train.sampling_copy``); with ``grpo.use_vllm``,
  TRL's own vLLM generation, which knows nothing of budgets: the cap is then only TRL's
  ``max_completion_length`` (cap-only, and no answer cue is forced);
- callbacks (``rlcot.train.callbacks``): every log line to ``metrics.jsonl``, and loud
  warnings for runs that cannot learn; on the terminal, a bar per stage and a line per
  logged step (``StepLines``) instead of transformers' printed dicts;
- where people read logs: TRL's ``report_to`` integrations get the same log dict as
  ``metrics.jsonl`` (outcome rates and thinking tokens included), tensorboard's event
  files go to ``RUN/tensorboard`` (``TENSORBOARD_DIR``; ``TENSORBOARD_LOGGING_DIR`` still
  wins), and the libraries' logs, TRL's raw dicts among them, to ``RUN/train.log``
  (``rlcot.quiet.library_logs_to``).

The run directory holds ``run.json`` (the resolved recipe, TRL's arguments and the
library versions), TRL's ``checkpoint-N`` directories, ``metrics.jsonl``,
``rollouts.jsonl`` (sampled rollouts, scored: ``rlcot.store``), with an SFT warm-up its merged
model in ``sft-warmup/model`` (what GRPO starts from, and the base LoRA adapters name),
and, at the end, the final weights and ``summary.json``. Its layout is read through
``rlcot.runinfo`` alone (checkpoints, the warm-up model, trainer states).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..jsonl import complete_rows
from ..quiet import checkpointing_alias_warnings, library_logs_to
from ..records import ScoredTrace, Scorer
from ..runinfo import ROLLOUTS, SFT_MODEL_DIR
from ..thinking import ThinkingProtocol
from .callbacks import TENSORBOARD_DIR, TRAIN_LOG, NoEvals, RunLog, RunStart, show_steps
from .data import TrainingData, build_data, sft_examples
from .resolve import WARM_UP_LABEL, ResolvedRun, resolve_run
from .rollout import BudgetForcedRollout

if TYPE_CHECKING:
    from .preflight import ResumePoint  # a type only: run_training imports preflight when it runs


def build_trainer(run: ResolvedRun, model, tokenizer, protocol: ThinkingProtocol | None = None,
                  data: TrainingData | None = None, callbacks: list | None = None):
    """TRL's GRPOTrainer for a resolved run: its GRPOConfig, LoRA config and rollout budget.

    ``callbacks`` default to a ``RunLog`` writing ``metrics.jsonl`` in the run directory. The
    prompts are built with the run's protocol (``ResolvedRun.protocol``: its system message);
    ``data`` carries the one it was built with, and a ``protocol`` other than that one is refused.
    """
    from datasets import Dataset
    from trl import GRPOTrainer

    from .rewards import reward_functions

    recipe = run.recipe
    data = data or build_data(recipe, tokenizer, protocol or run.protocol)
    if protocol is not None and protocol != data.protocol:
        raise ValueError(f"protocol {protocol!r} is not the one the training data was built with "
                         f"({data.protocol!r}); pass the data's, or build the data with this one")
    protocol = data.protocol
    functions, _ = reward_functions(data.tasks, recipe.rewards, protocol)  # weights: run.grpo.reward_weights
    if recipe.control == "random-reward":  # each reward a seeded coin flip of its batch mean (rlcot.train.control)
        from .control import random_reward

        # within_cap is 0 or 1: the binary scheme's range
        functions = random_reward(functions, recipe.seed, ["binary" if reward.kind == "within_cap" else reward.scheme
                                                           for reward in recipe.rewards])
    rollout = None
    if not run.grpo.use_vllm:
        restate = _restate(data, tokenizer, protocol) if recipe.thinking.state_cap else None
        rollout = BudgetForcedRollout(tokenizer, protocol, run.budget, data.cues, seed=recipe.seed,
                                      rollouts_path=run.output_dir / ROLLOUTS, judge=_judge(data, protocol),
                                      model=recipe.model, caps=recipe.thinking.caps, restate=restate,
                                      copy_policy=run.device.startswith("cpu"))  # sampling_copy: measured on CPU
    # rollout_func is marked experimental in TRL; the pinned TRL (1.16) is the one this was built and tested on
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = GRPOTrainer(model=model, reward_funcs=functions, args=run.grpo,
                          train_dataset=Dataset.from_list(data.train_rows), processing_class=tokenizer,
                          peft_config=_fresh(run.lora), rollout_func=rollout,
                          callbacks=list(callbacks) if callbacks is not None else [RunLog(run.output_dir)])
    _tensorboard_into(trainer, run.output_dir / TENSORBOARD_DIR)
    return trainer


def _tensorboard_into(trainer, logging_dir: Path) -> None:
    """tensorboard's event files into ``logging_dir`` rather than transformers' ``RUN/runs/<date>_<host>``.

    transformers 5 has no ``logging_dir`` argument: its callback reads ``TENSORBOARD_LOGGING_DIR``
    when built, and a user who sets that variable keeps it.
    """
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(logging_dir)


def _fresh(lora):
    """A copy of the run's LoraConfig: PEFT writes into the one it is given (its base model's name, ...)."""
    import copy

    return copy.deepcopy(lora)


def _restate(data: TrainingData, tokenizer, protocol: ThinkingProtocol) -> Callable[[str, int], str]:
    """``restate(prompt, cap)``: the dataset prompt's row, prompted again with ``cap`` stated (``Task.prompt``)."""

    def restate(prompt: str, cap: int) -> str:
        key, row = data.examples[prompt]
        return data.tasks[key].prompt(row, tokenizer, protocol, stated_budget=cap)

    return restate


def _judge(data: TrainingData, protocol: ThinkingProtocol) -> Callable:
    scorers = {key: Scorer(task, "default", protocol) for key, task in data.tasks.items()}

    def judge(trace) -> ScoredTrace:
        key, row = data.examples[trace.prompt]
        return scorers[key].score_trace(trace, row).with_context(task=data.tasks[key].spec())

    return judge


# ------------------------------------------------------------------ a whole run


def run_training(recipe, output_dir: str | Path | None = None, resume: bool = False, device: str | None = None,
                 warn: Callable[[str], None] | None = None, evals: Callable | None = None, console=None) -> dict:
    """Check, resolve and train ``recipe`` into ``output_dir`` (default: the recipe's): ``train_run`` on it.

    Everything that can be checked without the model is checked first (``preflight``),
    then the recipe is resolved once (``resolve_run``: TRL validates its config there).
    """
    from .preflight import preflight

    start = preflight(recipe, output_dir, resume)
    return train_run(resolve_run(recipe, device, output_dir), start, warn, evals, console)


def train_run(run: ResolvedRun, start: ResumePoint | None = None, warn: Callable[[str], None] | None = None,
              evals: Callable | None = None, console=None) -> dict:
    """Train a resolved run: budget curves before and after, TRL's loop, a summary.

    ``console`` (a rich Console; default: stderr) shows a bar per stage and a line per
    logged step, and ``warn`` (default: a line on it) each sign of a run that cannot learn;
    the libraries' own logs and bars go to ``RUN/train.log`` (``rlcot.quiet.library_logs_to``).

    ``evals(run, tokenizer)`` builds the hook that draws the run's eval curves: a
    ``TrainerCallback`` with ``curve(model, label, step)`` and ``summary()``. The entry
    points hand ``rlcot.evals.training.EvalCurves``; the trainer itself imports nothing
    of the eval layer (it sits below it). None: no eval curves.

    ``start`` is where a resume starts (``rlcot.train.preflight.ResumePoint``, from
    ``preflight``), None for a fresh run. The run directory's ``run.json`` and logs are
    rewritten only once TRL has loaded the checkpoint (``RunStart``): a resume that
    fails leaves the directory as it was.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    if warn is None:
        def warn(message: str) -> None:
            console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)

    from ..models import check_model

    check_model(start.policy if start else run.recipe.model)  # a hub id that cannot be fetched: one line, no run dir
    run.output_dir.mkdir(parents=True, exist_ok=True)
    with library_logs_to(run.output_dir / TRAIN_LOG):
        return _train_run(run, start, warn, evals, console)


def _train_run(run: ResolvedRun, start: ResumePoint | None, warn: Callable[[str], None], evals: Callable | None,
               console) -> dict:
    """``train_run``'s body, with the libraries' logs already going to the run's log file."""
    import torch

    from ..models import load_policy
    from ..runinfo import run_info

    recipe, output_dir, device, resume = run.recipe, run.output_dir, run.device, start is not None
    checkpoint, sft_dir = (start.checkpoint if start else None), output_dir / SFT_MODEL_DIR
    if checkpoint is not None and 0 < run.grpo.max_steps <= start.step:
        return finish_from(run, checkpoint, start.step, evals)
    model, tokenizer = load_policy(start.policy if start else recipe.model, device=device,
                                   dtype=torch.float32 if device == "cpu" else "auto")
    protocol = run.protocol  # thinking.system_prompt: the warm-up, rollouts and eval curves all ask this way
    data = build_data(recipe, tokenizer, protocol)
    log = RunLog(output_dir, warn)
    evals = (evals or NoEvals)(run, tokenizer)
    main = int(os.environ.get("RANK", "0")) == 0  # under accelerate launch, one process evaluates and writes
    if not resume and main:
        evals.curve(model, "step 0", step=0)  # the policy before any training, SFT warm-up included
    if recipe.sft_warmup is not None and not resume:
        model = sft_warmup(run, model, tokenizer, data, console)
        if main:
            sft_dir.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(sft_dir)
            tokenizer.save_pretrained(sft_dir)
    if recipe.sft_warmup is not None:
        if main and checkpoint is None:  # a resume stopped before the first GRPO checkpoint finishes this curve
            evals.curve(model, WARM_UP_LABEL, step=0)  # what GRPO starts from
        # LoRA adapters saved from here on name their base by this path (PEFT reads name_or_path),
        # so `rlcot sweep RUN_DIR` merges each checkpoint into the warmed-up model, not the original
        model.name_or_path = model.config._name_or_path = str(sft_dir.resolve())
    begin = RunStart(output_dir, run_info(run.record()), start.step if start else 0)
    with checkpointing_alias_warnings():  # TRL toggles it around every rollout; a recipe's own key warned in resolve
        trainer = build_trainer(run, model, tokenizer, protocol, data, callbacks=[begin, log, evals])
        steps = show_steps(trainer, "GRPO", console)
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
        finally:  # a failed or interrupted run gives the terminal back
            steps.close()
    trainer.save_model(str(output_dir))
    trainer.save_state()  # trainer_state.json beside the final weights: their step, the LR schedule
    if not trainer.accelerator.is_main_process:
        return {"steps": trainer.state.global_step, "start": {}, "end": {}, "warnings": [], "eval": {}}
    evals.curve(trainer.accelerator.unwrap_model(trainer.model), f"step {trainer.state.global_step}",
                step=trainer.state.global_step)
    summary = summarize(output_dir, log.warnings, evals)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def finish_from(run: ResolvedRun, checkpoint: Path, step: int, evals: Callable | None = None) -> dict:
    """End a run whose last step is checkpointed, killed before its end (in its final curve): curve, weights, summary.

    Not ``trainer.train(resume_from_checkpoint=...)``: transformers' Trainer checks
    ``max_steps`` only after a step, so resumed at its last step it trains one more, and
    the final curve would be labelled ``step N+1`` beside the cut-off ``step N``. The
    checkpoint already holds the final weights and trainer state: they are copied up to
    the run directory, as ``save_model`` and ``save_state`` would have written them, and
    the final curve is drawn on the checkpoint, loaded as sweeps load it (a LoRA adapter
    merged into the model it names as its base).
    """
    import shutil

    import torch

    from ..models import load_policy

    output_dir = run.output_dir
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, one process evaluates and writes
        return {"steps": step, "start": {}, "end": {}, "warnings": [], "eval": {}}
    with checkpointing_alias_warnings():  # PEFT's merge asks the deprecated is_gradient_checkpointing
        model, tokenizer = load_policy(str(checkpoint), device=run.device,
                                       dtype=torch.float32 if run.device == "cpu" else "auto")
    hook = (evals or NoEvals)(run, tokenizer)
    hook.curve(model, f"step {step}", step=step)
    # only now, the checkpoint loaded and its curve drawn: a resume that fails leaves the directory as it was
    for item in checkpoint.iterdir():  # the weights, adapter config, tokenizer, trainer_state.json
        if item.is_file() and item.name not in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
            shutil.copy2(item, output_dir / item.name)
    summary = summarize(output_dir, [], hook)
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def sft_warmup(run: ResolvedRun, model, tokenizer, data: TrainingData, console=None):
    """A short TRL SFT pass on the answer format, for a policy too weak to earn any GRPO reward.

    Each training prompt is paired with the task's worked thought (``Task.worked_thought``:
    for arith the one line of arithmetic that solves it; a bare "Let me solve it." where
    a task has none), the closing tag and the gold answer (``Task.gold_answer``). The
    model learns to close its thinking and box an answer, and which operation a question
    asks for, though it must still do the sums itself; GRPO then has reward variance
    to learn from. A bare closing alone was tried first: it taught the default model to
    skip thinking (about 9 thinking tokens) and held-out accuracy stayed at 0.03. With ``peft`` the warm-up trains an
    adapter of the same shape and merges it, and GRPO starts a fresh one on top. ``console``
    shows its bar and a line per step (``StepLines``); None keeps transformers' own.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    options = dict(run.recipe.sft_warmup)
    steps = options.pop("steps", 20)
    examples = sft_examples(data, tokenizer)  # the training prompts, system message included
    defaults = {"output_dir": str(run.output_dir / "sft-warmup"), "max_steps": steps, "report_to": "none",
                "save_strategy": "no", "logging_steps": 1, "seed": run.recipe.seed}
    if run.device == "cpu":  # TRL's bf16 default fails on CPU, as for GRPO
        defaults["use_cpu"] = True
    # GRPO's precision (on a CPU the probe's or the recipe's choice): accelerate keeps one
    # mixed-precision state per process, so a warm-up in another one fails GRPO's trainer after it
    defaults["bf16"], defaults["fp16"] = bool(run.grpo.bf16), bool(run.grpo.fp16)
    with checkpointing_alias_warnings("gradient_checkpointing" not in options):  # TRL's default, not the user's
        config = SFTConfig(**{**defaults, **options})
    with checkpointing_alias_warnings():
        trainer = SFTTrainer(model=model, args=config, processing_class=tokenizer,
                             train_dataset=Dataset.from_list(examples), peft_config=_fresh(run.lora))
        shown = show_steps(trainer, "SFT warm-up", console) if console is not None else None
        try:
            trainer.train()
        finally:
            if shown is not None:
                shown.close()
    tuned = trainer.model
    return tuned.merge_and_unload() if hasattr(tuned, "merge_and_unload") else tuned


def summarize(output_dir: Path, warnings: list[str], evals=None) -> dict:
    """Reward and outcome rates at the start vs the end, and (the eval hook's ``summary()``) each eval curve before vs after.

    One step's rates come from a single group or two (8-16 completions), so ``start``
    and ``end`` average the first and the last ``window`` steps (a quarter of the run,
    at most 5). ``eval`` holds what the run's eval hook says of its curves, per task.
    """
    output_dir = Path(output_dir)
    logs = list(complete_rows(output_dir / "metrics.jsonl"))  # a torn tail (a run killed mid-write) is skipped
    steps = [line for line in logs if "reward" in line]
    keys = sorted({k for line in steps for k in line
                   if k in ("reward", "score/mean", "thinking/mean_tokens", "thinking/cap_rate")
                   or k.startswith(("outcomes/", "rewards/"))})
    window = max(1, min(5, len(steps) // 4))
    summary: dict = {"steps": len(steps), "window": window, "warnings": warnings, "start": {}, "end": {},
                     "eval": evals.summary() if evals is not None else {}}

    def mean_of(lines: list[dict], key: str):
        values = [line[key] for line in lines if isinstance(line.get(key), (int, float))]
        return sum(values) / len(values) if values else None

    if steps:
        summary["start"] = {k: mean_of(steps[:window], k) for k in keys}
        summary["end"] = {k: mean_of(steps[-window:], k) for k in keys}
    return summary


def dry_run(recipe, tokenizer, protocol: ThinkingProtocol | None = None, per_task: int = 2) -> list[dict]:
    """Build the datasets and reward functions and score scripted completions through them, with no model.

    For the first rows of each task: the gold answer after a closed thought (must earn
    the top reward), the same answer left inside unclosed thinking (no answer), and an
    empty completion. Returns one line per (task, completion, reward function). The
    ``capped`` column a ``within_cap`` reward reads says what forcing would: a thought
    that never closes is one it cuts.
    """
    from .rewards import reward_functions

    data = build_data(recipe, tokenizer, protocol)
    protocol = data.protocol
    functions, _ = reward_functions(data.tasks, recipe.rewards, protocol)
    lines = []
    for key, task in data.tasks.items():
        rows = [line for line in data.train_rows if line["task"] == key][:per_task]
        for line in rows:
            row = json.loads(line["row"])
            scripted = {"gold answer": f"I work it out.\n{protocol.close_tag}\n\n{task.gold_answer(row)}",
                        "answer inside thinking": f"I think {task.gold_answer(row)}",
                        "empty": ""}
            for name, completion in scripted.items():
                for function in functions:
                    reward = function(prompts=[line["prompt"]], completions=[completion], task=[key],
                                      row=[line["row"]], capped=[protocol.close_tag not in completion])[0]
                    lines.append({"task": key, "row": row["id"], "completion": name, "reward": function.__name__,
                                  "value": reward})
    return lines
