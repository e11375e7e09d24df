"""The processors of lyric form, copies and loops, and `build`, which puts a generation's
pipeline together (pipeline.Pipeline: what ships, the rules, the sampling filters).

Each is a processor.Processor: `(B, V) log-probs or logits, StepContext -> (B, V)`, reading
each row's recent ids, lines written, current line length and the look ahead. A new rule of
lyric form is one more Processor and one more entry in `build`; `sampling.generate` does not
change. A new sampling control is one more processor in filters.py.

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

from dataclasses import replace

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import UsageError
from charlm.generation.filters import sampling_filters
from charlm.generation.form.constraint import FormConstraint, check_groups, vocab_rhymes
from charlm.generation.form.free_lines import RUN_ON, RhymeLines, Shape
from charlm.generation.form.layout import layout_for
from charlm.generation.form.lexicon import language_of, lexicon_for
from charlm.generation.form.rhyme import RhymeBook
from charlm.generation.novelty import TrainingIndex
from charlm.generation.pipeline import Pipeline
from charlm.generation.processor import Processor, StepContext, take_rows
from charlm.generation.repeats import repeat_guard, word_ids
from charlm.scoring.adapt import Adaptation, LineGuard, StreamCache, adapt_logprobs
from charlm.scoring.mixture import Mixture


class MixWithCounts(Processor):
    """Network logits -> log-probs of the network mixed with the count model."""

    def __init__(self, mixture: Mixture) -> None:
        self.mixture, self.looks_back = mixture, mixture.kn.order

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return self.mixture.next_logprobs(logits, ctx.history)  # (B, V) log-probs


class SongCache(Processor):
    """Each sample's song cache (what it has written, as counts by context) mixed in, and the
    line guard, which stops a line from repeating forever. Fed with the prefix, then with each
    new character as the draft grows."""

    looks_back = 1

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

    def __call__(self, logp: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.steps > self.seen:  # the character chosen at the last step
            self._add(ctx.last_ids())
            self.seen = ctx.steps
        p = adapt_logprobs(logp, self.caches, self.adaptation)
        return self.guard.mask(p) if self.guard else p

    def _add(self, ids: list[int]) -> None:
        for b, i in enumerate(ids):
            self.caches[b].add(i)
            if self.guard:
                self.guard.add(b, i)

    def reorder(self, rows: list[int]) -> None:
        take_rows(self, ("caches",), rows)
        if self.guard:
            self.guard.current = [list(self.guard.current[r]) for r in rows]
            self.guard.previous = [list(self.guard.previous[r]) for r in rows]


class CopyGuard(Processor):
    """No character that would copy more than `n` training characters in a row: it is
    removed before the draw. A row that would be left with nothing writable (the unknown
    symbol never counts: it is never written) stays as it was.

    With `word_ids` (an English model's letters and digits), a word once begun is let finish
    and the bar falls on the next word's first character: barred mid-word, a copy of "land of
    Egypt" came out as "land of Egy," (a copy may then run past n by the rest of one word)."""

    def __init__(self, index: TrainingIndex, n: int, word_ids: set[int] | None = None) -> None:
        self.index, self.n, self.looks_back = index, n, n
        self.word_ids = word_ids or set()

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for b, tail in enumerate(ctx.history):
            if tail and tail[-1] in self.word_ids:
                continue  # inside a word (or at its end): the bar waits for the next one
            bad = torch.from_numpy(self.index.extensions(tail, self.n)).to(logits.device)  # (V,)
            left = torch.isfinite(logits[b]) & ~bad
            left[UNK_ID] = False
            if bad.any() and left.any():
                logits[b] = logits[b].masked_fill(bad, float("-inf"))
        return logits


class AcrosticHeads(Processor):
    """A sample at the start of line k may only write heads[k], and the line may not end
    right after it (a line of its head alone is no line)."""

    looks_back = 1

    def __init__(self, heads: list[int], newline: int | None) -> None:
        self.heads, self.newline = heads, newline

    def __call__(self, logits: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        for b, (k, n) in enumerate(zip(ctx.lines, ctx.line_len, strict=True)):
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
) -> Pipeline:
    """The processors a generation applies, in order: what ships first (the mixture, the
    song cache), then the rules that forbid (loops, copies, the form, acrostic heads), then
    the sampling filters. `rows`: the batch's rows (cfg.num_samples, times the candidate
    lines of each)."""
    rows = rows or cfg.num_samples
    language = language_of(vocab)
    shipped: list[Processor] = []
    if mixture:
        shipped.append(MixWithCounts(mixture))
        if adapt:
            shipped.append(SongCache(mixture.adaptation, rows, vocab, start))
    out: list[Processor] = []
    if cfg.loop_guard:
        out.append(repeat_guard(vocab, language))
    if copy_index is not None and cfg.max_copy > 0:
        words = word_ids(vocab) if language == "en" else None
        out.append(CopyGuard(copy_index, cfg.max_copy, words))
    shape = free_shape(vocab, cfg)
    if shape is not None and cfg.acrostic and len(cfg.acrostic) > len(shape.lines):
        raise UsageError(f"--acrostic {cfg.acrostic} has {len(cfg.acrostic)} heads and the "
                         f"scheme {len(shape.lines)} lines; give as many heads as lines, or "
                         "fewer")  # fmt: skip
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
    return Pipeline(shipped, out, sampling_filters(cfg))


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
    if cfg.acrostic:
        check_heads(cfg.acrostic, layout)
    return FormConstraint(layout, vocab, rhymes, rows or cfg.num_samples, prefix, group,
                          lookahead=cfg.lookahead, free_heads=bool(cfg.acrostic))  # fmt: skip


def check_heads(heads: str, layout) -> None:
    """An acrostic on a form: a line a head, each line long enough to go on after its head
    and starting with a character to write (not a template's symbol), as --lines refuses
    fewer lines than heads."""
    n = len(layout.lines)
    if len(heads) > n:
        raise UsageError(f"--acrostic {heads} has {len(heads)} heads and the form {n} lines; "
                         f"give at most {n} heads, or a form of more lines")  # fmt: skip
    bad = [k + 1 for k, line in enumerate(layout.lines[: len(heads)])
           if len(line.slots) < 2 or line.slots[0] is not None]  # fmt: skip
    if bad:
        raise UsageError(
            f"--acrostic: line(s) {', '.join(map(str, bad))} of the form cannot start with a "
            "head (a line of one character, or one that starts with a symbol); choose "
            "another form"
        )


def fit_to_form(cfg: SampleConfig, pipe: Pipeline, prefix: str) -> SampleConfig:
    """With a form, the song's length and line count are the form's; with --rhyme alone, its
    line count (and room for each line to reach MAX_LINE and finish its word)."""
    free = pipe.of_kind(RhymeLines)
    if free is not None:
        room = sum(free.shape.cap(i) + RUN_ON + 32 for i in range(len(free.lines))) + free.breaks
        return replace(cfg, length=room, lines=prefix.count("\n") + free.breaks)
    form = pipe.of_kind(FormConstraint)
    if form is None:
        return cfg
    return replace(cfg, length=len(form.plan) - len(prefix), lines=form.layout.breaks())
