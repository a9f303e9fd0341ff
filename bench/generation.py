"""Generation speed on the default model, against the machine's own roof and the peer doing the same work.

The CPUs these runs land on differ by an order of magnitude (seen so far: fp32 matmul
47-346 GFLOP/s, bf16 1-2,280), so no figure here is compared with a constant. Every
part is measured in the same run as the roof it is divided by:

1. **Roof.** GFLOP/s of one decode step's matmuls: every ``nn.Linear`` of the model
   (the LM head included), in order, through the model's own weights, on 64 rows,
   fp32 and bf16. A generated token costs 2 x the linear weights in FLOPs (~0.27
   GFLOP for SmolLM2-135M; 2 x all parameters is printed beside it as a check), so
   roof tokens/s = GFLOP/s / GFLOP per token: what batch-64 decoding would reach if
   it did nothing but those matmuls. Each weight is read once, as a step reads it;
   the same shapes timed alone with the weight kept in cache ("hot") are printed too.
2. **Throughput**: our ``hf`` backend vs ``model.generate`` on the same thinking
   prompts, sampling at T=1 until EOS or 128 new tokens, at batch 1, 16 and 64.
   Tokens counted are the ones each generated (up to its EOS, not padding). Each
   figure is the median of ``--reps`` alternating runs (ours, theirs, ours, ...), so
   a burst of load hits both sides, not one; a pair taken under load is run again. A forward hook times every forward
   pass of the same runs: *end-to-end* includes the prefill of ~90-token prompts (at
   batch 64 as much compute as ~70 decode steps); *decode* starts when the prefill
   ends and counts the tokens after each row's first; *full batch* is rows fed per
   second over the first 16 decode steps that still fed every row, the figure to
   hold against the roof (later steps run fewer rows, as rows finish).
3. **dtype**: tokens/s in fp32 and bf16, and how far bf16 moves the answers: greedy
   token agreement with fp32, the largest logprob difference on fp32's greedy tokens
   teacher-forced through the bf16 model, accuracy on 64 arith rows. Where bf16 is
   slow (emulated) it runs on a subset sized from the measured bf16 roof to take
   ~45 s at that speed; the output says which.
4. **Sweep**: a 4-budget sweep on 32 prompts: ``sweep`` (one run at the top budget
   that forks at each smaller one), vs the run at the top plus a post-hoc ``probe``,
   vs separate capped runs.

Other processes on the machine make timings worthless (two cores: one busy
neighbour halves us, and thread spinning can cost far more; one unchecked run once
showed a false 12.75x). Every measurement reads ``/proc/stat`` to see how much of
the machine's CPU went to other processes while it ran; figures taken under load
are marked ``!`` and the run ends with a loud warning.

The load check and the roof are ``bench/common.py``'s, shared with ``sweep.py`` and
``train.py``.

Run: ``make bench`` (~15 minutes on the 2-core AMD), or
``.venv/bin/python bench/generation.py --quick`` (a smoke run), ``--only PART``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, replace

import torch
from common import MODEL, LoadLog, Roof, Timing, flag, start_run, streamed_gflops

from rlcot.generation import Budget, probe, sweep
from rlcot.generation.base import SamplingConfig
from rlcot.generation.forcing import eos_ids
from rlcot.generation.hf import HFGenerator
from rlcot.models import load_policy
from rlcot.tasks import get_task
from rlcot.thinking import ThinkingProtocol

PARTS = ("throughput", "dtype", "sweep")


# ------------------------------------------------------------------ throughput


class ForwardLog:
    """When each forward pass of a run ends, and how many rows it fed (a forward hook)."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __enter__(self):
        def hook(_module, args, kwargs, _output):
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.calls.append((time.perf_counter(), ids.shape[0]))

        self.handle = self.model.register_forward_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *_):
        self.handle.remove()

    def full_batch_rate(self, rows: int, steps: int = 16) -> float:
        """Rows fed per second over the first ``steps`` decode steps that still fed all ``rows``."""
        spans = [(end - before, fed) for (before, _), (end, fed) in zip(self.calls, self.calls[1:]) if fed == rows]
        spans = spans[:steps]
        return sum(fed for _, fed in spans) / sum(span for span, _ in spans) if spans else float("nan")


@dataclass
class Run:
    tokens: int
    rows: int
    timing: Timing
    decode_s: float  # from the end of the prefill to the end
    full_batch: float  # rows fed per second over the first decode steps that fed every row
    roof: float = float("nan")  # fp32 roof tokens/s, measured just before this run's pair

    @property
    def e2e(self) -> float:
        return self.tokens / self.timing.seconds

    @property
    def decode(self) -> float:
        return (self.tokens - self.rows) / max(self.decode_s, 1e-9)


