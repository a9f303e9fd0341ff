"""bench/gpu_check.py, run on the CPU as CI does: its checks pass, and its trace comparison fails what it must."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402 - bench/ is a folder of scripts, not a package


def test_gpu_check_runs_every_check_on_a_cpu_and_says_cuda_is_skipped(capsys):
    status = gpu_check.main([])
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert status == 0
    assert [line.split(":")[0].split(None, 1) for line in lines] == [
        ["SKIP" if not torch.cuda.is_available() else "PASS", "cuda"], ["PASS", "hf sweep, bf16"],
        ["PASS", "grpo, 2 steps"]]
    assert "24/24 traces agree" in lines[1] and "weights moved" in lines[2]


def test_a_trace_that_parts_away_from_a_tie_or_at_a_forced_token_is_a_difference():
    tokenizer = gpu_check.byte_tokenizer()
    model = gpu_check.tiny_model(tokenizer).float()
    reference = gpu_check.sweep_traces(model, tokenizer, 2, "cpu", torch.float32)
    assert gpu_check.compare(reference, reference, model, 0.02) == (len(reference), 0, [])
    (budget, row), trace = next(iter(reference.items()))
    with torch.no_grad():
        logits = model(torch.tensor([trace.prompt_ids])).logits[0, -1]
    unlikely = int(logits.argmin())  # the first token swapped for the least likely one: no tie
    changed = dict(reference)
    changed[(budget, row)] = replace(trace, completion_ids=[unlikely] + trace.completion_ids[1:])
    identical, ties, problems = gpu_check.compare(reference, changed, model, 0.02)
    assert (identical, ties) == (len(reference) - 1, 0)
    assert problems == [f"budget {budget} row {row}: parted at token 0, logit gap "
                        f"{gpu_check.tie_gap(model, trace, 0, unlikely):.1%} > 2%"]
    at = trace.forced.index(True)
    forced_changed = dict(reference)
    ids = list(trace.completion_ids)
    ids[at] = unlikely
    forced_changed[(budget, row)] = replace(trace, completion_ids=ids)
    assert gpu_check.compare(reference, forced_changed, model, 0.02)[2] == [
        f"budget {budget} row {row}: parted at forced token {at}"]
    assert gpu_check.compare(reference, {}, model, 0.02)[2][0] == f"budget {min(b for b, _ in reference)} row " \
                                                                    f"{sorted(r for _, r in reference)[0]}: missing"
