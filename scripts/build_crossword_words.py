"""Build ``verifiers/data/crossword_words.tsv`` (WORD<TAB>clue) from Debian's WordNet 3.0.

Run once after ``apt-get install wordnet-base``; the output is committed, so neither the
tests nor users need WordNet installed. Same inputs, same file: senses are ordered by
fixed keys and nothing is random.

    python scripts/build_crossword_words.py [--wordnet-dir /usr/share/wordnet] [--output PATH]

Rules, in order (a word is the WordNet lemma, upper-cased in the file):

1. **Shape.** The lemma is 3-5 letters a-z: no digits, hyphens, spaces (``_``) or
   apostrophes. A sense counts only if the synset spells the lemma in lower case, so
   proper nouns (``Paris``, ``Mars`` the god) are not senses of ``mars``.
2. **Common.** Each sense's tag count comes from ``cntlist.rev`` (how often the sense
   was tagged in the Semantic Concordance corpora). A word is kept if the counts of its
   lower-case senses sum to more than zero: it occurred in running text at least once.
3. **Not offensive.** The word is dropped if it is in ``BLOCKLIST`` (slurs and
   obscenities whose most common WordNet sense is innocent: ``cock``, ``spic``) or if
   its most-tagged sense is offensive: a WordNet usage label in ``OFFENSIVE_USAGES``
   (obscenity/vulgarism, ethnic slur, disparagement) or a gloss that says so
   (``OFFENSIVE_GLOSS``: "offensive term", "(ethnic slur)", "obscene", ...). A common
   word with a rare offensive sense (``black``, ``queen``) stays, clued by a clean sense.
4. **A clue.** Senses are tried most-tagged first (ties: noun, verb, adjective, adverb,
   then WordNet's own sense order). A sense is skipped if it is offensive, labelled
   slang, colloquial or archaic (``SKIPPED_USAGES``), or its gloss is unfit for a puzzle
   (``UNSUITABLE_GLOSS``: slang, sexual or excretory terms, drugs). Its gloss is cut to
   the definition (before the first ``;``), parentheticals and quotes dropped; if longer
   than ``MAX_CLUE`` (80) characters it is cut before the last clause boundary that
   fits (": "; failing that ", ", " that ", " which ", ...; failing those, " with ",
   " and ", " of ", ..., never leaving a dangling "a"/"the"/"of"), else skipped. The clue must not give the
   answer away: it may not contain the word anywhere, nor start a word with one of its
   stems (the word minus a common suffix such as -s, -ed, -ing, -er, -y, and its first
   4 letters for 5-letter words), case-insensitively. A word with no acceptable sense
   is dropped.

Result on WordNet 3.0: 9,707 lemmas of 3-5 letters a-z, 7,257 of them with a
lower-case sense, 3,228 tagged at least once; 3,117 words survive rules 3 and 4.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

POS_FILES = (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))
POS_ORDER = {"n": 0, "v": 1, "a": 2, "s": 2, "r": 3}
SS_TYPE_NUMBER = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}  # the digit in a sense key
MAX_CLUE = 80
MIN_CLUE = 12

# Usage domains (the ";u" pointer's target synset, named by its first word).
OFFENSIVE_USAGES = frozenset({"obscenity", "ethnic_slur", "disparagement"})
SKIPPED_USAGES = frozenset({"slang", "street_name", "colloquialism", "archaism"})
# A gloss that says its sense is offensive: the sense is never a clue, and a word whose most
# common sense is one is dropped.
OFFENSIVE_GLOSS = re.compile(
    r"offensive (?:term|name|word|slang)|\((?:sometimes |often )?offensive\)|ethnic slur|obscen|"
    r"\(vulgar\)|vulgar (?:term|slang|word)|derogatory|disparaging|contemptuous term"
)
# Glosses that are fine in a dictionary but not as a puzzle clue: such senses are skipped.
UNSUITABLE_GLOSS = re.compile(
    OFFENSIVE_GLOSS.pattern + r"|\bslang\b|vulgar|\bslur\b|sexual|genital|\bpenis|\bvagina|buttocks|"
    r"prostitut|whore|street name|excrement|\bfeces\b|defecat|urinat|condom|\bdrug\b"
)
# Words that WordNet does not label (or labels only in a sense we would keep) but that a
# crossword handed to annotators or models should not contain.
BLOCKLIST = frozenset(
    """
    anal anus arse ass bitch boob boobs butt cock coon crap cunt dago damn dick dildo dyke fag
    fags fanny fuck gook homo honky hooch horny jap jism kike kraut nazi negro nigga nude nudes
    orgy paki penis pimp piss poof poon porn porno prick pube pubic puss pussy queer rape raped
    rapes semen sex sexy shag shit slag slut smut spic spunk teat tit tits titty turd twat
    vulva wank whore wog wop
    """.split()
)
SUFFIXES = ("ing", "ed", "es", "er", "est", "ly", "s", "y", "e")
CLAUSE_BREAKS = (  # tiers: the last boundary that fits in the first tier that has one
    (": ",),  # "a unit of pressure: the pressure that would support a column of mercury ..."
    (", ", " that ", " which ", " who ", " especially ", " usually ", " often "),
    (" with ", " having ", " and ", " or ", " in ", " of ", " for ", " from ", " by ", " as ", " to ", " on "),
)
DANGLING = frozenset("a an the of to and or with in on for from by as at its their his her".split())


@dataclass(frozen=True)
class Sense:
    lemma: str
    pos: str  # n v a s r
    offset: str
    lexfile: int
    lex_id: int
    lower_case: bool  # spelled in lower case in the synset (not a proper noun)
    usages: frozenset[str]
    gloss: str
    rank: int  # WordNet's sense number for this lemma and part of speech (0 = most frequent)


def read_synsets(wordnet: Path) -> dict[tuple[str, str], tuple]:
    """(offset, file pos) -> (ss_type, lexfile, [(word, lex_id)], usage offsets, gloss)."""
    synsets = {}
    for file_pos, pos in POS_FILES:
        for line in _data_lines(wordnet / f"data.{file_pos}"):
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            offset, lexfile, ss_type, word_count = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
            words = [(re.sub(r"\([a-z]+\)$", "", fields[4 + 2 * i]), int(fields[5 + 2 * i], 16))
                     for i in range(word_count)]
            at = 4 + 2 * word_count
            pointer_count = int(fields[at])
            usages = []
            for i in range(pointer_count):
                symbol, target, target_pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if symbol == ";u":
                    usages.append((target, "a" if target_pos == "s" else target_pos))
            synsets[(offset, pos)] = (ss_type, lexfile, words, tuple(usages), gloss.strip())
    return synsets


def read_tag_counts(wordnet: Path) -> dict[tuple[str, int, int, int], int]:
    """(lemma, ss_type digit, lexfile, lex_id) -> tag count, from ``cntlist.rev``."""
    counts = {}
    for line in (wordnet / "cntlist.rev").read_text(encoding="latin-1").splitlines():
        sense_key, _, count = line.split()
        lemma, _, rest = sense_key.partition("%")
        ss_type, lexfile, lex_id = rest.split(":")[:3]
        counts[(lemma.lower(), int(ss_type), int(lexfile), int(lex_id))] = int(count)
    return counts


def read_senses(wordnet: Path) -> dict[str, list[Sense]]:
    """Every sense of every 3-5 letter a-z lemma, from the index files."""
    synsets = read_synsets(wordnet)
    names = {key: synset[2][0][0].lower() for key, synset in synsets.items()}  # a usage domain's name
    senses = defaultdict(list)
    for file_pos, pos in POS_FILES:
        for line in (wordnet / f"index.{file_pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split()
            lemma = fields[0]
            if not re.fullmatch(r"[a-z]{3,5}", lemma):
                continue
            synset_count = int(fields[2])
            for rank, offset in enumerate(fields[-synset_count:]):
                ss_type, lexfile, words, usages, gloss = synsets[(offset, pos)]
                forms = [(word, lex_id) for word, lex_id in words if word.lower() == lemma]
                word, lex_id = forms[0]
                senses[lemma].append(Sense(
                    lemma, ss_type, offset, lexfile, lex_id, word == lemma,
                    frozenset(names[u] for u in usages), gloss, rank,
                ))
    return senses


def tag_count(sense: Sense, counts) -> int:
    return counts.get((sense.lemma, SS_TYPE_NUMBER[sense.pos], sense.lexfile, sense.lex_id), 0)


def is_offensive(sense: Sense) -> bool:
    return bool(sense.usages & OFFENSIVE_USAGES or OFFENSIVE_GLOSS.search(sense.gloss.lower()))


def is_clue_material(sense: Sense) -> bool:
    return not (sense.usages & (OFFENSIVE_USAGES | SKIPPED_USAGES) or UNSUITABLE_GLOSS.search(sense.gloss.lower()))


def stems(word: str) -> set[str]:
    word = word.lower()
    found = {word}
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            found.add(word[: -len(suffix)])
    if len(word) >= 5:
        found.add(word[:4])
    return found


def gives_away(clue: str, word: str) -> bool:
    """The clue contains the word, or a word in it starts with one of the word's stems."""
    clue = clue.lower()
    return word.lower() in clue or any(re.search(rf"\b{re.escape(stem)}", clue) for stem in stems(word))


