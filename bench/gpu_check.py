"""One script to run whenever a task is lent a GPU: does rlcot work on CUDA? One line per check.

Checks, in order (each prints ``PASS``, ``FAIL`` or ``SKIP`` and why):

1. **cuda**: a CUDA device is visible (its name, whether it computes in bf16).
2. **hf sweep, bf16**: the ``hf`` backend sweeps budgets for a few arith rows with a tiny
   random model in bf16 on the GPU, greedy, and every trace is compared with the same
   sweep on the CPU in fp32. Two traces agree when their tokens are equal, or when they
   first part at a *float-noise tie*: where the CPU's fp32 logits of the two tokens
   chosen there differ by at most ``--tie-tolerance`` of the largest |logit| there (bf16
   rounds that much, so either choice is right). Traces that agree token for token must also
   agree on what budget forcing did (forced flags, thinking tokens, finish reason).
   Without CUDA the same comparison runs on the CPU (bf16 there against fp32), so the
   comparison itself is exercised in CI; the CUDA line then says SKIP.
3. **grpo, 2 steps**: two GRPO steps (``rlcot.train``, TRL's GRPOTrainer, budget-forced
   rollouts from ``BudgetForcedRollout``) with the tiny model on CUDA, or on the CPU
   without one: the steps finish, the weights move, the loss is finite and
   ``metrics.jsonl`` holds both steps. Needs TRL (a GPU image may not have it: carry the
   wheel, see the device tool's README); without it the line says SKIP.

The model and tokenizer are built here from a config, so nothing is downloaded and
nothing outside the repository is read: a byte-level tokenizer (256 bytes plus ChatML's
special tokens) and ``rlcot.builtin_models.tiny_llama`` initialised five times wider than
transformers' default, so its next-token distributions are not flat and ties are the
exception, not the rule (at the default, every logit is a near-tie).

Run: ``python bench/gpu_check.py`` (exit status 1 when any check fails).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rlcot.builtin_models import tiny_llama
from rlcot.generation import Budget, SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BUDGETS = (4, 8, 16)
# The two tokens' fp32 logits may differ by this share of the largest |logit| there: bf16 rounds to 8 significant
# bits (0.4%) at every matmul, and two layers compound it. Measured on CPU (bf16 vs fp32, 24 traces): partings at
# 0.3% and 0.6%.
TIE_TOLERANCE = 0.02


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


def even_code_sum(answer: str, example) -> bool:
    """Rewards that vary within a group for a model that never answers (GRPO needs a spread to learn)."""
    return sum(map(ord, answer)) % 2 == 0


# ------------------------------------------------------------------ the tiny model


def byte_tokenizer():
    """A byte-level BPE with no merges: every string round-trips, nothing to download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=SPECIAL[1:2])
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_model(tokenizer, seed: int = 0):
    return tiny_llama(vocab_size=len(tokenizer), seed=seed, initializer_range=0.1,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.pad_token_id)


def save_tiny(directory: Path, seed: int = 0) -> Path:
    tokenizer = byte_tokenizer()
    tiny_model(tokenizer, seed).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# ------------------------------------------------------------------ check 2: the hf backend


def sweep_traces(model, tokenizer, rows: int, device: str, dtype: torch.dtype) -> dict:
    """Greedy traces of ``rows`` arith rows at every budget in ``BUDGETS``, keyed (budget, row id)."""
    task = get_task("arith")
    protocol = ThinkingProtocol()
    requests = task.requests(task.rows(rows, seed=0), tokenizer, protocol)
    generator = HFGenerator(model.to(device=device, dtype=dtype), tokenizer, protocol, batch_size=rows)
    budget = Budget(max_thinking_tokens=max(BUDGETS), max_answer_tokens=8)
    swept = generator.sweep(requests, SamplingConfig(temperature=0.0, max_tokens=64), budget, BUDGETS)
    return {(cap, trace.request_id): trace for cap, traces in swept.items() for trace in traces}


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first index where two token lists differ (a length difference counts); None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def tie_gap(reference_model, trace, position: int, other_token: int | None) -> float:
    """|logit(ours) − logit(theirs)| / max |logit| under the fp32 reference at ``position`` (inf if one ended)."""
    if other_token is None or position >= len(trace.completion_ids):
        return math.inf
    ids = trace.prompt_ids + trace.completion_ids[:position]
    with torch.no_grad():
        logits = reference_model(torch.tensor([ids])).logits[0, -1].float()
    gap = abs(float(logits[trace.completion_ids[position]] - logits[other_token]))
    return gap / max(float(logits.abs().max()), 1e-6)


