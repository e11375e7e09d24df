"""--rhyme without --form: lines of the model's own length, each rhyming line ending on a word
(English) or a character (Chinese) of its scheme letter's rhyme.

English lines have no fixed length in characters, so the rhyme cannot wait at a known slot.
Instead the line may end (the model may write its line break) only after a unit that rhymes:

    rhyme line   the line break is allowed only right after a word that fits the letter (its
                 rhyme chosen by the letter's first line, or --rhyme-with; a word already used
                 for the letter only when no other fits). Where the model wanted to end the line
                 but could not, the chance it would have ended by now is tracked (one minus the
                 product of (1 - p(line break)) over those steps); once past END_CHANCE, or past
                 MAX_LINE characters, the next word is held to the rhyming words, letter by
                 letter (a prefix tree of them; the model chooses among the branches), and the
                 line break follows it.
    free line    (X) the model ends it where it likes; past MAX_LINE characters, at a word's end.
    run-on word  past MAX_LINE + RUN_ON characters, a word ends at once (a space).
    stanza       "/" in the scheme: a blank line.

So the model picks both where a line ends and which rhyming word ends it; the rule only steps
in where the model would end a line on a word that does not rhyme. A Chinese model's units are
single characters (any character of the group; 多音字 only when every reading fits).
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass

import numpy as np
import torch

from charlm.data.vocab import Vocab
from charlm.errors import DataError, UsageError
from charlm.generation.form import english
from charlm.generation.form.constraint import mask
from charlm.generation.form.layout import is_cjk
from charlm.generation.form.rhyme import RhymeBook, VocabRhymes

_WORD_TAIL = re.compile(r"[A-Za-z']*\Z")  # the word a line's text ends in, if any
END_MARKS = "。！？!?…"  # a Chinese line may end on one: before it, the rhyme (see _ends)
MAX_LINE = 64  # characters: a backstop for a model that seldom ends its lines
RUN_ON = 16  # past MAX_LINE, a word being written may go on this far before a space ends it
LOOKAHEAD, LOOKAHEAD_K = True, 8  # see _look_ahead
WEIGH_MAX = 256  # rhyme words weighed whole (see _few)
# Past this chance of having ended (one minus the survival), the line's next word is its
# rhyme; see benchmarks/rhyme_lines.py for the line lengths and perplexities it gives.
END_CHANCE = 0.25


@dataclass(frozen=True)
class Lexicon:
    """What can end a line, for one vocabulary: rhyme -> the units it can write (sorted)."""

    language: str  # "en": units are words; "zh": units are characters
    groups: dict[str, list[str]]
    book: RhymeBook | None = None

    def strict(self, unit: str) -> str | None:
        if self.language == "en":
            return english.strict_rhyme(unit)
        return self.book.strict_group(unit) if self.book else None

    def last_unit(self, line: str) -> str | None:
        if self.language == "en":
            word = english.last_word(line)
            return word.lower() if word else None
        return next((c for c in reversed(line) if is_cjk(c)), None)

    def in_unit(self, ch: str) -> bool:
        """A character that continues the unit before it (a word's letters)."""
        return self.language == "en" and ch.isascii() and (ch.isalpha() or ch == "'")

    def named(self, name: str) -> str | None:
        """--rhyme-with: a rhyme group by name, word or character."""
        if self.language == "en":
            return english.rhyme_named(name)
        return self.book.group_named(name) if self.book else None


def lexicon_for(vocab: Vocab, book: RhymeBook, counts=None) -> Lexicon:
    """Chinese when the vocabulary has more Chinese characters than Latin letters. An English
    model's words are the dictionary's words it can spell; with `counts` (the count model),
    only those its corpus had (else a rhyme is spelled out of the dictionary's 125k names and
    rare words: "truesdell", "donahoo")."""
    tokens = list(vocab.tokens)
    cjk = sum(len(t) == 1 and is_cjk(t) for t in tokens)
    latin = sum(t.isascii() and t.isalpha() for t in tokens)
    if cjk > latin:
        rhymes = VocabRhymes.of(tokens, book)
        groups: dict[str, list[str]] = {}
        for t, g, zh in zip(tokens, rhymes.group_ids, rhymes.chinese, strict=True):
            if g >= 0 and zh:
                groups.setdefault(book.groups[g], []).append(t)
        return Lexicon("zh", {g: sorted(v) for g, v in groups.items()}, book)
    chars = {t for t in tokens if len(t) == 1}
    words = [w for w, r in english.table().items()  # eyes' is eyes, for a reader
             if len(r) == 1 and set(w) <= chars and not w.endswith("'")]  # fmt: skip
    if counts is not None:
        words = [w for w, ok in zip(words, corpus_words(words, vocab, counts), strict=True) if ok]
    en: dict[str, list[str]] = {}
    for w in words:
        en.setdefault(english.table()[w][0], []).append(w)
    return Lexicon("en", {g: sorted(v) for g, v in en.items()})


def corpus_words(words: list[str], vocab: Vocab, counts) -> np.ndarray:
    """(len(words),) bool: the word stood in the counted text as a word: its start after a
    space or a line break (as written, or capitalised), its end before one of them or a comma
    or full stop, and each stretch of it as long as the model's order between them, all seen
    as n-grams ("highlight" is not a word of a text that has "high" and "light"); a word short
    enough, whole between the two ("t" is not a word of "it is"). Batched by gram length:
    1 s for the dictionary's 120k words."""
    k = counts.order - 1
    lens = np.array([len(w) for w in words], dtype=np.int64)
    flat = vocab.encode("".join(words)).astype(np.int64)  # (sum of lengths,)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    upper = np.arange(len(vocab), dtype=np.int64)  # id -> the id of its capital
    for i, t in enumerate(vocab.tokens):
        if len(t) == 1 and t.upper() != t and t.upper() in vocab:
            upper[i] = vocab.id_of(t.upper())
    before = [vocab.id_of(c) for c in (" ", "\n") if c in vocab]
    after = [vocab.id_of(c) for c in (" ", "\n", ",", ".") if c in vocab]
    start, end = np.zeros(len(words), dtype=bool), np.zeros(len(words), dtype=bool)
    for n in range(1, k + 1):
        rows = np.flatnonzero(np.minimum(lens, k) == n)
        if not len(rows):
            continue
        heads = flat[offs[rows, None] + np.arange(n)]  # (R, n)
        tails = flat[offs[rows, None] + lens[rows, None] - n + np.arange(n)]  # (R, n)
        capital = heads.copy()
        capital[:, 0] = upper[capital[:, 0]]
        col = np.ones((len(rows), 1), dtype=np.int64)
        for c in before:
            start[rows] |= counts.seen(np.hstack([col * c, heads]))
            start[rows] |= counts.seen(np.hstack([col * c, capital]))
        for c in after:
            end[rows] |= counts.seen(np.hstack([tails, col * c]))
    whole = lens > counts.order - 2  # a short word: seen whole, with what stood around it
    for n in range(1, counts.order - 1):
        rows = np.flatnonzero(lens == n)
        spelled = flat[offs[rows, None] + np.arange(n)]  # (R, n)
        capital = spelled.copy()
        capital[:, 0] = upper[capital[:, 0]]
        col = np.ones((len(rows), 1), dtype=np.int64)
        for c, d in itertools.product(before, after):
            for form in (spelled, capital):
                whole[rows] |= counts.seen(np.hstack([col * c, form, col * d]))
    inside = np.ones(len(words), dtype=bool)
    for n in np.unique(lens[lens >= counts.order]):
        rows = np.flatnonzero(lens == n)
        spelled = flat[offs[rows, None] + np.arange(n)]  # (R, n)
        for i in range(n - counts.order + 1):
            inside[rows] &= counts.seen(spelled[:, i : i + counts.order])
    return start & end & inside & whole


def _spelled_as(word: str, ids: dict[str, int]) -> str:
    """How a rhyme word is written inside a line: in lower case, "I" aside."""
    return "I" if word == "i" and "I" in ids else word


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


class RhymeLines:
    """The rule; per-row state is the text of the current line and each letter's rhyme."""

    looks_back = 1
    ROW_STATE = ("text", "line", "blank", "groups", "used", "forcing", "survival", "plan")

    def __init__(self, scheme: str, vocab: Vocab, lexicon: Lexicon, n: int, prefix: str,
                 rhyme_with: str | None = None, lookahead: bool = True) -> None:  # fmt: skip
        self.lines, self.vocab, self.lex = parse_scheme(scheme), vocab, lexicon
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
        tail = prefix.rsplit("\n", 1)[-1]  # the prefix's last line starts the first line
        self.text = [tail] * n
        self.line, self.blank = [0] * n, [False] * n
        self.groups: list[dict[str, str]] = [dict(first) for _ in range(n)]
        self.used: list[dict[str, set[str]]] = [{} for _ in range(n)]
        self.forcing: list[str | None] = [None] * n  # the rhyming word written so far
        self.survival = [1.0] * n  # the chance the model would not have ended the line yet
        self.plan: list[tuple[list[str], np.ndarray] | None] = [None] * n  # words, log-probs
        self.seen = 0
        self._last_units: dict[int, tuple[str, str | None]] = {}  # row -> (text, its unit)

    @property
    def breaks(self) -> int:
        return len(self.lines) + sum(end for _, end in self.lines[:-1])

    def __call__(self, logits: torch.Tensor, draft) -> torch.Tensor:
        """(B, V) -> (B, V)."""
        if draft.steps > self.seen:
            for b, i in enumerate(draft.last_ids()):
                self._wrote(b, self.vocab.tokens[i])
            self.seen = draft.steps
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
        if self.lookahead and LOOKAHEAD and draft.peek is not None:
            out = self._look_ahead(out, draft.peek)
        for b in range(len(logits)):
            if self.forcing[b] is not None and draft.score is not None and self._few(b):
                if self.plan[b] is None:  # the word starts here: weigh every candidate once
                    self.plan[b] = self._weigh(b, logp[b], draft.score)
                out[b] = self._spelled(b, logits[b]).to(out.dtype)
        return out

    def _look_ahead(self, logits: torch.Tensor, peek) -> torch.Tensor:
        """(B, V) -> (B, V) on rows writing a rhyme line freely: each of the likeliest
        LOOKAHEAD_K characters weighed by the chance the line may go on after it: 1 when the
        line, with it, ends on a rhyme; else the chance the model would not end it there
        (the end is forbidden after a unit that does not rhyme). So a line heads for a
        rhyme where the model would end it, instead of being made to go on. The rest out."""
        rows = [b for b in range(len(logits)) if self._free_rhyme_row(b)]
        if not rows:
            return logits
        k = min(LOOKAHEAD_K, logits.shape[1])
        top = torch.topk(logits[rows], k, dim=1)  # (R, K)
        full = torch.full((len(logits), k), self.newline, dtype=torch.long)
        full[rows] = top.indices
        nxt = peek(full)[rows]  # (R, K, V) log-probs after each candidate
        p_end = nxt[:, :, self.ends].exp().sum(dim=2)  # (R, K)
        fits = torch.tensor(
            [
                [self._fits_after(b, self.vocab.tokens[i]) for i in cands]
                for b, cands in zip(rows, top.indices.tolist(), strict=True)
            ]
        )
        weight = torch.where(fits, 1.0, (1.0 - p_end).clamp_min(1e-6))  # (R, K)
        score = torch.log_softmax(top.values.float(), dim=1) + weight.log()  # (R, K)
        out = logits.clone()
        at = torch.tensor(rows)
        out[at] = float("-inf")
        out[at[:, None], top.indices] = score.to(out.dtype)
        return out

    def _fits_after(self, b: int, ch: str) -> bool:
        """Whether row b's line would end on a rhyme with `ch` written next."""
        text, lex = self.text[b], self.lex
        if lex.language == "en" and lex.in_unit(ch):
            unit = (_WORD_TAIL.search(text).group() + ch).strip("'").lower() or None
        elif lex.language == "zh" and is_cjk(ch):
            unit = ch
        else:
            unit = self._last_units.get(b)
            if unit is None or unit[0] != text:
                unit = (text, lex.last_unit(text))
                self._last_units[b] = unit
            unit = unit[1]
        return unit is not None and self._fits(b, self.lines[self.line[b]][0], unit)

    def _free_rhyme_row(self, b: int) -> bool:
        """Row b writes a rhyme line and is not spelling its rhyme."""
        return (self.line[b] < len(self.lines) and not self.blank[b]
                and self.forcing[b] is None and self.lines[self.line[b]][0] != "X")  # fmt: skip

    def _few(self, b: int) -> bool:
        """Whether row b's rhyme words are few enough to weigh whole (WEIGH_MAX): a letter's
        first line may end on any of thousands, which are spelled letter by letter."""
        return len(self._candidates(b, self.lines[self.line[b]][0])) <= WEIGH_MAX

    def _weigh(self, b: int, logp: torch.Tensor, score) -> tuple[list[str], np.ndarray]:
        """Row b's candidate rhyme words and the log-probability of each, with the line
        break after it, from here: the network's, the first letter's as it stands."""
        words = self._candidates(b, self.lines[self.line[b]][0])
        seqs = [[self.ids[c] for c in _spelled_as(w, self.ids)] + [self.newline] for w in words]
        first = logp[[q[0] for q in seqs]].double().cpu()  # (W,)
        return words, (first + score(b, seqs)).numpy()

    def _spelled(self, b: int, row: torch.Tensor) -> torch.Tensor:
        """(V,) logits of row b's next character inside its rhyme word: each allowed one
        at the total probability of the words it leads to (so the word is drawn as a
        whole, in proportion to its probability), the line break at the finished word's."""
        words, scores = self.plan[b]
        so_far = self.forcing[b]
        lo = bisect.bisect_left(words, so_far)
        hi = bisect.bisect_left(words, so_far + "\uffff")
        best: dict[int, float] = {}
        lp = torch.log_softmax(row.float(), dim=0)
        for w, sc in zip(words[lo:hi], scores[lo:hi], strict=True):
            at = len(so_far)
            if len(w) > at:
                nxt = [(self.ids[_spelled_as(w, self.ids)[at]], float(sc))]
            else:  # the word is written: the break (or a full stop), as the model has them
                nxt = [(i, float(sc + lp[i] - lp[self.newline])) for i in self.ends]
            for i, v in nxt:
                best[i] = float(np.logaddexp(best[i], v)) if i in best else v
        out = torch.full_like(row, float("-inf"))
        if not best:  # nothing left to spell (cannot happen): end the line
            best[self.newline] = 0.0
        keys = torch.tensor(list(best))
        out[keys] = torch.tensor(list(best.values()), dtype=out.dtype)
        kept = out.masked_fill(~torch.isfinite(row), float("-inf"))  # what other rules forbid
        return kept if torch.isfinite(kept).any() else out

    def _allowed(self, b: int, p_break: float) -> np.ndarray | None:
        """(V,) bool: what row b may write now; None for anything."""
        if self.line[b] >= len(self.lines):
            return None
        if self.blank[b]:
            return self._only_break()
        letter, text = self.lines[self.line[b]][0], self.text[b]
        if self.forcing[b] is not None:
            return self._spell(b, letter, self.forcing[b])
        # an English word starts after a space; a Chinese unit is any character
        at_start = not text or text[-1] == " " if self.lex.language == "en" else True
        long = len(text) >= MAX_LINE
        unit = self.lex.last_unit(text) if letter != "X" else None
        ends = bool(text.strip()) and (letter == "X" or (
            unit is not None and self._fits(b, letter, unit)))  # fmt: skip
        if ends and not (long and letter == "X" and not at_start):
            return self._only_break() if long else None  # past MAX_LINE, it ends here
        if len(text) >= MAX_LINE + RUN_ON and not at_start and self.space is not None:
            out = self._only_break() if letter == "X" else self._nothing()
            out[self.space] = True  # a word that runs on past MAX_LINE ends at a space
            return out
        self.survival[b] *= 1.0 - p_break
        if at_start and text.strip() and (1.0 - self.survival[b] >= END_CHANCE or long):
            self.forcing[b] = ""
            return self._spell(b, letter, "")
        return self._no_break()

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

    def _spell(self, b: int, letter: str, so_far: str) -> np.ndarray:
        """The next character of a rhyming word that starts with `so_far` (or the break)."""
        words = self._candidates(b, letter)
        lo = bisect.bisect_left(words, so_far)
        hi = bisect.bisect_left(words, so_far + "\uffff")
        out = np.zeros(len(self.vocab), dtype=bool)
        for w in words[lo:hi]:
            if len(w) > len(so_far):
                c = _spelled_as(w, self.ids)[len(so_far)]
                if c in self.ids:
                    out[self.ids[c]] = True
            elif so_far:
                out[self.ends] = True
        if not out.any():  # nothing to spell (cannot happen with a fitting prefix)
            out[self.newline] = True
        return out

    def _nothing(self) -> np.ndarray:
        return np.zeros(len(self.vocab), dtype=bool)

    def _only_break(self) -> np.ndarray:
        out = self._nothing()
        out[self.newline] = True
        return out

    def _no_break(self) -> np.ndarray:
        out = np.ones(len(self.vocab), dtype=bool)
        out[self.ends] = False
        return out

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
        self.line[b] += 1
        self.blank[b] = stanza_end and self.line[b] < len(self.lines)
        self.text[b], self.forcing[b], self.survival[b], self.plan[b] = "", None, 1.0, None
