"""Recipes: precedence, errors that name the key and the fix, each resolved once into TRL's GRPOConfig,
the LoRA config, the rollout budget and the eval curves."""

import json
from pathlib import Path

import pytest
import yaml

from rlcot.train.recipe import Recipe, TaskMix, load_recipe, resolved
from rlcot.train.resolve import describe, lora_config, resolve_run

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RECIPE_FILES = sorted(RECIPES.glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_the_shipped_recipes_are_all_there():
    names = {path.name for path in RECIPE_FILES}
    assert {"chain-grpo-cpu.yaml", "arith-grpo-cpu.yaml", "hedge-calibration-cpu.yaml", "sudoku-grpo.yaml",
            "crossword-grpo.yaml", "gsm8k-grpo-vllm.yaml", "gsm8k-grpo-vllm-full.yaml"} <= names


# GRPOConfig(use_vllm=True) constructs without vllm installed (TRL imports it only in
# the trainer), so the GPU recipes are validated as they are, nothing popped.
@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda path: path.stem)
def test_every_recipe_loads_and_resolves_to_a_grpo_config(path):
    recipe = load_recipe(path)
    run = resolve_run(recipe, "cpu")
    config, notes = run.grpo, run.notes
    assert config.output_dir == recipe.output_dir and run.output_dir == Path(recipe.output_dir)
    assert config.seed == recipe.seed
    for key, value in recipe.grpo.items():
        assert getattr(config, key) == value or key == "scale_rewards", key  # TRL maps scale_rewards false -> "none"
    assert config.max_completion_length >= recipe.thinking.max_thinking_tokens
    assert notes


def test_gpu_recipes_use_vllm_and_keep_their_bf16_on_a_cpu_host():
    config = resolve_run(load_recipe(RECIPES / "gsm8k-grpo-vllm.yaml"), "cpu").grpo
    assert config.use_vllm and config.vllm_mode == "colocate"
    assert config.bf16 is True
    assert load_recipe(RECIPES / "gsm8k-grpo-vllm-full.yaml").peft is None
    assert lora_config(load_recipe(RECIPES / "gsm8k-grpo-vllm.yaml")).r == 32


def test_hedge_recipe_does_not_scale_by_group_std():
    config = resolve_run(load_recipe(RECIPES / "hedge-calibration-cpu.yaml"), "cpu").grpo
    assert config.scale_rewards != "group"
    assert load_recipe(RECIPES / "hedge-calibration-cpu.yaml").rewards[0].scheme == "default"


def test_set_beats_yaml_beats_default(tmp_path):
    path = write(tmp_path, "thinking: {max_thinking_tokens: 64}\ngrpo: {learning_rate: 1.0e-4}\n")
    from_yaml = load_recipe(path)
    assert from_yaml.thinking.max_thinking_tokens == 64  # YAML beats the default 128
    assert from_yaml.thinking.min_thinking_tokens == 0  # a partial block keeps the other defaults
    assert from_yaml.grpo == {"learning_rate": 1e-4}
    overridden = load_recipe(path, ["thinking.max_thinking_tokens=32", "grpo.learning_rate=5e-6"])
    assert overridden.thinking.max_thinking_tokens == 32
    assert overridden.grpo["learning_rate"] == 5e-6
    assert load_recipe(None) == Recipe()


def test_set_reaches_list_entries_and_starts_blocks():
    recipe = load_recipe(None, ["tasks.0.size=128", "peft.r=16", "peft.target_modules=[q_proj, v_proj]",
                                "tasks.1.name=gsm8k", "eval.budgets=[0, 16]"])
    assert recipe.tasks == (TaskMix("arith", size=128), TaskMix("gsm8k"))
    assert recipe.peft == {"r": 16, "target_modules": ["q_proj", "v_proj"]}
    assert recipe.eval.budgets == (0, 16)
    with pytest.raises(ValueError, match="tasks.5.*list index below 2"):
        load_recipe(None, ["tasks.5.size=1"])


def test_yaml_1_2_floats_are_numbers_not_strings(tmp_path):
    # PyYAML alone reads 1e-4 as the string "1e-4", which TRL would accept
    recipe = load_recipe(write(tmp_path, "grpo: {learning_rate: 1e-4}\n"), ["tasks.0.weight=2e0"])
    assert recipe.grpo["learning_rate"] == 1e-4
    assert recipe.tasks[0].weight == 2.0


