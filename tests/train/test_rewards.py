"""TRL reward adapters: the same scores as ``rlcot score``, outcome logging, and GRPO advantages."""

from __future__ import annotations

import inspect
import json
import math
import textwrap
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from rlcot.records import Scorer
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol
from rlcot.train.rewards import group_advantages, reward_functions

PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"  # pre-fills <think>
ROW = {"id": "r1", "answer": "4", "answerable": True}
PROTOCOL = ThinkingProtocol()

# (completion as TRL decodes it: no leading <think>, outcome, hedged, score under the default scheme)
BATCH = [
    ("2+2 is 4</think>\\boxed{4}", "correct", False, 1.0),
    ("hmm</think>I think \\boxed{4}", "correct", True, 0.5),
    ("3+2</think>\\boxed{5}", "wrong", False, -4.0),
    ("3+2</think>I think \\boxed{5}", "wrong", True, -2.0),
    ("no idea</think>\\boxed{IDK}", "abstain", False, 0.0),
    # the answer sits inside thinking that never closed: no answer at all (scored as wrong)
    ("2+2 is 4 so \\boxed{4} and I keep thinking", "unparsed", False, -4.0),
]


@dataclass
class Reward:
    verifier: str | None = None
    weight: float = 1.0
    scheme: str = "default"


def _columns(n, task="arith", row=ROW):
    return {"task": [task] * n, "row": [json.dumps(row)] * n}


@pytest.mark.parametrize("scheme", ["default", "binary"])
def test_each_reward_is_the_score_rlcot_score_gives(scheme):
    task = get_task("arith")
    (reward,), weights = reward_functions({"arith": task}, [Reward(scheme=scheme, weight=0.5)], PROTOCOL)
    completions = [completion for completion, *_ in BATCH]
    got = reward([PROMPT] * len(BATCH), completions, completion_ids=[[1]] * len(BATCH), trainer_state=None,
                 **_columns(len(BATCH)))
    expected = [Scorer(task, scheme, PROTOCOL).score(PROMPT, c, ROW).score for c in completions]
    assert got == expected and weights == [0.5]
    if scheme == "default":
        assert got == [score for *_, score in BATCH]
    else:
        assert got == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_the_prompts_prefilled_think_is_put_back_before_scoring():
    (reward,), _ = reward_functions({"arith": get_task("arith")}, [Reward()], PROTOCOL)
    completion = "2+2 is 4 so \\boxed{4} and I keep thinking"
    # after a prompt that pre-fills <think>, the box is inside unclosed thinking: unparsed, -4
    assert reward([PROMPT], [completion], **_columns(1)) == [-4.0]
    # without the pre-fill the same text has no tags: all of it is the answer, and it is right
    assert reward(["What is 2+2?"], [completion], **_columns(1)) == [1.0]


def test_a_fixed_verifier_scores_rows_of_a_task_with_another_verifier():
    tasks = {"arith": get_task("arith"), "sudoku": get_task("sudoku")}
    (math_reward,), _ = reward_functions(tasks, [Reward(verifier="math")], PROTOCOL)
    sudoku_row = get_task("sudoku").rows(1)[0]
    prompts, completions = [PROMPT] * 3, ["ok</think>\\boxed{4}"] * 3
    columns = {"task": ["arith", "sudoku", "sudoku"],
               "row": [json.dumps(ROW), json.dumps({**sudoku_row, "answer": "4"}), json.dumps(sudoku_row)]}
    # the sudoku row that has an 'answer' is scored by math; the one without cannot be: None, counted
    assert math_reward(prompts, completions, **columns) == [1.0, 1.0, None]
    assert math_reward.unscorable == 1


def test_each_task_uses_its_own_verifier_when_none_is_fixed():
    tasks = {"arith": get_task("arith"), "sudoku": get_task("sudoku")}
    (reward,), _ = reward_functions(tasks, [Reward()], PROTOCOL)
    row = get_task("sudoku").rows(1)[0]
    grid = get_task("sudoku").gold_answer(row)
    columns = {"task": ["sudoku", "arith"], "row": [json.dumps(row), json.dumps(ROW)]}
    assert reward([PROMPT] * 2, [f"done</think>{grid}", "ok</think>\\boxed{4}"], **columns) == [1.0, 1.0]


