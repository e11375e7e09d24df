"""--rhyme without --form: lines of the model's own length, each rhyming line ending on a word
(English) or a character (Chinese) of its scheme letter's rhyme.

English lines have no fixed length in characters, so the rhyme cannot wait at a known slot.
Instead the line may end (the model may write its line break) only after a unit that rhymes:

    rhyme line   the line break is allowed only right after a word that fits the letter (its
                 rhyme chosen by the letter's first line, or --rhyme-with; a word already used
                 for the letter only when no other fits). A Chinese line's full stop (。！？)
                 is held back the same way, so its rhyme comes before it.
    look ahead   at each character of a rhyming line, the likeliest LOOKAHEAD_K candidates are
                 weighed by the chance the line may go on after each (1 when it would then end
                 on a rhyme; else one minus the model's chance of ending there, looked up one
                 step ahead for the candidates after which a line could end). So the line
                 heads for a rhyme where the model would end it. Without it, the perplexity
                 of rhymed sonnets was 1.16x that of free text; with it, below.
    rhyme word   where the model still wanted to end the line but could not, the chance it
                 would have ended by now is tracked (one minus the product of (1 - p(end))
                 over those steps); once past END_CHANCE, or past MAX_LINE characters, the
                 next word is a rhyme: every candidate word (when there are at most WEIGH_MAX)
                 is scored whole by the network with the line break after it, and spelled
                 letter by letter in proportion to those scores (more: by the model's letters
                 alone), and the line break follows it.
    free line    (X) the model ends it where it likes; past MAX_LINE characters, at a word's end.
    run-on word  past MAX_LINE + RUN_ON characters, a word ends at once (a space).
    stanza       "/" in the scheme: a blank line.

So the model picks both where a line ends and which rhyming word ends it; the rule steps in
where the model would end a line on a word that does not rhyme. The words are the dictionary's
words the count model saw (Lexicon). A Chinese model's units are single characters (any
character of the group; 多音字 only when every reading fits). benchmarks/rhyme_lines.py
measures it.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

import numpy as np
import torch

from charlm.data.vocab import Vocab
from charlm.errors import DataError, UsageError
from charlm.generation.form import english
from charlm.generation.form.constraint import mask
from charlm.generation.form.layout import is_cjk
from charlm.generation.form.lexicon import Lexicon
from charlm.generation.form.rhyme import RhymeBook
from charlm.generation.form.rhyme_word import Spelling
from charlm.generation.processor import Processor, StepContext, take_rows

_WORD_TAIL = re.compile(r"[A-Za-z']*\Z")  # the word a line's text ends in, if any
END_MARKS = "。！？!?…"  # a Chinese line may end on one: before it, the rhyme (see _ends)
MAX_LINE = 64  # characters: a backstop for a model that seldom ends its lines
RUN_ON = 16  # past MAX_LINE, a word being written may go on this far before a space ends it
LOOKAHEAD_K = 8  # candidates the look ahead weighs (see _look_ahead)
WEIGH_MAX = 256  # rhyme words weighed whole (see _few)
# Past this chance of having ended (one minus the survival), the line's next word is its
# rhyme; see benchmarks/rhyme_lines.py for the line lengths and perplexities it gives.
END_CHANCE = 0.25
MIN_SHARE = 0.6  # a template's line ends no sooner than this share of its length


@dataclass(frozen=True)
class Shape:
    """The lines to write: a scheme letter each and whether a stanza ends after it; from a
    template, also each line's length and the earlier line it repeats (a chorus)."""

    lines: tuple[tuple[str, bool], ...]
    targets: tuple[int, ...] = ()  # a template's line lengths; () = the model's own
    repeats: tuple[int | None, ...] = ()

    @classmethod
    def of_scheme(cls, scheme: str) -> Shape:
        return cls(tuple(parse_scheme(scheme)))

    @classmethod
    def of_template(cls, text: str, book: RhymeBook, repeat_chorus: bool = False) -> Shape:
        """An English song's shape: its lines (the blank lines between stanzas), their
        lengths, which rhyme with which (a line that rhymes with none is free), and with
        `repeat_chorus` the lines it repeats."""
        from charlm.generation.form.layout import scheme_letters
        from charlm.generation.form.scan import line_end_rhymes, stanzas_of

        stanzas = stanzas_of(text)
        flat = [ln for st in stanzas for ln in st]
        if not flat:
            raise UsageError("the template has no line to follow")
        letters = scheme_letters(line_end_rhymes(flat, book))
        letters = [c if letters.count(c) > 1 else "X" for c in letters]
        ends = [i == len(st) - 1 for st in stanzas for i in range(len(st))]
        ends[-1] = False
        repeats = [flat.index(ln) if repeat_chorus and flat.index(ln) < i else None
                   for i, ln in enumerate(flat)]  # fmt: skip
        return cls(tuple(zip(letters, ends, strict=True)), tuple(len(ln) for ln in flat),
                   tuple(repeats))  # fmt: skip

    def cap(self, i: int) -> int:
        """Characters past which line i ends at its next word's end."""
        return self.targets[i] if self.targets else MAX_LINE

    def too_short(self, i: int, n: int) -> bool:
        """Whether n characters are too few for line i to end (a template's line: under
        MIN_SHARE of its length)."""
        return bool(self.targets) and n < MIN_SHARE * self.targets[i]

    def repeat_of(self, i: int) -> int | None:
        return self.repeats[i] if self.repeats else None


