"""A training run's eval curves: the budget sweep on held-out rows, drawn while it trains.

The trainer (``rlcot.train.trainer``) sits below the eval layer and imports nothing of
it; the entry points (``rlcot train``, ``make demo``) hand it ``EvalCurves`` as its
eval hook. The hook sweeps each task's held-out rows (``rlcot.train.resolve.EvalCurve``:
the rows after the ones trained on, the recipe's eval budgets, samples and temperature)
with the policy in memory at the start, after an SFT warm-up, every ``eval.every``
steps and at the end, into ``RUN/eval/<task>``; its traces carry their training step, so
``rlcot plot`` and ``rlcot report`` draw accuracy over checkpoints. ``summary()`` gives
the end-of-run tables: every curve's headline and the first curve against the last,
with a paired bootstrap CI of the change (``analysis.before_after``).

Where the run reports to tensorboard or trackio (``grpo.report_to``), each curve's
accuracy, mean score and thinking tokens per budget go there too, at the GRPO step the
curve was drawn (``eval/<task>/accuracy@<B>``, beside TRL's ``train/...``), so a reader
sees the held-out accuracy over steps. The curve of the policy before an SFT warm-up
shares step 0 with the warm-up's own, so it goes under ``eval/<task>/before-warm-up/``.
They are written here with each tracker's own API, not through the trainer's log: the
first curves come before the trainer exists and the last after it has closed its loggers.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from rlcot.store import load_traces

from .analysis import before_after, headline, rates_of
from .progress import ProgressSink, SweepBar
from .series import Series
from .sweep import model_loader, run_sweep
from .sweep_spec import SweepSpec


def sweep_spec(curve, model: str, **changes) -> SweepSpec:
    """The ``SweepSpec`` of a resolved eval curve (``rlcot.train.resolve.EvalCurve``) for ``model``."""
    fields = {name: getattr(curve, name) for name in ("task", "data", "budgets", "samples", "temperature", "seed",
                                                       "limit", "skip", "max_answer_tokens", "dtype",
                                                       "system_prompt", "chat_template_kwargs")}
    return SweepSpec(models=(model,), task_args=dict(curve.task_args), **{**fields, **changes})


class EvalCurves(TrainerCallback):
    """The budget curve on held-out rows at the start, every ``eval.every`` steps and the end (the trainer's hook)."""

    def __init__(self, run, tokenizer, console=None):
        """``console``: a rich Console for each curve's bar and line (``SweepBar``), nested under the
        training's own bar; None: a tqdm bar and a printed line."""
        self.run, self.tokenizer, self.root, self.console = run, tokenizer, run.output_dir / "eval", console

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.run.recipe.eval.every
        if every and state.global_step % every == 0 and state.is_world_process_zero and model is not None:
            self.curve(getattr(model, "module", model), f"step {state.global_step}", step=state.global_step)  # DDP

    def curve(self, model, label: str, step: int) -> None:
        was_training = model.training
        model.eval()
        try:
            for curve in self.run.eval_curves:
                if curve.limit < 1:
                    continue
                what = f"eval {label}: {curve.key}, {curve.limit} held-out rows x {curve.samples}"
                with _EvalBar(what) if self.console is None else _CurveBar(self.console, curve.key) as bar:
                    report = run_sweep(sweep_spec(curve, label), self.root / curve.key, progress=bar,
                                       loader=model_loader(model, self.tokenizer), step=step,
                                       run_dir=str(self.root.parent))
                if report.written:  # a curve already drawn (the end's, when eval.every divides the steps) logs nothing
                    self._to_trackers(curve.key, label, step)
                done = f"eval {label}: {curve.key}: {report.written} traces in {report.seconds:.0f} s"
                if self.console is None:
                    print(done, flush=True)
                else:
                    self.console.print(done, highlight=False)
        finally:
            model.train(was_training)

    def _to_trackers(self, key: str, label: str, step: int) -> None:
        """This curve's numbers per budget at ``step``, for each of tensorboard and trackio the run reports to."""
        trackers = {"tensorboard", "trackio"} & set(self.run.grpo.report_to or [])
        if not trackers:
            return
        prefix = scalar_prefix(key, label, step, warm_up=self.run.recipe.sft_warmup is not None)
        drawn = [trace for trace in load_traces(self.root / key) if trace.model == label]
        scalars = {f"{prefix}/{tag}": value for tag, value in curve_scalars(drawn).items()}
        if "tensorboard" in trackers:
            _to_tensorboard(self.run, scalars, step)
        if "trackio" in trackers:
            _to_trackio(self.run, scalars, step)

    def summary(self) -> dict:
        """Per eval curve (mean@k curves first): every curve's headline, the first curve against the last, and,
        after an SFT warm-up, the warm-up's curve against the last (``rl_gain``: what GRPO itself did)."""
        from rlcot.train.resolve import SAMPLED_SUFFIX, WARM_UP_LABEL

        found = {}
        dirs = sorted(self.root.glob("*"), key=lambda d: (not d.name.endswith(SAMPLED_SUFFIX), d.name)) \
            if self.root.is_dir() else []
        for task_dir in dirs:
            traces = load_traces(task_dir)
            found[task_dir.name] = {"curves": headline(traces), "before_after": before_after(traces),
                                    "kind": "sampled" if task_dir.name.endswith(SAMPLED_SUFFIX) else "greedy",
                                    "temperature": traces[0].temperature}
            if any(trace.model == WARM_UP_LABEL for trace in traces):
                found[task_dir.name]["rl_gain"] = before_after(traces, reference=WARM_UP_LABEL)
        return found


def _to_tensorboard(run, scalars: dict[str, float], step: int) -> None:
    """``scalars`` at ``step`` in the run's tensorboard directory (a file beside the trainer's callback's)."""
    import os

    from torch.utils.tensorboard import SummaryWriter

    from rlcot.train.callbacks import TENSORBOARD_DIR

    where = os.environ.get("TENSORBOARD_LOGGING_DIR") or run.output_dir / TENSORBOARD_DIR  # as the trainer's
    with SummaryWriter(str(where)) as writer:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)


