"""Models of several families, with their real chat templates, through every command a user runs.

Each family (``tests/families.py``: Llama 3.2, Qwen2 with DeepSeek-R1-Distill's template,
Qwen3, Gemma 2) is a tiny random model saved to disk, passed as ``--model DIR``. What
is checked is the protocol, not the model's skill: the prompt is what the model's own
template gives (plus the pre-filled ``<think>`` where the template did not open it),
the thinking section is opened exactly once, native templates get no think-format
instruction, budget forcing marks what it wrote, and ``enable_thinking=false`` leaves a
trace with no thinking to cap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer
from typer.testing import CliRunner

from rlcot.builtin_models import ensure_builtin_cached
from rlcot.cli import app
from rlcot.store import load_traces
from rlcot.tasks import get_task
from rlcot.thinking import DEFAULT_INSTRUCTION, ThinkingProtocol, thinks_natively
from tests.families import FAMILIES, build_family

runner = CliRunner()
ANSWER_FORMAT = "Write the final answer as a number inside \\boxed{}."  # the default instruction, less its think part
FORCED = "\n</think>\n\nThe final answer is \\boxed{"  # what the cap appends: the delimiter, then the math cue
SMALL = ["--max-answer-tokens", "3", "--dtype", "fp32", "--device", "cpu"]


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory) -> dict[str, Path]:
    base = ensure_builtin_cached("smollm2-135m")
    root = tmp_path_factory.mktemp("families")
    return {name: build_family(family, base, root / name) for name, family in FAMILIES.items()}


def expected_prompt(tokenizer, question: str, native: bool, **options) -> str:
    """The model's own template around the question and instruction, then ``<think>`` unless it opened or closed it."""
    content = f"{question}\n\n{ANSWER_FORMAT if native else DEFAULT_INSTRUCTION}"
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True, **options)
    return text if text.rstrip().endswith(("<think>", "</think>")) else text + "<think>\n"


def generation_part(prompt: str, question_end: str) -> str:
    """What follows the user's message: the template's generation prompt and our pre-filled opening."""
    return prompt[prompt.rindex(question_end) + len(question_end):]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", FAMILIES)
def test_the_prompt_is_the_templates_own_with_one_think_and_native_models_get_no_think_format(family_dirs, name):
    tokenizer = AutoTokenizer.from_pretrained(str(family_dirs[name]))
    protocol, task = ThinkingProtocol(), get_task("arith")
    row = task.rows(1)[0]
    prompt = task.prompt(row, tokenizer, protocol)
    native = FAMILIES[name].native
    assert thinks_natively(tokenizer, protocol) is native
    assert prompt == expected_prompt(tokenizer, row["question"], native)
    after = generation_part(prompt, ANSWER_FORMAT if native else DEFAULT_INSTRUCTION)
    assert after.count("<think>") == 1 and after.endswith("<think>\n")
    if native:  # the template's own tags: the user message never mentions them
        assert "<think>" not in prompt[: prompt.rindex(ANSWER_FORMAT)]


