"""The shape a song must have: lines of given lengths, stanza breaks, a rhyme scheme, tonal
patterns, literal symbols and repeated lines; from `--form`, a named form or a template.

    parse_form("7,7,7/7,7,7")   six 7-character lines, a blank line after the third
    parse_form("七言绝句")        a named form: lengths, rhyme slots and its tonal pattern
    from_template(text, book)    the shape of a song: lengths, stanzas, symbols, its rhymes

Every character of a line counts toward its length except the line break.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace

from charlm.errors import UsageError
from charlm.generation.form.rhyme import LEVEL, OBLIQUE, RhymeBook

FREE = "中"  # a tonal-pattern position that may be level or oblique
MAX_LINES, MAX_LINE_CHARS = 500, 200


@dataclass(frozen=True)
class Line:
    slots: tuple[str | None, ...]  # None: a character to write; a str: that literal character
    rhyme: str = "X"  # scheme letter; X = free
    tones: str = ""  # per slot 平 / 仄 / 中 (free); "" = no pattern
    repeat_of: int | None = None  # a chorus line: writes what line `repeat_of` wrote
    stanza_end: bool = False  # a blank line follows

    @property
    def rhyme_pos(self) -> int:
        """The slot that rhymes: the last one to write (a template line may end in "。")."""
        return max(i for i, slot in enumerate(self.slots) if slot is None)


@dataclass(frozen=True)
class Layout:
    lines: tuple[Line, ...]
    name: str = ""  # the named form, if any

    @property
    def scheme(self) -> str:
        return "".join(line.rhyme for line in self.lines)

    @property
    def lengths(self) -> list[int]:
        return [len(line.slots) for line in self.lines]

    def spec(self) -> str:
        """The layout as --form writes it: "7,7,7/7,7,7"."""
        return "".join(
            f"{len(line.slots)}" + ("/" if line.stanza_end else ",") for line in self.lines
        ).rstrip(",/")

    def breaks(self) -> int:
        """Line breaks the whole song writes (each line's, and one per stanza break)."""
        return len(self.lines) + sum(line.stanza_end for line in self.lines[:-1])

    def with_rhyme(self, scheme: str) -> Layout:
        """The scheme's letters (A-Z, X free), one per line."""
        scheme = scheme.upper()
        if len(scheme) != len(self.lines) or not all("A" <= c <= "Z" for c in scheme):
            raise UsageError(
                f"--rhyme {scheme}: give one letter per line (A-Z, X = free), "
                f"{len(self.lines)} for this form"
            )
        return replace(
            self,
            lines=tuple(replace(ln, rhyme=c) for ln, c in zip(self.lines, scheme, strict=True)),
        )


def _named(name: str, stanzas: list[list[str]], scheme: str, source: str) -> tuple[str, dict]:
    """A named form from its tonal pattern (one string per line, stanza by stanza)."""
    return name, {"stanzas": stanzas, "scheme": scheme, "source": source}


# Tonal patterns: 平 level, 仄 oblique, 中 either (the positions the sources mark as free).
# Shi: 王力《诗词格律》(中华书局, 1962), 第一章 (律诗的平仄); one standard variant each.
# Ci: 龙榆生《唐宋词格律》(上海古籍出版社, 1978).
FORMS: dict[str, dict] = dict(
    [
        _named("五言绝句", [["中仄平平仄", "平平仄仄平", "中平平仄仄", "中仄仄平平"]], "XAXA",
               "王力《诗词格律》: 仄起首句不入韵"),
        _named("七言绝句", [["中仄平平仄仄平", "中平中仄仄平平", "中平中仄平平仄",
                             "中仄平平仄仄平"]], "AAXA", "王力《诗词格律》: 仄起首句入韵"),
        _named("五言律诗", [["中仄平平仄", "平平仄仄平", "中平平仄仄", "中仄仄平平",
                             "中仄平平仄", "平平仄仄平", "中平平仄仄", "中仄仄平平"]],
               "XAXAXAXA", "王力《诗词格律》: 仄起首句不入韵"),
        _named("七言律诗", [["中平中仄仄平平", "中仄平平仄仄平", "中仄中平平仄仄",
                             "中平中仄仄平平", "中平中仄平平仄", "中仄平平仄仄平",
                             "中仄中平平仄仄", "中平中仄仄平平"]],
               "AAXAXAXA", "王力《诗词格律》: 平起首句入韵"),
        _named("忆江南", [["中平仄", "中仄仄平平", "中仄中平平仄仄", "中平中仄仄平平",
                           "中仄仄平平"]], "XAXAA", "龙榆生《唐宋词格律》: 忆江南 (单调, 平韵)"),
        _named("浣溪沙", [["中仄中平中仄平", "中平中仄仄平平", "中平中仄仄平平"],
                          ["中仄中平平仄仄", "中平中仄仄平平", "中平中仄仄平平"]],
               "AAAXAA", "龙榆生《唐宋词格律》: 浣溪沙 (平韵)"),
        _named("如梦令", [["中仄中平平仄", "中仄中平平仄", "中仄仄平平", "中仄中平平仄",
                           "平仄", "平仄", "中仄中平平仄"]],
               "AAXAAAA", "龙榆生《唐宋词格律》: 如梦令 (仄韵)"),
        _named("卜算子", [["中仄仄平平", "中仄平平仄", "中仄平平仄仄平", "中仄平平仄"],
                          ["中仄仄平平", "中仄平平仄", "中仄平平仄仄平", "中仄平平仄"]],
               "XAXAXAXA", "龙榆生《唐宋词格律》: 卜算子 (仄韵)"),
    ]
)  # fmt: skip


def named_form(name: str) -> Layout:
    form = FORMS[name]
    lines, letters = [], iter(form["scheme"])
    for stanza in form["stanzas"]:
        for i, pattern in enumerate(stanza):
            lines.append(Line((None,) * len(pattern), next(letters), pattern, None,
                              i == len(stanza) - 1))  # fmt: skip
    lines[-1] = replace(lines[-1], stanza_end=False)
    return Layout(tuple(lines), name)


def is_named(spec: str) -> bool:
    """Whether --form names a form (FORMS: each has a tonal pattern), not line lengths."""
    return spec.strip() in FORMS


def parse_form(spec: str) -> Layout:
    """--form: a named form (see FORMS), or line lengths "7,7,7/7,7,7" ("/" = stanza break)."""
    spec = spec.strip()
    if is_named(spec):
        return named_form(spec)
    lines = []
    for stanza in spec.split("/"):
        parts = [p.strip() for p in stanza.split(",")]
        # ASCII digits only: "²" and "٣" are digits to isdigit() but not lengths to a reader
        if not all(re.fullmatch(r"[0-9]{1,4}", p) and 1 <= int(p) <= MAX_LINE_CHARS
                   for p in parts):  # fmt: skip
            raise UsageError(
                f"--form {spec!r}: give line lengths like 7,7,7,7 (1-{MAX_LINE_CHARS} each; / "
                f"for a stanza break) or a named form ({', '.join(FORMS)}; see --list-forms)"
            )
        lines += [Line((None,) * int(p)) for p in parts]
        lines[-1] = replace(lines[-1], stanza_end=True)
    lines[-1] = replace(lines[-1], stanza_end=False)
    if len(lines) > MAX_LINES:
        raise UsageError(f"--form {spec!r}: at most {MAX_LINES} lines")
    return Layout(tuple(lines))


def is_cjk(ch: str) -> bool:
    """A Chinese character (a slot to write in a template), not a symbol, space or letter."""
    return unicodedata.category(ch) == "Lo" and "CJK" in unicodedata.name(ch, "")


def scheme_letters(groups: list[str | None]) -> str:
    """Scheme letters for lines ending in these rhyme groups: lines of one group share a
    letter (A, B, ... in order of first appearance); a group that ends one line only, and a
    line with no Chinese ending, is X."""
    counts = Counter(g for g in groups if g)  # one pass: a count a line was quadratic
    letters: dict[str, str] = {}
    out = []
    for g in groups:
        if not g or counts[g] < 2:
            out.append("X")
            continue
        if g not in letters:
            letters[g] = "ABCDEFGHIJKLMNOPQRSTUVWYZ"[len(letters) % 25]
        out.append(letters[g])
    return "".join(out)


def from_template(text: str, book: RhymeBook, repeat_chorus: bool = False) -> Layout:
    """The shape of a song: each non-empty line's length, its non-Chinese characters (symbols,
    spaces, letters) where they stand, a blank line as a stanza break, and the template's
    own rhymes as the scheme (lines that rhyme there rhyme in the output). With
    `repeat_chorus`, a line that repeats an earlier one writes that line's words again."""
    raw = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    lines: list[Line] = []
    texts: list[str] = []
    for ln in raw:
        if not ln.strip():
            if lines:
                lines[-1] = replace(lines[-1], stanza_end=True)
            continue
        slots = tuple(None if is_cjk(c) else c for c in ln)
        if None not in slots:
            raise UsageError(
                f"template line {ln!r} has no Chinese character to write; remove it or add some"
            )
        if len(slots) > MAX_LINE_CHARS:
            raise UsageError(f"template line {ln[:20]!r}...: over {MAX_LINE_CHARS} characters")
        first = texts.index(ln) if repeat_chorus and ln in texts else None
        lines.append(Line(slots, repeat_of=first))
        texts.append(ln)
    if not lines:
        raise UsageError("the template has no line with a Chinese character in it")
    if len(lines) > MAX_LINES:
        raise UsageError(f"the template has over {MAX_LINES} lines")
    lines[-1] = replace(lines[-1], stanza_end=False)
    scheme = scheme_letters(book.line_end_groups(texts))
    # a repeated line repeats its own ending: its letter need not be forced again
    scheme = "".join("X" if ln.repeat_of is not None else c
                     for ln, c in zip(lines, scheme, strict=True))  # fmt: skip
    return Layout(tuple(lines), "template").with_rhyme(scheme)


def tone_ok(tone_slot: str, level: bool, oblique: bool) -> bool:
    return tone_slot == FREE or (tone_slot == LEVEL and level) or (tone_slot == OBLIQUE and oblique)


def layout_for(
    form: str, rhyme: str, template: str, book: RhymeBook, repeat_chorus: bool = False
) -> Layout:
    """The layout of a generate call: --template, or --form with --rhyme."""
    if template:
        return from_template(template, book, repeat_chorus)
    layout = parse_form(form)
    return layout.with_rhyme(rhyme) if rhyme else layout


def describe_forms(as_json: bool = False) -> str:
    """The named forms: lengths, rhyme scheme, tonal pattern and source (text or JSON lines)."""
    import json

    out = []
    for name, form in FORMS.items():
        layout = named_form(name)
        tones = "/".join("，".join(stanza) for stanza in form["stanzas"])
        if as_json:
            rec = {"name": name, "form": layout.spec(), "rhyme": layout.scheme,
                   "tones": tones, "source": form["source"]}  # fmt: skip
            out.append(json.dumps(rec, ensure_ascii=False))
        else:
            out.append(f"{name}\t{layout.spec()}\trhyme {layout.scheme}\t{tones}\t{form['source']}")
    return "\n".join(out)
