"""rlcot.evals.compute: think longer or sample more, on hand-made settings whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rlcot.evals.compute import (SAMPLE, THINK, TIE, Setting, best_within, compute_points, describe, frontier,
                                 segments, settings, tokens_per_problem)
from rlcot.evals.points import Point


def think(budget: int, tokens: float, accuracy: float) -> Setting:
    return Setting(budget, 1, tokens, accuracy)


def sampled(budget: int, tokens_per_sample: float, k: int, accuracy: float) -> Setting:
    return Setting(budget, k, tokens_per_problem(k, tokens_per_sample), accuracy)


# at B=0 a sample costs 10 tokens; thinking longer barely helps, voting over samples helps a lot
SAMPLING_WINS = [think(0, 10, 0.30), think(64, 50, 0.35), think(256, 200, 0.36),
                 sampled(0, 10, 2, 0.30), sampled(0, 10, 4, 0.50), sampled(0, 10, 8, 0.60), sampled(0, 10, 16, 0.70)]
# thinking longer helps a lot; more samples of a short thought barely do
THINKING_WINS = [think(0, 10, 0.20), think(64, 40, 0.60), think(256, 160, 0.80),
                 sampled(0, 10, 2, 0.22), sampled(0, 10, 4, 0.25), sampled(0, 10, 8, 0.27), sampled(0, 10, 16, 0.28)]


def test_compute_is_k_times_the_tokens_of_one_sample():
    assert tokens_per_problem(1, 37.5) == 37.5 and tokens_per_problem(8, 37.5) == 300.0
    for k in (0, True, 2.0):
        with pytest.raises(ValueError, match=rf"k={k!r} is not a sample count"):
            tokens_per_problem(k, 10.0)
    with pytest.raises(ValueError, match="tokens_per_sample=nan"):
        tokens_per_problem(2, float("nan"))


def test_where_sampling_more_clearly_wins_the_frontier_is_the_votes():
    assert [(s.budget, s.k) for s in frontier(SAMPLING_WINS)] == [(0, 1), (0, 4), (0, 8), (0, 16)]
    found = segments(SAMPLING_WINS)
    # at 20 tokens two votes at B=0 score what one sample does (the same 0.30); from 40 on, voting wins;
    # a new segment wherever either side's best setting changes
    assert [(g.start, g.end, g.winner) for g in found] == [(20, 40, TIE), (40, 50, SAMPLE), (50, 80, SAMPLE),
                                                           (80, 160, SAMPLE), (160, 200, SAMPLE), (200, None, SAMPLE)]
    assert found[-1].think == think(256, 200, 0.36) and found[-1].sample == sampled(0, 10, 16, 0.70)
    assert describe(found) == "equal at 20-40 tokens; sample more wins at 40+ tokens"


def test_where_thinking_longer_wins_the_answer_changes_once_a_longer_thought_is_affordable():
    assert [(s.budget, s.k) for s in frontier(THINKING_WINS)] == [(0, 1), (0, 2), (64, 1), (256, 1)]
    found = segments(THINKING_WINS)
    # two samples at B=0 (20 tokens) beat one until B=64's one sample (40 tokens) is affordable
    assert [(g.start, g.end, g.winner) for g in found] == [(20, 40, SAMPLE), (40, 80, THINK), (80, 160, THINK),
                                                           (160, None, THINK)]
    assert found[-1].think == think(256, 160, 0.80)  # at equal cost the longer thought beats 16 votes
    assert describe(found) == "sample more wins at 20-40 tokens; think longer wins at 40+ tokens"


def test_below_the_cheapest_vote_there_is_no_contest():
    assert segments([think(0, 10, 0.2), think(64, 40, 0.5)]) == []
    assert describe([]).startswith("no contest")
    assert all(g.start >= 20 for g in segments(THINKING_WINS))  # k=2 at B=0 is the cheapest vote


def test_the_frontier_rises_and_covers_every_setting():
    rng = np.random.default_rng(0)
    for _ in range(20):
        points = [Setting(int(b), int(k), float(c), float(a))
                  for b, k, c, a in zip(rng.integers(0, 4, 12), rng.integers(1, 9, 12), rng.uniform(1, 100, 12),
                                        rng.integers(0, 6, 12) / 5)]  # coarse accuracies: ties are common
        line = frontier(points)
        assert all(a.compute < b.compute and a.accuracy < b.accuracy for a, b in zip(line, line[1:]))
        for s in points:  # matched or beaten by a frontier setting that costs no more
            assert any(f.compute <= s.compute and f.accuracy >= s.accuracy for f in line)
            assert best_within(points, s.compute).accuracy == max(p.accuracy for p in points if p.compute <= s.compute)


def test_ties_go_to_the_cheaper_setting():
    same_cost = [Setting(64, 1, 40.0, 0.5), Setting(0, 4, 40.0, 0.5)]
    assert frontier(same_cost) == [Setting(64, 1, 40.0, 0.5)]  # fewer samples first when cost and accuracy tie
    dearer = [think(0, 10, 0.5), sampled(0, 10, 4, 0.5)]
    assert frontier(dearer) == [think(0, 10, 0.5)]  # the same accuracy for more tokens is not on the frontier
    assert best_within(dearer, 100) == think(0, 10, 0.5)
    assert best_within(dearer, 5) is None
    (segment,) = segments(dearer)
    assert segment.winner == TIE and not segment.clear
    # 0.1 + 0.2 is not 0.3 in floats: estimates of equal counts still tie
    assert segments([think(0, 10, 0.3), sampled(0, 10, 2, 0.1 + 0.2)])[0].winner == TIE


def test_a_winner_is_clear_only_when_its_paired_interval_excludes_zero():
    calls = []

    def paired(a, b):
        calls.append((a, b))
        return (0.05, 0.4) if b.k == 16 else (-0.1, 0.3)

    found = segments(SAMPLING_WINS, paired)
    # a tie is never clear; 4 and 8 votes: the interval holds 0; 16 votes: it does not
    assert [(g.sample.k, g.clear) for g in found] == [(2, False), (4, False), (4, False), (8, False), (16, True),
                                                      (16, True)]
    assert (found[-1].lo, found[-1].hi) == (0.05, 0.4)
    assert len(calls) == len(set(calls)) == len(found)  # one interval per pair compared, not per compute level
    assert describe(found) == ("equal at 20-40 tokens; sample more wins (within the 95% CI) at 40-160 tokens; "
                               "sample more wins at 160+ tokens")
    unclear = segments([think(0, 10, 0.2), sampled(0, 10, 4, 0.5)], lambda a, b: (-0.1, 0.7))
    assert unclear[0].winner == SAMPLE and not unclear[0].clear
    assert describe(unclear) == "sample more wins (within the 95% CI) at 40+ tokens"


def test_points_move_from_k_to_the_tokens_their_setting_costs():
    at_k = [Point("m", metric, float(k), 0.1 * k, budget=b, k=k) for metric in ("maj@k", "pass@k", "best@k")
            for b in (0, 64) for k in (1, 2, 4)]
    moved = compute_points(at_k, {0: 12.0, 64: 50.0})
    assert {p.metric for p in moved} == {"maj@k", "pass@k"}  # best@k is another question (a score picks)
    assert {(p.budget, p.k, p.x) for p in moved} == {(0, 1, 12.0), (0, 2, 24.0), (0, 4, 48.0),
                                                      (64, 1, 50.0), (64, 2, 100.0), (64, 4, 200.0)}
    assert Setting(64, 4, 200.0, 0.4) in settings(moved, "maj@k")
    with pytest.raises(ValueError, match=r"budget 64 has no tokens per sample \(have \[0\]\)"):
        compute_points(at_k, {0: 12.0})


def test_settings_with_no_finite_values_are_refused_by_name():
    with pytest.raises(ValueError, match="no settings"):
        frontier([])
    with pytest.raises(ValueError, match="non-finite"):
        segments([Setting(0, 1, float("nan"), 0.5)])
