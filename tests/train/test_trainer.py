"""GRPO end to end on a tiny model: steps, weights, metrics, checkpoints, the mask TRL received, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rlcot.store import TraceStore
from rlcot.train.data import build_data
from rlcot.train.recipe import EvalSpec, Recipe, RewardSpec, TaskMix, ThinkingSpec
from rlcot.train.resolve import resolve_run
from rlcot.train.trainer import build_trainer, run_training
from rlcot.thinking import ThinkingProtocol

GRPO = {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 2, "learning_rate": 5e-3,
        "save_steps": 1, "logging_steps": 1, "report_to": "none", "temperature": 1.0}


def recipe_for(model_dir: Path, out: Path, **grpo) -> Recipe:
    # the random model never answers arith; a length-parity verifier gives rewards that vary within a group
    return Recipe(model=str(model_dir), tasks=(TaskMix("arith", size=8, eval_size=2),),
                  rewards=(RewardSpec(verifier="tests.train.plugins:even_length"),),
                  thinking=ThinkingSpec(max_thinking_tokens=6, max_answer_tokens=4),
                  grpo={**GRPO, **grpo}, eval=EvalSpec(budgets=(0, 4)), output_dir=str(out))


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_two_grpo_steps_change_the_weights_write_metrics_and_mask_forced_tokens(tmp_path, tiny_dir, tokenizer):
    from rlcot.models import load_policy

    recipe = recipe_for(tiny_dir, tmp_path)
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    assert any("bf16" in note for note in run.notes)
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    before = weights(model)
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tok, protocol, build_data(recipe, tok, protocol))
    received = []
    rollout = trainer.rollout_func

    def recording(prompts, trainer_):
        out = rollout(prompts, trainer_)
        received.append((out, list(rollout.last_traces)))
        return out

    trainer.rollout_func = recording
    trainer.train()
    assert trainer.state.global_step == 2
    after = weights(trainer.model)
    assert any(not torch.equal(before[name], after[name]) for name in before)
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "reward" in line] == [1, 2]
    assert any(key.startswith("outcomes/") for key in logs[0])
    assert (tmp_path / "checkpoint-2").is_dir()
    kept = TraceStore(tmp_path / "rollouts.jsonl").read([])  # the first 4 rollouts of each step, scored
    assert [(t.step, t.mode) for t in kept] == [(0, "rollout")] * 4 + [(1, "rollout")] * 4
    assert all(t.forced_spans and t.task["name"] == "arith" and t.row_id.startswith("arith-") for t in kept)
    assert [t.seed for t in kept] == [trace.seed for _, traces_ in received for trace in traces_[:4]]
    eos = tokenizer.eos_token_id
    for out, traces_ in received:
        for ids, mask, trace in zip(out["completion_ids"], out["env_mask"], traces_):
            assert mask[: len(trace.forced)] == [0 if forced else 1 for forced in trace.forced]
            assert any(trace.forced)  # the cap of 6 forces the delimiter and cue in every rollout
            if len(ids) > len(trace.completion_ids):  # an EOS appended to a finished answer: masked
                assert ids[-1] == eos and mask[-1] == 0 and trace.finish_reason != "length"


def test_a_bf16_step_runs_on_cpu_as_an_amx_machine_would_choose(tmp_path, tiny_dir, stub_matmul_speeds):
    from rlcot.models import load_policy

    stub_matmul_speeds(100.0, 600.0)
    recipe = recipe_for(tiny_dir, tmp_path, max_steps=1, save_strategy="no")
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    assert run.grpo.bf16 is True
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    before = weights(model)
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tok, protocol, build_data(recipe, tok, protocol))
    trainer.train()
    after = weights(trainer.model)
    assert all(p.dtype == torch.float32 for p in after.values())  # autocast: the weights stay fp32
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_several_rewards_train_with_their_weights(tmp_path, tiny_dir):
    from rlcot.models import load_policy

    recipe = replace(recipe_for(tiny_dir, tmp_path, max_steps=1, save_strategy="no"), rewards=(
        RewardSpec(verifier="tests.train.plugins:even_length"),
        RewardSpec(verifier="tests.train.plugins:even_length", scheme="binary", weight=0.5)))
    run = resolve_run(recipe, device="cpu", output_dir=tmp_path)
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    protocol = ThinkingProtocol()
    trainer = build_trainer(run, model, tok, protocol, build_data(recipe, tok, protocol))
    assert trainer.args.reward_weights == [1.0, 0.5]
    trainer.train()
    log = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert len([key for key in log if key.startswith("rewards/") and key.endswith("/mean")]) == 2


def test_resume_continues_at_the_next_step(tmp_path, tiny_dir):
    from rlcot.evals.training import EvalCurves

    recipe = recipe_for(tiny_dir, tmp_path)
    first = run_training(recipe, tmp_path, device="cpu", evals=EvalCurves)
    assert first["steps"] == 2
    longer = recipe_for(tiny_dir, tmp_path, max_steps=3)
    run_training(longer, tmp_path, resume=True, device="cpu", evals=EvalCurves)
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "reward" in line] == [1, 2, 3]
    state = json.loads((tmp_path / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["eval"]) == ["arith-sampled", "arith"]  # mean@k first: what GRPO optimizes
    assert [summary["eval"][key]["kind"] for key in summary["eval"]] == ["sampled", "greedy"]
    for key in summary["eval"]:
        curves = {line["model"] for line in summary["eval"][key]["curves"]}
        assert curves == {"step 0", "step 2", "step 3"}
        change = summary["eval"][key]["before_after"]
        assert {(line["before"], line["after"]) for line in change} == {("step 0", "step 3")}
        assert all(line["change"] == pytest.approx(line["accuracy_after"] - line["accuracy_before"])
                   for line in change)
    assert {line["samples"] for line in summary["eval"]["arith-sampled"]["before_after"]} == {4}


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, tiny_dir):
    with pytest.raises(ValueError, match="holds no checkpoint-N to resume"):
        run_training(recipe_for(tiny_dir, tmp_path), tmp_path, resume=True, device="cpu")


@pytest.mark.parametrize("recipe", sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_recipe_passes_dry_run_without_loading_a_model(recipe):
    from typer.testing import CliRunner

    from rlcot.cli import app

    result = CliRunner().invoke(app, ["train", str(recipe), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "trl.GRPOConfig" in result.output and "gold answer" in result.output
    gold = [line for line in result.output.splitlines() if " gold answer " in line]
    assert gold and all("+1.00" in line for line in gold)  # a perfect answer earns the top reward


def test_a_bad_recipe_fails_before_any_model_loads_naming_the_key(tmp_path):
    from typer.testing import CliRunner

    from rlcot.cli import app

    path = tmp_path / "bad.yaml"
    path.write_text("model: smollm2-135m\nthinking:\n  max_thinking_tokns: 64\n")
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    assert "max_thinking_tokns" in result.output and "max_thinking_tokens" in result.output
    result = CliRunner().invoke(app, ["train", "recipes/arith-grpo-cpu.yaml", "--set", "grpo.num_generations=1",
                                      "--dry-run"])
    assert result.exit_code == 2 and "grpo.num_generations" in result.output


def test_an_sft_warm_up_teaches_the_answer_format_before_grpo(tmp_path, tiny_dir):
    from dataclasses import replace

    from rlcot.models import load_policy
    from rlcot.train.trainer import sft_warmup

    recipe = replace(recipe_for(tiny_dir, tmp_path), sft_warmup={"steps": 3, "learning_rate": 1e-2})
    model, tok = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    before = weights(model)
    protocol = ThinkingProtocol()
    tuned = sft_warmup(resolve_run(recipe, "cpu", tmp_path), model, tok, build_data(recipe, tok, protocol))
    after = weights(tuned)
    assert set(after) == set(before)  # a plain model again (a LoRA warm-up is merged)
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_a_lora_run_after_an_sft_warm_up_builds_on_the_warmed_up_model_and_resumes_on_it(tmp_path, tiny_dir):
    from rlcot.evals.sweep_spec import expand_models
    from rlcot.models import load_policy

    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}
    recipe = replace(recipe_for(tiny_dir, tmp_path, max_steps=1), peft=lora,
                     sft_warmup={"steps": 2, "learning_rate": 1e-2})
    run_training(recipe, tmp_path, device="cpu")
    sft_dir = tmp_path / "sft-warmup" / "model"
    base = json.loads((tmp_path / "checkpoint-1" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == sft_dir.resolve()  # not the original model: merging into it would drop the warm-up
    warmed, _ = load_policy(str(sft_dir), device="cpu", dtype=torch.float32)
    original, _ = load_policy(str(tiny_dir), device="cpu", dtype=torch.float32)
    assert any(not torch.equal(a, b) for a, b in zip(warmed.state_dict().values(), original.state_dict().values()))
    refs = expand_models([str(tmp_path)])
    merged, _ = load_policy(refs[0].path, device="cpu", dtype=torch.float32)  # checkpoint-1 merged onto its real base
    assert set(merged.state_dict()) == set(warmed.state_dict())
    run_training(replace(recipe, grpo={**recipe.grpo, "max_steps": 2}), tmp_path, resume=True, device="cpu")
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    base = json.loads((tmp_path / "checkpoint-2" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == sft_dir.resolve()  # the resumed run loaded the warmed-up model, not the original
    import shutil

    shutil.rmtree(sft_dir)
    with pytest.raises(ValueError, match="SFT warm-up's model"):
        run_training(replace(recipe, grpo={**recipe.grpo, "max_steps": 3}), tmp_path, resume=True, device="cpu")


@pytest.mark.parametrize("bf16", [True, False])
def test_the_warm_up_trains_in_grpos_precision_so_both_run_in_one_process(tmp_path, tiny_dir, bf16):
    # accelerate keeps one mixed-precision state per process: a warm-up in fp32 before a bf16 GRPO
    # run made the trainer fail ("AcceleratorState has already been initialized") right after the warm-up
    recipe = replace(recipe_for(tiny_dir, tmp_path, max_steps=1, bf16=bf16), sft_warmup={"steps": 1})
    run_training(recipe, tmp_path, device="cpu")
    assert json.loads((tmp_path / "checkpoint-1" / "trainer_state.json").read_text())["global_step"] == 1
    assert json.loads((tmp_path / "run.json").read_text())["config"]["grpo"]["bf16"] is bf16


def test_a_run_killed_after_its_warm_up_resumes_grpo_from_it_without_warming_up_again(tmp_path, tiny_dir,
                                                                                         monkeypatch):
    import shutil

    from rlcot.train import trainer

    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}
    recipe = replace(recipe_for(tiny_dir, tmp_path, max_steps=1), peft=lora,
                     sft_warmup={"steps": 2, "learning_rate": 1e-2})
    run_training(recipe, tmp_path, device="cpu")
    for leftover in [*tmp_path.glob("checkpoint-*"), tmp_path / "summary.json"]:  # as if killed before step 1 saved
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")  # the unsaved step's log
    monkeypatch.setattr(trainer, "sft_warmup", lambda *a, **k: pytest.fail("the SFT warm-up ran again"))
    run_training(replace(recipe, grpo={**recipe.grpo, "max_steps": 2}), tmp_path, resume=True, device="cpu")
    base = json.loads((tmp_path / "checkpoint-2" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base) == (tmp_path / "sft-warmup" / "model").resolve()
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logs if "reward" in line] == [1, 2] and all(line.get("loss") != 9.0 for line in logs)


def test_sft_examples_write_the_worked_thought_then_the_gold_answer(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    from rlcot.train.data import sft_examples

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    protocol = ThinkingProtocol()
    data = build_data(recipe_for(tiny_dir, tmp_path), tok, protocol)
    examples = sft_examples(data, tok)
    assert len(examples) == len(data.train_rows)
    for example, line in zip(examples, data.train_rows):
        row = json.loads(line["row"])
        thought, rest = example["completion"].split(protocol.close_tag)
        assert thought.strip() == row["thought"] and thought.strip().endswith(f"= {row['answer']}.")
        assert rest == f"\n\nThe final answer is \\boxed{{{row['answer']}}}." + tok.eos_token


def test_the_end_of_run_summary_prints_rates_curves_and_abstain_tables(capsys):
    from rlcot.cli import training

    curve = [{"model": label, "B": b, "acc": acc} for label, accs in
             (("step 0", ("0.000", "0.100")), ("after SFT warm-up", ("0.050", "0.400")), ("step 20", ("0.050", "0.450")))
             for b, acc in zip((0, 128), accs)]
    def change(first: str) -> list[dict]:
        return [{"budget": b, "before": first, "after": "step 20", "problems": 64, "level": 0.95, "samples": 4,
                 "accuracy_before": before, "accuracy_after": after, "change": after - before,
                 "change_lo": after - before - 0.1, "change_hi": after - before + 0.1,
                 "score_before": before, "score_after": after, "score_change": after - before,
                 "score_change_lo": after - before - 0.2, "score_change_hi": after - before + 0.2,
                 "abstain_unanswerable_before": 0.1, "abstain_unanswerable_after": 0.8,
                 "abstain_answerable_before": 0.05, "abstain_answerable_after": 0.3}
                for b, before, after in ((0, 0.0, 0.05), (128, 0.1, 0.45))]

    summary = {"steps": 20, "window": 5, "warnings": ["step 3: rewards are constant"],
               "start": {"reward": 0.25}, "end": {"reward": 0.5},
               "eval": {"arith-sampled": {"curves": curve, "before_after": change("step 0"), "kind": "sampled",
                                          "temperature": 1.0, "rl_gain": change("after SFT warm-up")},
                        "arith": {"curves": curve, "before_after": change("step 0"), "kind": "greedy"}}}
    training._print_training_summary(summary)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "first vs the last 5" in text and "0.250" in text and "0.500" in text
    assert "+0.350 [+0.25, +0.45]" in text  # accuracy at 128 before -> after, with its interval
    assert "+0.35 [+0.15, +0.55]" in text  # the mean score's change, with its interval
    assert "mean@4 accuracy at T=1.0" in text and "greedy accuracy" in text
    assert text.index("after SFT warm-up -> step 20") < text.index("step 0 -> step 20")  # RL's own gain leads
    assert "after SFT warm-up" in text and "0.400" in text  # every curve, the warm-up's included
    assert "0.10 -> 0.80" in text and "0.05 -> 0.30" in text  # abstaining, unanswerable vs answerable
    assert "rewards are constant" in text
