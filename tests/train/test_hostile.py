"""`rlcot train` against hostile input (issue 16): nonsense numbers in a recipe, a run directory
damaged by a kill, outputs and models that are not what they claim. Each is refused in one sentence
naming the value and the fix, before a model loads, and a failed resume rewrites nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlcot.train.callbacks import RunStart
from rlcot.train.preflight import preflight
from rlcot.train.recipe import EvalSpec, Recipe, RewardSpec, TaskMix, ThinkingSpec, load_recipe
from rlcot.train.resolve import resolve_run
from rlcot.train.trainer import run_training

# ------------------------------------------------------------------ numbers in a recipe


def test_max_steps_below_one_is_refused_except_trls_minus_one_for_unset():
    assert load_recipe(None, ["grpo.max_steps=-1"]).grpo["max_steps"] == -1  # TRL's "train num_train_epochs"
    for value in ("-5", "0"):  # TRL trained 3 epochs (~768 steps) for either
        with pytest.raises(ValueError, match=rf"grpo\.max_steps={value} must be at least 1, or -1 .*--set grpo\.max_"):
            load_recipe(None, [f"grpo.max_steps={value}"])


@pytest.mark.parametrize("override, key", [
    ("grpo.learning_rate=.nan", "grpo.learning_rate"),  # YAML's NaN: trains to NaN weights
    ("grpo.learning_rate=1e999", "grpo.learning_rate"),  # overflows to inf as it is read
    ("grpo.warmup_steps=.nan", "grpo.warmup_steps"),  # TRL refuses negatives, not NaN
    ("grpo.reward_weights=[1.0, .nan]", "grpo.reward_weights.1"),  # inside a list
    ("tasks.0.weight=.inf", "tasks.0.weight"),  # ours: an infinite mixing weight
    ("eval.temperature=.inf", "eval.temperature"),  # ours: passed "at least 0"
    ("peft.lora_alpha=.nan", "peft.lora_alpha"),  # the peft: block
    ("sft_warmup.learning_rate=-.inf", "sft_warmup.learning_rate"),  # the sft_warmup: block
])
def test_nan_and_infinity_are_refused_in_every_block_naming_the_key(override, key):
    with pytest.raises(ValueError, match=rf"^{key}=-?(nan|inf) is not a finite number; .*--set {key}="):
        load_recipe(None, [override])


@pytest.mark.parametrize("key, value", [
    ("learning_rate", -1.0e-5),
    ("num_generations", 0),  # TRL: "integer modulo by zero", naming nothing
    ("per_device_train_batch_size", 0),
    ("gradient_accumulation_steps", -1),
    ("max_completion_length", 0),
    ("temperature", 0.0),  # logits are divided by it
    ("temperature", -1.0),
    ("top_p", 0.0),
    ("top_p", 1.5),
    ("top_k", -1),
    ("beta", -0.1),
    ("epsilon", -0.2),
    ("save_steps", 0),
    ("logging_steps", -1),
    ("num_train_epochs", 0),
    ("num_iterations", 0),
    ("adam_beta2", 1.5),
])
def test_grpo_values_without_meaning_are_refused_at_load_naming_key_value_and_fix(key, value):
    with pytest.raises(ValueError, match=rf"^grpo\.{key}={value!r} must be .*; fix the recipe or --set grpo\.{key}="):
        load_recipe(None, [f"grpo.{key}={value}"])
    # a recipe built in code, never loaded, meets the same check when it is resolved
    with pytest.raises(ValueError, match=rf"^grpo\.{key}={value!r} must be "):
        resolve_run(Recipe(grpo={key: value}), "cpu")


@pytest.mark.parametrize("override, message", [
    ("seed=-1", r"seed=-1 must be between 0 and 2\*\*32 - 1"),  # numpy refused it once the model had loaded
    ("peft.r=0", r"peft\.r=0 must be at least 1"),  # PEFT refused it once the model had loaded
    ("sft_warmup.learning_rate=-0.1", r"sft_warmup\.learning_rate=-0\.1 must be at least 0"),
])
def test_our_fields_and_the_other_blocks_refuse_values_without_meaning(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(None, [override])


# ------------------------------------------------------------------ preflight: output and model


def tiny_recipe(model: Path | str, out: Path, **fields) -> Recipe:
    return Recipe(model=str(model), tasks=(TaskMix("arith", size=8, eval_size=2),),
                  rewards=(RewardSpec(verifier="tests.train.plugins:even_length"),),
                  thinking=ThinkingSpec(max_thinking_tokens=6, max_answer_tokens=4),
                  grpo={"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 2, "save_steps": 1},
                  eval=EvalSpec(budgets=(0,)), output_dir=str(out), **fields)


def test_preflight_refuses_an_output_directory_that_is_a_file_or_lies_under_one(tmp_path, tiny_dir):
    taken = tmp_path / "taken"
    taken.write_text("precious\n")
    with pytest.raises(ValueError, match=rf"--out {taken} is a file"):
        preflight(tiny_recipe(tiny_dir, tmp_path), taken)
    with pytest.raises(ValueError, match=rf"{taken} is a file, not a directory"):
        preflight(tiny_recipe(tiny_dir, tmp_path), taken / "run")
    with pytest.raises(ValueError, match=rf"^output_dir {taken} is a file"):  # no --out: the recipe's key is named
        preflight(tiny_recipe(tiny_dir, taken))
    assert taken.read_text() == "precious\n"


@pytest.mark.parametrize("model", [
    "./no-such-model",  # relative
    "/no/such/model",  # absolute
    "~/no-such-model-dir",  # home-relative
    "runs/no-such-model",  # runs/ exists here: a mistyped path, not a hub owner
])
def test_preflight_refuses_a_model_path_that_does_not_exist(tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match=rf"model {model!r}.*(no such directory|does not exist)"):
        preflight(tiny_recipe(model, tmp_path / "out"))


@pytest.mark.parametrize("model", ["smollm2-135m", "someorg/not-downloaded-here"])
def test_preflight_passes_a_built_in_name_and_a_hub_id_not_downloaded(tmp_path, monkeypatch, model):
    monkeypatch.chdir(tmp_path)
    assert preflight(tiny_recipe(model, tmp_path / "out")) is None
    assert not (tmp_path / "out").exists()  # preflight reads, never writes


@pytest.mark.parametrize("targets, bad", [
    (["q_proj", "q_prj"], "q_prj"),  # a typo beside a real name: PEFT trained q_proj alone, silently
    (["attn"], "attn"),  # a suffix must be a whole dotted part (self_attn), as in PEFT
    (r".*\.nothing_proj", r".*\.nothing_proj"),  # one string is a regex over the full module name
])
def test_preflight_refuses_a_lora_target_module_the_model_lacks(tmp_path, tiny_dir, targets, bad):
    recipe = tiny_recipe(tiny_dir, tmp_path, peft={"r": 4, "target_modules": targets})
    with pytest.raises(ValueError, match=rf"peft\.target_modules {bad!r} matches no module of model"):
        preflight(recipe, tmp_path / "out")


def test_preflight_says_which_target_was_meant_and_lists_the_linear_layers(tmp_path, tiny_dir):
    recipe = tiny_recipe(tiny_dir, tmp_path, peft={"target_modules": ["q_prj"]})
    with pytest.raises(ValueError, match=r"did you mean 'q_proj'.*k_proj.*v_proj"):
        preflight(recipe, tmp_path / "out")


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["self_attn.q_proj"], "all-linear", r".*\.(q|v)_proj"])
def test_preflight_passes_lora_targets_peft_would_match(tmp_path, tiny_dir, targets):
    assert preflight(tiny_recipe(tiny_dir, tmp_path, peft={"target_modules": targets}), tmp_path / "out") is None


def test_preflight_skips_the_lora_check_rather_than_convert_an_uncached_built_in(tmp_path, monkeypatch):
    monkeypatch.setattr("rlcot.train.preflight.is_cached", lambda name: False)

    def convert(name):
        raise AssertionError("converted the built-in model just to check its module names")

    monkeypatch.setattr("rlcot.models.ensure_builtin_cached", convert)
    preflight(tiny_recipe("smollm2-135m", tmp_path, peft={"target_modules": ["no_such_proj"]}), tmp_path / "out")


# ------------------------------------------------------------------ resume: a run directory damaged by a kill


def killed_run(root: Path, metrics_tail: bytes = b"") -> Path:
    """A run directory as a kill leaves it: checkpoint-2, run.json, logs of steps 1-3 (and a tail)."""
    (root / "checkpoint-2").mkdir(parents=True)
    (root / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (root / "run.json").write_text('{"recipe": "the run as it was"}\n')
    lines = b"".join(json.dumps({"step": step, "reward": 0.5}).encode() + b"\n" for step in (1, 2, 3))
    (root / "metrics.jsonl").write_bytes(lines + metrics_tail)
    traces = b"".join(json.dumps({"step": step, "completion": "x"}).encode() + b"\n" for step in (0, 1, 2))
    (root / "rollouts.jsonl").write_bytes(traces + b'{"step": 3, "completion": "unterminat')
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in root.iterdir() if path.is_file()}


@pytest.mark.parametrize("name, damage, line", [
    ("metrics.jsonl", b'{"step": 2, "reward": "unterminated\n', 2),  # invalid JSON before the last line
    ("metrics.jsonl", b'{"reward": 0.5}\n', 2),  # a row with no step: _forget_after once raised KeyError
    ("rollouts.jsonl", b"\xff\xfe\n", 1),  # invalid UTF-8
])
def test_a_resume_with_a_log_damaged_before_its_last_line_fails_before_the_model_loads_naming_file_and_line(
        tmp_path, tiny_dir, monkeypatch, name, damage, line):
    run = killed_run(tmp_path / "run")
    lines = (run / name).read_bytes().split(b"\n")
    lines[line - 1] = damage.rstrip(b"\n")
    (run / name).write_bytes(b"\n".join(lines))
    before = snapshot(run)
    recipe = tiny_recipe(tiny_dir, run)
    with pytest.raises(ValueError, match=rf"{run / name}:{line}: not a log line"):
        preflight(recipe, run, resume=True)

    def no_model(*args, **kwargs):
        raise AssertionError("run_training loaded a model before refusing the resume")

    monkeypatch.setattr("rlcot.models.load_policy", no_model)
    with pytest.raises(ValueError, match=rf"{run / name}:{line}"):
        run_training(recipe, run, resume=True, device="cpu")
    assert snapshot(run) == before  # run.json, metrics.jsonl, rollouts.jsonl: byte for byte


def test_a_torn_last_log_line_passes_preflight_and_is_cut_when_the_resumed_training_begins(tmp_path, tiny_dir):
    run = killed_run(tmp_path / "run", metrics_tail=b'{"step": 4, "reward": "unterminat')  # the report's torn line
    before = snapshot(run)
    point = preflight(tiny_recipe(tiny_dir, run), run, resume=True)
    assert point.checkpoint == run / "checkpoint-2" and point.step == 2
    assert snapshot(run) == before
    RunStart(run, {"recipe": "resumed"}, point.step).on_train_begin(
        args=None, state=SimpleNamespace(is_world_process_zero=True), control=None)
    metrics = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    traces = [json.loads(text) for text in (run / "rollouts.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2]  # step 3 is redone, the torn step 4 cut
    assert [row["step"] for row in traces] == [0, 1]  # rollouts generated for steps 1 and 2
    assert json.loads((run / "run.json").read_text()) == {"recipe": "resumed"}


def test_a_resume_trl_cannot_load_leaves_run_json_and_the_logs_as_they_were(tmp_path, tiny_dir):
    # checkpoint-2 reads as complete (its trainer_state.json parses) but holds no weights: TRL fails on it
    run = killed_run(tmp_path / "run", metrics_tail=b'{"step": 4, "reward": "unterminat')
    before = snapshot(run)
    with pytest.raises(ValueError, match="checkpoint-2"):
        run_training(tiny_recipe(tiny_dir, run), run, resume=True, device="cpu")
    assert snapshot(run) == before


def test_a_resume_from_a_warm_up_that_is_missing_fails_before_the_model_loads(tmp_path, tiny_dir):
    run = killed_run(tmp_path / "run")
    before = snapshot(run)
    with pytest.raises(ValueError, match=r"sft-warmup/model is missing"):
        preflight(tiny_recipe(tiny_dir, run, sft_warmup={"steps": 2}), run, resume=True)
    assert snapshot(run) == before
