"""The random-reward control: coin flips of the batch's real mean, seeded, blind to which completion was right."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol
from rlcot.train.control import RandomReward, random_reward, score_range
from rlcot.train.recipe import EvalSpec, Recipe, RewardSpec, TaskMix, ThinkingSpec, load_recipe, resolved
from rlcot.train.rewards import reward_functions
from rlcot.verifiers import HedgeScheme

BINARY_VALUES = (0.0, 1.0)
HEDGE_VALUES = (1.0, 0.5, 0.0, -2.0, -4.0)  # the default scheme's scores


class Scripted:
    """A TRL reward function that returns the rewards it is told to, and records what it was called with."""

    __name__ = "scripted"

    def __init__(self):
        self.rewards: list = []
        self.calls: list[dict] = []

    def __call__(self, prompts, completions, **kwargs):
        self.calls.append(kwargs)
        return list(self.rewards)


def wrap(scheme="binary", seed=0):
    real = Scripted()
    (control,) = random_reward([real], seed, [scheme])
    return real, control


def call(control, real, rewards, step=None, log_metric=None):
    real.rewards = rewards
    kwargs = {"trainer_state": SimpleNamespace(global_step=step)} if step is not None else {}
    if log_metric is not None:
        kwargs["log_metric"] = log_metric
    return control(["p"] * len(rewards), ["c"] * len(rewards), **kwargs)


def batches(values, n_batches, size, seed):
    """Batches of real rewards whose means vary from batch to batch (each batch its own success rate)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_batches):
        weights = [rng.random() for _ in values]
        out.append(rng.choices(values, weights=weights, k=size))
    return out


@pytest.mark.parametrize("scheme, values", [("binary", BINARY_VALUES), ("default", HEDGE_VALUES)])
def test_the_flips_keep_the_real_mean_and_take_only_the_schemes_extremes(scheme, values):
    real, control = wrap(scheme)
    low, high = min(values), max(values)
    flipped, reals, variance = [], [], 0.0
    for step, batch in enumerate(batches(values, 400, 16, seed=1)):
        got = call(control, real, batch, step=step)
        assert set(got) <= {low, high}
        flipped += got
        reals += batch
        q = (sum(batch) / len(batch) - low) / (high - low)
        variance += len(batch) * q * (1 - q) * (high - low) ** 2
    # Given the real rewards, each flip is high w.p. q (its batch's q), so the total of the flips has
    # expectation sum(real) and variance sum(q(1-q))(high-low)^2; 4 standard errors is a false alarm
    # rate of 6e-5 had the seed been drawn at random (it is fixed: the test is deterministic).
    n = len(reals)
    tolerance = 4 * math.sqrt(variance) / n
    assert 0 < tolerance < 0.06 * (high - low)  # under 3% of the range: a q off by more fails
    assert sum(flipped) / n == pytest.approx(sum(reals) / n, abs=tolerance)
    assert set(flipped) == {low, high}


def test_one_batch_flipped_over_many_steps_averages_to_its_real_mean():
    real, control = wrap("default")
    batch = [1.0, -4.0, 0.0, 0.5, -2.0, 1.0, 1.0, -4.0]  # mean -0.8125: q = (-0.8125 + 4) / 5 = 0.6375
    means = [sum(call(control, real, batch, step=step)) / len(batch) for step in range(500)]
    # 500 * 8 flips of the same q: the standard error of their mean is 5 * sqrt(q(1-q) / 4000)
    q = (sum(batch) / len(batch) + 4) / 5
    assert sum(means) / len(means) == pytest.approx(sum(batch) / len(batch), abs=4 * 5 * math.sqrt(q * (1 - q) / 4000))


def test_the_flips_do_not_depend_on_which_completions_were_right():
    real, control = wrap("binary")
    rng = random.Random(2)
    xs, ys = [], []  # real rewards and flips, each centred on its batch's mean
    for step in range(300):
        batch = [float(rng.random() < rng.choice((0.2, 0.5, 0.8))) for _ in range(16)]
        got = call(control, real, batch, step=step)
        # the same batch with the right answers moved elsewhere (same mean): the same flips
        shuffled = rng.sample(batch, len(batch))
        fresh_real, fresh_control = wrap("binary")
        assert call(fresh_control, fresh_real, shuffled, step=step) == got
        xs += [x - sum(batch) / len(batch) for x in batch]
        ys += [y - sum(got) / len(got) for y in got]
    # Within a batch (where GRPO compares completions) the flips must not follow the real rewards. Pooled
    # over batches they do, through the batch mean they keep by design; centring each batch removes that.
    # Independent, r is about N(0, 1/n): 4 standard errors.
    r = sum(x * y for x, y in zip(xs, ys)) / math.sqrt(sum(x * x for x in xs) * sum(y * y for y in ys))
    assert abs(r) < 4 / math.sqrt(len(xs))


