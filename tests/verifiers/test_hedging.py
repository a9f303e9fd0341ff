"""Hedge/abstain detection and the scoring scheme."""

from __future__ import annotations

import pytest

from rlcot.verifiers import BINARY, HedgeLexicon, HedgeScheme, Verdict

LEX = HedgeLexicon()


@pytest.mark.parametrize(
    "text, hedges",
    [
        ("I think it is \\boxed{4}.", True),
        ("Probably \\boxed{4}", True),
        ("\\boxed{4}, but I'm not sure.", True),
        ("My best guess: \\boxed{4}", True),
        ("MAYBE 4", True),  # case does not matter
        ("\\boxed{4}", False),
        ("Maybelline sells 4 items: \\boxed{4}", False),  # word boundaries: no hedge inside a word
        ("I thinkpad", False),  # 'I think' must end at a word boundary
        ("The answer is likely\n4", True),  # line breaks fold to spaces
    ],
)
def test_hedging_is_detected_by_phrase_with_word_boundaries(text, hedges):
    assert LEX.hedges(text) is hedges


@pytest.mark.parametrize(
    "text, abstains",
    [
        ("I don't know.", True),
        ("I don\u2019t know.", True),  # typographic apostrophe
        ("There is not enough information to answer.", True),
        ("I cannot determine the answer.", True),
        ("I know: \\boxed{4}", False),
    ],
)
def test_abstention_phrases_are_detected(text, abstains):
    assert LEX.abstains(text) is abstains


@pytest.mark.parametrize("box", ["\\boxed{IDK}", "\\boxed{idk}", "\\boxed{\\text{IDK}}", "\\boxed{I don't know}"])
def test_boxed_idk_is_an_abstain_token(box):
    assert LEX.abstain_token(f"So {box}.")


@pytest.mark.parametrize(
    "answer, token",
    [
        ("\\boxed{\\textbf{IDK}}", True),  # bold was read as an answer "IDK}" and scored wrong (-4)
        ("\\boxed{\\mathrm{IDK}}", True),  # any text wrapper
        ("\\boxed{\\text{\\textit{unknown}}}", True),  # nested wrappers
        ("\\boxed{ \\mbox{ I  don\u2019t know } }", True),  # spaces and a typographic apostrophe
        ("IDK", True),  # a bare token as the whole answer was unparsed while \\boxed{IDK} abstained
        ("idk.", True),  # ... in any case, with a full stop
        ("  **Unknown**  ", True),  # ... in Markdown bold
        ("$\\text{IDK}$", True),  # ... in inline math
        ("IDK, but maybe 4", False),  # a token beside other words is text (the phrase rules judge it)
        ("\\boxed{IDK} no, \\boxed{4}", False),  # only the final box counts
        ("\\boxed{\\textbf{4}}", False),  # formatting alone is no abstention
        ("\\textbf{" * 50_000 + "IDK" + "}" * 50_000, True),  # deep wrappers: one linear pass
    ],
)
def test_an_abstain_token_is_read_through_formatting_boxed_or_bare(answer, token):
    assert LEX.abstain_token(answer) is token


def test_custom_abstain_tokens_are_read_the_same_way():
    lexicon = HedgeLexicon(abstain_tokens=("Je ne sais pas",))
    assert lexicon.abstain_token("\\boxed{\\textbf{je ne sais pas}}") and lexicon.abstain_token("Je ne sais pas.")
    assert not lexicon.abstain_token("IDK")


def test_a_custom_lexicon_replaces_the_defaults():
    lexicon = HedgeLexicon(hedge_phrases=("peut-être",), abstain_phrases=("je ne sais pas",))
    assert lexicon.hedges("peut-être 4") and not lexicon.hedges("probably 4")
    assert lexicon.abstains("Je ne sais pas")


@pytest.mark.parametrize(
    "verdict, score",
    [
        (Verdict("correct"), 1.0),
        (Verdict("correct", hedged=True), 0.5),
        (Verdict("abstain"), 0.0),
        (Verdict("wrong", hedged=True), -2.0),
        (Verdict("wrong"), -4.0),
        (Verdict("unparsed"), -4.0),  # unparsed is scored as wrong by default
        (Verdict("unparsed", hedged=True), -2.0),
    ],
)
def test_default_scheme_scores_each_verdict(verdict, score):
    assert HedgeScheme().score(verdict) == score


def test_unparsed_can_be_given_its_own_score():
    assert HedgeScheme(unparsed=-1.0).score(Verdict("unparsed")) == -1.0


def test_default_thresholds_reward_answering_only_above_080():
    thresholds = HedgeScheme().thresholds()
    assert thresholds["answer_over_abstain"] == pytest.approx(0.8)
    assert thresholds["hedged_over_abstain"] == pytest.approx(0.8)
    assert thresholds["unhedged_over_hedged"] == pytest.approx(0.8)


def test_thresholds_follow_the_numbers():
    # wrong costs -1: answering beats abstaining above p = 0.5
    assert HedgeScheme(wrong=-1.0).thresholds()["answer_over_abstain"] == pytest.approx(0.5)
    # binary rewards: answering never loses to abstaining (crossing at p = 0)
    assert BINARY.thresholds()["answer_over_abstain"] == pytest.approx(0.0)
    # identical hedged and unhedged rewards: neither dominates anywhere -> None
    assert BINARY.thresholds()["unhedged_over_hedged"] is None
