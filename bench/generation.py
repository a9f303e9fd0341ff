"""Generation speed on the default model, measured against the peer doing the same work.

1. Tokens/s of our ``hf`` backend vs ``model.generate``: the same thinking prompts,
   sampling at temperature 1 until EOS or 128 new tokens, at batch 1, 16 and 64.
   Tokens counted are the ones each actually generated (no padding after EOS).
   End-to-end includes the prefill of ~90-token prompts, which at batch 64 is as
   much compute as ~70 decode steps; decode-only subtracts a 1-token run's time.
   The roof fraction is decode tokens/s over 170 tokens/s (DESIGN.md's roof).
2. A 5-budget sweep (16, 32, 64, 128, 256) on 64 prompts: ``sweep`` (one run at 256
   that forks at each smaller budget), vs the run at 256 plus a post-hoc ``probe``,
   vs five separate capped runs, each against the one run at 256 alone.

Run: ``make bench`` (or ``.venv/bin/python bench/generation.py --quick``).
"""

from __future__ import annotations

import argparse
import time

import torch

from rlcot.generation import Budget, probe, sweep
from rlcot.generation.base import SamplingConfig
from rlcot.generation.forcing import eos_ids
from rlcot.generation.hf import HFGenerator
from rlcot.models import load_policy
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

ROOF_TOKENS_PER_S = 170.0  # 47 GFLOP/s fp32 on 2 cores / 0.27 GFLOP per token (DESIGN.md)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def hf_generate(model, tokenizer, requests, new_tokens: int, seed: int) -> tuple[int, float]:
    """``model.generate`` on the same prompts: (tokens it generated up to each EOS, seconds)."""
    tokenizer.padding_side = "left"
    batch = tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    out, seconds = timed(
        lambda: model.generate(
            **batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=None,
            max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
        )
    )
    eos = set(eos_ids(tokenizer, model.generation_config))
    count = 0
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        for token in row:  # up to and including the first EOS
            count += 1
            if token in eos:
                break
    return count, seconds


def ours_generate(generator, requests, new_tokens: int) -> tuple[int, float]:
    sampling = SamplingConfig(temperature=1.0, max_tokens=new_tokens)
    budget = Budget(max_thinking_tokens=None, answer_after_eos=False)  # plain sampling to EOS
    traces, seconds = timed(lambda: generator.generate(requests, sampling, budget))
    return sum(len(t.completion_ids) for t in traces), seconds


def throughput(model, tokenizer, protocol, batch_sizes, new_tokens: int) -> None:
    task = get_task("arith")
    print(f"\n## Throughput: sample (T=1) until EOS or {new_tokens} new tokens, thinking prompts; tokens/s")
    print("end-to-end counts the prefill; decode subtracts a 1-token run (the prefill) from both sides")
    print(f"{'batch':>5} | {'ours e2e':>8} | {'generate e2e':>12} | {'ratio':>5} | "
          f"{'ours decode':>11} | {'generate decode':>15} | {'ratio':>5} | {'roof frac':>9}")
    for batch in batch_sizes:
        requests = task.requests(task.rows(batch, seed=1000), tokenizer, protocol, seed=0)
        generator = HFGenerator(model, tokenizer, protocol, batch_size=batch)
        ours_generate(generator, requests[:1], 2)  # warm-up
        _, ours_prefill = ours_generate(generator, requests, 1)
        ours_tokens, ours_s = ours_generate(generator, requests, new_tokens)
        _, theirs_prefill = hf_generate(model, tokenizer, requests, 1, seed=0)
        theirs_tokens, theirs_s = hf_generate(model, tokenizer, requests, new_tokens, seed=0)
        ours, theirs = ours_tokens / ours_s, theirs_tokens / theirs_s
        ours_dec = (ours_tokens - batch) / max(ours_s - ours_prefill, 1e-9)
        theirs_dec = (theirs_tokens - batch) / max(theirs_s - theirs_prefill, 1e-9)
        print(f"{batch:>5} | {ours:>8.1f} | {theirs:>12.1f} | {ours / theirs:>5.2f} | "
              f"{ours_dec:>11.1f} | {theirs_dec:>15.1f} | {ours_dec / theirs_dec:>5.2f} | "
              f"{ours_dec / ROOF_TOKENS_PER_S:>9.2f}")


def budget_sweep(model, tokenizer, protocol, prompts: int, budgets, temperature: float) -> None:
    task = get_task("arith")
    requests = task.requests(task.rows(prompts, seed=2000), tokenizer, protocol, seed=0)
    generator = HFGenerator(model, tokenizer, protocol, batch_size=64)
    sampling = SamplingConfig(temperature=temperature)
    top, lower = max(budgets), [b for b in budgets if b < max(budgets)]
    capped = Budget(max_thinking_tokens=top)
    print(f"\n## Budget sweep {list(budgets)} on {prompts} arith prompts, T={temperature}; wall seconds")
    base, single_s = timed(lambda: generator.generate(requests, sampling, capped))
    swept, sweep_s = timed(lambda: sweep(generator, requests, budgets, sampling))
    _, probe_s = timed(lambda: probe(generator, requests, base, lower, sampling, capped))
    separate, separate_s = timed(lambda: {b: generator.generate(requests, sampling, Budget(max_thinking_tokens=b))
                                          for b in budgets})
    same = sum(swept[b][i].completion_ids == separate[b][i].completion_ids
               for b in budgets for i in range(prompts))
    mean_thinking = sum(t.thinking_tokens for t in base) / len(base)
    print(f"one run at {top}: {single_s:.1f} s (mean thinking {mean_thinking:.0f} tokens, "
          f"{sum(t.capped for t in base)}/{len(base)} capped)")
    print(f"sweep, forking at each budget: {sweep_s:.1f} s = {sweep_s / single_s:.2f}x the single run")
    print(f"run at {top} + post-hoc probe (re-prefills): {single_s + probe_s:.1f} s = "
          f"{(single_s + probe_s) / single_s:.2f}x")
    print(f"five separate capped runs: {separate_s:.1f} s = {separate_s / single_s:.2f}x "
          f"(sweep is {separate_s / sweep_s:.2f}x faster)")
    print(f"sweep traces identical to the separate runs' token for token: {same}/{prompts * len(budgets)} "
          "(under sampling, batch shapes differ, so float noise can flip a near-tied draw)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, for a smoke run")
    parser.add_argument("--only", choices=["throughput", "sweep"], help="run one part")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model, tokenizer = load_policy("smollm2-135m", device="cpu")
    protocol = ThinkingProtocol()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 CPU")
    quick = args.quick
    if args.only in (None, "throughput"):
        throughput(model, tokenizer, protocol, [1, 4] if quick else [1, 16, 64], new_tokens=32 if quick else 128)
    if args.only in (None, "sweep"):
        budget_sweep(model, tokenizer, protocol, prompts=4 if quick else 64,
                     budgets=[4, 8, 16] if quick else [16, 32, 64, 128, 256], temperature=0.8)


if __name__ == "__main__":
    main()