def compare(reference: dict, candidate: dict, reference_model, tolerance: float) -> tuple[int, int, list[str]]:
    """(identical, parted at a tie, problems) over every (budget, row) of two sweeps."""
    identical, ties, problems = 0, 0, []
    for key, ref in sorted(reference.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        other = candidate.get(key)
        if other is None:
            problems.append(f"budget {key[0]} row {key[1]}: missing")
            continue
        at = first_difference(ref.completion_ids, other.completion_ids)
        if at is None:
            same = (ref.forced, ref.thinking_tokens, ref.finish_reason) == (
                other.forced, other.thinking_tokens, other.finish_reason)
            identical += same
            if not same:
                problems.append(f"budget {key[0]} row {key[1]}: same tokens, different forcing")
            continue
        if ref.forced[at] if at < len(ref.forced) else True:
            problems.append(f"budget {key[0]} row {key[1]}: parted at forced token {at}")
            continue
        theirs = other.completion_ids[at] if at < len(other.completion_ids) else None
        gap = tie_gap(reference_model, ref, at, theirs)
        if gap <= tolerance:
            ties += 1
        else:
            problems.append(f"budget {key[0]} row {key[1]}: parted at token {at}, logit gap {gap:.1%} > {tolerance:.0%}")
    return identical, ties, problems


def check_hf_sweep(cuda: bool, rows: int, tolerance: float) -> Check:
    tokenizer = byte_tokenizer()
    reference_model = tiny_model(tokenizer).float()
    reference = sweep_traces(reference_model, tokenizer, rows, "cpu", torch.float32)
    device = "cuda" if cuda else "cpu"
    candidate = sweep_traces(tiny_model(tokenizer), tokenizer, rows, device, torch.bfloat16)
    identical, ties, problems = compare(reference, candidate, reference_model, tolerance)
    where = f"{device} bf16 vs cpu fp32"
    detail = (f"{where}: {identical + ties}/{len(reference)} traces agree ({identical} token for token, {ties} parted "
              f"at a float-noise tie <= {tolerance:.0%} of the largest logit), budgets {', '.join(map(str, BUDGETS))}")
    if problems:
        return Check("hf sweep, bf16", "FAIL", f"{detail}; {len(problems)} differ: " + "; ".join(problems[:3]))
    return Check("hf sweep, bf16", "PASS", detail)


# ------------------------------------------------------------------ check 3: GRPO


def check_grpo(cuda: bool) -> Check:
    try:
        import trl  # noqa: F401
    except ImportError:
        return Check("grpo, 2 steps", "SKIP", "TRL is not installed here (pip install the trl wheel to run it)")
    from rlcot.models import load_policy
    from rlcot.train.data import build_data
    from rlcot.train.recipe import EvalSpec, Recipe, RewardSpec, TaskMix, ThinkingSpec
    from rlcot.train.resolve import resolve_run
    from rlcot.train.trainer import build_trainer

    device = "cuda" if cuda else "cpu"
    grpo = {"num_generations": 4, "per_device_train_batch_size": 4, "max_steps": 2, "learning_rate": 5e-3,
            "logging_steps": 1, "save_strategy": "no", "report_to": "none", "temperature": 1.0}
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = save_tiny(Path(scratch) / "model")
        out = Path(scratch) / "run"
        recipe = Recipe(model=str(model_dir), tasks=(TaskMix("arith", size=8, eval_size=2),),
                        rewards=(RewardSpec(verifier=f"{__name__}:even_code_sum"),),
                        thinking=ThinkingSpec(max_thinking_tokens=6, max_answer_tokens=4),
                        grpo=grpo, eval=EvalSpec(every=0), output_dir=str(out))
        run = resolve_run(recipe, device=device, output_dir=out)
        model, tokenizer = load_policy(str(model_dir), device=device, dtype=torch.float32)
        before = [p.detach().clone() for p in model.parameters()]
        trainer = build_trainer(run, model, tokenizer, run.protocol, build_data(recipe, tokenizer, run.protocol))
        trainer.train()
        logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses = [line["loss"] for line in logs if "loss" in line]
        moved = any(not torch.equal(a, b.to(a.device)) for a, b in zip(before, trainer.model.parameters()))
        on = {p.device.type for p in trainer.model.parameters()}
    detail = (f"on {device} ({'bf16' if run.grpo.bf16 else 'fp32'}): {trainer.state.global_step} steps, "
              f"weights {'moved' if moved else 'did not move'}, loss {', '.join(f'{x:.4f}' for x in losses)}")
    good = trainer.state.global_step == 2 and moved and len(losses) == 2 and all(map(math.isfinite, losses))
    good = good and on == {device}
    return Check("grpo, 2 steps", "PASS" if good else "FAIL", detail)


# ------------------------------------------------------------------ main


def run_checks(rows: int = 8, tolerance: float = TIE_TOLERANCE) -> list[Check]:
    """Every check, each line printed as soon as it is known; a check that raises is a FAIL, the rest still run."""
    cuda = torch.cuda.is_available()
    if cuda:
        name = torch.cuda.get_device_name(0)
        first = Check("cuda", "PASS", f"{name}; bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        first = Check("cuda", "SKIP", "no CUDA device visible; the checks below run on the CPU instead")
    print(first.line(), flush=True)
    checks = [first]
    for name, check in (("hf sweep, bf16", lambda: check_hf_sweep(cuda, rows, tolerance)),
                        ("grpo, 2 steps", lambda: check_grpo(cuda))):
        try:
            checks.append(check())
        except Exception as err:  # noqa: BLE001 - one broken check must not hide the others' lines
            checks.append(Check(name, "FAIL", f"{err.__class__.__name__}: {' '.join(str(err).split())[:300]}"))
        print(checks[-1].line(), flush=True)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=8, help="arith rows in the hf sweep check")
    parser.add_argument("--tie-tolerance", type=float, default=TIE_TOLERANCE,
                        help="largest fp32 logit gap, as a share of the largest |logit|, at which bf16 and fp32 may choose differently")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}", flush=True)
    checks = run_checks(args.rows, args.tie_tolerance)
    failed = [check.name for check in checks if check.status == "FAIL"]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks did not fail"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
