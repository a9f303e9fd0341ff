"""Reward adapters for TRL's GRPOTrainer, outcome logging, and GRPO's group advantages.

**Rewards.** ``reward_functions`` turns a recipe's rewards (a verifier, a weight, a
scheme) into plain functions with TRL's batch signature ``f(prompts, completions,
**columns) -> list[float | None]``. Each scores through ``rlcot.records.Scorer``, the
same object ``rlcot score`` uses, so a reward in a training log is the score the same
completion gets from ``rlcot score``. The trainer's dataset carries two flat columns
per row: ``task`` (a key into the ``tasks`` mapping) and ``row`` (the task row as a
JSON string: dataset columns must be flat). TRL decodes completions without the
``<think>`` the prompt pre-filled; the Scorer puts it back from the prompt, so an
answer written inside thinking that never closed is ``unparsed``, not an answer.

A reward with ``verifier: None`` scores each row with its own task's verifier (and
the task's options: GSM8K's lenient percent). A fixed ``verifier`` scores every row
with that verifier, even rows of a task scored by another one: the user asked for
it. The verifier's options are then dropped, as ``get_task(verifier=...)`` and
``rlcot score --verifier`` drop them. A row the verifier cannot score (no gold
``answer`` for math: a ValueError) gets None, which TRL skips for that function; the
count is the function's ``unscorable`` attribute and, per batch, the metric
``unscorable/<name>``. Each function's ``__name__`` is its verifier's name (``math``,
``sudoku``; ``verifier`` for per-task verifiers that differ), made unique with the
scheme's name or a number, so TRL logs ``rewards/math/mean``.

**Staying inside the cap** (``kind: within_cap``, e.g. ``rewards: [{scheme: binary},
{kind: within_cap, weight: 0.5}]``): 1.0 for a rollout whose thinking closed by itself
before its cap (the rollout's ``capped`` column is False), 0.0 for one budget forcing
had to cut (True). It is L1's length term (Aggarwal & Welleck 2025, "L1: Controlling How
Long A Reasoning Model Thinks With Reinforcement Learning", arXiv:2503.04697) as it
reads under budget forcing. L1 states the length in the prompt and penalises thinking
that departs from it; here forcing cuts every thought at its cap, so the thinking never
exceeds it, and overrunning shows only as being cut: "staying inside" means closing on
one's own before the cap. With ``thinking.state_cap`` the prompt states the cap it is
measured against ("Think for at most B tokens."), so the policy can learn to obey a
stated budget, and ``rlcot sweep --stated`` asks it without forcing. What it does not
do: it is an indicator, not a distance, so thinking 5 tokens and thinking B - 1 tokens
earn the same; it has no target length (L1-Exact penalises the distance to the stated
length both ways, so thinking far less than asked costs there; nothing here pushes the
thinking up to the budget); and it is added to the verifier's reward with its weight,
not multiplied by correctness as in L1-Max, so a weight near the verifier's pays for
closing early with a wrong answer. The column exists only with rlcot's rollouts: TRL's vLLM generation
has none (a recipe refuses the pair, ``rlcot.train.checks``), and without it the function
returns None for every completion (TRL leaves None out) and warns once.

**Outcome logging.** A reward is one number; what moved is in the verdicts. When TRL
passes ``log_metric``, the first verifier function logs per batch the outcome rates
(``outcomes/correct|wrong|abstain|unparsed``), the hedge rate ``outcomes/hedged``,
``score/mean`` (its unweighted score), per task (``outcomes/<task>/correct``, ...)
when the mapping holds several tasks, and, when the rollout adds ``thinking_tokens``
and ``capped`` fields, ``thinking/mean_tokens`` and ``thinking/cap_rate``. Rates are
over the rows that function scored.

**Advantages, and which ``scale_rewards`` the hedge scheme wants.** ``group_advantages``
reproduces TRL 1.16's computation as a pure function (its docstring cites the lines).
TRL's default ``scale_rewards="group"`` divides each group's centred rewards by that
group's own std. Under the hedge scheme (+1 / +0.5 / 0 / -2 / -4) that erases the
asymmetry the scheme exists for: a group of one correct among wrong answers (+1 and
-4s) and a group of one correct among abstentions (+1 and 0s) get *identical*
advantages, since any two-valued group standardises to the same numbers. The -4 for a
confident wrong answer then pushes no harder than a 0 for "I don't know", and the
policy cannot learn that guessing costs more than abstaining. Use
``scale_rewards: batch`` for hedge recipes: one std for the whole batch keeps the
relative magnitudes across groups (the +1/-4 group moves the policy 5x as far as the
+1/0 group), while still normalising the step size. ``"none"`` (Dr. GRPO) keeps them
too but leaves the learning rate tied to the scheme's units. ``"group"`` remains fine
for the binary scheme, whose groups all have the same two values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections import Counter
from typing import Any, Callable, Mapping, Protocol, Sequence

from ..records import CompletionRow, ScoredTrace, Scorer, resolve_scheme
from ..tasks import Task
from ..thinking import ThinkingProtocol
from rlcot.verifiers.base import OUTCOMES


class RewardLike(Protocol):
    verifier: str | None  # None: each task's own verifier
    weight: float
    scheme: str  # "default", "binary" or a YAML file of HedgeScheme fields
    # kind: "verifier" (the default where absent) or "within_cap" (no verifier, no scheme)


RewardFunction = Callable[..., list]


def reward_functions(tasks: Mapping[str, Task], rewards: Sequence[RewardLike],
                     protocol: ThinkingProtocol) -> tuple[list[RewardFunction], list[float]]:
    """TRL reward functions and their weights, one per reward, in order (module docstring).

    Pass them as ``GRPOTrainer(reward_funcs=...)`` and the weights as
    ``GRPOConfig(reward_weights=...)``. The first verifier function also logs outcome rates.
    A ``within_cap`` reward is one ``WithinCap`` function.
    """
    if not tasks:
        raise ValueError("tasks is empty; give at least one task, e.g. {'arith': get_task('arith')}")
    if not rewards:
        raise ValueError("rewards is empty; give at least one reward, e.g. verifier: null, weight: 1.0")
    scorers: dict[tuple[Task, str], Scorer] = {}  # shared: a verifier may hold worker processes

    def scorer_for(task: Task, verifier: str | None, scheme: str) -> Scorer:
        if verifier is not None and verifier != task.verifier:
            task = dataclasses.replace(task, verifier=verifier, verifier_options={})  # as get_task(verifier=) does
        key = (task, scheme)
        if key not in scorers:
            scorers[key] = Scorer(task, scheme, protocol)
        return scorers[key]

    functions, names, logging = [], set(), True
    for index, reward in enumerate(rewards):
        kind = getattr(reward, "kind", "verifier")
        if kind == "within_cap":
            name = _unique_name(WithinCap.name, str(index), index, names)
            names.add(name)
            functions.append(WithinCap(name))
            continue
        if kind != "verifier":
            raise ValueError(f"reward {index} has kind {kind!r}; choose verifier or within_cap")
        scheme_name, _ = resolve_scheme(reward.scheme)  # a bad scheme fails here, before training starts
        by_task = {key: scorer_for(task, reward.verifier, reward.scheme) for key, task in tasks.items()}
        name = _unique_name(_verifier_name(tasks, reward.verifier), scheme_name, index, names)
        names.add(name)
        functions.append(_RewardFunction(name, by_task, log_outcomes=logging))
        logging = False
    return functions, [float(reward.weight) for reward in rewards]


class WithinCap:
    """The ``within_cap`` reward: 1.0 where the thinking closed by itself before its cap, 0.0 where forcing cut it.

    Reads the rollout's ``capped`` column (``rlcot.train.rollout``); without it (TRL's
    vLLM generation) every value is None and it warns once (module docstring).
    """

    name = "within_cap"

    def __init__(self, name: str = name):
        self.__name__ = name
        self.warned = False

    def __call__(self, prompts: Sequence, completions: Sequence, capped: Sequence[bool | None] | None = None,
                 **columns) -> list[float | None]:
        if capped is None:
            if not self.warned:
                self.warned = True
                warnings.warn(f"reward {self.__name__!r} got no 'capped' column: only rlcot's budget-forced rollouts "
                              "say whether forcing cut the thinking (TRL's vLLM generation does not); it gives None, "
                              "which TRL leaves out", RuntimeWarning, stacklevel=2)
            return [None] * len(completions)
        if len(capped) != len(completions):
            raise ValueError(f"reward {self.__name__!r} got {len(capped)} 'capped' values for {len(completions)} "
                             "completions; the rollout must give one per completion")
        return [None if value is None else 0.0 if value else 1.0 for value in capped]


class _RewardFunction:
    """One reward: scores a batch with its scorers, one per task key (a plain callable for TRL)."""

    def __init__(self, name: str, scorers: Mapping[str, Scorer], log_outcomes: bool):
        self.__name__ = name
        self.scorers = scorers
        self.log_outcomes = log_outcomes
        self.unscorable = 0  # rows the verifier could not score, over the whole run

    def __call__(self, prompts: Sequence, completions: Sequence, task: Sequence[str] | None = None,
                 row: Sequence[str | Mapping] | None = None, log_metric: Callable[[str, float], Any] | None = None,
                 **columns) -> list[float | None]:
        if task is None or row is None:
            raise ValueError(f"reward {self.__name__!r} needs the dataset columns 'task' and 'row' (the task row as "
                             "JSON); build the training dataset with both")
        records = self.score_batch([_text(p) for p in prompts], [_text(c) for c in completions], task, row)
        if log_metric is not None:
            log_metric(f"unscorable/{self.__name__}", sum(r is None for r in records))
            if self.log_outcomes:
                for metric, value in outcome_metrics(records, task, len(self.scorers) > 1, columns).items():
                    log_metric(metric, value)
        return [None if record is None else record.score for record in records]

    def score_batch(self, prompts: Sequence[str], completions: Sequence[str], task_keys: Sequence[str],
                    rows: Sequence[str | Mapping]) -> list[ScoredTrace | None]:
        """One record per completion (None: unscorable); each task's rows go through its verifier's batch path."""
        records: list[ScoredTrace | None] = [None] * len(completions)
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(task_keys):
            if key not in self.scorers:
                raise ValueError(f"row {i} has task {key!r}, which is not among the reward's tasks "
                                 f"({', '.join(self.scorers)}); add it to the recipe's tasks")
            groups.setdefault(key, []).append(i)
        for key, indices in groups.items():
            scorer = self.scorers[key]
            items = [CompletionRow(_row(rows[i]), completions[i], prompts[i]) for i in indices]
            try:
                scored = scorer.score_many(items)
            except ValueError:  # some row cannot be scored: find it, score the rest
                scored = [self._score_one(scorer, item) for item in items]
            for i, record in zip(indices, scored):
                records[i] = record
        return records

    def _score_one(self, scorer: Scorer, item: CompletionRow) -> ScoredTrace | None:
        try:
            return scorer.score_many([item])[0]
        except ValueError:
            self.unscorable += 1
            return None


def outcome_metrics(records: Sequence[ScoredTrace | None], task_keys: Sequence[str], per_task: bool,
                    columns: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Outcome and hedge rates and the mean score of a batch (None records left out), for ``log_metric``."""
    metrics = _rates("outcomes", "score/mean", [r for r in records if r is not None])
    if per_task:
        for key in dict.fromkeys(task_keys):
            scored = [r for r, k in zip(records, task_keys) if k == key and r is not None]
            metrics.update(_rates(f"outcomes/{key}", f"score/{key}/mean", scored))
    columns = columns or {}
    tokens = [t for t in columns.get("thinking_tokens") or () if t is not None]
    if tokens:
        metrics["thinking/mean_tokens"] = sum(tokens) / len(tokens)
    capped = [c for c in columns.get("capped") or () if c is not None]
    if capped:
        metrics["thinking/cap_rate"] = sum(bool(c) for c in capped) / len(capped)
    return metrics