def test_names_are_the_verifiers_and_unique():
    arith, gsm8k, sudoku = get_task("arith"), get_task("gsm8k"), get_task("sudoku")
    functions, _ = reward_functions({"arith": arith, "gsm8k": gsm8k}, [Reward()], PROTOCOL)
    assert [f.__name__ for f in functions] == ["math"]  # one shared verifier names the per-task reward
    functions, weights = reward_functions(
        {"arith": arith, "sudoku": sudoku},
        [Reward(), Reward("math"), Reward("math", scheme="binary", weight=0.1), Reward("sudoku")], PROTOCOL)
    assert [f.__name__ for f in functions] == ["verifier", "math", "math_binary", "sudoku"]
    assert weights == [1.0, 1.0, 0.1, 1.0]
    functions, _ = reward_functions({"arith": arith}, [Reward(), Reward("math")], PROTOCOL)
    assert [f.__name__ for f in functions] == ["math", "math_default"]


def test_the_first_reward_logs_outcome_rates_of_the_batch():
    tasks = {"arith": get_task("arith"), "gsm8k": get_task("gsm8k")}
    first, second = reward_functions(tasks, [Reward(), Reward("math", scheme="binary")], PROTOCOL)[0]
    picked = [BATCH[0], BATCH[3], BATCH[4], BATCH[5]]  # correct, hedged wrong, abstain, unparsed
    completions = [completion for completion, *_ in picked]
    columns = {"task": ["arith", "arith", "gsm8k", "gsm8k"], "row": [json.dumps(ROW)] * 4,
               "thinking_tokens": [10, 20, 30, 40], "capped": [True, False, False, False]}
    logged: dict[str, float] = {}
    first([PROMPT] * 4, completions, log_metric=logged.__setitem__, **columns)
    assert {k: v for k, v in logged.items() if not k.startswith("unscorable")} == pytest.approx({
        "outcomes/correct": 0.25, "outcomes/wrong": 0.25, "outcomes/abstain": 0.25, "outcomes/unparsed": 0.25,
        "outcomes/hedged": 0.25, "score/mean": (1 - 2 + 0 - 4) / 4,
        "outcomes/arith/correct": 0.5, "outcomes/arith/wrong": 0.5, "outcomes/arith/abstain": 0.0,
        "outcomes/arith/unparsed": 0.0, "outcomes/arith/hedged": 0.5, "score/arith/mean": -0.5,
        "outcomes/gsm8k/correct": 0.0, "outcomes/gsm8k/wrong": 0.0, "outcomes/gsm8k/abstain": 0.5,
        "outcomes/gsm8k/unparsed": 0.5, "outcomes/gsm8k/hedged": 0.0, "score/gsm8k/mean": -2.0,
        "thinking/mean_tokens": 25.0, "thinking/cap_rate": 0.25,
    })
    assert logged["unscorable/math"] == 0
    second_logged: dict[str, float] = {}
    second([PROMPT] * 4, completions, log_metric=second_logged.__setitem__, **columns)
    assert set(second_logged) == {"unscorable/math_binary"}  # only the first reward logs outcomes


def test_one_task_logs_no_per_task_rates_and_no_thinking_without_its_columns():
    (reward,), _ = reward_functions({"arith": get_task("arith")}, [Reward()], PROTOCOL)
    logged: dict[str, float] = {}
    reward([PROMPT], [BATCH[0][0]], log_metric=logged.__setitem__, **_columns(1))
    assert logged["outcomes/correct"] == 1.0 and logged["score/mean"] == 1.0
    assert not any(k.startswith(("outcomes/arith", "thinking/")) for k in logged)


def test_a_row_of_an_unknown_task_names_the_fix():
    (reward,), _ = reward_functions({"arith": get_task("arith")}, [Reward()], PROTOCOL)
    with pytest.raises(ValueError, match="'sudoku'.*add it to the recipe"):
        reward([PROMPT], ["x"], task=["sudoku"], row=[json.dumps(ROW)])


