"""A real inference-time compute sweep on the default model: forking vs separate runs, in one run.

The sweep ``rlcot sweep`` runs (64 arith problems x 4 samples, T=0.7, budgets 16..256)
twice through the whole pipeline (generate, score, store):

1. **forked**: one generation at the largest budget, every smaller budget by forking
   (what ``rlcot sweep`` does);
2. **separate**: one generation per budget, the way s1's evaluation runs each budget
   (the peer doing the same work: same rows, samples, seeds, scoring and storage);
3. **forked + gold**: the forked sweep again with the gold answer's log-probability
   measured (gold twins on the forked caches), to show what that metric costs.

Both sides are timed in this run, under the load check of ``bench/common.py``;
the fp32 roof (tokens/s if decoding did nothing but the model's matmuls) is measured
in the same run, and the forked sweep's decoding rate is reported as a fraction of it.
The accuracy curve it measured (with 95% paired-bootstrap CIs) is printed at the end:
the numbers the closing note of a sweep reports.

Run: ``make bench`` (every bench), or ``.venv/bin/python bench/sweep.py [--quick]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import MODEL, flag, start_run

from rlcot.evals.analysis import headline
from rlcot.evals.sweep import model_loader, run_sweep
from rlcot.evals.sweep_spec import SweepSpec
from rlcot.store import load_traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 problems x 2 samples, budgets 16..64: a smoke run")
    parser.add_argument("--no-separate", action="store_true",
                        help="skip the separate runs (the slowest part), e.g. to re-measure a loaded forked run")
    args = parser.parse_args()
    model, tokenizer, log, roof = start_run()
    spec = SweepSpec(models=(MODEL,), limit=8 if args.quick else 64, samples=2 if args.quick else 4,
                     temperature=0.7, budgets=(16, 32, 64) if args.quick else (16, 32, 64, 128, 256),
                     dtype="fp32", batch_size=64, gold_logprob=True)
    load = model_loader(model, tokenizer)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        print(f"\n## Sweep: {spec.limit} arith problems x {spec.samples} samples, T={spec.temperature}, "
              f"budgets {list(spec.budgets)}")
        no_gold = replace(spec, gold_logprob=False)
        forked, forked_t = log.time("sweep: forked", lambda: run_sweep(no_gold, scratch / "forked", loader=load))
        budgets = () if args.no_separate else spec.budgets
        reports, separate_t = log.time("sweep: separate runs", lambda: [
            run_sweep(replace(no_gold, budgets=(b,)), scratch / "separate", loader=load) for b in budgets])
        gold, gold_t = log.time("sweep: forked + gold", lambda: run_sweep(spec, scratch / "gold", loader=load))
        separate_generate = sum(r.generate_s for r in reports) or float("nan")
        separate_all = sum(r.generate_s + r.score_s for r in reports) or float("nan")
        forked_all = forked.generate_s + forked.score_s
        print(f"{'':>28} | {'generate s':>10} | {'+ score s':>9} | {'rows':>5} | {'tokens decoded':>14}")
        print(f"{'forked (one run, forks)':>28} | {forked.generate_s:>10.1f} | {forked_all:>9.1f} | "
              f"{forked.written:>5} | {forked.tokens:>14} {flag(forked_t)}")
        print(f"{'separate run per budget':>28} | {separate_generate:>10.1f} | {separate_all:>9.1f} | "
              f"{sum(r.written for r in reports):>5} | {sum(r.tokens for r in reports):>14} {flag(separate_t)}")
        print(f"{'forked + gold log-prob':>28} | {gold.generate_s:>10.1f} | {gold.generate_s + gold.score_s:>9.1f} | "
              f"{gold.written:>5} | {gold.tokens:>14} {flag(gold_t)}")
        print(f"forking is {separate_generate / forked.generate_s:.2f}x faster at generating "
              f"({separate_all / forked_all:.2f}x with scoring) {flag(forked_t, separate_t)}")
        rate = forked.tokens / forked.generate_s
        print(f"forked decoding: {rate:.0f} tokens/s = {rate / roof.tokens_per_s():.2f} of the fp32 roof "
              f"({roof.tokens_per_s():.0f} tokens/s, measured above) {flag(forked_t)}")
        print(f"the gold log-probability (twins on the forked caches) costs {gold.generate_s / forked.generate_s - 1:+.0%}"
              f" generation time {flag(forked_t, gold_t)}")
        rows = load_traces(scratch / "gold")
        print(f"\n## The curve it measured ({spec.limit} problems x {spec.samples} samples, default scoring)")
        lines = headline(rows)
        print(" | ".join(f"{c:>10}" for c in lines[0]))
        for line in lines:
            print(" | ".join(f"{str(v):>10}" for v in line.values()))
    again = roof.tokens_per_s()
    print(f"\n(roof measured once at the start: {again:.0f} fp32 tokens/s; the load check follows)")
    log.report()
    print(f"total {time.process_time():.0f} CPU s")


if __name__ == "__main__":
    main()