def shorten(gloss: str) -> str | None:
    """The gloss's definition as a clue of at most MAX_CLUE characters, or None."""
    definition = gloss.split(";")[0]
    definition = re.sub(r"\([^()]*\)", "", definition)  # "(usually followed by `to')" and the like
    definition = re.sub(r"`([^`']*)'", r"\1", definition).replace('"', "")  # WordNet quotes `like this'
    definition = " ".join(definition.split()).strip(" ,:")
    if re.search(r"[()`\t]", definition) or len(definition) < 3:
        return None
    if len(definition) <= MAX_CLUE:
        return definition
    for breaks in CLAUSE_BREAKS:  # strong boundaries first, then any phrase boundary
        cuts = sorted(
            (m.start() for b in breaks for m in re.finditer(re.escape(b), definition)
             if MIN_CLUE <= m.start() <= MAX_CLUE),
            reverse=True,
        )
        for cut in cuts:
            clue = definition[:cut].strip(" ,:")
            if clue.split()[-1].lower() not in DANGLING:
                return clue
    return None


def by_frequency(senses: list[Sense], counts) -> list[Sense]:
    """Lower-case senses, most tagged first; ties: noun, verb, adjective, adverb, WordNet's order."""
    return sorted(
        (s for s in senses if s.lower_case),
        key=lambda s: (-tag_count(s, counts), POS_ORDER[s.pos], s.rank, s.offset),
    )


