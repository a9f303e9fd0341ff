"""Reading a completion: where its answer section is, and what its boxes hold.

This is the ground floor. ``rlcot.thinking`` re-exports the split from here (a
protocol only chooses its tags), and every verifier reads boxes through here, so the
rules below are written once and nothing in ``verifiers`` imports ``rlcot``.

Splitting rules (``split_completion``), applied to the whole assistant turn:

1. No ``<think>`` and no ``</think>``: the whole text is the answer section.
2. A ``<think>``: thinking runs from just after the first ``<think>`` to the first
   ``</think>`` after it; the answer section is everything after that ``</think>``.
   With no ``</think>`` after it, the thinking never closed: there is no answer
   section (``answer is None``), however answer-like the thinking looks.
3. A ``</think>`` with no ``<think>`` anywhere closes a thinking section that the
   prompt opened: thinking is the text before it, the answer the text after.

Text before the first ``<think>`` belongs to neither section. Consequence: ``<think>``
immediately followed by ``</think>``, then any text, splits back to exactly that text
(what ``rlcot.verifiers.base.DuckTypedVerifier`` relies on).

Boxes (``boxed_contents``): every ``\\boxed{...}`` and ``\\fbox{...}`` with its nested
braces, in order; an unclosed box is no box. ``strip_text_commands`` drops the LaTeX
text wrappers (``\\text{}``, ``\\textbf{}``, ``\\mathrm{}``, ...) so that
``\\boxed{\\textbf{IDK}}`` reads as ``IDK``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(frozen=True)
class Sections:
    thinking: str
    answer: str | None  # None: the thinking never closed, so there is no answer section

    @property
    def closed(self) -> bool:
        return self.answer is not None


def split_completion(text: str, open_tag: str = OPEN, close_tag: str = CLOSE) -> Sections:
    """Split a whole assistant turn into thinking and answer sections (rules above)."""
    start = text.find(open_tag)
    if start < 0:
        end = text.find(close_tag)
        if end < 0:
            return Sections(thinking="", answer=text)
        return Sections(thinking=text[:end], answer=text[end + len(close_tag) :])
    body = start + len(open_tag)
    end = text.find(close_tag, body)
    if end < 0:
        return Sections(thinking=text[body:], answer=None)
    return Sections(thinking=text[body:end], answer=text[end + len(close_tag) :])


def answer_section(completion: str) -> str | None:
    """The part of a completion a verifier may read, with the default tags; None when thinking never closed."""
    return split_completion(completion).answer


_BOX_OR_BRACES = re.compile(r"\\(?:boxed|fbox)\{|\{+|\}+")


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``) in order, nested braces handled.

    An unclosed box is not returned. One pass with a stack of open boxes, so the time
    is linear: rescanning from each ``\\boxed{`` is quadratic on nested unclosed boxes
    (28 KB of them took 20 s), and this runs in-process, outside any worker's bound.
    """
    found, boxes, depth = [], [], 0  # boxes: (command start, content start, depth just inside the box)
    for match in _BOX_OR_BRACES.finditer(text):
        token = match.group()
        if token[0] == "}":
            closed = depth - min(len(token), depth)  # closers beyond depth 0 match nothing
            while boxes and boxes[-1][2] > closed:
                command, content, level = boxes.pop()
                found.append((command, text[content : match.start() + depth - level]))
            depth = closed
        elif token[0] == "{":
            depth += len(token)
        else:
            depth += 1
            boxes.append((match.start(), match.end(), depth))
    return [content for _, content in sorted(found)]


def last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


# The command names and every brace go in one linear pass: unwrapping "\text{...}" pairs
# one nesting level at a time would be quadratic on deeply nested input.
_TEXT_COMMANDS = re.compile(
    r"\\(?:text(?:bf|it|rm|sf|tt|normal|up|sc)?|math(?:rm|bf|it|sf|tt|normal)|mbox|emph|bm|boldsymbol)"
    r"(?![A-Za-z])\s*|[{}]"
)


def strip_text_commands(text: str) -> str:
    """``text`` without LaTeX text wrappers and braces: ``\\textbf{I}\\text{DK}`` is ``IDK``."""
    return _TEXT_COMMANDS.sub("", text)
