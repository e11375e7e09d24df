"""The form of a lyric as a reader sees it: per line its length, last character, rhyme group
(the last Chinese character's final, read in context) and scheme letter; per song the scheme
and how often adjacent lines rhyme. `charlm scan` prints it; tests and benchmarks use it on
generated text."""

from __future__ import annotations

import itertools
from typing import Any

from charlm.generation.form.layout import scheme_letters
from charlm.generation.form.rhyme import RhymeBook


def scan(text: str, book: RhymeBook) -> dict[str, Any]:
    """{"lines": [{"text", "length", "last", "rhyme", "letter"}], "scheme", "stanzas",
    "rhyming_pairs", "adjacent_pairs", "rhyme_rate"}. Blank lines separate stanzas (a "/" in
    the scheme); adjacent pairs are counted within a stanza."""
    stanzas: list[list[str]] = [[]]
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            stanzas[-1].append(line.rstrip())
        elif stanzas[-1]:
            stanzas.append([])
    stanzas = [s for s in stanzas if s]
    flat = [ln for s in stanzas for ln in s]
    groups = book.line_end_groups(flat)
    letters = scheme_letters(groups)
    lines = [
        {"text": ln, "length": len(ln), "last": ln[-1], "rhyme": g, "letter": c}
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
        "rhyme_table": book.table,
        "rhyming_pairs": rhyming,
        "adjacent_pairs": pairs,
        "rhyme_rate": rhyming / pairs if pairs else 0.0,
    }


def render(result: dict[str, Any]) -> str:
    """scan's result as a table: one row a line, then the summary."""
    rows = [f"{'len':>4}  {'last':<4} {'rhyme':<6} {'':1}  line"]
    for ln in result["lines"]:
        rows.append(f"{ln['length']:>4}  {ln['last']:<4} {ln['rhyme'] or '-':<6} "
                    f"{ln['letter']:1}  {ln['text']}")  # fmt: skip
    rows.append(
        f"scheme {result['scheme']} ({result['rhyme_table']}); adjacent lines rhyming: "
        f"{result['rhyming_pairs']}/{result['adjacent_pairs']} ({result['rhyme_rate']:.0%})"
    )
    return "\n".join(rows)
