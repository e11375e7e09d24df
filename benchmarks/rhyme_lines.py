#!/usr/bin/env python3
"""Rhymed lines of the model's own length (`--rhyme` alone; English lyrics): is every rhyme
honoured, and what does it cost in fluency, line length and time?

    .venv/bin/python benchmarks/rhyme_lines.py --checkpoint /tmp/en/ck/son/best.pt \\
        --corpus sonnets.txt --rhyme ABAB/CDCD

For the same seeds and `--samples` songs a seed, it races: unconstrained text (as many lines);
and the rule of generation/form/free_lines.py at settings of when a line that wants to end on a
word that does not rhyme is made to (the next word spelled from the rhymes): `at 0.1` (once
the chance the model would have ended it passes one in ten; near plain masking of the line's
end), `at 0.25` (charlm's choice, END_CHANCE), `at 0.5` and `wait` (the model writes on until
it ends on a rhyming word, or MAX_LINE); all with the one-step look ahead (each of the
likeliest 8 characters weighed by the chance the line may go on after it), and
`at 0.25, no look` without it (every character, no look: the baseline).

  rhyme      share of rhymed lines (a letter's second or later line) whose last word has the
             rhyme of the letter's first line (CMU dictionary, every pronunciation; a Chinese
             line: its last character, by its group in every reading), and a different one
  len        mean characters a line (and the unconstrained text's, for comparison)
  ppl model  perplexity of the generated characters under the checkpoint (mixture)
  ppl counts and under its count model alone
  wall       seconds for all of it
Then the rhyme rate (as `charlm scan` reads it: adjacent lines, and lines two apart) of the
held-out text, of unconstrained text and of the rule's text; and for an English model,
`--templates` held-out blocks given as `--template`: the share of their rhyming line pairs
that rhyme in the output, and how far the lines' lengths are from the template's.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from form import generate, perplexities  # noqa: E402

import charlm  # noqa: E402
from charlm.errors import CharlmError  # noqa: E402
from charlm.generation.form import free_lines  # noqa: E402
from charlm.generation.form.free_lines import Shape, parse_scheme  # noqa: E402
from charlm.generation.form.lexicon import lexicon_for  # noqa: E402
from charlm.generation.form.rhyme import RhymeBook  # noqa: E402
from charlm.generation.form.scan import line_end_rhymes  # noqa: E402

SETTINGS = {"at 0.1": (0.1, True), "at 0.25": (0.25, True), "at 0.5": (0.5, True),
            "at 0.25, no look": (0.25, False), "wait": (2.0, True)}  # fmt: skip
DEFAULT = "at 0.25"


def lines_of(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.strip()]


def rhyme_accuracy(texts: list[str], scheme: str, lex) -> tuple[int, int]:
    """(honoured, rhymed lines): see the docstring (a Chinese line's unit: its last
    character, by its group in every reading)."""
    letters = [c for c, _ in parse_scheme(scheme)]
    ok = total = 0
    for text in texts:
        first: dict[str, tuple[str | None, set[str]]] = {}
        for letter, line in zip(letters, lines_of(text), strict=False):
            unit = lex.last_unit(line) or ""
            if letter == "X":
                continue
            if letter not in first:
                first[letter] = (lex.strict(unit), {unit})
                continue
            total += 1
            rhyme, units = first[letter]
            ok += rhyme is not None and lex.strict(unit) == rhyme and unit not in units
            units.add(unit)
    return ok, total


def rhyme_rates(texts: list[str], book: RhymeBook) -> tuple[float, float]:
    """Share of adjacent line pairs, and of pairs two apart, that rhyme (scan's reading)."""
    near = far = n_near = n_far = 0
    for text in texts:
        rhymes = line_end_rhymes(lines_of(text), book)
        for a, b in itertools.pairwise(rhymes):
            n_near += 1
            near += a is not None and a == b
        for a, b in zip(rhymes, rhymes[2:], strict=False):
            n_far += 1
            far += a is not None and a == b
    return near / max(n_near, 1), far / max(n_far, 1)


def held_out(lm, corpus: str | None, size: int) -> list[str]:
    split = lm.corpus_split(corpus, "val")
    lines = lines_of("".join(lm.vocab.tokens[i] for i in split.ids.tolist()))
    return ["\n".join(lines[i : i + size]) for i in range(0, len(lines) - size + 1, size)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--corpus", help="the training text (default: the one the run records)")
    ap.add_argument("--rhyme", default="ABAB/CDCD")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--templates", type=int, default=8, help="held-out blocks as --template")
    args = ap.parse_args()
    lm = charlm.load(args.checkpoint)
    book = RhymeBook()
    lex = lexicon_for(lm.vocab, book)  # how a line's last unit is read
    seeds = range(1, args.seeds + 1)
    n_lines = len(parse_scheme(args.rhyme))
    rows = []
    free, wall = generate(lm, seeds, args.samples, lines=n_lines, length=n_lines * 200)
    free = [args.prefix + t for t in free]
    rows.append(("unconstrained", free, wall))
    for name, (half, look) in SETTINGS.items():
        free_lines.END_CHANCE = half
        texts, wall = generate(lm, seeds, args.samples, rhyme=args.rhyme, lookahead=look)
        rows.append((name, [args.prefix + t for t in texts], wall))
    free_lines.END_CHANCE = SETTINGS[DEFAULT][0]
    base_wall = rows[0][2]
    print(f"{Path(args.checkpoint).parent.name}: --rhyme {args.rhyme}, {args.seeds} seeds x "
          f"{args.samples} songs", file=sys.stderr)  # fmt: skip
    head = f"{'method':<14} {'rhyme':>12} {'len':>6} {'ppl model':>10} {'ppl counts':>10} "
    print(head + f"{'wall':>12}  {'rate adj/2 apart':>16}")
    for name, texts, wall in rows:
        ok, total = rhyme_accuracy(texts, args.rhyme, lex)
        lens = [len(ln) for t in texts for ln in lines_of(t)]
        model, counts = perplexities(lm, texts)
        near, far = rhyme_rates(texts, book)
        rhyme = f"{ok}/{total}" if name != "unconstrained" else f"({ok}/{total})"
        print(f"{name:<14} {rhyme:>12} {sum(lens) / len(lens):>6.1f} {model:>10.2f} "
              f"{counts or float('nan'):>10.2f} {wall:>6.1f}s {wall / base_wall:>4.1f}x  "
              f"{near:>7.0%} / {far:.0%}")  # fmt: skip
    try:
        real = held_out(lm, args.corpus, n_lines)
    except CharlmError as e:  # the corpus moved: pass --corpus
        print(f"held-out text: {e}")
        return
    near, far = rhyme_rates(real, book)
    print(f"held-out text ({len(real)} blocks of {n_lines} lines): adjacent lines rhyme "
          f"{near:.0%}, lines two apart {far:.0%}")  # fmt: skip
    if lex.language == "en" and args.templates:
        templates(lm, lex, book, real[: args.templates])


def templates(lm, lex, book: RhymeBook, blocks: list[str]) -> None:
    """Each held-out block as a --template: how many of its rhyming line pairs rhyme in the
    output (a pair rhymes: both last words have the same strict rhyme, and differ), and how
    far each line's length is from the template's."""
    kept = pairs = 0
    gaps, t0 = [], time.perf_counter()
    for seed, block in enumerate(blocks):
        shape = Shape.of_template(block, book)
        out = lines_of(lm.generate_text("", template=block, seed=seed))
        units = [lex.last_unit(ln) for ln in out]
        for i, j in itertools.combinations(range(len(shape.lines)), 2):
            if shape.lines[i][0] != "X" and shape.lines[i][0] == shape.lines[j][0]:
                pairs += 1
                a, b = (lex.strict(units[k]) if units[k] else None for k in (i, j))
                kept += a is not None and a == b and units[i] != units[j]
        gaps += [abs(len(o) - t) / t for o, t in zip(out, shape.targets, strict=True)]
    wall = time.perf_counter() - t0
    print(
        f"templates ({len(blocks)} held-out blocks): rhyming pairs kept {kept}/{pairs}, line "
        f"length off the template's by {sum(gaps) / len(gaps):.0%} on average, {wall:.1f}s"
    )


if __name__ == "__main__":
    main()