def test_the_same_seed_and_step_draw_the_same_flips_and_others_do_not():
    batch = [1.0, 0.0] * 16
    real, control = wrap("binary", seed=7)
    first = [call(control, real, batch, step=step) for step in range(5)]
    real, again = wrap("binary", seed=7)  # a rerun or a resume: a fresh wrapper
    assert [call(again, real, batch, step=step) for step in (3, 4)] == first[3:]
    assert len({tuple(flips) for flips in first}) == 5  # each step its own draws
    real, other = wrap("binary", seed=8)
    assert call(other, real, batch, step=0) != first[0]
    # a second call at the same step (several generations per optimizer step) draws afresh, reproducibly
    real, control = wrap("binary", seed=7)
    twice = [call(control, real, batch, step=0), call(control, real, batch, step=0)]
    assert twice[0] == first[0] and twice[1] != twice[0]
    # without TRL's trainer_state the calls are counted: a fresh wrapper repeats the sequence
    sequences = []
    for _ in range(2):
        real, control = wrap("binary", seed=7)
        sequences.append([call(control, real, batch) for _ in range(3)])
    assert sequences[0] == sequences[1] and sequences[0][0] != sequences[0][1]


def test_none_stays_none_and_an_all_none_batch_stays_all_none():
    real, control = wrap("binary")
    got = call(control, real, [None, 1.0, None, 0.0, 1.0, 1.0], step=0)
    assert [v is None for v in got] == [True, False, True, False, False, False]
    assert set(v for v in got if v is not None) <= {0.0, 1.0}
    assert call(control, real, [None] * 4, step=1) == [None] * 4
    assert call(control, real, [1.0] * 4, step=2) == [1.0] * 4  # q = 1
    assert call(control, real, [0.0] * 4, step=3) == [0.0] * 4  # q = 0


def test_the_wrapper_keeps_the_name_passes_trls_kwargs_on_and_logs_the_flips_mean():
    real, control = wrap("binary")
    assert control.__name__ == "scripted"
    logged = {}
    got = call(control, real, [1.0, 0.0, 0.0, 0.0, None], step=3, log_metric=logged.__setitem__)
    assert real.calls[-1]["trainer_state"].global_step == 3 and real.calls[-1]["log_metric"] is not None
    kept = [v for v in got if v is not None]
    assert logged["control/random_reward_mean"] == pytest.approx(sum(kept) / len(kept))
    assert logged["control/real_reward_mean"] == pytest.approx(0.25)


def test_further_rewards_log_under_their_names_and_draw_their_own_flips():
    first, second = Scripted(), Scripted()
    second.__name__ = "other"
    wrapped = random_reward([first, second], 0, ["binary", "binary"])
    assert [f.__name__ for f in wrapped] == ["scripted", "other"]
    logged = {}
    draws = []
    for real, control in zip((first, second), wrapped):
        draws.append(call(control, real, [1.0, 0.0] * 16, step=0, log_metric=logged.__setitem__))
    assert draws[0] != draws[1]
    assert {"control/random_reward_mean", "control/random_reward_mean/other"} <= set(logged)


def test_the_scheme_range_counts_unparsed_when_set():
    assert score_range("binary") == (0.0, 1.0)
    assert score_range("default") == (-4.0, 1.0)
    assert score_range(HedgeScheme(unparsed=-6.0)) == (-6.0, 1.0)
    real, control = wrap(HedgeScheme(unparsed=-6.0))
    assert set(call(control, real, [-6.0, 1.0, 0.0, -4.0] * 8, step=0)) == {-6.0, 1.0}


@dataclass
class Reward:
    verifier: str | None = None
    weight: float = 1.0
    scheme: str = "default"


