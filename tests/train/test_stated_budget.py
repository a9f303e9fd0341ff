"""Prompts that state a thinking budget, and training on them with a reward for staying inside it (issue 18 part 4)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from rlcot.store import TraceStore
from rlcot.tasks import BUDGET_SENTENCE, get_task
from rlcot.thinking import ThinkingProtocol
from rlcot.train.data import build_data
from rlcot.train.recipe import RewardSpec, ThinkingSpec, load_recipe
from rlcot.train.resolve import resolve_run
from rlcot.train.rewards import reward_functions
from rlcot.train.trainer import build_trainer, dry_run
from tests.train.test_trainer import recipe_for

PROTOCOL = ThinkingProtocol()


@pytest.mark.parametrize("task", [get_task("arith"), get_task("arith", unanswerable=0.5), get_task("chain")])
def test_a_stated_budget_adds_one_sentence_after_the_instruction_and_nothing_else(tokenizer, task):
    row = task.rows(1, seed=0)[0]
    plain = task.prompt(row, tokenizer, PROTOCOL)
    assert task.prompt(row, tokenizer, PROTOCOL, stated_budget=None) == plain  # no budget: the prompt of before
    stated = task.prompt(row, tokenizer, PROTOCOL, stated_budget=64)
    sentence = " Think for at most 64 tokens."
    assert BUDGET_SENTENCE.format(budget=64) == sentence
    end = plain.index(task.full_instruction) + len(task.full_instruction)  # the instruction, abstain hint included
    assert stated == plain[:end] + sentence + plain[end:]
    assert stated.count("Think for at most") == 1 and stated.endswith("<think>\n")


def test_requests_state_the_budget_with_the_same_seeds(tokenizer):
    task = get_task("arith")
    rows = task.rows(2, seed=0)
    plain = task.requests(rows, tokenizer, PROTOCOL, seed=3, samples=2)
    stated = task.requests(rows, tokenizer, PROTOCOL, seed=3, samples=2, stated_budget=32)
    assert [r.seed for r in stated] == [r.seed for r in plain]
    for request in stated:
        assert "Think for at most 32 tokens." in request.prompt
        assert request.prompt_ids == tokenizer.encode(request.prompt, add_special_tokens=False)


def test_a_protocol_without_an_instruction_gets_the_sentence_alone(tokenizer):
    task = get_task("arith")
    row = task.rows(1, seed=0)[0]
    bare = ThinkingProtocol(instruct=False)
    plain, stated = task.prompt(row, tokenizer, bare), task.prompt(row, tokenizer, bare, stated_budget=16)
    assert "Think step by step" not in stated
    assert stated == plain.replace(row["question"], row["question"] + "\n\nThink for at most 16 tokens.")


@pytest.mark.parametrize("budget", [-1, True, 2.5])
def test_a_budget_that_is_not_a_token_count_is_refused(tokenizer, budget):
    task = get_task("arith")
    with pytest.raises(ValueError, match=r"stated_budget=.* is not a whole number of thinking tokens >= 0"):
        task.prompt(task.rows(1)[0], tokenizer, PROTOCOL, stated_budget=budget)


# ---------------------------------------------------------------- the recipe


def test_state_cap_and_within_cap_read_from_a_recipe():
    recipe = load_recipe(None, ["thinking.state_cap=true", "rewards.1.kind=within_cap", "rewards.1.weight=0.5"])
    assert recipe.thinking.state_cap is True
    assert [(r.kind, r.weight) for r in recipe.rewards] == [("verifier", 1.0), ("within_cap", 0.5)]
    assert load_recipe(None, []).thinking.state_cap is False


@pytest.mark.parametrize("overrides, said", [
    (["rewards.0.kind=length"], r"^rewards\.0\.kind='length' is not a reward kind; choose verifier or within_cap$"),
    (["rewards.0.kind=within-cap"],
     r"^rewards\.0\.kind='within-cap' is not a reward kind \(did you mean 'within_cap'\?\); choose verifier or "),
    (["rewards.0.kind=within_cap", "rewards.0.scheme=default"], r"^rewards\.0\.scheme='default': a within_cap reward "
                                                                r"has no scheme"),
    (["rewards.0.kind=within_cap", "rewards.0.verifier=math"], r"^rewards\.0\.verifier='math': a within_cap reward"),
    (["thinking.state_cap=true", "grpo.use_vllm=true"], r"^thinking\.state_cap needs rlcot's rollouts"),
    (["rewards.0.kind=within_cap", "grpo.use_vllm=true"], r"^a within_cap reward reads the capped column"),
])
def test_a_reward_or_cap_that_cannot_work_is_a_one_line_error(overrides, said):
    with pytest.raises(ValueError, match=said) as caught:
        load_recipe(None, overrides)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- the reward


def test_within_cap_is_one_where_the_thinking_closed_itself_and_none_without_the_column():
    tasks = {"arith": get_task("arith")}
    functions, weights = reward_functions(tasks, [RewardSpec(), RewardSpec(kind="within_cap", weight=0.5)], PROTOCOL)
    verifier, within = functions
    assert within.__name__ == "within_cap" and weights == [1.0, 0.5]
    assert verifier.log_outcomes and not getattr(within, "log_outcomes", False)
    assert within(["p"] * 3, ["a", "b", "c"], capped=[False, True, None]) == [1.0, 0.0, None]
    with pytest.warns(RuntimeWarning, match="no 'capped' column"):
        assert within(["p"] * 2, ["a", "b"]) == [None, None]  # TRL's vLLM path: no rollout columns
    # listed first, it leaves the outcome logging to the first verifier reward
    first, second = reward_functions(tasks, [RewardSpec(kind="within_cap"), RewardSpec()], PROTOCOL)[0]
    assert second.log_outcomes and first.__name__ == "within_cap"


def test_the_dry_run_shows_within_cap_as_forcing_would_set_it(tokenizer):
    recipe = load_recipe(None, ["tasks.0.size=1", "rewards.1.kind=within_cap"])
    lines = [line for line in dry_run(recipe, tokenizer, per_task=1) if line["reward"] == "within_cap"]
    assert {line["completion"]: line["value"] for line in lines} == {
        "gold answer": 1.0, "answer inside thinking": 0.0, "empty": 0.0}


# ---------------------------------------------------------------- a GRPO step


def test_a_grpo_step_states_each_groups_cap_and_within_cap_reads_the_capped_column(tmp_path, tiny_dir):
    from rlcot.models import load_policy

    recipe = recipe_for(tiny_dir, tmp_path, max_steps=1, num_generations=4, per_device_train_batch_size=8)
    recipe = replace(recipe, thinking=ThinkingSpec(max_thinking_tokens=(2, 8), max_answer_tokens=4, state_cap=True),
                     rewards=recipe.rewards + (RewardSpec(kind="within_cap", weight=0.5),))
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    assert run.grpo.reward_weights == [1.0, 0.5]
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    data = build_data(recipe, tok, PROTOCOL)
    trainer = build_trainer(run, model, tok, PROTOCOL, data)
    rollout, seen, rewarded = trainer.rollout_func, [], []

    def recording(prompts, trainer_):
        out = rollout(prompts, trainer_)
        seen.append((prompts, out, list(rollout.last_traces)))
        return out

    index = trainer.reward_func_names.index("within_cap")
    within = trainer.reward_funcs[index]

    def recording_reward(prompts, completions, **columns):
        values = within(prompts, completions, **columns)
        rewarded.append((list(prompts), list(columns["capped"]), values))
        return values

    trainer.rollout_func = recording
    trainer.reward_funcs[index] = recording_reward
    trainer.train()
    assert trainer.state.global_step == 1
    (prompts, out, traces), = seen
    assert set(out["cap"]) <= {2, 8} and len(traces) == 8
    for prompt, cap, ids, trace in zip(prompts, out["cap"], out["prompt_ids"], traces):
        key, row = data.examples[prompt]  # the dataset prompt, as TRL handed it over
        stated = data.tasks[key].prompt(row, tok, PROTOCOL, stated_budget=cap)
        assert tok.decode(ids) == stated and f"Think for at most {cap} tokens." in stated
        assert stated != prompt and trace.prompt == stated
        assert trace.thinking_tokens <= cap and trace.budget == cap  # forcing still caps at the cap
    (reward_prompts, capped, values), = rewarded
    assert reward_prompts == prompts  # the reward functions get the dataset prompt
    assert capped == out["capped"] and values == [0.0 if c else 1.0 for c in capped]
    kept = TraceStore(tmp_path / "rollouts.jsonl").read([])  # judged by the dataset prompt, stored as generated
    assert kept and all("Think for at most" in record.prompt for record in kept)
    assert all(f"Think for at most {record.budget} tokens." in record.prompt for record in kept)
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/within_cap/mean" in line for line in logs)
