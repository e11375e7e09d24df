"""The form of a lyric as a reader sees it: per line its length, last character, rhyme group
(the last Chinese character's final, read in context; for an English line, its last word's
rhyme by the CMU dictionary, "AY T" for night) and scheme letter; per song the scheme and
how often adjacent lines rhyme. `charlm scan` prints it; tests and benchmarks use it on
generated text."""

from __future__ import annotations

import itertools
from typing import Any

from charlm.generation.form import english
from charlm.generation.form.layout import scheme_letters
from charlm.generation.form.rhyme import RhymeBook


def scan(text: str, book: RhymeBook) -> dict[str, Any]:
    """{"lines": [{"text", "length", "last", "rhyme", "letter"}], "scheme", "stanzas",
    "rhyming_pairs", "adjacent_pairs", "rhyme_rate"}. Blank lines separate stanzas (a "/" in
    the scheme); adjacent pairs are counted within a stanza."""
    stanzas = stanzas_of(text)
    flat = [ln for s in stanzas for ln in s]
    groups = line_end_rhymes(flat, book)
    letters = scheme_letters(groups)
    lines = [
        {"text": ln, "length": len(ln), "last": _last(ln), "rhyme": g, "letter": c}
        for ln, g, c in zip(flat, groups, letters, strict=True)
    ]
    pairs = rhyming = 0
    at, scheme = 0, []
    for stanza in stanzas:
        part = groups[at : at + len(stanza)]
        for a, b in itertools.pairwise(part):
            pairs += 1
            rhyming += a is not None and a == b
        scheme.append(letters[at : at + len(stanza)])
        at += len(stanza)
    return {
        "lines": lines,
        "scheme": "/".join(scheme),
        "stanzas": len(stanzas),
        "rhyme_table": _tables(flat, book),
        "rhyming_pairs": rhyming,
        "adjacent_pairs": pairs,
        "rhyme_rate": rhyming / pairs if pairs else 0.0,
    }


def stanzas_of(text: str) -> list[list[str]]:
    """A lyric's lines (right-stripped), stanza by stanza (blank lines between)."""
    stanzas: list[list[str]] = [[]]
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            stanzas[-1].append(line.rstrip())
        elif stanzas[-1]:
            stanzas.append([])
    return [s for s in stanzas if s]


def line_end_rhymes(lines: list[str], book: RhymeBook) -> list[str | None]:
    """Each line's rhyme: its last word's for an English line, else its last Chinese
    character's group."""
    out: list[str | None] = [None] * len(lines)
    chinese = [k for k, ln in enumerate(lines) if not english.is_english_line(ln)]
    for k, g in zip(chinese, book.line_end_groups([lines[k] for k in chinese]), strict=True):
        out[k] = g
    for k, ln in enumerate(lines):
        if english.is_english_line(ln):
            word = english.last_word(ln)
            out[k] = english.read_rhyme(word) if word else None
    return out


def _tables(lines: list[str], book: RhymeBook) -> str:
    """What the rhymes were read by: the Chinese table, the CMU dictionary, or both."""
    en = [english.is_english_line(ln) for ln in lines]
    used = ([book.table] if not all(en) else []) + (["CMU"] if any(en) else [])
    return "+".join(used) or book.table


def _last(line: str) -> str:
    """The line's last character, or its last word when the line is English."""
    word = english.last_word(line) if english.is_english_line(line) else None
    return word or line[-1]


def render(result: dict[str, Any]) -> str:
    """scan's result as a table: one row a line, then the summary."""
    wide = max([4] + [len(ln["last"]) for ln in result["lines"]])
    rhyme = max([6] + [len(ln["rhyme"] or "") for ln in result["lines"]])
    rows = [f"{'len':>4}  {'last':<{wide}} {'rhyme':<{rhyme}} {'':1}  line"]
    for ln in result["lines"]:
        rows.append(f"{ln['length']:>4}  {ln['last']:<{wide}} {ln['rhyme'] or '-':<{rhyme}} "
                    f"{ln['letter']:1}  {ln['text']}")  # fmt: skip
    rows.append(
        f"scheme {result['scheme']} ({result['rhyme_table']}); adjacent lines rhyming: "
        f"{result['rhyming_pairs']}/{result['adjacent_pairs']} ({result['rhyme_rate']:.0%})"
    )
    return "\n".join(rows)