def parse_scheme(scheme: str) -> list[tuple[str, bool]]:
    """ "AABB/CCDD" -> [(letter, stanza ends after it)]."""
    out: list[tuple[str, bool]] = []
    for c in scheme.upper().replace(" ", ""):
        if c == "/" and out and not out[-1][1]:
            out[-1] = (out[-1][0], True)
        elif "A" <= c <= "Z":
            out.append((c, False))
        else:
            raise UsageError(f"--rhyme {scheme}: letters A-Z (X = free) and / between stanzas")
    if not out or out[-1][1]:
        raise UsageError(f"--rhyme {scheme}: letters A-Z (X = free) and / between stanzas")
    return out


class RhymeLines(Processor):
    """The rule; per-row state is the text of the current line and each letter's rhyme."""

    looks_back = 1
    # per-row state, copied row by row when best of N lines keeps one (reorder)
    ROWS = ("text", "line", "blank", "groups", "used", "forcing", "survival", "plan", "done")

    def __init__(self, shape: Shape, vocab: Vocab, lexicon: Lexicon, n: int, prefix: str,
                 rhyme_with: str | None = None, lookahead: bool = True) -> None:  # fmt: skip
        self.shape, self.lines, self.vocab, self.lex = shape, shape.lines, vocab, lexicon
        self.lookahead = lookahead
        self.newline, self.space = vocab.id_of("\n"), vocab.id_of(" ")
        if self.newline is None:
            raise DataError("the model never saw a line break: it cannot write lines (--rhyme)")
        letters = [c for c, _ in self.lines if c != "X"]
        need = {c: letters.count(c) for c in letters}  # a group must have a word a line
        self.viable = {c: sorted(w for g, ws in lexicon.groups.items() if len(ws) >= k
                                 for w in ws) for c, k in need.items()}  # fmt: skip
        if letters and not any(self.viable.values()):
            raise DataError("the model can write no word with a clear rhyme (--rhyme)")
        first = {}
        if rhyme_with:
            group = lexicon.named(rhyme_with)
            if group is None or not lexicon.groups.get(group):
                raise UsageError(f"--rhyme-with {rhyme_with}: no word the model can write "
                                 "rhymes that way")  # fmt: skip
            if not letters:
                raise UsageError("--rhyme-with needs a rhyming letter in --rhyme")
            first = {letters[0]: group}
        self.ids = {ch: i for i, ch in enumerate(vocab.tokens)}
        # a Chinese line's full stop comes after its rhyme: it is held back like the break
        marks = [self.ids[c] for c in END_MARKS if c in self.ids]
        self.ends = [self.newline] + (marks if lexicon.language == "zh" else [])
        self.spelling = Spelling(self.ids, tuple(self.ends), len(vocab))
        tail = prefix.rsplit("\n", 1)[-1]  # the prefix's last line starts the first line
        self.text = [tail] * n
        self.line, self.blank = [0] * n, [False] * n
        self.groups: list[dict[str, str]] = [dict(first) for _ in range(n)]
        self.used: list[dict[str, set[str]]] = [{} for _ in range(n)]
        self.forcing: list[str | None] = [None] * n  # the rhyming word written so far
        self.survival = [1.0] * n  # the chance the model would not have ended the line yet
        self.plan: list[np.ndarray | None] = [None] * n  # the rhyme words' log-probs
        self.done: list[list[str]] = [[] for _ in range(n)]  # the lines written
        self.seen = 0
        self._last_units: dict[int, tuple[str, str | None]] = {}  # row -> (text, its unit)

    @property
    def breaks(self) -> int:
        return len(self.lines) + sum(end for _, end in self.lines[:-1])

    def reorder(self, rows: list[int]) -> None:
        take_rows(self, self.ROWS, rows)

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """(B, V) -> (B, V)."""
        if ctx.steps > self.seen:
            for b, i in enumerate(ctx.last_ids()):
                self._wrote(b, self.vocab.tokens[i])
            self.seen = ctx.steps
        logp = torch.log_softmax(logits.float(), dim=1)  # (B, V)
        p_break = logp[:, self.ends].exp().sum(dim=1).tolist()  # (B,) a line (or sentence) end
        rows = [self._allowed(b, p_break[b]) for b in range(len(logits))]
        if all(r is None for r in rows):
            return logits
        allowed = torch.ones_like(logits, dtype=torch.bool)
        for b, r in enumerate(rows):
            if r is not None:
                allowed[b] = torch.from_numpy(r).to(logits.device)
        out = mask(logits, allowed)
        if self.lookahead and ctx.ahead is not None:
            out = self._look_ahead(out, ctx.ahead.rows)
        for b in range(len(logits)):
            if self.forcing[b] is not None and ctx.ahead is not None and self._few(b):
                words = self._candidates(b, self.lines[self.line[b]][0])
                if self.plan[b] is None:  # the word starts here: weigh every candidate once
                    rest = functools.partial(ctx.ahead.sequences, b)
                    self.plan[b] = self.spelling.weigh(words, logp[b], rest)
                spelled = self.spelling.logits(words, self.plan[b], self.forcing[b], logits[b])
                out[b] = spelled.to(out.dtype)
        return out

    def _look_ahead(self, logits: torch.Tensor, peek_rows) -> torch.Tensor:
        """(B, V) -> (B, V) on rows writing a rhyme line freely: each of the likeliest
        LOOKAHEAD_K characters weighed by the chance the line may go on after it: 1 when the
        line, with it, ends on a rhyme; else the chance the model would not end it there
        (the end is forbidden after a unit that does not rhyme). So a line heads for a
        rhyme where the model would end it, instead of being made to go on. The rest out.
        Only candidates after which a line could end are looked past (one batched step for
        them all): a word of the dictionary, a punctuation mark, a Chinese character; the
        middle of a word, or a space, keeps weight 1."""
        rows = [b for b in range(len(logits)) if self._free_rhyme_row(b)]
        if not rows:
            return logits
        k = min(LOOKAHEAD_K, logits.shape[1])
        top = torch.topk(logits[rows], k, dim=1)  # (R, K)
        weight = torch.ones(len(rows), k)  # (R, K)
        look: list[tuple[int, int]] = []  # (r, j) pairs to look past
        for r, (b, cands) in enumerate(zip(rows, top.indices.tolist(), strict=True)):
            for j, i in enumerate(cands):
                if self._may_end_wrong(b, self.vocab.tokens[i]):
                    look.append((r, j))
        if look:
            r_at, j_at = (torch.tensor(x) for x in zip(*look, strict=True))
            at = torch.tensor(rows)[r_at]
            nxt = peek_rows(at, top.indices[r_at, j_at])  # (P, V) log-probs after each
            p_end = nxt[:, self.ends].exp().sum(dim=1)  # (P,)
            weight[r_at, j_at] = (1.0 - p_end.float()).clamp_min(1e-6).cpu()
        score = torch.log_softmax(top.values.float(), dim=1) + weight.log().to(top.values.device)
        out = logits.clone()
        at = torch.tensor(rows)
        out[at] = float("-inf")
        out[at[:, None], top.indices] = score.to(out.dtype)
        return out

    def _may_end_wrong(self, b: int, ch: str) -> bool:
        """Whether, with `ch` written next, row b's line could be ended by the model on a unit
        that does not rhyme (so the chance it would end there is worth a look)."""
        text, lex = self.text[b], self.lex
        if lex.language == "en" and lex.in_unit(ch):
            unit = (_WORD_TAIL.search(text).group() + ch).strip("'").lower()
            if not english.rhymes_of(unit):
                return False  # the middle of a word: a line seldom ends there
        elif lex.language == "zh" and len(ch) == 1 and is_cjk(ch):
            unit = ch
        elif ch == " ":
            return False  # a line seldom ends on a space
        else:  # a punctuation mark: the unit before it
            cached = self._last_units.get(b)
            if cached is None or cached[0] != text:
                cached = (text, lex.last_unit(text))
                self._last_units[b] = cached
            unit = cached[1]
        return unit is None or not self._fits(b, self.lines[self.line[b]][0], unit)

    def _free_rhyme_row(self, b: int) -> bool:
        """Row b writes a rhyme line and is not spelling its rhyme."""
        return (self.line[b] < len(self.lines) and not self.blank[b]
                and self.forcing[b] is None and self.lines[self.line[b]][0] != "X")  # fmt: skip

    def _few(self, b: int) -> bool:
        """Whether row b's rhyme words are few enough to weigh whole (WEIGH_MAX): a letter's
        first line may end on any of thousands, which are spelled letter by letter."""
        return len(self._candidates(b, self.lines[self.line[b]][0])) <= WEIGH_MAX

    def _allowed(self, b: int, p_break: float) -> np.ndarray | None:
        """(V,) bool: what row b may write now; None for anything."""
        if self.line[b] >= len(self.lines):
            return None
        if self.blank[b]:
            return _only(len(self.vocab), [self.newline])
        i, text = self.line[b], self.text[b]
        letter, first = self.lines[i][0], self.shape.repeat_of(i)
        if first is not None:  # a chorus line: what its first time wrote, then the break
            again = self.done[b][first]
            nxt = self.ids[again[len(text)]] if len(text) < len(again) else self.newline
            return _only(len(self.vocab), [nxt])
        if self.forcing[b] is not None:
            return self.spelling.mask(self._candidates(b, letter), self.forcing[b])
        # an English word starts after a space; a Chinese unit is any character
        at_start = not text or text[-1] == " " if self.lex.language == "en" else True
        cap = self.shape.cap(i)
        long = len(text) >= cap
        unit = self.lex.last_unit(text) if letter != "X" else None
        ends = bool(text.strip()) and not self.shape.too_short(i, len(text)) and (
            letter == "X" or (unit is not None and self._fits(b, letter, unit)))  # fmt: skip
        if ends and not (long and letter == "X" and not at_start):
            # past its cap, it ends here
            return _only(len(self.vocab), [self.newline]) if long else None
        if len(text) >= cap + RUN_ON and not at_start and self.space is not None:
            out = _only(len(self.vocab), [self.newline] if letter == "X" else [])
            out[self.space] = True  # a word that runs on past MAX_LINE ends at a space
            return out
        self.survival[b] *= 1.0 - p_break
        wants = not self.shape.targets and 1.0 - self.survival[b] >= END_CHANCE
        if at_start and text.strip() and letter != "X" and (wants or long):
            self.forcing[b] = ""
            return self.spelling.mask(self._candidates(b, letter), "")
        return ~_only(len(self.vocab), self.ends)

    def _fits(self, b: int, letter: str, unit: str) -> bool:
        """Whether `unit` may end row b's line of `letter`."""
        group = self.groups[b].get(letter)
        if group is None:
            return self._viable_has(letter, unit)
        if self.lex.strict(unit) != group:
            return False
        used = self.used[b].get(letter, set())
        return unit not in used or set(self.lex.groups[group]) <= used

    def _viable_has(self, letter: str, unit: str) -> bool:
        words = self.viable.get(letter, [])
        i = bisect.bisect_left(words, unit)
        return i < len(words) and words[i] == unit

    def _candidates(self, b: int, letter: str) -> list[str]:
        group = self.groups[b].get(letter)
        if group is None:
            return self.viable[letter]
        words = self.lex.groups[group]
        used = self.used[b].get(letter, set())
        fresh = [w for w in words if w not in used]
        return fresh or words

    def _wrote(self, b: int, ch: str) -> None:
        if self.line[b] >= len(self.lines):
            return
        if ch != "\n":
            self.text[b] += ch
            if self.forcing[b] is not None:
                self.forcing[b] += ch.lower()
            return
        if self.blank[b]:
            self.blank[b] = False
            return
        letter, stanza_end = self.lines[self.line[b]]
        unit = self.lex.last_unit(self.text[b])
        if letter != "X" and unit is not None:
            group = self.lex.strict(unit)
            if group is not None:
                self.groups[b].setdefault(letter, group)
                self.used[b].setdefault(letter, set()).add(unit)
        self.done[b].append(self.text[b])
        self.line[b] += 1
        self.blank[b] = stanza_end and self.line[b] < len(self.lines)
        self.text[b], self.forcing[b], self.survival[b], self.plan[b] = "", None, 1.0, None


def _only(size: int, ids: list[int]) -> np.ndarray:
    """(size,) bool: True at `ids`."""
    out = np.zeros(size, dtype=bool)
    out[ids] = True
    return out