def _rates(prefix: str, score_name: str, records: Sequence[ScoredTrace]) -> dict[str, float]:
    if not records:
        return {}
    n = len(records)
    counts = Counter(record.verdict.outcome for record in records)
    metrics = {f"{prefix}/{outcome}": counts[outcome] / n for outcome in OUTCOMES}
    metrics[f"{prefix}/hedged"] = sum(bool(record.verdict.hedged) for record in records) / n
    metrics[score_name] = sum(record.score for record in records) / n
    return metrics


def group_advantages(rewards: Sequence[float | None], group_size: int,
                     scale_rewards: str | bool = "group") -> list[float]:
    """GRPO advantages of consecutive groups of ``group_size`` rewards, as TRL 1.16 computes them.

    From ``trl/trainer/grpo_trainer.py`` (``multi_objective_aggregation="sum_then_normalize"``,
    the default), lines 2765-2787 and 2810:

    - baseline: the group's mean (``torch.nanmean`` over the group, 2765-2766);
    - ``"group"``: divide by the group's std + 1e-4 (2767-2771, 2786-2787); ``"batch"``: by
      the whole batch's std + 1e-4 (2774-2777); ``"none"``: no division (2786). The
      baseline is the group mean in all three;
    - std is ``trl.trainer.utils.nanstd``: Bessel-corrected (n - 1), NaN for fewer than
      two values; a group of one (``group_size == 1``) has std 0 under "group"/"none" (2772-2773);
    - None/NaN rewards (every reward function returned None) are left out of means and
      stds, and every NaN advantage becomes 0 (``torch.nan_to_num``, 2810).

    ``True``/``False`` mean ``"group"``/``"none"`` (``grpo_config.py`` line 1078). TRL works in
    float32; this works in float64, so the two agree to float32 rounding.
    """
    scale = {True: "group", False: "none"}.get(scale_rewards, scale_rewards)  # type: ignore[call-overload]
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale_rewards={scale_rewards!r} must be 'group', 'batch', 'none', True or False")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size={group_size!r} must be a positive int (TRL's num_generations)")
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}; "
                         "give num_generations rewards per prompt")
    values = [math.nan if r is None else float(r) for r in rewards]
    groups = [values[i : i + group_size] for i in range(0, len(values), group_size)]
    batch_std = _nanstd(values) if len(values) > 1 else 0.0
    advantages = []
    for group in groups:
        mean = _nanmean(group)
        if scale == "batch":
            std = batch_std
        else:
            std = _nanstd(group) if group_size > 1 else 0.0
        for reward in group:
            advantage = reward - mean
            if scale != "none":
                advantage /= std + 1e-4
            advantages.append(0.0 if math.isnan(advantage) else advantage)
    return advantages


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _nanstd(values: Sequence[float]) -> float:
    """``trl.trainer.utils.nanstd``: Bessel-corrected, NaN for fewer than two non-NaN values."""
    kept = [v for v in values if not math.isnan(v)]
    if len(kept) < 2:
        return math.nan
    mean = sum(kept) / len(kept)
    return math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1))