def choose_clue(lemma: str, ordered: list[Sense]) -> str | None:
    for sense in ordered:
        if not is_clue_material(sense):
            continue
        clue = shorten(sense.gloss)
        if clue and not gives_away(clue, lemma):
            return clue[0].upper() + clue[1:]
    return None


def build(wordnet: Path) -> list[tuple[str, str]]:
    counts = read_tag_counts(wordnet)
    rows = []
    for lemma, senses in sorted(read_senses(wordnet).items()):
        ordered = by_frequency(senses, counts)
        if not ordered or sum(tag_count(s, counts) for s in ordered) == 0:
            continue  # a proper noun only, or never tagged in the corpora
        if lemma in BLOCKLIST or is_offensive(ordered[0]):
            continue
        clue = choose_clue(lemma, ordered)
        if clue is not None:
            rows.append((lemma.upper(), clue))
    return rows


def _data_lines(path: Path):
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line.startswith("  "):  # the licence header lines start with two spaces
            yield line


def main(argv=None) -> None:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--output", type=Path, default=root / "verifiers" / "data" / "crossword_words.tsv")
    args = parser.parse_args(argv)
    if not (args.wordnet_dir / "cntlist.rev").exists():
        raise SystemExit(f"{args.wordnet_dir} has no WordNet 3.0 database; `apt-get install wordnet-base` "
                         "or pass --wordnet-dir")
    rows = build(args.wordnet_dir)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(f"{word}\t{clue}\n" for word, clue in rows), encoding="utf-8")
    print(f"wrote {len(rows)} words to {args.output}")


if __name__ == "__main__":
    main()
