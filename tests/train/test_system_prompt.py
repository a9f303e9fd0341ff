"""thinking.system_prompt: one system message for every prompt of a run, and sweeps of the run ask the same way."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from rlcot.evals.sweep_spec import ModelRef, SweepSpec, sweep_protocol
from rlcot.runinfo import run_of
from rlcot.store import load_traces
from rlcot.thinking import ThinkingProtocol
from rlcot.train.data import build_data, sft_examples
from rlcot.train.recipe import EvalSpec, Recipe, TaskMix, ThinkingSpec, load_recipe
from rlcot.train.resolve import resolve_run

SMOLLM_DEFAULT = "You are a helpful AI assistant named SmolLM"  # what SmolLM2's template inserts
EMPTY_SYSTEM = "<|im_start|>system\n<|im_end|>\n"  # the empty system block "" leaves


def recipe_for(model: str, out: Path, system_prompt: str | None) -> Recipe:
    return Recipe(model=model, tasks=(TaskMix("arith", size=4, eval_size=2),),
                  thinking=ThinkingSpec(max_thinking_tokens=4, max_answer_tokens=4, system_prompt=system_prompt),
                  eval=EvalSpec(budgets=(0, 2), sampled=0), output_dir=str(out))


# ---------------------------------------------------------------- the recipe field


@pytest.mark.parametrize("text, expected", [
    ("", None),  # left out: the chat template's own
    ("thinking: {system_prompt: null}\n", None),
    ("thinking: {system_prompt: ''}\n", ""),
    ("thinking: {system_prompt: You add numbers.}\n", "You add numbers."),
])
def test_the_system_prompt_reads_from_yaml(tmp_path, text, expected):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    assert load_recipe(path).thinking.system_prompt == expected


@pytest.mark.parametrize("override, expected", [
    ('thinking.system_prompt=""', ""),  # quoted: the empty string
    ("thinking.system_prompt=", None),  # a bare = is YAML's null: the template's own
    ("thinking.system_prompt=You add numbers.", "You add numbers."),
])
def test_the_system_prompt_is_set_from_the_command_line(override, expected):
    assert load_recipe(None, [override]).thinking.system_prompt == expected


@pytest.mark.parametrize("value", ["5", "[a, b]", "{a: 1}", "true"])
def test_a_system_prompt_that_is_not_a_string_is_named_with_the_fix_in_one_line(tmp_path, value):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"thinking: {{system_prompt: {value}}}\n")
    with pytest.raises(ValueError, match=r"^thinking\.system_prompt: .* is not a string; fix the recipe or --set "
                                         r"thinking\.system_prompt=") as err:
        load_recipe(path)
    assert "\n" not in str(err.value)


def test_the_run_record_keeps_the_system_prompt(tmp_path):
    run = resolve_run(recipe_for("smollm2-135m", tmp_path, ""), "cpu", tmp_path)
    assert run.record()["recipe"]["thinking"]["system_prompt"] == ""
    assert run.protocol == ThinkingProtocol(system="")


# ---------------------------------------------------------------- every prompt of the run


@pytest.mark.parametrize("system_prompt, opening", [(None, SMOLLM_DEFAULT), ("", EMPTY_SYSTEM),
                                                     ("You add numbers.", "You add numbers.")])
def test_training_prompts_and_sft_examples_carry_the_recipes_system_prompt(tmp_path, tokenizer, system_prompt,
                                                                         opening):
    data = build_data(recipe_for("smollm2-135m", tmp_path, system_prompt), tokenizer)
    assert data.protocol.system == system_prompt
    prompts = [line["prompt"] for line in data.train_rows]
    assert all(opening in prompt for prompt in prompts)
    if system_prompt is not None:
        assert not any(SMOLLM_DEFAULT in prompt for prompt in prompts)
    assert [example["prompt"] for example in sft_examples(data, tokenizer)] == prompts


def test_an_empty_system_prompt_saves_sixteen_tokens_a_prompt(tmp_path, tokenizer):
    def tokens(system_prompt):
        data = build_data(recipe_for("smollm2-135m", tmp_path, system_prompt), tokenizer)
        return [len(tokenizer.encode(line["prompt"], add_special_tokens=False)) for line in data.train_rows]

    assert [a - b for a, b in zip(tokens(None), tokens(""))] == [16] * 4


def test_data_built_with_another_system_message_than_the_recipes_is_refused(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"system message None is not the recipe's thinking\.system_prompt ''; "
                                         r"build the data with recipe\.thinking\.protocol\(\)"):
        build_data(recipe_for("smollm2-135m", tmp_path, ""), tokenizer, ThinkingProtocol())


def test_a_trainer_refuses_a_protocol_other_than_its_datas(tmp_path, tiny_dir, tokenizer, tiny_model):
    from rlcot.train.trainer import build_trainer

    recipe = recipe_for(str(tiny_dir), tmp_path, "")
    run = resolve_run(recipe, "cpu", tmp_path)
    with pytest.raises(ValueError, match="is not the one the training data was built with"):
        build_trainer(run, tiny_model, tokenizer, ThinkingProtocol(system="other"), build_data(recipe, tokenizer))


def test_the_eval_curves_ask_with_the_recipes_system_prompt(tmp_path, tiny_dir, tokenizer):
    from rlcot.evals.training import EvalCurves, sweep_spec
    from rlcot.models import load_policy

    run = resolve_run(recipe_for(str(tiny_dir), tmp_path, ""), "cpu", tmp_path)
    assert all(curve.system_prompt == "" and sweep_spec(curve, "m").system_prompt == "" for curve in run.eval_curves)
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    EvalCurves(run, tok).curve(model, "step 0", step=0)
    traces = load_traces(tmp_path / "eval" / "arith")
    assert traces and all(trace.prompt.startswith(EMPTY_SYSTEM) for trace in traces)
    assert all(trace.protocol["system"] == "" for trace in traces)


# ---------------------------------------------------------------- sweeps of a trained run


def fake_run(root: Path, tiny_dir: Path, system_prompt=..., with_record: bool = True) -> Path:
    """A training run's directory: final weights (the tiny model) and a run.json recording the recipe."""
    run = root / "run"
    shutil.copytree(tiny_dir, run)
    if with_record:
        thinking = {"max_thinking_tokens": 4} if system_prompt is ... else {"system_prompt": system_prompt}
        (run / "run.json").write_text(json.dumps({"config": {"recipe": {"thinking": thinking}}}))
    else:
        (run / "metrics.jsonl").write_text("")
    return run