def _verifier_name(tasks: Mapping[str, Task], verifier: str | None) -> str:
    if verifier is None:
        names = {task.verifier for task in tasks.values()}
        verifier = names.pop() if len(names) == 1 else "verifier"
    # module.path:attr -> attr, so a metric name stays one readable word
    return verifier.rsplit(":", 1)[-1].rsplit(".", 1)[-1] or "verifier"


def _unique_name(name: str, scheme_name: str, index: int, taken: set[str]) -> str:
    for candidate in (name, f"{name}_{scheme_name}", f"{name}_{index}"):
        if candidate not in taken:
            return candidate
    raise ValueError(f"cannot name reward {index} uniquely (tried {name!r}); give rewards distinct verifiers")


def _row(value: str | Mapping) -> Mapping:
    """The task row from the dataset's ``row`` column: a JSON string (or already a mapping)."""
    if isinstance(value, Mapping):
        return value
    try:
        row = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(f"the 'row' column must hold the task row as a JSON object string, got {str(value)[:80]!r}")
    if not isinstance(row, dict):
        raise ValueError(f"the 'row' column must hold a JSON object, got {type(row).__name__}")
    return row


def _text(value: str | Sequence[Mapping]) -> str:
    """A plain string, or a conversational prompt/completion (list of messages) as its joined contents."""
    if isinstance(value, str):
        return value
    return "".join(str(message.get("content", "")) for message in value)
