"""Sweep metrics against brute force over every k-subset, closed forms and hand-worked cases."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlcot.evals.intervals import bootstrap_ci, bootstrap_difference
from rlcot.evals.metrics import best_of_n, control, maj_at_k, pass_at_k, performance, scaling
from rlcot.evals.outcomes import (
    OUTCOMES,
    agreement_confidence,
    aurc,
    brier_score,
    expected_calibration_error,
    outcome_rates,
    risk_coverage,
)

# ---------------------------------------------------------------- brute force: every k-subset


def subsets(n, k):
    return list(itertools.combinations(range(n), k))


def brute_pass(correct, k):
    hits = [any(correct[i] for i in s) for s in subsets(len(correct), k)]
    return Fraction(sum(hits), len(hits))


def brute_maj(answers, correct, k):
    total = Fraction(0)
    for s in subsets(len(answers), k):
        votes = Counter(answers[i] for i in s if answers[i] is not None)
        if not votes:
            continue  # no votes: scores 0
        top = max(votes.values())
        tied = [key for key, v in votes.items() if v == top]
        truth = {answers[i]: correct[i] for i in s}
        total += Fraction(sum(truth[key] for key in tied), len(tied))
    return total / math.comb(len(answers), k)


def brute_best(scores, correct, k):
    total = Fraction(0)
    for s in subsets(len(scores), k):
        top = max(scores[i] for i in s)
        tied = [i for i in s if scores[i] == top]
        total += Fraction(sum(correct[i] for i in tied), len(tied))
    return total / math.comb(len(scores), k)


def consistent_correct(answers, truth, none_flags):
    """Per-sample correctness: a key's truth; a None sample gets an arbitrary flag (ignored)."""
    return [truth[a] if a is not None else flag for a, flag in zip(answers, none_flags)]


# ---------------------------------------------------------------- pass@k


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_brute_force_for_every_c_and_k(n):
    for c in range(n + 1):
        correct = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(brute_pass(correct, k)), abs=1e-12)


def test_pass_at_k_edge_cases():
    assert pass_at_k(10, 0, 5) == 0.0  # nothing correct
    assert pass_at_k(10, 10, 1) == 1.0  # everything correct
    assert pass_at_k(10, 3, 8) == 1.0  # only 7 wrong: every 8-subset holds a correct one
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    assert pass_at_k(np.int64(4), np.int64(1), np.int64(4)) == 1.0  # numpy integers are counts


def test_pass_at_k_stays_finite_for_large_n():
    # C(2000, 1000) overflows a float; the product form never forms it
    exact = 1 - Fraction(math.comb(1990, 1000), math.comb(2000, 1000))
    assert pass_at_k(2000, 10, 1000) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(
    "n, c, k, error",
    [
        (5, 2, 6, ValueError),  # k > n
        (5, 6, 2, ValueError),  # c > n
        (5, -1, 2, ValueError),  # negative c
        (-5, 0, 1, ValueError),  # negative n
        (5, 2, 0, ValueError),  # k = 0 has no meaning
        (5, 2, -1, ValueError),  # negative k
        (5, 2.0, 1, TypeError),  # a float count is a caller's bug, not rounded
        (5, True, 1, TypeError),  # a bool is not a count
    ],
)
def test_pass_at_k_rejects_bad_counts(n, c, k, error):
    with pytest.raises(error):
        pass_at_k(n, c, k)


# ---------------------------------------------------------------- maj@k


def test_maj_at_k_counts_a_two_way_tie_at_half():
    assert maj_at_k(["a", "b"], [True, False], 2) == pytest.approx(0.5)


def test_maj_at_k_none_never_votes():
    # two correct-flagged samples without an answer cannot outvote one wrong answer
    assert maj_at_k([None, None, "x"], [True, True, False], 3) == 0.0
    # a subset with no votes scores 0: only the subset {"a"} of the two 1-subsets scores
    assert maj_at_k([None, "a"], [False, True], 1) == pytest.approx(0.5)
    assert maj_at_k([None, None], [True, True], 2) == 0.0


def test_maj_at_k_uses_every_subset_not_the_first_k():
    # the first two samples are wrong; over all 2-subsets the correct key wins 4 of 10 ways
    answers = ["w1", "w2", "c", "c", "c"]
    correct = [False, False, True, True, True]
    assert maj_at_k(answers, correct, 2) == pytest.approx(float(brute_maj(answers, correct, 2)))
    assert maj_at_k(answers, correct, 2) != pytest.approx(0.0)


