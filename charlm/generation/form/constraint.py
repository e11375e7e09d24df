"""The constraint that holds generation to a layout (see layout.py): each step's position in
the song decides what may be written there.

    line slot    a Chinese character (or, inside a --form line, one space between phrases, as
                 lyrics have; it counts); 平/仄 where the pattern says
    rhyme slot   the line's last slot when its scheme letter is not X: a character whose every
                 reading is in the letter's group (chosen by the first line of the letter, or
                 by --rhyme-with), not one already used for the letter when others remain
    literal      a template's symbol, written as it is (one the model never saw is read as
                 its unknown symbol, and written as itself)
    line break   at the end of each line, and once more at a stanza break
    repeat       a chorus line writes again what its first occurrence wrote

Masking a slot alone forces a rhyming character (or a line break) onto a line that was going
elsewhere. So every slot followed by a restricted one (a line break, a rhyme slot, a tone, a
symbol) looks one step ahead (for a named form's tones too: without it, a 七言绝句 from the bundled
corpus's model came out at 2.6x the perplexity, with it 1.4x): among its likeliest K
candidates, each is weighed by the probability the model then gives what the next slot allows
(p(c) * P(allowed next | c)), which is what sampling the pair and keeping only the pairs that
fit would give, without the rejections. A line's last character is thus one that ends lines,
and the one before a rhyme one that leads to the rhyme. It costs one extra batched step (K rows
a sample) per such slot."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import torch

from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import DataError, UsageError
from charlm.generation.form.layout import FREE, Layout, is_named
from charlm.generation.form.rhyme import LEVEL, VocabRhymes
from charlm.generation.processor import Processor, StepContext, take_rows

LOOKAHEAD_K = 12  # candidates weighed at the slot before a rhyme
# candidates weighed before a slot that asks only a tone (half the characters fit it). On the
# Tang poems' model (600 s, vocabulary 9.4k), a 七言绝句 best of 2 came out at 65.0 perplexity
# with 12 (unconstrained text: 61.4), 61.7 with 6, 56.3 with 4, 54.5 with 3 (sampling ever
# fewer characters); of one candidate line (a named form's default, sampling.py) at 83.6 with
# 12, 78.1 with 6, 68.1 with 4 and 64.9 with 3, with as many distinct characters in 32 poems
# (300 against 334 with 6). On smaller models 3 also came out lowest or within 3 % of it
# (the bundled corpus from scratch and fine-tuned from zh, 150 s; 七言绝句 and 五言律诗).
TONE_K = 3
NEWLINE, BLANK, CHAR, LITERAL = "nl", "blank", "char", "lit"
NEAR_COPY_MIN = 4  # a named form's lines this long and longer never repeat (see _no_near_copy)

# (B, K) candidate ids, (B, V) allowed -> (B, K) log-probability that the character after
# each candidate is one the row allows (sampling.Lookahead.mass)
Peek = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FormConstraint(Processor):
    """Generation held to a layout; `written` is each sample's text so far, as ids."""

    looks_back = 1

    def __init__(
        self,
        layout: Layout,
        vocab: Vocab,
        rhymes: VocabRhymes,
        n: int,
        prefix: str,
        rhyme_with: str | None = None,
        lookahead: bool = True,
        free_heads: bool = False,
    ) -> None:
        self.layout, self.vocab, self.rhymes, self.lookahead = layout, vocab, rhymes, lookahead
        self.plan = _plan(layout)  # one entry a character of the song
        self.line_starts: dict[int, int] = {}  # line -> its first position in the song
        for p, (_, line, _, _) in enumerate(self.plan):
            self.line_starts.setdefault(line, p)
        self.newline = vocab.id_of("\n")
        if self.newline is None:
            raise DataError("the model never saw a line break: it cannot write lines (--form)")
        # a Chinese model writes Chinese characters in a line's slots (a template's symbols
        # and spaces stand where the template has them)
        self.chinese = torch.from_numpy(rhymes.chinese)
        # a line of --form may hold a space between phrases (it counts as a character); a
        # template keeps its own spaces where they stand, and a classical form has none
        pauses = [vocab.id_of(c) for c in (" ", "\u3000")] if layout.name != "template" else []
        self.pauses = [i for i in pauses if i is not None]
        self._pause_ids = torch.tensor(self.pauses, dtype=torch.long)  # (P,)
        if not self.chinese.any():
            raise DataError(
                "the model knows no Chinese character: --form counts the characters of "
                "Chinese lines; for English lyrics give --rhyme alone (e.g. --rhyme AABB: "
                "lines of the model's own length, rhymed) or --template"
            )
        self.level = torch.from_numpy(rhymes.level)
        self.oblique = torch.from_numpy(rhymes.oblique)
        self.definite = torch.from_numpy(rhymes.group_ids >= 0)
        self.free_heads = free_heads  # an acrostic writes each line's first character
        self._bases: dict[tuple[str, bool], torch.Tensor] = {}  # see _base
        self.viable = self._viable_groups()
        self.start = len(prefix)
        check_prefix_fits(self.plan, layout, prefix)
        self.groups: list[dict[str, str]] = [{} for _ in range(n)]  # letter -> group
        self.used: list[dict[str, set[int]]] = [{} for _ in range(n)]  # letter -> rhyme ids
        if rhyme_with:
            letter = next((c for c in layout.scheme if c != "X"), None)
            if letter is None:
                raise UsageError("--rhyme-with needs --rhyme (or a form with rhyme slots)")
            for g in self.groups:
                g[letter] = rhyme_with
        self.written: list[list[int]] = [[int(i) for i in vocab.encode(prefix)] for _ in range(n)]
        self.seen = 0

    def reorder(self, rows: list[int]) -> None:
        take_rows(self, ("groups", "used", "written"), rows)

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """(B, V) -> (B, V): only what the layout allows at this position."""
        if ctx.steps > self.seen:  # what the samples wrote at the last step
            for b, i in enumerate(ctx.last_ids()):
                self.written[b].append(i)
                self._remember(b, self.start + self.seen, i)
            self.seen = ctx.steps
        p = self.start + ctx.steps
        if p >= len(self.plan):
            return logits
        kind, line, pos, literal = self.plan[p]
        if kind in (NEWLINE, BLANK):
            return _only(logits, [self.newline] * len(logits))
        if kind == LITERAL:
            if self.vocab.id_of(literal) is None:  # a symbol the model never saw: it reads
                ctx.spell = literal  # <unk> there, and the text has the symbol itself
            return _only(logits, [self._literal_id(literal)] * len(logits))
        spec = self.layout.lines[line]
        if spec.repeat_of is not None:
            return _only(logits, [self._repeat(b, spec.repeat_of, line, pos)
                                  for b in range(len(logits))])  # fmt: skip
        allowed = self._no_near_copy(self._allowed(len(logits), line, pos, logits.device),
                                     line, pos)  # (B, V)  # fmt: skip
        nxt = self._next_allowed(p + 1, len(logits), logits.device)  # (B, V) or None
        if nxt is not None and self.lookahead and ctx.ahead is not None:
            k = LOOKAHEAD_K if self._hard(p + 1) else TONE_K
            logits = _weigh_by_next(
                logits.masked_fill(~allowed, float("-inf")), nxt, ctx.ahead.mass, k
            )
        return mask(logits, allowed)

    def _no_near_copy(self, allowed: torch.Tensor, line: int, pos: int) -> torch.Tensor:
        """(B, V) -> (B, V): in a named form, a line may not repeat an earlier line of its
        length but for its last two characters (its rhyme would change the last): at the
        third slot from the end, the character that would do so is barred, unless it is all
        a row has left. The song cache pulls a song back to its own lines, which lyrics want
        (a chorus; forms by line lengths and templates keep them). In the Tang poems two
        phrases share all but their last two characters in 0.62 % of the poems (all but the
        last: 0.34 %); a 600 s Tang model with the cache wrote such a 七言绝句 for 2 of 6 seeds."""
        n = len(self.layout.lines[line].slots)
        if not is_named(self.layout.name) or pos != n - 3 or n < NEAR_COPY_MIN:
            return allowed
        start = self.line_starts[line]
        earlier = [self.line_starts[e] for e in range(line)
                   if len(self.layout.lines[e].slots) == n]  # fmt: skip
        banned = [(b, w[at + pos]) for b, w in enumerate(self.written) for at in earlier
                  if w[at : at + pos] == w[start : start + pos]]  # fmt: skip
        if not banned:
            return allowed
        out = allowed.clone()  # contiguous: allowed may be one row expanded
        rows, ids = zip(*banned, strict=True)
        out[list(rows), list(ids)] = False
        empty = ~out.any(dim=1)
        out[empty] = allowed[empty]
        return out

    def _next_allowed(self, p: int, n: int, device) -> torch.Tensor | None:
        """(n, V) bool: what position p will allow, when that is a restriction worth planning
        for (a line break, a rhyme, a tone, a symbol); None when any Chinese character goes."""
        if p >= len(self.plan):
            return None
        kind, line, pos, literal = self.plan[p]
        spec = self.layout.lines[line]
        if kind == CHAR and spec.repeat_of is not None:
            return None  # a repeated line is copied whatever comes before it
        if kind in (NEWLINE, BLANK, LITERAL):
            only = torch.zeros(n, len(self.vocab), dtype=torch.bool, device=device)
            only[:, self.newline if kind != LITERAL else self._literal_id(literal)] = True
            return only
        tone = spec.tones[pos] if spec.tones else FREE
        rhymed = pos == spec.rhyme_pos and spec.rhyme != "X"
        if tone == FREE and not rhymed:
            return None
        return self._allowed(n, line, pos, device)

    def _hard(self, p: int) -> bool:
        """Whether position p restricts more than a tone: a line break, a symbol, a rhyme."""
        kind, line, pos, _ = self.plan[p]
        spec = self.layout.lines[line]
        return kind != CHAR or (pos == spec.rhyme_pos and spec.rhyme != "X")

    # ---- what may stand at a slot -------------------------------------------------------------

    def _allowed(self, n: int, line: int, pos: int, device) -> torch.Tensor:
        """(n, V) bool: the characters each sample may write at slot `pos` of `line`. At a rhyme
        slot the first non-empty of: the group's unused characters of the right tone, its used
        ones of that tone, then the same without the tone (the rhyme outranks the tone)."""
        spec = self.layout.lines[line]
        base = self._base(spec.tones[pos] if spec.tones else FREE, pos)
        if not (pos == spec.rhyme_pos and spec.rhyme != "X"):
            if not (self.pauses and 0 < pos < len(spec.slots) - 1 and not spec.tones):
                return base.to(device)[None].expand(n, -1)  # one row for all: read only
            rows = base.repeat(n, 1)  # (n, V); no pause is a Chinese character
            last = torch.tensor([w[-1] if w else -1 for w in self.written])  # (n,)
            # a space between phrases, as lyrics have, never two
            rows[:, self.pauses] = ~torch.isin(last, self._pause_ids)[:, None]
            return rows.to(device)
        rows = []
        for b in range(n):
            fresh, every = self._rhyme_ids(b, spec.rhyme)
            options = (fresh & base, every & base, fresh & self.chinese, every & self.chinese)
            rows.append(next((o for o in options if o.any()), base))
        return torch.stack(rows).to(device)

    def _base(self, tone: str, pos: int) -> torch.Tensor:
        """(V,) bool: the Chinese characters of this tone (kept: asked at every slot)."""
        key = (tone, self.free_heads and pos == 0)
        if key not in self._bases:
            self._bases[key] = self.chinese & self._tone_mask(tone, pos)
        return self._bases[key]

    def _literal_id(self, literal: str) -> int:
        i = self.vocab.id_of(literal)
        return UNK_ID if i is None else i

    def _tone_mask(self, tone: str, pos: int) -> torch.Tensor:
        if tone == FREE or (self.free_heads and pos == 0):  # an acrostic's head is given
            return torch.ones_like(self.chinese)
        return self.level if tone == LEVEL else self.oblique

    def _rhyme_ids(self, b: int, letter: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(unused, all) characters sample b may end a line of `letter` with. The letter's
        first line may end in any group with enough characters for all its lines."""
        group = self.groups[b].get(letter)
        if group is None:
            return self.viable[letter], self.viable[letter]
        ids = torch.from_numpy(self.rhymes.in_group(group))
        fresh = ids.clone()
        fresh[list(self.used[b].get(letter, ()))] = False
        return fresh, ids

    def _viable_groups(self) -> dict[str, torch.Tensor]:
        """Letter -> (V,) bool: characters of the groups that have a distinct character of the
        right tone for each of the letter's lines (so a rhyme never has to repeat or give in)."""
        out = {}
        group_ids = torch.from_numpy(self.rhymes.group_ids)
        for letter in set(self.layout.scheme) - {"X"}:
            lines = [ln for ln in self.layout.lines if ln.rhyme == letter]
            need = torch.ones_like(self.chinese)
            for ln in lines:
                last = ln.rhyme_pos
                need &= self._tone_mask(ln.tones[last] if ln.tones else FREE, last)
            ok = torch.zeros_like(self.chinese)
            for g in range(len(self.rhymes.book.groups)):
                members = (group_ids == g) & self.chinese
                if int((members & need).sum()) >= len(lines):
                    ok |= members
            out[letter] = ok if ok.any() else self.definite
        return out

    def _remember(self, b: int, p: int, i: int) -> None:
        """After a sample wrote id i at position p: a first rhyme fixes its letter's group."""
        if p >= len(self.plan) or self.plan[p][0] != CHAR:
            return
        _, line, pos, _ = self.plan[p]
        spec = self.layout.lines[line]
        if pos == spec.rhyme_pos and spec.rhyme != "X":
            group = self.rhymes.group_of_id(i)
            if group and spec.rhyme not in self.groups[b]:
                self.groups[b][spec.rhyme] = group
            self.used[b].setdefault(spec.rhyme, set()).add(i)

    def _repeat(self, b: int, first: int, line: int, pos: int) -> int:
        """The id sample b wrote at slot `pos` of line `first` (written[b] is indexed by the
        position in the song, the prefix first)."""
        return self.written[b][self.line_starts[first] + pos]


def check_prefix_fits(plan: list, layout: Layout, prefix: str) -> None:
    """The prefix is the song's start: each of its characters where the form has a slot,
    its line breaks where the form's lines end (a break elsewhere would cut a line)."""
    for p, ch in enumerate(prefix):
        kind, _, _, literal = plan[p] if p < len(plan) else (None, -1, 0, None)
        if ch == "\n" and kind in (NEWLINE, BLANK):
            continue
        if (kind == CHAR and ch != "\n") or (kind == LITERAL and literal == ch):
            continue
        k = prefix[:p].count("\n")
        want = layout.lengths[k] if k < len(layout.lengths) else 0
        raise UsageError(
            f"--prefix {prefix!r} does not fit the form: the prefix is the start of the "
            f"song, and its line {k + 1} must have {want} character(s)"
            + (" before its line break" if ch == "\n" or kind in (NEWLINE, BLANK) else "")
        )


def _plan(layout: Layout) -> list[tuple[str, int, int, str | None]]:
    """(kind, line, position, literal) for every character of the song, line breaks included."""
    plan = []
    for k, line in enumerate(layout.lines):
        for pos, slot in enumerate(line.slots):
            plan.append((CHAR, k, pos, None) if slot is None else (LITERAL, k, pos, slot))
        plan.append((NEWLINE, k, len(line.slots), None))
        if line.stanza_end:
            plan.append((BLANK, k, len(line.slots) + 1, None))
    return plan


def _only(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Each row may write only its id."""
    out = torch.full_like(logits, float("-inf"))
    out[torch.arange(len(ids)), torch.tensor(ids)] = 0.0
    return out


def mask(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """(B, V) with what is not allowed at -inf. A row whose allowed characters all stand at
    -inf already (another rule forbade them) keeps the layout: uniform over what it allows."""
    out = logits.masked_fill(~allowed, float("-inf"))
    dead = ~torch.isfinite(out).any(dim=1)
    if dead.any():
        out[dead] = torch.where(allowed[dead], 0.0, float("-inf")).to(out.dtype)
    return out


def _weigh_by_next(
    logits: torch.Tensor, nxt_allowed: torch.Tensor, peek: Peek, k: int = LOOKAHEAD_K
) -> torch.Tensor:
    """(B, V) -> (B, V): the likeliest k candidates, each weighed by the probability of an
    allowed character after it; the rest out. Rows where no candidate can go on keep their
    logits (the mask at the rhyme slot still holds)."""
    k = min(k, logits.shape[1])
    top = torch.topk(logits, k, dim=1)  # values, indices (B, K)
    mass = peek(top.indices, nxt_allowed)  # (B, K)
    score = torch.log_softmax(top.values.float(), dim=1) + mass  # (B, K)
    out = torch.full_like(logits, float("-inf")).scatter_(1, top.indices, score.to(logits.dtype))
    ok = torch.isfinite(score).any(dim=1, keepdim=True)  # (B, 1)
    return out if bool(ok.all()) else torch.where(ok, out, logits)


_RHYMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # vocab -> {table: rhymes}


def vocab_rhymes(vocab: Vocab, book) -> VocabRhymes:
    """The vocabulary's characters by rhyme group and tone: read once per vocabulary and rhyme
    table in a process (30 ms for 2,500 characters: what an API caller generating song after
    song from one model would pay each time)."""
    tables = _RHYMES.setdefault(vocab, {})
    if book.table not in tables:
        tables[book.table] = VocabRhymes.of(list(vocab.tokens), book)
    return tables[book.table]


def check_groups(rhymes: VocabRhymes, layout: Layout, rhyme_with: str | None) -> None:
    """Refuse a layout the vocabulary cannot fill: no rhyming characters at all, or none in
    the --rhyme-with group."""
    if rhyme_with is not None and not rhymes.in_group(rhyme_with).any():
        raise DataError(f"--rhyme-with {rhyme_with}: the model knows no character in that group")
    if any(c != "X" for c in layout.scheme) and not np.any(rhymes.group_ids >= 0):
        raise DataError("the model knows no Chinese character with a clear rhyme (--rhyme)")
