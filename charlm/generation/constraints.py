"""The rewrites of each step's next-character distribution, applied in order.

Each constraint is an object with one method: `(B, V) log-probs or logits, Draft -> (B, V)`.
`Draft` is what they read: each sample's recent ids, lines written, current line length.
A new rule of lyric form (line lengths, rhyme slots) is one more class here and one more
entry in `build`; `sampling.generate` does not change.

    MixWithCounts   the network mixed with the Kneser-Ney count model (what ships)
    SongCache       each sample's own cache of what it has written, and the line guard
    RepeatGuard     no character 4 times in a row, no 2-4 character phrase 3 times, no longer
                    phrase twice in a row within a line; WordRepeatGuard the same in words for
                    English (generation/repeats.py)
    CopyGuard       --max-copy: no run of more than N training characters in a row
    FormConstraint  --form / --rhyme / --template: line lengths, rhyme slots, tonal patterns,
                    symbols and repeats (generation/form/constraint.py)
    RhymeLines      --rhyme alone: lines of the model's own length, ending on rhyming words
                    (English) or characters (generation/form/free_lines.py)
    AcrosticHeads   --acrostic: line k starts with the k-th head character
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import UsageError
from charlm.generation.form.constraint import FormConstraint, check_groups, vocab_rhymes
from charlm.generation.form.free_lines import RUN_ON, RhymeLines, Shape
from charlm.generation.form.layout import layout_for
from charlm.generation.form.lexicon import language_of, lexicon_for
from charlm.generation.form.rhyme import RhymeBook
from charlm.generation.novelty import TrainingIndex
from charlm.generation.repeats import repeat_guard, word_ids
from charlm.scoring.adapt import Adaptation, LineGuard, StreamCache, adapt_logprobs
from charlm.scoring.mixture import Mixture


@dataclass
class Draft:
    """The samples written so far: each one's last ids (as far back as any constraint looks),
    its line count and current line length, and whether it is done (--lines reached)."""

    ROW_STATE = ("history", "line", "lines", "line_len", "done")  # see choice.follow

    history: list[list[int]]  # per sample, the last `keep` ids (prefix included)
    line: list[list[int]]  # per sample, the ids of its current line (prefix included)
    lines: list[int]  # line breaks written, prefix included
    line_len: list[int]  # characters in the current (last) line
    max_lines: int  # 0 = no limit
    keep: int = 1
    steps: int = 0  # characters generated after the prefix
    done: list[bool] = field(default_factory=list)
    # (B, K) candidate ids -> (B, K, V) log-probs of the character after each: a look one
    # step ahead from the current state, set by `generate` before each step's rules
    peek: Callable[[torch.Tensor], torch.Tensor] | None = None
    # (P,) rows, (P,) ids -> (P, V) log-probs after writing each id on its row
    peek_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    # (row, W id sequences) -> (W,) log-probs of each sequence after its first id, from that
    # row's state: how a rule weighs whole words (sampling.Lookahead.sequences)
    score: Callable[[int, list[list[int]]], torch.Tensor] | None = None
    spell: str | None = None  # how to write an <unk> a rule forced at this step (a symbol)

    @classmethod
    def start(cls, prefix: str, start: list[int], n: int, max_lines: int, keep: int) -> Draft:
        lines = [prefix.count("\n")] * n
        tail = len(prefix.rsplit("\n", 1)[-1])  # the prefix's last line
        return cls(
            history=[list(start[-keep:]) for _ in range(n)],
            line=[list(start[len(start) - tail :]) if tail else [] for _ in range(n)],
            lines=lines,
            line_len=[tail] * n,
            max_lines=max_lines,
            keep=keep,
            done=[max_lines > 0 and c >= max_lines for c in lines],
        )

    @property
    def finished(self) -> bool:
        return all(self.done)

    def last_ids(self) -> list[int]:
        return [tail[-1] for tail in self.history]

    def add(self, ids: list[int], vocab: Vocab) -> list[str]:
        """Append one id per sample; the text pieces to write ("" for a finished sample)."""
        self.steps += 1
        out = []
        for b, i in enumerate(ids):
            tail = self.history[b]
            tail.append(i)
            del tail[: -self.keep]
            if vocab.tokens[i] == "\n":
                self.line[b] = []
            else:
                self.line[b].append(i)
            if self.done[b]:
                out.append("")
                continue
            ch = self.spell if i == UNK_ID and self.spell else vocab.tokens[i]
            out.append(ch)
            self.line_len[b] = 0 if ch == "\n" else self.line_len[b] + 1
            if ch == "\n":
                self.lines[b] += 1
                self.done[b] = self.max_lines > 0 and self.lines[b] >= self.max_lines
        self.spell = None
        return out


class Constraint(Protocol):
    looks_back: int  # how many of each sample's last ids it reads (Draft keeps the most asked)

    def __call__(self, logits: torch.Tensor, draft: Draft) -> torch.Tensor:
        """(B, V) -> (B, V)."""
        ...


class MixWithCounts:
    """Network logits -> log-probs of the network mixed with the count model."""

    ships = True  # part of the distribution that ships (what best-of-N lines are scored by)

    def __init__(self, mixture: Mixture) -> None:
        self.mixture, self.looks_back = mixture, mixture.kn.order

    def __call__(self, logits: torch.Tensor, draft: Draft) -> torch.Tensor:
        return self.mixture.next_logprobs(logits, draft.history)  # (B, V) log-probs


class SongCache:
    """Each sample's song cache (what it has written, as counts by context) mixed in, and the
    line guard, which stops a line from repeating forever. Fed with the prefix, then with each
    new character as the draft grows."""

    looks_back = 1
    ships = True
    ROW_STATE = ("caches",)

    def __init__(self, adaptation: Adaptation | None, n: int, vocab: Vocab, start: list[int]):
        if adaptation is None:
            raise ValueError("adapt needs a checkpoint with a fitted adaptation")
        self.adaptation = adaptation
        self.caches = [StreamCache(adaptation.order, len(vocab), adaptation.reset_ids)
                       for _ in range(n)]  # fmt: skip
        newline = vocab.id_of("\n")
        self.guard = LineGuard(n, newline) if newline is not None else None
        self.seen = 0  # draft steps already fed
        for i in start:
            self._add([i] * n)

    def __call__(self, logp: torch.Tensor, draft: Draft) -> torch.Tensor:
        if draft.steps > self.seen:  # the character chosen at the last step
            self._add(draft.last_ids())
            self.seen = draft.steps
        p = adapt_logprobs(logp, self.caches, self.adaptation)
        return self.guard.mask(p) if self.guard else p

    def _add(self, ids: list[int]) -> None:
        for b, i in enumerate(ids):
            self.caches[b].add(i)
            if self.guard:
                self.guard.add(b, i)

    def follow_rows(self, rows: list[int]) -> None:
        if self.guard:
            self.guard.current = [list(self.guard.current[r]) for r in rows]
            self.guard.previous = [list(self.guard.previous[r]) for r in rows]


class CopyGuard:
    """No character that would copy more than `n` training characters in a row: it is
    removed before the draw. A row that would be left with nothing writable (the unknown
    symbol never counts: it is never written) stays as it was.

    With `word_ids` (an English model's letters and digits), a word once begun is let finish
    and the bar falls on the next word's first character: barred mid-word, a copy of "land of
    Egypt" came out as "land of Egy," (a copy may then run past n by the rest of one word)."""

    def __init__(self, index: TrainingIndex, n: int, word_ids: set[int] | None = None) -> None:
        self.index, self.n, self.looks_back = index, n, n
        self.word_ids = word_ids or set()

    def __call__(self, logits: torch.Tensor, draft: Draft) -> torch.Tensor:
        for b, tail in enumerate(draft.history):
            if tail and tail[-1] in self.word_ids:
                continue  # inside a word (or at its end): the bar waits for the next one
            bad = torch.from_numpy(self.index.extensions(tail, self.n)).to(logits.device)  # (V,)
            left = torch.isfinite(logits[b]) & ~bad
            left[UNK_ID] = False
            if bad.any() and left.any():
                logits[b] = logits[b].masked_fill(bad, float("-inf"))
        return logits


class AcrosticHeads:
    """A sample at the start of line k may only write heads[k], and the line may not end
    right after it (a line of its head alone is no line)."""

    looks_back = 1

    def __init__(self, heads: list[int], newline: int | None) -> None:
        self.heads, self.newline = heads, newline

    def __call__(self, logits: torch.Tensor, draft: Draft) -> torch.Tensor:
        for b, (k, n) in enumerate(zip(draft.lines, draft.line_len, strict=True)):
            if k >= len(self.heads):
                continue
            if n == 0:
                row = torch.full_like(logits[b], float("-inf"))
                row[self.heads[k]] = 0.0
                logits[b] = row
            elif n == 1 and self.newline is not None:
                logits[b, self.newline] = float("-inf")
        return logits


def build(
    vocab: Vocab,
    cfg: SampleConfig,
    start: list[int],
    mixture: Mixture | None = None,
    adapt: bool = False,
    copy_index: TrainingIndex | None = None,
    prefix: str = "",
    rows: int | None = None,
) -> list[Constraint]:
    """The constraints a generation applies, in order: what ships first (the mixture, the
    song cache), then the rules that forbid (copies, the form, acrostic heads). `rows`: the
    batch's rows (cfg.num_samples, times the candidate lines of each)."""
    rows = rows or cfg.num_samples
    language = language_of(vocab)
    out: list[Constraint] = []
    if mixture:
        out.append(MixWithCounts(mixture))
        if adapt:
            out.append(SongCache(mixture.adaptation, rows, vocab, start))
    if cfg.loop_guard:
        out.append(repeat_guard(vocab, language))
    if copy_index is not None and cfg.max_copy > 0:
        words = word_ids(vocab) if language == "en" else None
        out.append(CopyGuard(copy_index, cfg.max_copy, words))
    shape = free_shape(vocab, cfg)
    if shape is not None:
        book = RhymeBook(cfg.rhyme_table)
        counts = mixture.kn if mixture else None  # which words the corpus had
        out.append(RhymeLines(shape, vocab, lexicon_for(vocab, book, counts), rows, prefix,
                              cfg.rhyme_with or None, cfg.lookahead))  # fmt: skip
    elif cfg.has_form:
        out.append(form_constraint(vocab, cfg, prefix, rows))
    if cfg.acrostic:
        heads = [int(i) for i in vocab.encode(cfg.acrostic)]
        out.append(AcrosticHeads(heads, vocab.id_of("\n")))
    return out


def writes_free_lines(vocab: Vocab, cfg: SampleConfig) -> bool:
    """Whether RhymeLines writes the song: --rhyme alone, or a template on an English model
    (its lines as long as the template's, its rhymes by pronunciation)."""
    return cfg.free_lines or bool(cfg.template and language_of(vocab) == "en")


def free_shape(vocab: Vocab, cfg: SampleConfig) -> Shape | None:
    """The lines RhymeLines writes (see writes_free_lines), or None."""
    if not writes_free_lines(vocab, cfg):
        return None
    if cfg.free_lines:
        return Shape.of_scheme(cfg.rhyme)
    return Shape.of_template(cfg.template, RhymeBook(cfg.rhyme_table), cfg.repeat_chorus)


def form_constraint(
    vocab: Vocab, cfg: SampleConfig, prefix: str, rows: int | None = None
) -> FormConstraint:
    """The layout of cfg (--form with --rhyme, or --template) as a constraint on `vocab`."""
    book = RhymeBook(cfg.rhyme_table)
    layout = layout_for(cfg.form, cfg.rhyme, cfg.template, book, cfg.repeat_chorus)
    rhymes = vocab_rhymes(vocab, book)
    group = None
    if cfg.rhyme_with:
        group = book.group_named(cfg.rhyme_with)
        if group is None:
            raise UsageError(
                f"--rhyme-with {cfg.rhyme_with}: not a {book.table} group "
                f"({', '.join(book.groups)}) nor a character with one clear rhyme"
            )
    check_groups(rhymes, layout, group)
    return FormConstraint(layout, vocab, rhymes, rows or cfg.num_samples, prefix, group,
                          lookahead=cfg.lookahead, free_heads=bool(cfg.acrostic))  # fmt: skip


def fit_to_form(cfg: SampleConfig, rules: list[Constraint], prefix: str) -> SampleConfig:
    """With a form, the song's length and line count are the form's; with --rhyme alone, its
    line count (and room for each line to reach MAX_LINE and finish its word)."""
    free = next((r for r in rules if isinstance(r, RhymeLines)), None)
    if free is not None:
        room = sum(free.shape.cap(i) + RUN_ON + 32 for i in range(len(free.lines))) + free.breaks
        return replace(cfg, length=room, lines=prefix.count("\n") + free.breaks)
    form = next((r for r in rules if isinstance(r, FormConstraint)), None)
    if form is None:
        return cfg
    return replace(cfg, length=len(form.plan) - len(prefix), lines=form.layout.breaks())