def test_maj_at_k_rejects_a_key_marked_both_correct_and_wrong():
    with pytest.raises(ValueError, match="'7'"):
        maj_at_k(["7", "7", "8"], [True, False, False], 2)


def test_maj_at_k_rejects_bad_inputs():
    with pytest.raises(ValueError, match="k=4"):
        maj_at_k(["a", "b", "c"], [True, False, False], 4)
    with pytest.raises(ValueError, match="lengths differ"):
        maj_at_k(["a", "b"], [True], 1)
    with pytest.raises(TypeError, match="not hashable"):
        maj_at_k([["a"], ["b"]], [True, False], 1)


MAJ_CASES = [
    (["a", "a", "b", "b", "c"], [1, 1, 0, 0, 0]),  # two-way ties at 2 and at 1
    (["a", "b", "c", "d"], [0, 1, 0, 0]),  # all singletons: every k is one big tie
    (["a", None, "b", None, "a", "b", "b"], [1, 1, 0, 0, 1, 0, 0]),  # Nones among a tie
    (["a", "b", "a", "c", "b", "d", "a", "e"], [1, 0, 1, 1, 0, 0, 1, 0]),  # two correct keys, 3 and 1 votes
    (["a", "b", "b", "c", "c", "d", "d", "d"], [1, 1, 1, 0, 0, 1, 1, 1]),  # correct keys with 1, 2, 3 votes
    ([None] * 7 + ["a"], [0] * 7 + [1]),  # mostly unparsed
]


@pytest.mark.parametrize("answers, correct", MAJ_CASES)
def test_maj_at_k_equals_brute_force_on_tied_cases(answers, correct):
    for k in range(1, len(answers) + 1):
        assert maj_at_k(answers, correct, k) == pytest.approx(float(brute_maj(answers, correct, k)), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from("abcd")), min_size=1, max_size=8),
    st.fixed_dictionaries({key: st.booleans() for key in "abcd"}),
    st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_maj_at_k_equals_brute_force_hypothesis(answers, truth, none_flags):
    correct = consistent_correct(answers, truth, none_flags)
    for k in range(1, len(answers) + 1):
        assert maj_at_k(answers, correct, k) == pytest.approx(float(brute_maj(answers, correct, k)), abs=1e-12)


def test_maj_at_k_matches_the_hypergeometric_closed_form_at_large_n():
    # two keys, 230 correct vs 170 wrong: the correct one wins when it draws more than
    # half of the k, and half the time on an exact split
    right, wrong = 230, 170
    answers = ["r"] * right + ["w"] * wrong
    correct = [True] * right + [False] * wrong
    for k in (1, 100, 101, 399, 400):
        ways = Fraction(0)
        for x in range(max(0, k - wrong), min(right, k) + 1):
            share = 1 if 2 * x > k else Fraction(1, 2) if 2 * x == k else 0
            ways += share * math.comb(right, x) * math.comb(wrong, k - x)
        assert maj_at_k(answers, correct, k) == pytest.approx(float(ways / math.comb(400, k)), abs=1e-10)


def test_maj_at_k_all_distinct_answers_is_one_over_n():
    # one correct singleton among n: drawn with probability k/n, then wins a k-way tie 1/k
    n = 300
    answers = list(range(n))
    correct = [i == 0 for i in range(n)]
    for k in (1, 150, 300):
        assert maj_at_k(answers, correct, k) == pytest.approx(1 / n, rel=1e-9)


def test_maj_at_1_is_the_fraction_of_correct_samples():
    rng = np.random.default_rng(3)
    answers = [None if x == 9 else int(x) for x in rng.integers(0, 10, 200)]
    correct = [a == 4 for a in answers]
    assert maj_at_k(answers, correct, 1) == pytest.approx(sum(correct) / 200, abs=1e-12)


# ---------------------------------------------------------------- best-of-n


@pytest.mark.parametrize("n", range(1, 9))
def test_best_of_n_with_scores_equal_to_correctness_is_pass_at_k(n):
    for c in range(n + 1):
        correct = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert best_of_n([float(x) for x in correct], correct, k) == pytest.approx(pass_at_k(n, c, k), abs=1e-12)


def test_best_of_n_counts_a_score_tie_at_its_expected_value():
    assert best_of_n([0.7, 0.7], [True, False], 2) == pytest.approx(0.5)
    assert best_of_n([0.7, 0.7, 0.9], [True, False, False], 3) == 0.0  # the lone best is wrong


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=8),
)
def test_best_of_n_equals_brute_force_hypothesis(rows):
    scores = [float(s) for s, _ in rows]  # few distinct scores: many ties
    correct = [c for _, c in rows]
    for k in range(1, len(rows) + 1):
        assert best_of_n(scores, correct, k) == pytest.approx(float(brute_best(scores, correct, k)), abs=1e-12)


