"""The crossword checker, its generator, the shipped word file and the script that builds it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlcot.verifiers import get_verifier
from rlcot.verifiers.crossword import CrosswordVerifier, format_answer, number_grid
from rlcot.verifiers.crossword_generator import generate, generate_item, load_words, patterns

ROOT = Path(__file__).resolve().parents[2]

# 1A CAT, 1D COB, 2D TOE, 3A BYE; the centre is black, so (0,1) and (2,1) are checked once.
EXAMPLE = {
    "grid": ["...", ".#.", "..."],
    "solution": ["CAT", "O#O", "BYE"],
    "clues": {"across": {"1": "Feline mammal", "3": "Farewell"}, "down": {"1": "Corn ear", "2": "Foot digit"}},
}
ENTRIES = "1A: CAT\n1D: COB\n2D: TOE\n3A: BYE"
GRID = "CAT\nO#O\nBYE"


@pytest.fixture(scope="module")
def verifier():
    return CrosswordVerifier()


@pytest.mark.parametrize(
    "completion, outcome, reason, hedged",
    [
        (f"<think>x</think>{ENTRIES}", "correct", None, False),  # the gold entries
        (f"<think>x</think>{GRID}", "correct", None, False),  # the gold grid
        (f"<think>{ENTRIES}</think>", "unparsed", "no_answer", False),  # the answer only inside thinking
        (f"<think>{GRID}", "unparsed", "no_answer", False),  # thinking never closed
        ("<think>x</think>", "unparsed", "no_answer", False),  # empty answer section
        ("<think>x</think>The answer is a cat.", "unparsed", "no_answer", False),  # prose, no grid or entries
        ("<think>x</think>1A: Feline mammal", "unparsed", "no_answer", False),  # an echoed clue is not an answer
        ("<think>x</think>I don't know.", "abstain", "abstained", False),
        ("<think>x</think>cat\no#o\nbye", "correct", None, False),  # lower case reads as upper case
        ("<think>x</think>1a: cat\n1d: cob\n2d: toe\n3a: bye", "correct", None, False),
        ("<think>x</think>C A T\nO # O\nB Y E", "correct", None, False),  # spaces between squares
        ("<think>x</think>| C | A | T |\n|---|---|---|\n| O | # | O |\n| B | Y | E |", "correct", None, False),  # table
        ("<think>x</think>```text\nCAT\nO#O\nBYE\n```", "correct", None, False),  # code block
        ("<think>x</think>\\boxed{\\begin{array}{ccc} C & A & T \\\\ O & \\# & O \\\\ B & Y & E \\end{array}}",
         "correct", None, False),  # a LaTeX array in a box
        ("<think>x</think>\\boxed{CAT\\\\O\\#O\\\\BYE}", "correct", None, False),
        ("<think>x</think>1 Across: CAT, 1 Down: COB; 2D - TOE; 3-across = bye.", "correct", None, False),
        ("<think>x</think>**1A:** CAT\n**1D:** COB\n**2D:** TOE\n**3A:** BYE", "correct", None, False),  # markdown
        ("<think>x</think>Across\n1. CAT\n3. BYE\nDown\n1. COB\n2. TOE", "correct", None, False),  # headings
        ("<think>x</think>Across 1: CAT\nDown 1: COB\nDown 2: TOE\nAcross 3: BYE", "correct", None, False),
        ("<think>x</think>Puzzle:\n...\n.#.\n...\n\nSolution:\nCAT\nO#O\nBYE", "correct", None, False),  # echo skipped
        (f"<think>x</think>{GRID}\n\n{ENTRIES}", "correct", None, False),  # grid and entries that agree
        (f"<think>x</think>{ENTRIES}\n9A: DOG", "correct", None, False),  # a made-up entry fills no square
        ("<think>x</think>ＣＡＴ\nＯ＃Ｏ\nＢＹＥ", "correct", None, False),  # fullwidth letters fold (NFKC)
        ("<think>x</think>CAT\nO#O\nBYÉ", "wrong", "wrong_letters", False),  # an accented letter is another letter
        ("<think>x</think>1A: CAT\n1D: COB\n2D: TOÉ\n3A: BYÉ", "wrong", "wrong_letters", False),
        ("<think>x</think>CAT\nO#O", "wrong", "wrong_size", False),  # a row missing
        ("<think>x</think>CATS\nO#OX\nBYEE", "wrong", "wrong_size", False),  # a column too many
        ("<think>x</think>CAT\nOXO\nBYE", "wrong", "black_squares_changed", False),  # the black square filled
        ("<think>x</think>CAT\nO##\nBYE", "wrong", "black_squares_changed", False),  # a black square added
        ("<think>x</think>CAT\nO#O\nB.E", "wrong", "incomplete", False),  # a blank left
        ("<think>x</think>1A: CAT\n1D: COB\n2D: TOE", "wrong", "incomplete", False),  # 3A's middle square unset
        ("<think>x</think>CAT\nO#O\nBYS", "wrong", "wrong_letters", False),  # one wrong letter
        ("<think>x</think>1A: CUT\n1D: COB\n2D: TOE\n3A: BYE", "wrong", "wrong_letters", False),  # an unchecked square
        ("<think>x</think>1A: CAT\n1D: COB\n2D: TOE\n3A: BYS", "wrong", "conflicting_entries", False),  # 2D vs 3A
        ("<think>x</think>1A: CATS\n1D: COB\n2D: TOE\n3A: BYE", "wrong", "wrong_length", False),
        (f"<think>x</think>{ENTRIES}\n1A: COT", "wrong", "multiple_answers", False),  # two words for 1A
        (f"<think>x</think>{GRID}\n\n1A: CUT", "wrong", "multiple_answers", False),  # entries contradict the grid
        (f"<think>x</think>CAT\nO#O\nBYS\n\n{GRID}", "wrong", "multiple_answers", False),  # two grids: no candidates
        (f"<think>x</think>{GRID}\n\nSo:\n{GRID}", "correct", None, False),  # the same grid twice
        (f"<think>x</think>I think the grid is:\n{GRID}", "correct", None, True),  # hedged
        ("<think>x</think>Maybe:\nCAT\nO#O\nBYS", "wrong", "wrong_letters", True),  # hedged and wrong
        (f"<think>x</think>I don't know, but:\n{ENTRIES}", "correct", None, True),  # doubt beside an answer hedges
    ],
)
def test_adversarial_table(verifier, completion, outcome, reason, hedged):
    verdict = verifier.verify(completion, EXAMPLE)
    assert (verdict.outcome, verdict.reason, verdict.hedged) == (outcome, reason, hedged)


def test_one_wrong_letter_is_reported_per_entry_and_per_square(verifier):
    details = verifier.verify("<think>x</think>CAT\nO#O\nBYS", EXAMPLE).details
    assert details["per_entry"] == {"1A": True, "1D": True, "2D": False, "3A": False}
    assert (details["entries_correct"], details["entries"], details["cells_correct"], details["cells"]) == (2, 4, 7, 8)
    assert "partial_credit" not in details  # off by default


def test_partial_credit_is_a_fraction_in_details_and_never_changes_the_outcome():
    verdict = CrosswordVerifier(partial_credit=True).verify("<think>x</think>CAT\nO#O\nBYS", EXAMPLE)
    assert (verdict.outcome, verdict.details["partial_credit"]) == ("wrong", 7 / 8)
    gold = CrosswordVerifier(partial_credit=True).verify(f"<think>x</think>{GRID}", EXAMPLE)
    assert (gold.outcome, gold.details["partial_credit"]) == ("correct", 1.0)


def test_the_verdict_answer_is_the_grid_read_and_entries_fill_it(verifier):
    verdict = verifier.verify("<think>x</think>1A: CAT\n1D: COB\n2D: TOE", EXAMPLE)
    assert verdict.answer == "CAT\nO#O\nB.E"
    assert verifier.verify(f"<think>x</think>{ENTRIES}\n9A: DOG", EXAMPLE).details["unknown_entries"] == ["9A"]


def test_the_registry_builds_the_crossword_verifier_with_options():
    built = get_verifier("crossword", partial_credit=True)
    assert isinstance(built, CrosswordVerifier) and built.partial_credit


@pytest.mark.parametrize(
    "example, message",
    [
        ({"grid": ["..."]}, "no 'solution'"),
        ({"solution": ["CAT", "OX"]}, "different lengths"),
        ({"solution": ["C4T", "O#O", "BYE"]}, "characters '4'"),
        ({"solution": ["CAT", "O#O", "BYE"], "grid": ["...", "...", "..."]}, "disagree on the black squares"),
        ({"solution": ["", ""]}, "solution \\['', ''\\] has no white square"),  # empty rows: was scored, not refused
        ({"solution": ""}, "non-empty list of row strings"),  # an empty string: no rows at all
        ({"solution": ["##", "##"]}, "has no white square"),  # only black squares: nothing to fill
        ({"solution": ["CAT", "O#O", "BYE"], "grid": ["", "", ""]}, "grid .* has no white square"),  # an empty grid
        ({"solution": None}, "non-empty list of row strings"),  # a missing value
    ],
)
def test_a_malformed_example_says_what_to_fix_whatever_the_answer(verifier, example, message):
    for completion in (f"<think>x</think>{GRID}", "<think>x</think>", "<think>x</think>IDK"):
        with pytest.raises(ValueError, match=message):
            verifier.verify(completion, example)


def test_a_huge_answer_section_is_too_long_and_left_unread(verifier):
    # 4 MB of grid rows took ~5 s to parse, outside any time bound; no honest answer to a mini is that long.
    verdict = verifier.verify("<think>x</think>" + f"{GRID}\n" * 350_000, EXAMPLE)
    assert (verdict.outcome, verdict.reason) == ("unparsed", "too_long")
    assert verdict.details["limit"] == 4000  # 9 squares: the floor of the limit
    assert verifier.verify("<think>x</think>" + " " * 3000 + GRID, EXAMPLE).outcome == "correct"  # under it: read


def test_numbering_is_standard():
    entries = number_grid(["#...", "....", "....", "...#"])
    assert [(e.key, len(e.cells)) for e in entries] == [
        ("1A", 3), ("1D", 4), ("2D", 4), ("3D", 3), ("4A", 4), ("4D", 3), ("5A", 4), ("6A", 3)
    ]
    assert number_grid(EXAMPLE["grid"])[0].cells == ((0, 0), (0, 1), (0, 2))


# ---------------------------------------------------------------------- generation


@pytest.mark.parametrize("size", [3, 4, 5])
def test_generation_is_reproducible_item_by_item(size):
    batch = generate(3, size=size, seed=11)
    assert batch == generate(3, size=size, seed=11)
    assert batch == [generate_item(i, size=size, seed=11) for i in range(3)]
    assert generate_item(1, size=size, seed=11) == generate_item(0, size=size, seed=12)  # seed + index
    assert len({tuple(item["solution"]) for item in batch}) == 3


@pytest.mark.parametrize("size", [3, 4, 5])
def test_every_generated_entry_is_a_file_word_with_its_clue(size):
    words = load_words()
    for item in generate(8, size=size, seed=3):
        grid, solution = item["grid"], item["solution"]
        assert len(grid) == len(solution) == size and all(len(row) == size for row in solution)
        assert [[ch == "#" for ch in row] for row in grid] == [[ch == "#" for ch in row] for row in solution]
        assert grid == [row[::-1] for row in grid[::-1]]  # 180-degree symmetric
        entries = number_grid(grid)
        assert {e.key for e in entries} == {f"{n}{d[0].upper()}" for d in ("across", "down") for n in item["clues"][d]}
        answers = []
        for entry in entries:
            word = "".join(solution[r][c] for r, c in entry.cells)
            clue = item["clues"]["across" if entry.direction == "A" else "down"][str(entry.number)]
            assert 3 <= len(word) <= 5 and words[word] == clue
            assert word.lower() not in clue.lower()
            answers.append(word)
        assert len(answers) == len(set(answers))  # no word twice in a grid
        white = {(r, c) for r in range(size) for c in range(size) if grid[r][c] != "#"}
        assert white == {cell for entry in entries for cell in entry.cells}  # every white square is in an entry


def test_generated_gold_answers_verify_in_both_forms(verifier):
    for item in generate(5, size=5, seed=0) + generate(5, size=4, seed=0):
        for style in ("entries", "grid"):
            assert verifier.verify(f"<think>x</think>{format_answer(item, style)}", item).outcome == "correct"


def test_patterns_are_symmetric_connected_and_have_no_two_letter_runs():
    assert patterns(3) == (("...", "...", "..."), ("...", ".#.", "..."))  # corner blacks would leave 2-letter runs
    for size in (4, 5):
        for grid in patterns(size):
            assert grid == tuple(row[::-1] for row in grid[::-1])
            assert all(len(entry.cells) >= 3 for entry in number_grid(grid))


@pytest.mark.parametrize("kwargs, message", [({"size": 6}, "size=6"), ({"size": "5"}, "size='5'")])
def test_bad_generation_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(1, **kwargs)
    with pytest.raises(ValueError, match="n=-1"):
        generate(-1)


# ---------------------------------------------------------------------- the word file


def test_the_word_file_holds_common_clued_words_that_do_not_give_themselves_away():
    words = load_words()
    assert len(words) > 2500
    for word, clue in words.items():
        assert re.fullmatch(r"[A-Z]{3,5}", word)
        assert 3 <= len(clue) <= 80 and "\t" not in clue
        assert word.lower() not in clue.lower()
    assert load_words() is words  # read once


def test_the_wordnet_licence_ships_beside_the_word_file():
    notice = resources.files("verifiers").joinpath("data", "WORDNET_LICENSE").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in notice


def test_importing_the_crossword_verifier_loads_no_torch():
    code = "import sys, rlcot.verifiers.crossword; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------- the build script, on a fake WordNet


@lru_cache(maxsize=1)
def _build_script():
    """scripts/build_crossword_words.py as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / "build_crossword_words.py"
    spec = importlib.util.spec_from_file_location("build_crossword_words", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


CAT_CLUE = "Feline mammal usually having thick soft fur and no ability to roar"
FAKE_NOUNS = [  # offset, words, pointers, gloss
    ("00000001", "cat 0", "", f"{CAT_CLUE.lower()}, kept as a pet in many homes"),  # > 80 characters: cut
    ("00000002", "Mars 0", "", "a small reddish planet"),  # a proper noun only: out
    ("00000003", "zyme 0", "", "a ferment"),  # never tagged: out
    ("00000004", "obscenity 0", "", "an offensive word"),
    ("00000005", "slang 0", "", "informal language"),
    ("00000006", "crud 0", ";u 00000004 n 0000", "filthy stuff"),  # most common sense labelled obscene: out
    ("00000007", "dope 0", ";u 00000005 n 0000", "a stupid person"),  # labelled slang: not a clue
    ("00000008", "dope 1", "", "information (especially inside information)"),
    ("00000009", "lion 0", "", "a lion is a large cat"),  # gives the answer away: not a clue
    ("00000010", "lion 1", "", "a celebrity who is much sought after; a social lion"),
    ("00000011", "damn 0", "", "something of little value"),  # blocklisted
]
FAKE_INDEX = {"cat": ["00000001"], "mars": ["00000002"], "zyme": ["00000003"], "crud": ["00000006"],
              "dope": ["00000007", "00000008"], "lion": ["00000009", "00000010"], "damn": ["00000011"]}
FAKE_COUNTS = ["cat%1:05:00:: 1 5", "mars%1:05:00:: 1 3", "crud%1:05:00:: 1 2", "dope%1:05:00:: 1 5",
               "dope%1:05:01:: 2 1", "lion%1:05:00:: 1 3", "lion%1:05:01:: 2 1", "damn%1:05:00:: 1 2"]


def _fake_wordnet(directory: Path) -> Path:
    lines = ["  1 This is a licence header line that the parser skips."]
    for offset, words, pointers, gloss in FAKE_NOUNS:
        count = len(pointers.split()) // 4
        lines.append(f"{offset} 05 n {len(words.split()) // 2:02x} {words} {count:03d} {pointers} | {gloss}  ")
    (directory / "data.noun").write_text("\n".join(lines) + "\n")
    (directory / "index.noun").write_text(
        "".join(f"{lemma} n {len(offsets)} 0 {len(offsets)} 0 {' '.join(offsets)}  \n"
                for lemma, offsets in FAKE_INDEX.items())
    )
    for pos in ("verb", "adj", "adv"):
        (directory / f"data.{pos}").write_text("")
        (directory / f"index.{pos}").write_text("")
    (directory / "cntlist.rev").write_text("\n".join(FAKE_COUNTS) + "\n")
    return directory


def test_the_build_script_keeps_common_clean_words_with_clues_that_do_not_give_them_away(tmp_path):
    rows = _build_script().build(_fake_wordnet(tmp_path))
    assert rows == [
        ("CAT", CAT_CLUE),  # cut at the comma
        ("DOPE", "Information"),
        ("LION", "A celebrity who is much sought after"),
    ]


def test_the_build_script_is_deterministic(tmp_path):
    script = _build_script()
    wordnet = _fake_wordnet(tmp_path)
    first, second = tmp_path / "a.tsv", tmp_path / "b.tsv"
    script.main(["--wordnet-dir", str(wordnet), "--output", str(first)])
    script.main(["--wordnet-dir", str(wordnet), "--output", str(second)])
    expected = f"CAT\t{CAT_CLUE}\nDOPE\tInformation\nLION\tA celebrity who is much sought after\n"
    assert first.read_bytes() == second.read_bytes() == expected.encode()


@pytest.mark.parametrize(
    "clue, word, gives_away",
    [
        ("a small domestic feline", "cat", False),
        ("the sound of laughing", "laugh", True),  # the word itself inside another word
        ("to bake bread", "baked", True),  # a stem: baked minus -ed
        ("waterway for boats", "water", True),  # the first four letters begin a word
        ("instead of", "steal", False),  # a stem inside a word, not at its start
    ],
)
def test_a_clue_may_not_contain_its_answer_or_its_stem(clue, word, gives_away):
    assert _build_script().gives_away(clue, word) is gives_away


# ---------------------------------------------------------------------- arbitrary text

_PIECES = list("CATOBYEcatxyzÉ#.?_| \n\t:-=,;*1239ADad()\\{}&`ＣＡ")
_ALPHABET = st.sampled_from(_PIECES + ["Across", "Down", "\\boxed{", "\\\\", "</think>", "<think>"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(_ALPHABET, max_size=60).map("".join)))
def test_verify_never_raises_on_arbitrary_text_and_is_deterministic(text):
    verifier = CrosswordVerifier(partial_credit=True)
    first = verifier.verify(text, EXAMPLE)
    assert first == verifier.verify(text, EXAMPLE) and first.details == verifier.verify(text, EXAMPLE).details
    assert first.outcome in ("correct", "wrong", "abstain", "unparsed")
