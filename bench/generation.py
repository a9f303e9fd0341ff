"""Generation speed on the default model, measured against the peer doing the same work.

1. Tokens/s of our ``hf`` backend vs ``model.generate``: the same thinking prompts,
   sampling at temperature 1 until EOS or 128 new tokens, at batch 1, 16 and 64.
   Tokens counted are the ones each actually generated (no padding after EOS).
2. A 5-budget sweep (16, 32, 64, 128, 256): probing one run at 256, vs five separate
   capped runs, vs the one run at 256 alone.

Run: ``make bench`` (or ``.venv/bin/python bench/generation.py --quick``).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcot.budget import Budget, probe
from rlcot.generation.base import SamplingConfig
from rlcot.generation.hf import HFGenerator
from rlcot.models import load_policy
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

ROOF_TOKENS_PER_S = 170.0  # 47 GFLOP/s fp32 on 2 cores / 0.27 GFLOP per token (DESIGN.md)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def hf_generate_tokens(model, tokenizer, requests, new_tokens: int, seed: int) -> tuple[int, float]:
    tokenizer.padding_side = "left"
    batch = tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    out, seconds = timed(
        lambda: model.generate(
            **batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=None,
            max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
        )
    )
    new = out[:, batch["input_ids"].shape[1]:]
    eos = set(generator_eos(model, tokenizer))
    count = 0
    for row in new.tolist():
        for token in row:  # up to and including the first EOS
            count += 1
            if token in eos:
                break
    return count, seconds


def generator_eos(model, tokenizer):
    from rlcot.generation.hf import _eos_ids

    return _eos_ids(model, tokenizer)


def throughput(model, tokenizer, protocol, batch_sizes, new_tokens: int) -> None:
    task = get_task("arith")
    print(f"\n## Throughput: sample (T=1) until EOS or {new_tokens} tokens; tokens/s, higher is better")
    print(f"{'batch':>5} | {'rlcot hf':>9} | {'model.generate':>14} | {'ratio':>5} | {'roof frac':>9}")
    for batch in batch_sizes:
        requests = task.requests(task.rows(batch, seed=1000), tokenizer, protocol, seed=0)
        generator = HFGenerator(model, tokenizer, protocol, batch_size=batch)
        sampling = SamplingConfig(temperature=1.0, max_tokens=new_tokens)
        budget = Budget(max_thinking_tokens=None, answer_after_eos=False)
        generator.generate(requests[:1], sampling, budget)  # warm-up
        traces, ours_s = timed(lambda: generator.generate(requests, sampling, budget))
        ours = sum(len(t.completion_ids) for t in traces) / ours_s
        count, theirs_s = hf_generate_tokens(model, tokenizer, requests, new_tokens, seed=0)
        theirs = count / theirs_s
        print(f"{batch:>5} | {ours:>9.1f} | {theirs:>14.1f} | {ours / theirs:>5.2f} | {ours / ROOF_TOKENS_PER_S:>9.2f}")


def sweep(model, tokenizer, protocol, prompts: int, budgets, temperature: float) -> None:
    task = get_task("arith")
    requests = task.requests(task.rows(prompts, seed=2000), tokenizer, protocol, seed=0)
    generator = HFGenerator(model, tokenizer, protocol, batch_size=64)
    sampling = SamplingConfig(temperature=temperature)
    top = max(budgets)
    print(f"\n## Budget sweep {list(budgets)} on {prompts} arith prompts, T={temperature}; wall seconds")
    base, single_s = timed(lambda: generator.generate(requests, sampling, Budget(max_thinking_tokens=top)))
    _, probe_s = timed(lambda: probe(generator, requests, base, [b for b in budgets if b < top], sampling,
                                     Budget(max_thinking_tokens=top)))
    probe_total = single_s + probe_s
    _, separate_s = timed(lambda: [generator.generate(requests, sampling, Budget(max_thinking_tokens=b))
                                   for b in budgets])
    mean_thinking = sum(t.thinking_tokens for t in base) / len(base)
    capped = sum(t.capped for t in base)
    print(f"one run at {top}: {single_s:.1f} s (mean thinking {mean_thinking:.0f} tokens, {capped}/{len(base)} capped)")
    print(f"probing sweep (run at {top} + probes): {probe_total:.1f} s = {probe_total / single_s:.2f}x the single run")
    print(f"five separate capped runs: {separate_s:.1f} s = {separate_s / single_s:.2f}x the single run")
    print(f"probing vs separate runs: {separate_s / probe_total:.2f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, for a smoke run")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model, tokenizer = load_policy("smollm2-135m", device="cpu")
    protocol = ThinkingProtocol()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU")
    if args.quick:
        throughput(model, tokenizer, protocol, [1, 4], new_tokens=32)
        sweep(model, tokenizer, protocol, prompts=4, budgets=[4, 8, 16], temperature=0.8)
    else:
        throughput(model, tokenizer, protocol, [1, 16, 64], new_tokens=128)
        sweep(model, tokenizer, protocol, prompts=64, budgets=[16, 32, 64, 128, 256], temperature=0.8)


if __name__ == "__main__":
    main()