# ---------------------------------------------------------------------- advantages
# hedge scheme values: correct +1, hedged correct +0.5, abstain 0, hedged wrong -2, wrong -4


def test_a_group_that_all_abstains_has_zero_advantages_not_nan():
    for scale in ("group", "batch", "none", True, False):
        assert group_advantages([0.0] * 4, 4, scale) == [0.0] * 4


def test_a_group_that_is_all_wrong_has_zero_advantages():
    assert group_advantages([-4.0] * 4, 4, "group") == [0.0] * 4


def test_one_correct_among_wrong_gets_the_only_positive_advantage():
    advantages = group_advantages([-4.0, 1.0, -4.0, -4.0], 4, "group")
    # by hand: mean -2.75, deviations (-1.25, 3.75, -1.25, -1.25), Bessel std sqrt(18.75 / 3) = 2.5
    assert advantages[1] == pytest.approx(3.75 / (2.5 + 1e-4), rel=1e-12)
    assert advantages[0] == advantages[2] == advantages[3] == pytest.approx(-1.25 / (2.5 + 1e-4), rel=1e-12)
    assert [a > 0 for a in advantages] == [False, True, False, False]


def test_group_scaling_erases_the_schemes_asymmetry_and_batch_scaling_keeps_it():
    groups = [1.0, -4.0, -4.0, -4.0] + [1.0, 0.0, 0.0, 0.0]  # correct among wrong; correct among abstentions
    by_group = group_advantages(groups, 4, "group")
    assert by_group[0] == pytest.approx(by_group[4], rel=1e-3)  # both ≈ 1.5: the -4 counts no more than the 0
    by_batch = group_advantages(groups, 4, "batch")
    assert by_batch[0] / by_batch[4] == pytest.approx(5.0)  # (1 - -2.75) / (1 - 0.25)
    assert group_advantages(groups, 4, "none")[:5] == [3.75, -1.25, -1.25, -1.25, 0.75]


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages([1.0, 0.0], 2, "std")
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages([1.0, 0.0], 3)


def _trl_advantages(rewards, group_size, scale):
    """Run TRL 1.16's own advantage block, cut from GRPOTrainer's source, on a reward column."""
    torch = pytest.importorskip("torch")
    from trl.trainer import grpo_trainer
    from trl.trainer.utils import nanstd

    source = inspect.getsource(grpo_trainer.GRPOTrainer._generate_and_score_completions)
    start = source.index('        if self.multi_objective_aggregation == "sum_then_normalize":')
    end_marker = "advantages = torch.nan_to_num(advantages, nan=0.0)"
    block = textwrap.dedent(source[start : source.index(end_marker) + len(end_marker)])
    column = torch.tensor([[math.nan if r is None else r] for r in rewards], dtype=torch.float32)
    fake_trainer = SimpleNamespace(multi_objective_aggregation="sum_then_normalize", reward_weights=torch.ones(1),
                                   reward_funcs=[None], scale_rewards={True: "group", False: "none"}.get(scale, scale))
    namespace = {"self": fake_trainer, "torch": torch, "nanstd": nanstd, "device": "cpu",
                 "rewards_per_func": column, "num_generations": group_size,
                 "unscorable_mask": torch.isnan(column).all(dim=1)}
    exec(block, namespace)  # noqa: S102 - TRL's own lines, so a change in TRL shows up here
    return namespace["advantages"].tolist()


@pytest.mark.parametrize("scale", ["group", "batch", "none", True, False])
def test_advantages_match_trls_own_code(scale):
    rewards = [1.0, -4.0, -4.0, -2.0,  # mixed
               0.0, 0.0, 0.0, 0.0,  # all abstain
               0.5, None, 1.0, -4.0,  # one unscorable (every reward function returned None)
               None, None, None, 1.0]  # a lone scorable reward: NaN std in the group
    ours = group_advantages(rewards, 4, scale)
    trl = _trl_advantages(rewards, 4, scale)
    assert ours == pytest.approx(trl, rel=1e-5, abs=1e-5)
    assert any(a != 0 for a in ours)