def _to_trackio(run, scalars: dict[str, float], step: int) -> None:
    """``scalars`` at ``step`` in the run's trackio run: the trainer's while it trains, else opened (resumed) for them.

    transformers' ``TrackioCallback`` opens the run when GRPO begins and finishes it when
    GRPO ends; the first curves come before and the last after, so those open the same
    run (same project, name and Space setting, ``resume="allow"``) and finish it again.
    trackio prints a few lines each time it opens a run: those go to the run's log.
    """
    import contextlib
    import io

    import trackio

    grpo = run.grpo
    opened = trackio.context_vars.current_run.get() is None
    said = io.StringIO()
    with contextlib.redirect_stdout(said) if opened else contextlib.nullcontext():
        if opened:
            trackio.init(project=grpo.project, name=grpo.run_name, space_id=grpo.trackio_space_id, resume="allow",
                         private=grpo.hub_private_repo, bucket_id=grpo.trackio_bucket_id)
        trackio.log(scalars, step=step)
        if opened:
            trackio.finish()
    if said.getvalue():
        logging.getLogger("rlcot.evals").info("trackio: %s", " | ".join(said.getvalue().split("\n")).strip(" |"))


def scalar_prefix(key: str, label: str, step: int, warm_up: bool) -> str:
    """A curve's tensorboard tags: ``eval/<task>``; ``eval/<task>/before-warm-up`` for step 0 before a warm-up."""
    from rlcot.train.resolve import WARM_UP_LABEL

    return f"eval/{key}/before-warm-up" if warm_up and step == 0 and label != WARM_UP_LABEL else f"eval/{key}"


def curve_scalars(traces) -> dict[str, float]:
    """One curve's numbers per budget: ``accuracy@B`` (correct / traces), ``score@B`` (mean), ``thinking_tokens@B``."""
    curve, scalars = Series("", tuple(traces)), {}
    for budget in curve.budgets:
        at = curve.at(budget)
        rates = rates_of(at)
        scalars.update({f"accuracy@{budget}": rates.accuracy, f"score@{budget}": rates.mean_score,
                        f"thinking_tokens@{budget}": sum(t.thinking_tokens for t in at) / len(at)})
    return scalars


class _CurveBar(SweepBar):
    """``SweepBar`` on the training's console, each pass named by its curve: ``eval arith, step 0: budgets [0, 4]``."""

    def __init__(self, console, key: str):
        super().__init__(console)
        self.key = key

    def start(self, label: str, total: int) -> None:
        super().start(f"eval {self.key}, {label}", total)

    def note(self, message: str) -> None:
        # the sweep's notes ("arith: 2 rows ... after the first 8"), every curve at every point: the run's log file
        logging.getLogger("rlcot.evals").info("eval %s: %s", self.key, message)


class _EvalBar(ProgressSink):
    """A tqdm bar for one eval curve: traces stored of the pass."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def start(self, label: str, total: int) -> None:
        from tqdm.auto import tqdm

        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(total=total, desc=self.label, unit="row", leave=False)

    def written(self, traces: int, tokens: int) -> None:
        if self.bar is not None:
            self.bar.update(traces - self.bar.n)

    def note(self, message: str) -> None:
        print(f"eval: {message}", flush=True)