@pytest.mark.parametrize("name", FAMILIES)
def test_generate_opens_thinking_once_and_marks_the_forced_close_and_cue(tmp_path, family_dirs, name):
    out = tmp_path / "traces.jsonl"
    result = runner.invoke(app, ["generate", "--model", str(family_dirs[name]), "--task", "arith", "--n", "2",
                                 "--budget", "3", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    tokenizer = AutoTokenizer.from_pretrained(str(family_dirs[name]))
    lines = read(out)
    assert len(lines) == 2
    for line in lines:
        assert line["prompt"] == expected_prompt(tokenizer, line["row"]["question"], FAMILIES[name].native)
        assert line["completion"].startswith("<think>\n") and line["completion"].count("<think>") == 1
    capped = [line for line in lines if line["capped"]]
    assert capped, "a random model thinks past a cap of 3: the test needs a capped trace"
    for line in capped:
        assert line["thinking_tokens"] == 3
        assert [line["completion"][start:end] for start, end in line["forced_spans"]] == [FORCED]


def sweep(out: Path, model: Path, *extra: str):
    return runner.invoke(app, ["sweep", "--model", str(model), "--out", str(out), "--limit", "2", "--budgets", "0,3",
                               "--no-gold-logprob", *SMALL, *extra])


@pytest.mark.parametrize("name", FAMILIES)
def test_sweep_and_score_use_the_templates_prompt_and_the_same_verdicts(tmp_path, family_dirs, name):
    result = sweep(tmp_path / "run", family_dirs[name])
    assert result.exit_code == 0, result.output
    traces = load_traces(tmp_path / "run")
    tokenizer = AutoTokenizer.from_pretrained(str(family_dirs[name]))
    assert sorted(t.budget for t in traces) == [0, 0, 3, 3]
    for trace in traces:
        assert trace.prompt == expected_prompt(tokenizer, trace.row["question"], FAMILIES[name].native)
        assert trace.completion.count("<think>") == 1
        if trace.capped:  # budget 0 forces at once: the whole thinking is the forced delimiter
            assert [trace.completion[a:b] for a, b in trace.forced_spans] == [FORCED]
    result = runner.invoke(app, ["score", str(tmp_path / "run"), "--scheme", "binary"])
    assert result.exit_code == 0, result.output
    rescored = {(t.row_id, t.budget): t.verdict for t in load_traces(tmp_path / "run", "binary")}
    assert rescored == {(t.row_id, t.budget): t.verdict for t in traces}


def test_qwen3_with_thinking_off_answers_at_once_through_generate_score_and_sweep(tmp_path, family_dirs):
    model, out = family_dirs["qwen3"], tmp_path / "traces.jsonl"
    result = runner.invoke(app, ["generate", "--model", str(model), "--n", "2", "--budget", "3", "--out", str(out),
                                 "--chat-template-kwarg", "enable_thinking=false", *SMALL])
    assert result.exit_code == 0, result.output
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    for line in read(out):
        # the template closed an empty thought; nothing is pre-filled, nothing forced, no thinking counted
        assert line["prompt"] == expected_prompt(tokenizer, line["row"]["question"], True, enable_thinking=False)
        assert line["prompt"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert line["completion"].startswith("<think>\n\n</think>\n\n") and line["completion"].count("<think>") == 1
        assert (line["thinking_tokens"], line["capped"], line["forced_spans"]) == (0, False, [])
        assert line["answer"] == line["completion"][len("<think>\n\n</think>"):]  # all the model wrote
        assert line["protocol"]["chat_template_kwargs"] == {"enable_thinking": False}
    # score rebuilds the protocol from the run info: the answer is read as the model wrote it
    result = runner.invoke(app, ["score", "--input", str(out), "--out", str(tmp_path / "scored.jsonl")])
    assert result.exit_code == 0, result.output
    assert [line["verdict"] for line in read(tmp_path / "scored.jsonl")] == [line["verdict"] for line in read(out)]
    # a sweep: every budget is the same trace, with no thinking
    result = sweep(tmp_path / "run", model, "--chat-template-kwarg", "enable_thinking=false")
    assert result.exit_code == 0, result.output
    traces = load_traces(tmp_path / "run")
    assert len(traces) == 4 and all(t.thinking_tokens == 0 and not t.forced_spans for t in traces)
    by_row = {}
    for trace in traces:
        by_row.setdefault(trace.row_id, set()).add(trace.completion)
    assert all(len(completions) == 1 for completions in by_row.values())


@pytest.mark.parametrize("command", ["generate", "sweep"])
@pytest.mark.parametrize("bad, message", [
    ("foo", "--chat-template-kwarg 'foo' is not KEY=VALUE"),
    ("tokenize=true", "'tokenize' is a parameter of apply_chat_template itself"),
    ("enable-thinking=1", "'enable-thinking' is not a template variable name"),
])
def test_a_bad_chat_template_kwarg_is_a_one_line_error(tmp_path, family_dirs, command, bad, message):
    result = runner.invoke(app, [command, "--model", str(family_dirs["qwen3"]), "--out", str(tmp_path / "o.jsonl"),
                                 "--chat-template-kwarg", bad])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_template_without_a_system_role_says_so_in_one_line(tmp_path, family_dirs):
    result = sweep(tmp_path / "run", family_dirs["gemma2"], "--system-prompt", "Be brief.")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refuses a system+user conversation (System role not supported)" in errors[0]
    assert not (tmp_path / "run").exists()  # said before anything was written
    assert "Traceback" not in result.output


def test_one_grpo_step_of_a_native_model_keeps_its_template_options_and_a_sweep_of_the_run_reuses_them(
        tmp_path, family_dirs):
    out, model = tmp_path / "train", family_dirs["qwen3"]
    recipe = {"model": str(model), "output_dir": str(out), "tasks": [{"name": "arith", "size": 4, "eval_size": 0}],
              "rewards": [{"verifier": "tests.train.plugins:even_length"}],
              "thinking": {"max_thinking_tokens": 3, "max_answer_tokens": 3,
                           "chat_template_kwargs": {"enable_thinking": True}},
              "grpo": {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 1, "learning_rate": 5e-3,
                       "report_to": "none", "bf16": False, "save_strategy": "no"}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 0, result.output
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    rollouts = load_traces(out / "rollouts.jsonl") if (out / "rollouts.jsonl").is_file() else []
    assert rollouts
    for trace in rollouts:
        assert trace.prompt == expected_prompt(tokenizer, trace.row["question"], True, enable_thinking=True)
        assert trace.completion.count("<think>") == 1 and trace.protocol["chat_template_kwargs"] == {
            "enable_thinking": True}
        if trace.capped:
            assert [trace.completion[a:b] for a, b in trace.forced_spans] == [FORCED]
    assert any(trace.capped for trace in rollouts)
    recorded = json.loads((out / "run.json").read_text())["config"]["recipe"]["thinking"]
    assert recorded["chat_template_kwargs"] == {"enable_thinking": True}
    result = runner.invoke(app, ["sweep", "--model", f"{out}@last", "--out", str(tmp_path / "swept"), "--limit", "1",
                                 "--budgets", "0", "--no-gold-logprob", *SMALL])
    assert result.exit_code == 0, result.output
    assert "chat template options {'enable_thinking': True}: the one" in " ".join(result.output.split())
    assert [t.protocol["chat_template_kwargs"] for t in load_traces(tmp_path / "swept")] == [{"enable_thinking": True}]


def test_budget_forcing_extends_and_caps_a_native_models_own_thinking(family_dirs):
    """Qwen3's ``</think>`` is one token of its vocabulary: an early one becomes a forced "Wait", the cap forces it."""
    from rlcot.generation import Budget, SamplingConfig, get_generator
    from tests.conftest import ScriptedLM

    tokenizer = AutoTokenizer.from_pretrained(str(family_dirs["qwen3"]))
    close, word = tokenizer.convert_tokens_to_ids("</think>"), tokenizer.encode(" x", add_special_tokens=False)[0]
    task = get_task("arith")
    request = task.requests(task.rows(1), tokenizer, ThinkingProtocol())[0]
    # the model closes its thinking after 2 tokens of its own, then writes " x" for ever
    model = ScriptedLM(len(request.prompt_ids), lambda done: close if len(done) == 2 else word, len(tokenizer),
                       tokenizer.eos_token_id)
    generator = get_generator("hf", model, tokenizer, ThinkingProtocol(), batch_size=1)
    trace = generator.generate([request], SamplingConfig(), Budget(max_thinking_tokens=6, min_thinking_tokens=4,
                                                                    max_extensions=1, max_answer_tokens=2))[0]
    assert request.prompt.count("<think>") == 1 and trace.completion.count("<think>") == 1
    assert (trace.extensions, trace.thinking_tokens, trace.capped) == (1, 6, True)
    forced = "".join(tokenizer.decode([t]) for t, f in zip(trace.completion_ids, trace.forced) if f)
    assert forced == "Wait" + FORCED  # the extension, then the delimiter and cue at the cap: all marked forced