def test_a_sweep_of_a_trained_run_asks_with_the_runs_system_prompt(tmp_path, tiny_dir):
    from rlcot.evals.sweep import run_sweep

    run = fake_run(tmp_path, tiny_dir, "")
    spec = SweepSpec(models=(str(run),), budgets=(0, 2), limit=2, max_answer_tokens=4, dtype="fp32", device="cpu")
    report = run_sweep(spec, tmp_path / "sweep")
    traces = load_traces(tmp_path / "sweep")
    assert traces and all(trace.prompt.startswith(EMPTY_SYSTEM) for trace in traces)
    assert any("trained with" in note for note in report.notes)


@pytest.mark.parametrize("recorded", [
    ...,  # a run from before thinking.system_prompt: its recipe has no such key
    None,  # recorded as null
])
def test_a_run_that_trained_on_the_templates_system_prompt_is_swept_with_it(tmp_path, tiny_dir, recorded):
    run = fake_run(tmp_path, tiny_dir, recorded)
    protocol, notes = sweep_protocol(SweepSpec(models=(str(run),)), [ModelRef("run", str(run))])
    assert protocol.system is None and notes == []


def test_a_run_without_run_json_is_swept_with_the_templates_system_prompt(tmp_path, tiny_dir):
    run = fake_run(tmp_path, tiny_dir, with_record=False)
    assert sweep_protocol(SweepSpec(models=(str(run),)), [ModelRef("run", str(run))])[0].system is None


def test_the_specs_system_prompt_wins_over_the_runs_with_a_note(tmp_path, tiny_dir):
    run = fake_run(tmp_path, tiny_dir, "")
    protocol, notes = sweep_protocol(SweepSpec(models=(str(run),), system_prompt="Be brief."),
                                     [ModelRef("run", str(run))])
    assert protocol.system == "Be brief."
    assert notes == [f"{run}: trained with system prompt '', swept with the spec's 'Be brief.'"]


def test_runs_trained_with_different_system_prompts_cannot_share_a_sweep(tmp_path, tiny_dir):
    first, second = fake_run(tmp_path / "a", tiny_dir, ""), fake_run(tmp_path / "b", tiny_dir, None)
    refs = [ModelRef("a", str(first)), ModelRef("b", str(second))]
    with pytest.raises(ValueError, match=r"trained with different system prompts .* sweep each into its own --out, "
                                         r"or pass --system-prompt"):
        sweep_protocol(SweepSpec(models=(str(first), str(second))), refs)


def test_a_base_model_beside_a_run_is_asked_as_the_run_was_trained(tmp_path, tiny_dir):
    run = fake_run(tmp_path, tiny_dir, "")
    refs = [ModelRef("base", "smollm2-135m"), ModelRef("run", str(run))]
    assert sweep_protocol(SweepSpec(models=("smollm2-135m", str(run))), refs)[0].system == ""


@pytest.mark.parametrize("value", [5, ["a"]])
def test_a_sweep_specs_system_prompt_must_be_a_string(value):
    with pytest.raises(ValueError, match=re.escape(f"system_prompt={value!r} is not a string")):
        SweepSpec(system_prompt=value)


def test_a_recorded_system_prompt_that_is_not_a_string_is_refused_naming_the_file(tmp_path, tiny_dir):
    run = fake_run(tmp_path, tiny_dir, 7)
    with pytest.raises(ValueError, match=r"run\.json records thinking\.system_prompt=7, not a string"):
        sweep_protocol(SweepSpec(models=(str(run),)), [ModelRef("run", str(run))])


def test_a_checkpoint_or_the_warm_up_model_belongs_to_its_run(tmp_path, tiny_dir):
    run = fake_run(tmp_path, tiny_dir, "")
    (run / "checkpoint-3").mkdir()
    (run / "sft-warmup" / "model").mkdir(parents=True)
    assert run_of(run) == run
    assert run_of(run / "checkpoint-3") == run
    assert run_of(run / "sft-warmup" / "model") == run
    assert run_of(tiny_dir) is None and run_of("smollm2-135m") is None


def test_rlcot_sweep_takes_a_system_prompt_flag(tmp_path, tiny_dir):
    from typer.testing import CliRunner

    from rlcot.cli import app

    result = CliRunner().invoke(app, ["sweep", "--model", str(tiny_dir), "--out", str(tmp_path / "sweep"), "--limit",
                                      "1", "--budgets", "0", "--dtype", "fp32", "--max-answer-tokens", "2",
                                      "--no-gold-logprob", "--system-prompt", ""])
    assert result.exit_code == 0, result.output
    traces = load_traces(tmp_path / "sweep")
    assert traces and all(trace.prompt.startswith(EMPTY_SYSTEM) for trace in traces)