def test_task_names_are_shorthand_for_task_entries(tmp_path):
    recipe = load_recipe(write(tmp_path, "tasks: [arith, sudoku]\n"))
    assert [mix.name for mix in recipe.tasks] == ["arith", "sudoku"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["thinking.max_thinking_token=64"], r"thinking\.max_thinking_token.*did you mean 'max_thinking_tokens'"),
        (["modle=x"], r"unknown key 'modle'.*did you mean 'model'"),
        (["tasks.0.sizes=3"], r"tasks\.0\.sizes.*did you mean 'size'"),
        (["rewards.0.schema=binary"], r"rewards\.0\.schema.*did you mean 'scheme'"),
        (["eval.budget=[1]"], r"eval\.budget.*did you mean 'budgets'"),
    ],
)
def test_unknown_key_of_ours_is_named_with_a_suggestion(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(None, overrides)


@pytest.mark.parametrize(
    "text, message",
    [
        ("thinking: {max_thinking_tokens: many}\n", r"thinking\.max_thinking_tokens: 'many' is not a whole number"),
        ("thinking: {max_thinking_tokens: 1.5}\n", r"thinking\.max_thinking_tokens: 1\.5 is not a whole number"),
        ("seed: true\n", r"seed: True is not a whole number"),  # bools are ints in Python, not here
        ("tasks: 5\n", r"tasks\.0: expected a mapping of TaskMix fields, got 5"),
        ("peft: [r, 16]\n", r"peft: .* is not a mapping"),
        ("thinking: 64\n", r"thinking: expected a mapping of ThinkingSpec fields"),
    ],
)
def test_wrong_type_names_key_and_value(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(write(tmp_path, text))


def test_values_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"min_thinking_tokens=200 exceeds max_thinking_tokens=128"):
        load_recipe(None, ["thinking.min_thinking_tokens=200"])
    with pytest.raises(ValueError, match=r"tasks\.0\.size=0 must be above 0"):
        load_recipe(None, ["tasks.0.size=0"])


def test_a_set_without_equals_says_how_to_write_it():
    with pytest.raises(ValueError, match="not key=value"):
        load_recipe(None, ["thinking.max_thinking_tokens"])


def test_unknown_verifier_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"rewards\.0\.verifier: unknown verifier 'mathh'.*math"):
        load_recipe(None, ["rewards.0.verifier=mathh"])
    with pytest.raises(ValueError, match=r"rewards\.0\.verifier: .*has no attribute 'nope'"):
        load_recipe(None, ["rewards.0.verifier=rlcot.verifiers.math:nope"])
    assert load_recipe(None, ["rewards.0.verifier=sudoku"]).rewards[0].verifier == "sudoku"


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match=r"rewards\.0\.scheme: scheme 'hedge'"):
        load_recipe(None, ["rewards.0.scheme=hedge"])


def test_unknown_task_and_task_option_are_refused():
    with pytest.raises(ValueError, match=r"tasks\.0: unknown task 'arithmetic'.*jsonl:PATH"):
        load_recipe(None, ["tasks.0.name=arithmetic"])
    with pytest.raises(ValueError, match=r"tasks\.0: task 'arith' has no option\(s\) unanswerble"):
        load_recipe(None, ["tasks.0.options={unanswerble: 0.3}"])


def test_bad_peft_key_is_named_with_a_suggestion_or_the_valid_keys():
    with pytest.raises(ValueError, match=r"peft\.lora_alpah.*did you mean 'lora_alpha'"):
        load_recipe(None, ["peft.lora_alpah=32"])
    with pytest.raises(ValueError, match=r"peft\.zzz.*LoraConfig takes .*lora_alpha.*target_modules"):
        load_recipe(None, ["peft.zzz=1"])


def test_unknown_grpo_key_gets_trls_nearest_field():
    recipe = load_recipe(None, ["grpo.learning_rat=1e-5"])  # ours are fine; TRL's are checked by TRL's fields
    with pytest.raises(ValueError, match=r"grpo\.learning_rat \(did you mean 'learning_rate'\?\)"):
        resolve_run(recipe, "cpu")