def test_best_of_n_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        best_of_n([0.1, float("nan")], [True, False], 1)


# ---------------------------------------------------------------- bootstrap


def sweep_table(seed=0, problems=40, budgets=5):
    rng = np.random.default_rng(seed)
    return rng.random((problems, budgets))


def test_bootstrap_is_reproducible_with_a_seed_and_changes_with_another():
    values = sweep_table()
    first, again, other = (bootstrap_ci(values, n_boot=300, seed=s) for s in (7, 7, 8))
    assert np.array_equal(first.lo, again.lo) and np.array_equal(first.hi, again.hi)
    assert not np.array_equal(first.lo, other.lo)


def test_bootstrap_interval_contains_the_mean_over_problems():
    values = sweep_table()
    estimate = bootstrap_ci(values, n_boot=500)
    np.testing.assert_array_equal(estimate.mean, values.mean(axis=0))
    assert np.all(estimate.lo < estimate.mean) and np.all(estimate.mean < estimate.hi)


def test_bootstrap_resamples_problems_jointly_across_columns():
    # a copied column sees the very same resamples, so its interval is identical
    base = sweep_table()[:, 0]
    estimate = bootstrap_ci(np.stack([base, sweep_table(seed=1)[:, 1], base], axis=1), n_boot=300)
    assert estimate.lo[0] == estimate.lo[2] and estimate.hi[0] == estimate.hi[2]


def test_bootstrap_difference_of_identical_values_is_exactly_zero():
    values = sweep_table()
    estimate = bootstrap_difference(values, values.copy(), n_boot=200)
    assert np.all(estimate.mean == 0) and np.all(estimate.lo == 0) and np.all(estimate.hi == 0)


def test_bootstrap_difference_is_paired():
    # after = before + 0.05 with small noise: problem difficulty varies a lot but cancels
    rng = np.random.default_rng(1)
    before = rng.random(60)
    after = before + 0.05 + 0.01 * rng.standard_normal(60)
    difference = bootstrap_difference(after, before, n_boot=500)
    alone = bootstrap_ci(after, n_boot=500)
    assert difference.lo > 0.04 and difference.hi < 0.06
    assert difference.hi - difference.lo < 0.2 * (alone.hi - alone.lo)


def test_bootstrap_skips_missing_cells():
    values = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]])
    estimate = bootstrap_ci(values, n_boot=200)
    np.testing.assert_allclose(estimate.mean, [2 / 3, 1.0])
    assert estimate.lo[1] == 1.0 and estimate.hi[1] == 1.0  # only 1.0s are ever observed


def test_bootstrap_of_a_flat_vector_returns_floats():
    estimate = bootstrap_ci([0.0, 1.0, 1.0, 0.0], n_boot=100)
    assert isinstance(estimate.mean, float) and estimate.mean == 0.5
    assert 0.0 <= estimate.lo <= 0.5 <= estimate.hi <= 1.0


@pytest.mark.parametrize("kwargs", [{"level": 1.0}, {"level": 0}, {"n_boot": 0}, {"n_boot": 2.5}])
def test_bootstrap_rejects_bad_settings(kwargs):
    with pytest.raises((ValueError, TypeError)):
        bootstrap_ci([0.0, 1.0], **kwargs)


def test_bootstrap_difference_rejects_unpaired_shapes():
    with pytest.raises(ValueError, match="paired"):
        bootstrap_difference(np.zeros(5), np.zeros(6))


# ---------------------------------------------------------------- s1 metrics


def test_scaling_is_the_mean_pairwise_slope():
    # slopes: (1,2) 0.2/1, (1,4) 0.3/3, (2,4) 0.1/2 -> mean 0.35/3
    assert scaling([1, 2, 4], [0.2, 0.4, 0.5]) == pytest.approx(0.35 / 3)
    assert scaling([4, 1, 2], [0.5, 0.2, 0.4]) == pytest.approx(0.35 / 3)  # order does not matter


def test_scaling_skips_pairs_with_equal_compute():
    # (1,1) skipped; (1,2) slopes 0.4 and 0.2
    assert scaling([1, 1, 2], [0.1, 0.3, 0.5]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="distinct"):
        scaling([3, 3], [0.1, 0.2])


