"""Reading a completion: the split rules, boxes, text wrappers, and the verifiers' own import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlcot.verifiers.sections import CLOSE, OPEN, boxed_contents, split_completion, strip_text_commands

PACKAGE = Path(__file__).resolve().parents[2] / "verifiers"


@pytest.mark.parametrize(
    "text, thinking, answer",
    [
        ("The answer is 4.", "", "The answer is 4."),  # no tags: all answer
        ("<think>2+2=4</think>\\boxed{4}", "2+2=4", "\\boxed{4}"),
        ("<think>2+2=4, so \\boxed{4}", "2+2=4, so \\boxed{4}", None),  # never closed: no answer section
        ("2+2=4</think> 4", "2+2=4", " 4"),  # thinking opened in the prompt
        ("Sure. <think>a</think>b", "a", "b"),  # a preamble belongs to neither section
        ("<think>a</think>b</think>c", "a", "b</think>c"),  # the first close after the open ends thinking
        ("</think><think>x", "x", None),  # a close before an open does not count
        ("</think>a <think> b", " b", None),  # ... so a bare close cannot protect a section holding <think>
        ("<think></think>a <think> b", "", "a <think> b"),  # an empty thinking section can
    ],
)
def test_split_completion_follows_the_documented_rules(text, thinking, answer):
    sections = split_completion(text)
    assert (sections.thinking, sections.answer) == (thinking, answer)
    assert sections.closed is (answer is not None)


@given(st.lists(st.sampled_from([OPEN, CLOSE, "<think", "think>", "x", "\n", "\\boxed{4}"]) | st.text(), max_size=12)
       .map("".join))
def test_an_empty_thinking_section_then_any_text_splits_back_to_exactly_that_text(section):
    # What DuckTypedVerifier relies on to hand a user's verify() an already split section.
    assert split_completion(OPEN + CLOSE + section).answer == section


def test_custom_tags_split_the_same_way():
    assert split_completion("[r]x[/r]y", "[r]", "[/r]").answer == "y"
    assert split_completion("<think>x</think>y", "[r]", "[/r]").answer == "<think>x</think>y"  # other tags: text


def test_rlcot_thinking_re_exports_the_same_objects():
    import rlcot.thinking
    import rlcot.verifiers.sections

    for name in ("OPEN", "CLOSE", "Sections", "split_completion"):
        assert getattr(rlcot.thinking, name) is getattr(rlcot.verifiers.sections, name)


def test_boxed_contents_handles_nesting_and_ignores_unclosed_boxes():
    assert boxed_contents("\\boxed{\\frac{1}{2}} and \\fbox{3} then \\boxed{4") == ["\\frac{1}{2}", "3"]
    assert boxed_contents("{" * 1_000_000) == []


@pytest.mark.parametrize(
    "text, stripped",
    [
        ("\\textbf{IDK}", "IDK"),
        ("\\text{\\textit{I don't know}}", "I don't know"),  # nested wrappers
        ("\\mathrm{I}\\mbox{DK}", "IDK"),  # several wrappers side by side
        ("\\text {IDK}", "IDK"),  # a space before the brace
        ("\\textcolor{red}{IDK}", "\\textcolorredIDK"),  # not a text wrapper: its name stays
        ("\\text{" * 100_000 + "x" + "}" * 100_000, "x"),  # deep nesting: one linear pass
    ],
)
def test_strip_text_commands_drops_wrappers_and_braces(text, stripped):
    assert strip_text_commands(text) == stripped


def _imports_anywhere(path: Path) -> set[str]:
    """Modules of ``verifiers`` that ``path`` imports, at any depth (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("verifiers."):
            found.add(node.module.split(".")[1])
    return found


def test_verifier_modules_import_each_other_without_loops_even_lazily():
    # hedging once imported base inside a function while base imported hedging: a loop the
    # module-level floor test (tests/test_floors.py) cannot see.
    graph = {p.stem: _imports_anywhere(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert graph["sections"] == set()  # the ground floor of the ground floor
    assert "base" not in graph["hedging"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import loop: {' -> '.join(path + (module,))}"
        for dep in graph.get(module, ()):
            if dep not in done:
                visit(dep, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())