def run_ours(generator, requests, new_tokens: int, log: LoadLog, label: str) -> Run:
    sampling = SamplingConfig(temperature=1.0, max_tokens=new_tokens)
    budget = Budget(max_thinking_tokens=None, answer_after_eos=False)  # plain sampling to EOS
    with ForwardLog(generator.model) as forwards:
        start = time.perf_counter()
        traces, timing = log.time(label, lambda: generator.generate(requests, sampling, budget))
    tokens = sum(len(t.completion_ids) for t in traces)
    return Run(tokens, len(requests), timing, start + timing.seconds - forwards.calls[0][0],
               forwards.full_batch_rate(len(requests)))


def run_theirs(model, tokenizer, requests, new_tokens: int, log: LoadLog, label: str, seed: int = 0) -> Run:
    """``model.generate`` on the same prompts, counting tokens up to each row's EOS."""
    tokenizer.padding_side = "left"
    batch = tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    with ForwardLog(model) as forwards:
        start = time.perf_counter()
        out, timing = log.time(label, lambda: model.generate(
            **batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=None,
            max_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
        ))
    eos = set(eos_ids(tokenizer, model.generation_config))
    count = 0
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        for token in row:  # up to and including the first EOS
            count += 1
            if token in eos:
                break
    return Run(count, len(requests), timing, start + timing.seconds - forwards.calls[0][0],
               forwards.full_batch_rate(len(requests)))


def throughput(model, tokenizer, protocol, roof: Roof, batch_sizes, new_tokens: int, reps: int, log: LoadLog):
    task = get_task("arith")
    print(f"\n## Throughput: sample (T=1) until EOS or {new_tokens} new tokens, thinking prompts; tokens/s, "
          f"median of {reps} alternating runs")
    print("e2e: all tokens / wall time. decode: after the prefill. full b.: the first 16 decode steps that "
          "still fed every row (rows fed / s).\n(x): fraction of the fp32 roof, re-measured before each pair of "
          "runs (the machine's speed drifts by tens of percent), median over pairs")
    print(f"{'batch':>5} | {'ours e2e':>13} | {'generate e2e':>13} | {'ratio':>5} | {'ours decode':>13} | "
          f"{'gen. decode':>13} | {'ratio':>5} | {'ours full b.':>13} | {'gen. full b.':>13} | {'ratio':>5} | tokens")
    roofs = []
    for batch in batch_sizes:
        rows = task.rows(batch, seed=1000)
        generator = HFGenerator(model, tokenizer, protocol, batch_size=batch)
        warm = task.requests(rows[:1], tokenizer, protocol)
        run_ours(generator, warm, 2, LoadLog(), "warm-up")
        run_theirs(model, tokenizer, warm, 2, LoadLog(), "warm-up")
        pairs = []  # (ours, theirs, taken without load)
        for attempt in range(2 * reps):  # a pair taken under load is run again, up to `reps` times
            if sum(clean for *_, clean in pairs) == reps:
                break
            # Each pair samples afresh (both sides): the sides draw different tokens, so rows end
            # at different steps, and one fixed seed would bias the comparison one way every time.
            requests = task.requests(rows, tokenizer, protocol, seed=1000 * attempt)
            now, roof_t = log.time(f"roof before batch {batch} pair {attempt}",
                                   lambda: streamed_gflops(model, torch.float32) / roof.gflop_per_token)
            roofs.append(now)
            our_run = run_ours(generator, requests, new_tokens, log, f"ours batch {batch} pair {attempt}")
            their_run = run_theirs(model, tokenizer, requests, new_tokens, log,
                                   f"generate batch {batch} pair {attempt}", seed=attempt)
            clean = not (roof_t.loaded or our_run.timing.loaded or their_run.timing.loaded)
            pairs.append((replace(our_run, roof=now), replace(their_run, roof=now), clean))
        if sum(clean for *_, clean in pairs) == reps:
            pairs = [pair for pair in pairs if pair[2]]
        ours, theirs = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
        cells = []
        for figure in ("e2e", "decode", "full_batch"):
            mine, peer = (statistics.median(getattr(r, figure) for r in side) for side in (ours, theirs))
            share = [statistics.median(getattr(r, figure) / r.roof for r in side) for side in (ours, theirs)]
            cells.append(f"{mine:>6.1f} ({share[0]:.2f}) | {peer:>6.1f} ({share[1]:.2f}) | {mine / peer:>5.2f}")
        tokens = f"{statistics.median(r.tokens for r in ours):.0f}/{statistics.median(r.tokens for r in theirs):.0f}"
        print(f"{batch:>5} | " + " | ".join(cells) + f" | {tokens} {flag(*(r.timing for r in ours + theirs))}")
    print(f"tokens: generated by ours/generate (median); each side samples its own. fp32 roof over these runs: "
          f"{min(roofs):.0f}-{max(roofs):.0f} tokens/s. A pair taken under load is run again (up to {reps} times) "
          "and left out of the medians.")