@pytest.mark.parametrize(
    "overrides, message",
    [
        # TRL's message does not name num_generations; ours does
        (["grpo.num_generations=1"], r"grpo\.num_generations=1: .*at least 2 generations"),
        # per_device_train_batch_size alone is what breaks against TRL's default num_generations=8
        (["grpo.per_device_train_batch_size=3"],
         r"grpo\.per_device_train_batch_size=3: .*divisible by num_generations"),
        (["grpo.save_strategy=sometimes"], r"grpo\.save_strategy='sometimes': .*not a valid SaveStrategy"),
        # TRL itself takes a string learning rate and fails at the first optimizer step
        (["grpo.learning_rate=fast"], r"grpo\.learning_rate='fast': .*expects a number"),
    ],
)
def test_trl_rejected_value_gets_the_key_and_trls_reason(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_run(load_recipe(None, overrides), "cpu")


def test_seed_and_output_dir_belong_at_the_top_level():
    with pytest.raises(ValueError, match=r"grpo\.seed duplicates.*top level"):
        load_recipe(None, ["grpo.seed=3"])


def test_cpu_defaults_are_applied_and_noted():
    run = resolve_run(load_recipe(None), device="cpu", output_dir="elsewhere")
    config, notes = run.grpo, run.notes
    assert config.bf16 is False and config.use_cpu is True  # the conftest's CPU: bf16 at 0.2x fp32
    assert any("bf16=False" in note and "0.20x" in note and "resolve_dtype" in note for note in notes)
    assert any("use_cpu=True" in note for note in notes)
    assert config.output_dir == "elsewhere" and run.output_dir == Path("elsewhere")
    assert config.max_completion_length == 128 + 64 + 32  # thinking cap + arith's answer cap + margin
    assert config.logging_steps == 1 and config.report_to == []
    assert config.save_steps == 10 and config.save_total_limit is None  # full fine-tune: big checkpoints
    assert any("save_steps=10" in note and "up to 9 steps" in note for note in notes)
    assert run.lora is None and config.reward_weights is None  # one reward: TRL's weight of 1


def test_lora_runs_checkpoint_every_step_and_keep_the_last_three():
    run = resolve_run(load_recipe(None, ["peft.r=8", "peft.target_modules=[q_proj]"]), device="cpu")
    assert run.grpo.save_steps == 1 and run.grpo.save_total_limit == 3
    assert any("at most the step in flight" in note for note in run.notes)
    assert run.lora.r == 8 and run.lora.target_modules == {"q_proj"}
    config = resolve_run(load_recipe(None, ["peft.r=8", "grpo.save_steps=5"]), device="cpu").grpo
    assert config.save_steps == 5 and config.save_total_limit == 3  # the recipe's own choice wins


@pytest.mark.parametrize("fp32, bf16, chosen", [
    (100.0, 600.0, True),  # AMX-like
    (100.0, 150.0, True),  # exactly the threshold sweeps use (rlcot.dtypes.BF16_MIN_SPEEDUP)
    (100.0, 149.0, False),  # faster, not clearly
    (100.0, 20.0, False),  # emulated bf16
])
def test_training_chooses_bf16_on_cpu_by_the_probe_and_threshold_sweeps_use(stub_matmul_speeds, fp32, bf16, chosen):
    import torch

    from rlcot.dtypes import resolve_dtype

    stub_matmul_speeds(fp32, bf16)
    run = resolve_run(load_recipe(None), device="cpu")
    assert run.grpo.bf16 is chosen and run.grpo.use_cpu is True
    assert chosen == (resolve_dtype("auto", "cpu").dtype == torch.bfloat16)  # the sweeps' choice, the same
    (note,) = [note for note in run.notes if note.startswith("bf16=")]
    assert f"bf16={chosen}" in note and f"({bf16 / fp32:.2f}x)" in note  # the measured speeds, for run.json
    assert ("autocast" in note) is chosen


def test_off_cpu_the_bf16_choice_is_trls_and_nothing_is_probed(stub_matmul_speeds):
    asked = stub_matmul_speeds(100.0, 600.0)
    run = resolve_run(load_recipe(None, ["grpo.bf16=false"]), device="cuda")
    assert asked == [] and not any(note.startswith(("bf16=", "use_cpu=")) for note in run.notes)


def test_explicit_settings_are_kept_and_not_noted(stub_matmul_speeds):
    asked = stub_matmul_speeds(100.0, 20.0)
    run = resolve_run(load_recipe(None, ["grpo.bf16=true", "grpo.max_completion_length=100", "grpo.save_steps=3"]),
                      device="cpu")
    config, notes = run.grpo, run.notes
    assert config.bf16 is True and asked == []  # an AMX CPU may want it: taken as given, nothing measured
    assert config.use_cpu is True  # still set, so TRL accepts it
    assert config.max_completion_length == 100 and config.save_steps == 3
    assert not any("bf16=False" in note or "max_completion_length" in note or "save_steps" in note for note in notes)
    assert run.answer_cap == 64  # the rollouts' answer cap is the task's still


def test_answer_cap_comes_from_the_largest_task_unless_set():
    run = resolve_run(load_recipe(None, ["tasks.1.name=sudoku"]), "cpu")
    assert run.answer_cap == run.budget.max_answer_tokens == 200  # sudoku's, for arith's rows too
    assert run.grpo.max_completion_length == 128 + 200 + 32
    capped = resolve_run(load_recipe(None, ["thinking.max_answer_tokens=10"]), "cpu")
    assert capped.answer_cap == 10 and capped.grpo.max_completion_length == 128 + 10 + 32


def test_the_rollout_budget_and_eval_curves_come_from_the_recipe():
    recipe = load_recipe(None, ["thinking.max_thinking_tokens=48", "thinking.min_thinking_tokens=8",
                                "tasks.0.size=10", "tasks.0.eval_size=3", "tasks.1.name=arith", "tasks.1.eval_size=0",
                                "eval.budgets=[0, 16]", "seed=5"])
    run = resolve_run(recipe, "cpu")
    assert (run.budget.max_thinking_tokens, run.budget.min_thinking_tokens, run.answer_cap) == (48, 8, 64)
    first, second = (curve for curve in run.eval_curves if curve.kind == "greedy")
    assert (first.key, first.task, first.limit, first.skip, first.budgets, first.seed) == ("arith", "arith", 3, 10,
                                                                                          (0, 16), 5)
    assert (second.key, second.limit) == ("arith#2", 0)  # eval_size 0: no curve
    assert first.max_answer_tokens is None  # each task's own cap, as a sweep takes it (not the rollouts' largest)


def test_several_rewards_weigh_in_as_trls_reward_weights_and_are_noted():
    run = resolve_run(load_recipe(None, ["rewards.1.scheme=binary", "rewards.1.weight=0.5"]), "cpu")
    assert run.grpo.reward_weights == [1.0, 0.5] and any("reward_weights=[1.0, 0.5]" in n for n in run.notes)
    assert resolve_run(load_recipe(None, ["rewards.1.weight=0.5", "grpo.reward_weights=[2.0, 1.0]"]),
                       "cpu").grpo.reward_weights == [2.0, 1.0]  # the recipe's own


def test_the_run_record_holds_the_recipe_trls_fields_and_the_notes(tmp_path):
    run = resolve_run(load_recipe(None), "cpu", tmp_path)
    record = json.loads(json.dumps(run.record(), default=str))
    assert record["recipe"] == resolved(run.recipe) and record["notes"] == list(run.notes)
    assert record["grpo"]["output_dir"] == str(tmp_path) and record["grpo"]["max_completion_length"] == 224


def test_resolved_is_json_and_reads_back_to_the_same_recipe(tmp_path):
    recipe = load_recipe(RECIPES / "hedge-calibration-cpu.yaml", ["tasks.0.size=7"])
    data = resolved(recipe)
    json.dumps(data)
    assert load_recipe(write(tmp_path, yaml.safe_dump(data))) == recipe


def test_describe_shows_ours_and_only_trls_changed_fields():
    recipe = load_recipe(RECIPES / "arith-grpo-cpu.yaml")
    text = describe(resolve_run(recipe, "cpu"))
    shown = yaml.safe_load(text)
    assert shown["thinking"]["max_thinking_tokens"] == 128
    trl_fields = shown["trl.GRPOConfig"]
    assert trl_fields["learning_rate"] == 1e-4 and trl_fields["bf16"] is False
    assert "accelerator_config" not in trl_fields  # derived by TRL, not chosen by anyone
    assert "beta" not in trl_fields  # left at TRL's default


def test_missing_recipe_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_each_task_gets_a_mean_at_k_curve_at_the_training_temperature_before_its_greedy_one(tmp_path):
    recipe = Recipe(tasks=(TaskMix("arith", size=8, eval_size=4),), grpo={"temperature": 0.7})
    sampled, greedy = resolve_run(recipe, "cpu", tmp_path).eval_curves
    assert (sampled.key, sampled.kind, sampled.samples, sampled.temperature) == ("arith-sampled", "sampled", 4, 0.7)
    assert (greedy.key, greedy.kind, greedy.samples, greedy.temperature) == ("arith", "greedy", 1, 0.0)
    assert (sampled.skip, sampled.limit, sampled.budgets) == (greedy.skip, greedy.limit, greedy.budgets)  # same rows
    from rlcot.train.recipe import EvalSpec

    off = Recipe(tasks=recipe.tasks, eval=EvalSpec(sampled=0))
    assert [c.kind for c in resolve_run(off, "cpu", tmp_path).eval_curves] == ["greedy"]
    with pytest.raises(ValueError, match=r"eval\.sampled=-1"):
        load_recipe(None, ["eval.sampled=-1"])


def test_task_keys_are_folder_names_even_for_tasks_named_by_a_path():
    from rlcot.train.recipe import task_keys

    recipe = Recipe(tasks=(TaskMix("arith"), TaskMix("hf:/data/math500.parquet@test"), TaskMix("arith"),
                           TaskMix("hf:data/math500.parquet:main@test")))
    # the eval curves go to eval/<key>: no separators, and two paths that read alike still get two folders
    assert task_keys(recipe) == ["arith", "hf_data_math500.parquet_test", "arith#2", "hf_data_math500.parquet_main_test"]
    alike = Recipe(tasks=(TaskMix("hf:/a/m.parquet"), TaskMix("hf:/a_m.parquet")))
    assert task_keys(alike) == ["hf_a_m.parquet", "hf_a_m.parquet#2"]