def test_control_counts_runs_inside_the_closed_budget():
    tokens = [100, 150, 200, 350, 400]
    assert control(tokens, 150, 350) == pytest.approx(3 / 5)  # both ends inclusive
    assert control(tokens, None, 200) == pytest.approx(3 / 5)
    assert control(tokens, 300, None) == pytest.approx(2 / 5)
    assert control(tokens) == 1.0
    with pytest.raises(ValueError, match="a_min"):
        control(tokens, 400, 100)


def test_performance_is_the_best_accuracy():
    assert performance([0.2, 0.6, 0.5]) == 0.6


def test_s1_metrics_validate_lengths():
    with pytest.raises(ValueError, match="lengths differ"):
        scaling([1, 2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        performance([])


# ---------------------------------------------------------------- outcome rates


def test_outcome_rates_hand_worked():
    outcomes = ["correct", "correct", "wrong", "abstain", "unparsed"]
    rates = outcome_rates(outcomes, [False, True, True, False, False], [1.0, 0.5, -2.0, 0.0, -4.0])
    assert rates.n == 5
    assert rates.coverage == pytest.approx(3 / 5)
    assert rates.selective_accuracy == pytest.approx(2 / 3)
    assert rates.accuracy == pytest.approx(2 / 5)
    assert rates.abstain_rate == pytest.approx(1 / 5) and rates.unparsed_rate == pytest.approx(1 / 5)
    assert rates.hedge_rate == pytest.approx(2 / 5)
    assert rates.mean_score == pytest.approx(-4.5 / 5)


def test_selective_accuracy_is_nan_when_nothing_is_answered():
    rates = outcome_rates(["abstain", "unparsed"], [False, False], [0.0, -4.0])
    assert math.isnan(rates.selective_accuracy) and rates.coverage == 0.0


def test_outcome_rates_rejects_unknown_outcomes():
    with pytest.raises(ValueError, match="skipped"):
        outcome_rates(["correct", "skipped"], [False, False], [1.0, 0.0])


def test_outcomes_are_the_verifiers_own_not_a_copy():
    from rlcot.verifiers.base import OUTCOMES as VERDICT_OUTCOMES

    assert OUTCOMES is VERDICT_OUTCOMES  # defined once, in the verifiers


# ---------------------------------------------------------------- calibration


def test_agreement_confidence_is_the_share_of_samples_with_the_same_answer():
    np.testing.assert_allclose(agreement_confidence(["a", "a", "b", None]), [0.5, 0.5, 0.25, 0.0])


def test_ece_is_zero_for_perfect_calibration():
    confidence = [0.25] * 4 + [0.75] * 4
    correct = [1, 0, 0, 0] + [1, 1, 1, 0]
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-15)


def test_ece_hand_worked():
    assert expected_calibration_error([0.9, 0.9], [1, 0]) == pytest.approx(0.4)  # one bin: |0.5 - 0.9|
    assert expected_calibration_error([0.05, 0.95], [0, 0]) == pytest.approx(0.5)  # 0.5 * 0.05 + 0.5 * 0.95
    assert expected_calibration_error([1.0], [1]) == 0.0  # confidence 1 falls in the last bin
    # with one bin the errors of the two samples cancel: 0.5 * |0.5 - 0.5|
    assert expected_calibration_error([0.05, 0.95], [0, 1], bins=1) == pytest.approx(0.0)


def test_brier_score_hand_worked():
    assert brier_score([0.8, 0.3], [1, 0]) == pytest.approx((0.2**2 + 0.3**2) / 2)


def test_risk_coverage_takes_tied_confidences_in_one_step():
    coverage, risk = risk_coverage([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
    np.testing.assert_allclose(coverage, [0.25, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 1 / 3, 0.5])
    assert aurc([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0]) == pytest.approx(0.25 * 0 + 0.5 / 3 + 0.25 * 0.5)


def test_aurc_with_distinct_confidences_is_the_mean_risk_over_prefixes():
    confidence = [0.9, 0.7, 0.5, 0.3]
    correct = [1, 0, 1, 0]
    prefix_risks = [0 / 1, 1 / 2, 1 / 3, 2 / 4]
    assert aurc(confidence, correct) == pytest.approx(np.mean(prefix_risks))


def test_aurc_of_a_perfect_ranking_is_lower_than_of_the_reversed_one():
    correct = [1, 1, 1, 0, 0]
    perfect = [0.9, 0.8, 0.7, 0.2, 0.1]
    assert aurc(perfect, correct) < aurc(perfect[::-1], correct)


def test_calibration_rejects_confidence_outside_unit_interval():
    with pytest.raises(ValueError, match="outside"):
        expected_calibration_error([1.2], [1])