def test_wrapping_the_real_rewards_reads_their_scheme_and_still_logs_what_was_earned():
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"  # pre-fills <think>
    row = json.dumps({"id": "r1", "answer": "4", "answerable": True})
    functions, _ = reward_functions({"arith": get_task("arith")}, [Reward(scheme="default")], ThinkingProtocol())
    (control,) = random_reward(functions, 0)  # the scheme from the functions' scorers
    logged = {}
    completions = ["2+2 is 4</think>\\boxed{4}"] * 3 + ["3+2</think>\\boxed{5}"]
    got = control([prompt] * 4, completions, task=["arith"] * 4, row=[row] * 4,
                  trainer_state=SimpleNamespace(global_step=0), log_metric=logged.__setitem__)
    assert set(got) <= {-4.0, 1.0} and control.__name__ == functions[0].__name__
    assert logged["outcomes/correct"] == 0.75 and logged["score/mean"] == pytest.approx(-0.25)
    assert logged["control/real_reward_mean"] == pytest.approx(-0.25)


# ------------------------------------------------------------------ the recipe field and the CLI


def test_the_recipe_field_takes_random_reward_and_refuses_anything_else_naming_it():
    assert load_recipe(None).control is None
    recipe = load_recipe(None, ["control=random-reward"])
    assert recipe.control == "random-reward" and resolved(recipe)["control"] == "random-reward"  # run.json
    with pytest.raises(ValueError) as err:
        load_recipe(None, ["control=random-rewards"])
    message = str(err.value)
    assert "\n" not in message and "control" in message and "'random-rewards'" in message
    assert "random-reward" in message.replace("'random-rewards'", "")


def write_tiny_recipe(tmp_path: Path, model_dir: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"model: {model_dir}\ntasks: [{{name: arith, size: 4, eval_size: 2}}]\n"
                    f"output_dir: {tmp_path / 'run'}\n")
    return path


def test_dry_run_shows_the_control(tmp_path, tiny_dir):
    from typer.testing import CliRunner

    from rlcot.cli import app

    path = write_tiny_recipe(tmp_path, tiny_dir)
    result = CliRunner().invoke(app, ["train", str(path), "--control", "random-reward", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "control: random-reward" in result.output
    result = CliRunner().invoke(app, ["train", str(path), "--dry-run"])
    assert result.exit_code == 0 and "control: null" in result.output
    result = CliRunner().invoke(app, ["train", str(path), "--control", "coin-flip", "--dry-run"])
    assert result.exit_code == 2 and "coin-flip" in result.output and "random-reward" in result.output


# ------------------------------------------------------------------ a GRPO step under the control

GRPO = {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 1, "learning_rate": 5e-3,
        "logging_steps": 1, "report_to": "none", "temperature": 1.0, "save_strategy": "no"}


def test_a_grpo_step_under_the_control_trains_on_flips_and_logs_their_mean(tmp_path, tiny_dir):
    from rlcot.models import load_policy
    from rlcot.train.data import build_data
    from rlcot.train.resolve import resolve_run
    from rlcot.train.trainer import build_trainer

    # the random model never answers arith; a length-parity verifier gives rewards that vary within a group
    recipe = Recipe(model=str(tiny_dir), tasks=(TaskMix("arith", size=8, eval_size=2),),
                    rewards=(RewardSpec(verifier="tests.train.plugins:even_length"),),
                    thinking=ThinkingSpec(max_thinking_tokens=6, max_answer_tokens=4),
                    grpo=GRPO, eval=EvalSpec(budgets=(0, 4)), output_dir=str(tmp_path), control="random-reward")
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    assert run.record()["recipe"]["control"] == "random-reward"
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tok, protocol, build_data(recipe, tok, protocol))
    assert [type(f) for f in trainer.reward_funcs] == [RandomReward]
    assert [f.__name__ for f in trainer.reward_funcs] == ["even_length"]
    trainer.train()
    assert trainer.state.global_step == 1
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    step = next(line for line in logs if "reward" in line)
    assert 0 <= step["control/random_reward_mean"] <= 1
    assert step["rewards/even_length/mean"] == pytest.approx(step["control/random_reward_mean"])  # TRL got the flips
    assert "outcomes/correct" in step and "control/real_reward_mean" in step  # and the real outcomes are logged