# ------------------------------------------------------------------ dtype


def _greedy(generator, requests, log: LoadLog, label: str):
    budget = Budget(max_thinking_tokens=32)
    return log.time(label, lambda: generator.generate(requests, SamplingConfig(), budget))


def _accuracy(traces, rows, task) -> float:
    from rlcot.records import Scorer

    scorer = Scorer(task, scheme="binary")
    return sum(scorer.score_trace(t, row).verdict.outcome == "correct" for t, row in zip(traces, rows)) / len(rows)


@torch.inference_mode()
def _teacher_forced_logprobs(model, trace) -> list[float]:
    """Logprobs ``model`` gives the trace's own (non-forced) tokens, in one forward pass."""
    ids = torch.tensor([trace.prompt_ids + trace.completion_ids])
    logits = model(input_ids=ids).logits[0, len(trace.prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(trace.completion_ids)[:, None])[:, 0]
    return [lp for lp, forced in zip(logp.tolist(), trace.forced) if not forced]


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _tokens_per_s(traces, timing: Timing) -> float:
    return sum(len(t.completion_ids) for t in traces) / timing.seconds


def dtype_effects(model, tokenizer, protocol, roof: Roof, rows_wanted: int, log: LoadLog) -> None:
    task = get_task("arith")
    rows = task.rows(rows_wanted, seed=3000)
    requests = task.requests(rows, tokenizer, protocol)
    fp32_gen = HFGenerator(model, tokenizer, protocol, batch_size=64)
    fp32, fp32_t = _greedy(fp32_gen, requests, log, f"fp32 greedy, {len(rows)} rows")
    # bf16 costs, per row, ~(prompt + completion) tokens twice (generation, teacher forcing):
    # as many rows as fit in ~45 s at the bf16 roof, so a slow (emulated) bf16 stays affordable
    per_row_gflop = 2 * (len(requests[0].prompt_ids) + 50) * roof.gflop_per_token
    subset = max(2, min(len(rows), int(45 * roof.gflops[torch.bfloat16] / per_row_gflop)))
    if subset < len(rows):  # fp32 again at the same batch, for a like-for-like speed
        sub_fp32, sub_fp32_t = _greedy(fp32_gen, requests[:subset], log, f"fp32 greedy, {subset} rows")
    else:
        sub_fp32, sub_fp32_t = fp32, fp32_t
    bf16_model, _ = load_policy(MODEL, device="cpu", dtype="bf16")
    bf16, bf16_t = _greedy(HFGenerator(bf16_model, tokenizer, protocol, batch_size=64), requests[:subset], log,
                           f"bf16 greedy, {subset} rows")
    diffs = [abs(a - b) for trace in sub_fp32
             for a, b in zip(_teacher_forced_logprobs(bf16_model, trace), [x for x in trace.logprobs if x is not None])]
    same = sum(a.completion_ids == b.completion_ids for a, b in zip(sub_fp32, bf16))
    prefix = statistics.mean(_common_prefix(a.completion_ids, b.completion_ids) / len(a.completion_ids)
                             for a, b in zip(sub_fp32, bf16))
    slower = roof.gflops[torch.float32] / roof.gflops[torch.bfloat16]
    print(f"\n## dtype: greedy, thinking cap 32, arith rows (seed 3000); bf16 on {subset} of {len(rows)} rows"
          + (f" (bf16 matmul is {slower:.1f}x slower than fp32 on this CPU: all rows would take too long)"
             if subset < len(rows) else ""))
    print(f"{'':>26} | {'fp32':>6} | {'bf16':>6}")
    print(f"{f'tokens/s, batch {subset}':>26} | {_tokens_per_s(sub_fp32, sub_fp32_t):>6.1f} | "
          f"{_tokens_per_s(bf16, bf16_t):>6.1f} {flag(sub_fp32_t, bf16_t)}")
    print(f"{f'accuracy, {subset} rows':>26} | {_accuracy(sub_fp32, rows[:subset], task):>6.3f} | "
          f"{_accuracy(bf16, rows[:subset], task):>6.3f}")
    if subset < len(rows):
        print(f"{f'tokens/s, batch {len(rows)}':>26} | {_tokens_per_s(fp32, fp32_t):>6.1f} | {'-':>6} {flag(fp32_t)}")
        print(f"{f'accuracy, {len(rows)} rows':>26} | {_accuracy(fp32, rows, task):>6.3f} | {'-':>6}")
    print(f"bf16 vs fp32 greedy: {same}/{subset} traces identical; on average the first "
          f"{prefix:.0%} of fp32's tokens agree")
    print(f"logprob of fp32's greedy tokens teacher-forced through bf16 ({len(diffs)} tokens): "
          f"max |diff| {max(diffs):.3f}, mean {statistics.mean(diffs):.4f} nats")


# ------------------------------------------------------------------ sweep


def budget_sweep(model, tokenizer, protocol, prompts: int, budgets, log: LoadLog, temperature: float = 0.8) -> None:
    task = get_task("arith")
    requests = task.requests(task.rows(prompts, seed=2000), tokenizer, protocol, seed=0)
    generator = HFGenerator(model, tokenizer, protocol, batch_size=64)
    sampling = SamplingConfig(temperature=temperature)
    top, lower = max(budgets), [b for b in budgets if b < max(budgets)]
    capped = Budget(max_thinking_tokens=top)
    print(f"\n## Budget sweep {list(budgets)} on {prompts} arith prompts, T={temperature}; wall seconds (one run each)")
    base, single = log.time("sweep: one run", lambda: generator.generate(requests, sampling, capped))
    swept, swept_t = log.time("sweep: forking", lambda: sweep(generator, requests, budgets, sampling))
    _, probe_t = log.time("sweep: probe", lambda: probe(generator, requests, base, lower, sampling, capped))
    separate, separate_t = log.time("sweep: separate runs", lambda: {
        b: generator.generate(requests, sampling, replace(capped, max_thinking_tokens=b)) for b in budgets})
    same = sum(swept[b][i].completion_ids == separate[b][i].completion_ids for b in budgets for i in range(prompts))
    one = single.seconds
    print(f"one run at {top}: {one:.1f} s (mean thinking {statistics.mean(t.thinking_tokens for t in base):.0f} "
          f"tokens, {sum(t.capped for t in base)}/{len(base)} capped) {flag(single)}")
    print(f"sweep, forking at each budget: {swept_t.seconds:.1f} s = {swept_t.seconds / one:.2f}x the single run "
          f"{flag(single, swept_t)}")
    print(f"run at {top} + post-hoc probe (re-prefills): {one + probe_t.seconds:.1f} s = "
          f"{(one + probe_t.seconds) / one:.2f}x {flag(single, probe_t)}")
    print(f"{len(budgets)} separate capped runs: {separate_t.seconds:.1f} s = {separate_t.seconds / one:.2f}x "
          f"(the sweep is {separate_t.seconds / swept_t.seconds:.2f}x faster) {flag(single, separate_t)}")
    print(f"sweep traces identical to the separate runs' token for token: {same}/{prompts * len(budgets)} "
          "(batch shapes differ, so float noise can flip a near-tied draw)")


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches and few tokens: a smoke run")
    parser.add_argument("--only", choices=PARTS, help="run one part (the roof is always measured)")
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions per throughput figure")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps {args.reps} must be >= 1; 3 or more gives a median that one burst of load cannot move")
    model, tokenizer, log, roof = start_run()
    protocol = ThinkingProtocol()
    parts = [args.only] if args.only else PARTS
    quick = args.quick
    if "throughput" in parts:
        throughput(model, tokenizer, protocol, roof, [1, 4] if quick else [1, 16, 64], 32 if quick else 128,
                   args.reps, log)
    if "dtype" in parts:
        dtype_effects(model, tokenizer, protocol, roof, 4 if quick else 64, log)
    if "sweep" in parts:
        budget_sweep(model, tokenizer, protocol, 4 if quick else 32, [4, 8, 16] if quick else [8, 16, 32, 64], log)
    again, timing = log.time("roof fp32, again at the end", lambda: streamed_gflops(model, torch.float32))
    drift = again / roof.gflops[torch.float32] - 1
    print(f"\nfp32 roof measured again at the end: {again:.1f} GFLOP/s ({drift:+.0%} from the start)"
          + (" !! the machine's speed moved during the run" if abs(drift) > 0.15 else "") + f" {flag(timing)}")
    log.report()


if __name__ == "__main__":
    main()
