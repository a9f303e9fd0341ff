"""Sudoku: the rule checker on adversarial answers, and the generator's guarantees."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlcot.verifiers import get_verifier
from rlcot.verifiers.sudoku import SudokuVerifier, check_solution, extract_grid, grid_size
from rlcot.verifiers.sudoku_generator import REACHABLE, count_solutions, generate, generate_item, grade, solve

VERIFIER = SudokuVerifier()

SOLUTION = "1234" "3412" "2143" "4321"
# Blanking a 2x2 rectangle across two boxes leaves two solutions: SOLUTION and OTHER.
PUZZLE = ".2.4" ".4.2" "2143" "4321"
OTHER = "3214" "1432" "2143" "4321"
EXAMPLE = {"puzzle": PUZZLE, "solution": SOLUTION}
OPEN = {"puzzle": "." * 16}  # no givens: only the rules can fail
NINE = "".join(str((3 * (r % 3) + r // 3 + c) % 9 + 1) for r in range(9) for c in range(9))
NINE_PUZZLE = "".join("." if i % 3 else ch for i, ch in enumerate(NINE))


def lines(grid: str, sep: str = " ") -> str:
    side = grid_size(grid)
    return "\n".join(sep.join(grid[r * side : (r + 1) * side]) for r in range(side))


def ruled(grid: str) -> str:
    """4x4 with box rules: '1 2 | 3 4' and a '----+----' line between bands."""
    rows = [f"{row[0]} {row[1]} | {row[2]} {row[3]}" for row in lines(grid, "").splitlines()]
    return "\n".join(rows[:2] + ["----+----"] + rows[2:])


def table(grid: str, labels: str = "") -> str:
    """Markdown table rows ``| 1 | 2 | 3 | 4 |``, each led by its label cell when ``labels`` are given."""
    rows = [grid[r * 4 : (r + 1) * 4] for r in range(len(grid) // 4)]
    return "\n".join("| " + " | ".join(list(labels[r : r + 1]) + list(row)) + " |" for r, row in enumerate(rows))


def answer(text: str) -> str:
    return f"<think>working it out</think>{text}"


@pytest.mark.parametrize(
    "completion, outcome, reason",
    [
        (answer(lines(SOLUTION)), "correct", None),
        (answer(lines(OTHER)), "correct", None),  # the puzzle's other solution: rules, not equality
        (f"<think>{lines(SOLUTION)}</think>", "unparsed", "no_answer"),  # the grid only inside thinking
        (f"<think>{lines(SOLUTION)}", "unparsed", "no_answer"),  # thinking never closed
        (answer(""), "unparsed", "no_answer"),  # empty answer section
        (answer("The answer is \\boxed{4}."), "unparsed", "no_answer"),  # a number is not a grid
        (answer("I don't know."), "abstain", "abstained"),  # no grid and an abstention
        (answer(lines("2143" "4321" "1234" "3412")), "wrong", "givens_changed"),  # a valid sudoku, other givens
        (answer(lines("12.4" "3412" "2143" "4321")), "wrong", "incomplete"),  # a blank left
        (answer(lines("1230" "3412" "2143" "4321")), "wrong", "incomplete"),  # 0 reads as a blank
        (answer(lines(NINE)), "wrong", "wrong_size"),  # a 9x9 grid for a 4x4 puzzle
        (answer("1234\n3412\n2143"), "wrong", "wrong_size"),  # three rows of four
        (answer(lines(SOLUTION) + " 1"), "wrong", "wrong_size"),  # a stray 17th cell in the run
        (answer(lines(PUZZLE) + "\nSolved:\n" + lines(SOLUTION)), "correct", None),  # a restated puzzle is no answer
        (answer(lines(SOLUTION) + "\nOops, rather:\n" + lines("1134" "3412" "2143" "4321")), "wrong",
         "multiple_answers"),  # two different grids: listing candidates never wins
        (answer(lines("1111" "2222" "3333" "4444") + "\nNo:\n" + lines(SOLUTION)), "wrong",
         "multiple_answers"),  # ... even when the last one is right
        (answer(lines(SOLUTION) + "\nAgain:\n" + lines(SOLUTION)), "correct", None),  # the same grid twice
        (answer(lines(PUZZLE) + "\n\n" + lines(SOLUTION)), "correct", None),  # puzzle and solution back to back
        (answer(lines(SOLUTION).translate(str.maketrans("1234", "\uff11\uff12\uff13\uff14"))), "correct",
         None),  # fullwidth digits fold to ASCII (NFKC): the grid is judged, not the script
        (answer(lines(SOLUTION).translate(str.maketrans("1234", "\u0661\u0662\u0663\u0664"))), "correct",
         None),  # Arabic-Indic digits are Unicode decimal digits too
    ],
)
def test_adversarial_answers_get_the_right_verdict(completion, outcome, reason):
    verdict = VERIFIER.verify(completion, EXAMPLE)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


@pytest.mark.parametrize(
    "grid, reason",
    [
        ("1134" "3412" "2143" "4321", "row_conflict"),  # row 1 repeats a 1
        ("1234" "1234" "3412" "3412", "column_conflict"),  # rows fine, columns repeat
        ("1234" "2341" "3412" "4123", "box_conflict"),  # a Latin square that is no sudoku
        ("5234" "3412" "2143" "4321", "invalid_digit"),  # 5 in a 4x4 grid
        (SOLUTION, None),
    ],
)
def test_each_rule_is_checked_on_its_own(grid, reason):
    verdict = VERIFIER.verify(answer(lines(grid)), OPEN)
    assert verdict.reason == reason
    assert verdict.outcome == ("correct" if reason is None else "wrong")


LATEX = (
    "\\boxed{\\begin{array}{cc|cc} 1 & 2 & 3 & 4 \\\\ 3 & 4 & 1 & 2 \\\\ \\hline"
    " 2 & 1 & 4 & 3 \\\\ 4 & 3 & 2 & 1 \\end{array}}"
)


@pytest.mark.parametrize(
    "rendering",
    [
        lines(SOLUTION),  # digits with spaces, one row per line
        lines(SOLUTION, ""),  # compact rows
        ruled(SOLUTION),  # pipes between boxes, a dashed rule between bands
        SOLUTION,  # one line of 16 digits
        lines(SOLUTION, ", "),  # comma separated
        "[[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]",  # a list of lists
        "\n".join(f"| {' | '.join(row)} |" for row in lines(SOLUTION, "").splitlines()),  # Markdown cells
        "\n".join(f"Row {r + 1}: {row}" for r, row in enumerate(lines(SOLUTION).splitlines())),  # labelled rows
        f"```\n{ruled(SOLUTION)}\n```",  # a fenced code block
        f"\\boxed{{\n{lines(SOLUTION)}\n}}",  # boxed, one row per line
        LATEX,  # a LaTeX array inside \boxed{}
        "+---+---+\n" + ruled(SOLUTION).replace("----+----", "+---+---+") + "\n+---+---+",  # an ASCII frame
        f"The completed grid:\n{lines(SOLUTION)}\nEvery row, column and box holds 1-4.",  # prose around it
        "\n".join(f"{r + 1}. {row}" for r, row in enumerate(lines(SOLUTION).splitlines())),  # numbered rows
        # ... were read as 20 cells (wrong_size): "1." is a 1 and a blank unless every row is numbered
        "\n".join(f"{'ABCD'[r]} | {row}" for r, row in enumerate(lines(SOLUTION).splitlines())),  # letter labels
        # ... were text (a letter), so no grid at all (unparsed)
        "| 1 | 2 | 3 | 4 |\n|---|---|---|---|\n" + table(SOLUTION),  # a header row of column numbers
        # ... was read as a first row of cells: 20 cells, wrong_size
        "| " + " | ".join(SOLUTION[:4]) + " |\n|:-:|:-:|:-:|:-:|\n" + table(SOLUTION[4:]),  # the first row as header
        # ... a table needs a header, so models put the grid's first row there: one row short without it
        "|   | 1 | 2 | 3 | 4 |\n|---|---|---|---|---|\n" + table(SOLUTION, labels="1234"),  # numbered label column
        "|   | 1 | 2 | 3 | 4 |\n|---|---|---|---|---|\n" + table(SOLUTION, labels="ABCD"),  # lettered label column
        "| 1 2 | 3 4 |\n| 3 4 | 1 2 |\n|-----|-----|\n| 2 1 | 4 3 |\n| 4 3 | 2 1 |",  # a band rule like |---|:
        # ... the row above it is no header (a whole grid needs it) and keeps its place
    ],
)
def test_common_renderings_of_the_grid_are_read(rendering):
    assert extract_grid(rendering, 4) == SOLUTION
    assert VERIFIER.verify(answer(rendering), EXAMPLE).outcome == "correct"


def test_a_hedged_grid_is_correct_and_hedged():
    verdict = VERIFIER.verify(answer(f"I think the grid is\n{lines(SOLUTION)}"), EXAMPLE)
    assert (verdict.outcome, verdict.hedged) == ("correct", True)


def test_details_count_cells_that_match_the_stored_solution():
    verdict = VERIFIER.verify(answer(lines(OTHER)), EXAMPLE)
    assert verdict.details == {"cells_correct": 12, "cells": 16}
    assert VERIFIER.verify(answer(lines(OTHER)), {"puzzle": PUZZLE}).details == {}


def test_a_9x9_grid_with_box_rules_is_read():
    rows = [lines(NINE).splitlines()[r] for r in range(9)]
    ruled_rows = [" | ".join(row[i : i + 5] for i in (0, 6, 12)) for row in rows]
    text = "\n".join(ruled_rows[:3] + ["------+-------+------"] + ruled_rows[3:6] + ["------+-------+------"]
                     + ruled_rows[6:])
    assert VERIFIER.verify(answer(text), {"puzzle": NINE_PUZZLE}).outcome == "correct"
    assert VERIFIER.verify(answer(NINE), {"puzzle": NINE_PUZZLE}).outcome == "correct"  # one 81-digit line


@pytest.mark.parametrize(
    "example, message",
    [
        ({}, "no 'puzzle' field"),
        ({"puzzle": "123"}, "16, 36 or 81 cells"),
        ({"puzzle": ""}, "puzzle has 16, 36 or 81 cells .*, got 0"),  # an empty puzzle
        ({"puzzle": "x" * 16}, "characters 'x'"),
        ({"puzzle": "11" + "." * 14}, "repeats a given \\(row_conflict\\)"),  # givens that clash: nothing solves it
        ({"puzzle": PUZZLE, "solution": SOLUTION[:-1] + "5"}, "characters '5'"),
        ({"puzzle": PUZZLE, "solution": ""}, "solution has 16, 36 or 81 cells .*, got 0"),  # was only skipped
        ({"puzzle": PUZZLE, "solution": "." * 16}, "does not solve the puzzle \\(incomplete\\)"),  # all blanks
        ({"puzzle": PUZZLE, "solution": "2143" "4321" "1234" "3412"}, "givens_changed"),  # another puzzle's solution
        ({"puzzle": PUZZLE, "solution": NINE}, "solution has 81 cells but the puzzle 16"),  # another size
        ({"puzzle": 1234}, "must be a string"),
    ],
)
def test_bad_examples_say_what_is_wrong_whatever_the_answer(example, message):
    for completion in (answer(lines(SOLUTION)), answer(""), answer("IDK"), "<think>never closed"):
        with pytest.raises(ValueError, match=message):
            VERIFIER.verify(completion, example)


def test_a_label_is_only_dropped_where_it_cannot_be_a_cell():
    # "3." on its own is a 3 and a blank (a restated puzzle grouped by box), not a row number.
    assert extract_grid("12 34\n34 12\n3. .1\n43 21", 4) == "123434123..14321"
    assert extract_grid("1. .4\n34 12\n21 43\n43 21", 4) == "1..4341221434321"
    # A header that is a grid row (the body alone is one row short) stays a row.
    assert extract_grid("| 1 | 2 | 3 | 4 |\n|---|---|---|---|\n" + table(SOLUTION[4:]), 4) == SOLUTION


def test_numbered_9x9_rows_as_in_the_issue_are_read():
    rows = lines(NINE).splitlines()
    assert VERIFIER.verify(answer("\n".join(f"{r + 1}. {row}" for r, row in enumerate(rows))),
                           {"puzzle": NINE_PUZZLE}).outcome == "correct"


def test_a_huge_answer_section_is_too_long_and_left_unread():
    # 4 MB of grid-like rows took seconds to read, outside any time bound.
    verdict = VERIFIER.verify(answer(lines(SOLUTION) + "\n1 2 3 4" * 500_000), EXAMPLE)
    assert (verdict.outcome, verdict.reason) == ("unparsed", "too_long")
    assert VERIFIER.verify(answer("x" * 4000), EXAMPLE).reason == "no_answer"  # 4,000 characters: still read


def test_the_registry_name_builds_this_verifier():
    assert isinstance(get_verifier("sudoku"), SudokuVerifier)


def test_sudoku_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, rlcot.verifiers.sudoku; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_verify_never_raises_on_arbitrary_text_and_is_deterministic(text):
    assert VERIFIER.verify(text, EXAMPLE) == VERIFIER.verify(text, EXAMPLE)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="1234 .0|-+\n\\{}[],&boxed</think>", max_size=120))
def test_verify_never_raises_on_grid_like_text(text):
    verdict = VERIFIER.verify(text, EXAMPLE)
    assert verdict == VERIFIER.verify(text, EXAMPLE)
    assert verdict.outcome != "correct" or check_solution(verdict.answer, PUZZLE) is None


# ---------------------------------------------------------------------- solver and grader


def test_solution_counting_stops_at_the_limit():
    assert count_solutions(SOLUTION) == 1
    assert count_solutions(PUZZLE) == 2
    assert count_solutions("." * 81, limit=3) == 3
    assert count_solutions("11" + "." * 14) == 0  # the givens clash
    assert solve(NINE_PUZZLE) is not None and check_solution(solve(NINE_PUZZLE), NINE_PUZZLE) is None


def test_grade_names_the_techniques_a_puzzle_needs():
    assert grade(SOLUTION[:-1] + ".").techniques == ("naked_single",)
    assert grade(PUZZLE).difficulty == "hard"  # two solutions: logic stalls
    assert grade(PUZZLE).techniques[-1] == "search"


# ---------------------------------------------------------------------- generation

COMBOS = [(4, "easy"), (6, "easy"), (6, "medium"), (6, "hard"), (9, "easy"), (9, "medium"),
          (9, "hard")]


@pytest.fixture(scope="module")
def generated():
    return {(size, difficulty): generate(3, size=size, seed=11, difficulty=difficulty) for size, difficulty in COMBOS}


@pytest.mark.parametrize("size, difficulty", COMBOS)
def test_generated_puzzles_are_unique_graded_and_solved_by_their_gold(generated, size, difficulty):
    for row in generated[size, difficulty]:
        assert (row["size"], row["difficulty"]) == (size, difficulty)
        assert count_solutions(row["puzzle"]) == 1
        assert grade(row["puzzle"]).difficulty == difficulty
        assert tuple(row["techniques"]) == grade(row["puzzle"]).techniques
        assert check_solution(row["solution"], row["puzzle"]) is None
        assert VERIFIER.verify(answer(lines(row["solution"])), row).outcome == "correct"


def test_difficulty_labels_follow_the_techniques(generated):
    assert all(row["techniques"] == ["naked_single"] for row in generated[9, "easy"])
    assert all(row["techniques"][-1] in ("hidden_single", "naked_pair", "locked_candidates")
               for row in generated[9, "medium"])
    assert all(row["techniques"][-1] == "search" for row in generated[9, "hard"])


def test_any_row_is_rebuilt_alone_from_its_seed(generated):
    rows = generated[6, "medium"]
    assert [generate_item(i, size=6, seed=11, difficulty="medium") for i in range(3)] == rows
    assert generate(2, size=6, seed=11, difficulty="medium") == rows[:2]  # n rows are a prefix of n + 1
    assert len({row["puzzle"] for row in rows}) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 5}, "size 5 is not supported"),
        ({"difficulty": "fiendish"}, "'fiendish' is not one of"),
        ({"size": 4, "difficulty": "medium"}, "4x4 sudoku never needs 'medium' solving; choose easy"),
        ({"n": -1}, "n=-1 is negative"),
    ],
)
def test_impossible_generation_requests_say_what_to_choose(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(**{"n": 1, **kwargs})


def test_every_size_offers_easy_and_6x6_and_9x9_offer_every_difficulty():
    assert REACHABLE == {4: ("easy",), 6: ("easy", "medium", "hard"), 9: ("easy", "medium", "hard")}
