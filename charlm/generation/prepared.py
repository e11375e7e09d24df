"""A generation request resolved against a loaded model: the policy every front shares.

`prepare(lm, request)` decides what the request left open (the seed, the prefix, the copy
guard, adaptation) and checks it; `Generation.stream()` writes; `Generation.records(texts)`
says what came out (the JSON lines of `generate --json`, what the page shows). The CLI, the
Python API and the page call these and nothing else, so they write the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from charlm.config import SampleConfig
from charlm.errors import CharlmError
from charlm.generation.request import AUTO_MAX_COPY, AUTO_MAX_COPY_CHARS, GenerationRequest


@dataclass
class Generation:
    """What `prepare` decided: the prefix to start from, the sampling configuration (seed and
    copy guard resolved), whether the song cache adapts, the training text's index (the copy
    guard's, the novelty report's) and the notes a user should hear before the text."""

    lm: Any  # the LanguageModel
    request: GenerationRequest
    prefix: str
    cfg: SampleConfig
    adapt: bool
    index: Any  # TrainingIndex | None
    seed_given: bool
    notes: list[str] = field(default_factory=list)
    _index_tried: bool = False

    def stream(self) -> Iterator[list[str]]:
        """One text piece per sample a step: first the prefix, then a character each. The
        options the model must check (a form it cannot write) fail before the first piece."""
        return self.lm.stream(self.prefix, self.cfg, self.adapt, self.index)

    def short_samples(self, texts: list[str]) -> int:
        """Samples that reached --length before --lines lines (a form decides its own)."""
        cfg = self.cfg
        if not cfg.lines or cfg.has_form or cfg.free_lines:
            return 0
        return sum(t.count("\n") < cfg.lines for t in texts)

    def novelty(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per sample, with --report-novelty: shares of copied n-grams and the longest copy."""
        if not self.request.report_novelty or self.index is None:
            return []
        return [self.index.report(self.lm.vocab.encode(t)) for t in texts]

    def records(self, texts: list[str]) -> list[dict[str, Any]]:
        """One record a sample: the text, prefix, seed, sample and checkpoint, with novelty
        (--report-novelty) and the form (a form, a template or a rhyme scheme) as asked."""
        reports = self.novelty(texts)
        out = []
        for b, text in enumerate(texts):
            rec: dict[str, Any] = {"text": text, "prefix": self.prefix, "seed": self.cfg.seed,
                                   "sample": b, "checkpoint": str(self.lm.path)}  # fmt: skip
            if reports:
                rec["novelty"] = reports[b]
            if self.cfg.has_form or self.cfg.free_lines:
                rec["form"] = form_report(self.lm.vocab, self.cfg, text)
            out.append(rec)
        return out

    def annotations(self, texts: list[str]) -> list[dict[str, Any]]:
        """What the page shows beside each sample: each line's rhyme group and scheme letter
        (as `charlm scan` reads them) and the spans copied from the training text (None when
        that text is not at hand, as for a shipped base)."""
        from charlm.generation.form.rhyme import RhymeBook
        from charlm.generation.form.scan import scan

        book, index = RhymeBook(self.cfg.rhyme_table), self.copy_index()
        out = []
        for text in texts:
            read = scan(text, book)
            spans = None
            if index is not None:
                spans = [{"start": a, "end": b, "length": b - a}
                         for a, b in index.copied_spans(self.lm.vocab.encode(text))]  # fmt: skip
            out.append({
                "line_rhymes": [{"text": ln["text"], "rhyme": ln["rhyme"], "letter": ln["letter"]}
                                for ln in read["lines"]],
                "scheme": read["scheme"],
                "copied_spans": spans,
            })  # fmt: skip
        return out

    def copy_index(self) -> Any:
        """The training text's index: the copy guard's, else read now (at most
        AUTO_MAX_COPY_CHARS); None when the text cannot be read as it was."""
        if self.index is None and not self._index_tried:
            self._index_tried = True
            with contextlib.suppress(CharlmError):  # no text at hand: no spans shown
                self.index = self.lm.training_index(AUTO_MAX_COPY_CHARS)
        return self.index


def prepare(lm: Any, request: GenerationRequest) -> Generation:
    """Resolve `request` against `lm`, in the order a user hears about problems: adaptation
    asked of a model without it, the prefix (unknown characters, an acrostic's), the training
    text the copy guard or novelty report needs; then the copy guard's default."""
    from charlm.system.runtime import new_seed  # torch: not for `--help`

    seed_given = request.seed is not None
    cfg = request.sample_config(request.seed if seed_given else new_seed(),
                                request.max_copy or 0)  # fmt: skip
    adapt = lm.check_adapt(request.adapt)
    notes = list(lm.notes)
    prefix = lm.prefix_for(request.prefix, cfg.acrostic, request.skip_unknown, notes)
    index = lm.training_index() if cfg.max_copy or request.report_novelty else None
    if request.max_copy is None:
        index, cfg = _default_copy_guard(lm, cfg, notes, index)
    return Generation(lm, request, prefix, cfg, adapt, index, seed_given, notes)


def _default_copy_guard(lm: Any, cfg: SampleConfig, notes: list[str], index: Any):
    """--max-copy not given: the guard at AUTO_MAX_COPY when the training text can be read as
    it was and holds at most AUTO_MAX_COPY_CHARS (`index`, if already read), else none; a
    text that cannot be read gets a note saying why (it is not needed to generate; a shipped
    base, whose text is not installed, goes without a word)."""
    if index is None:
        try:
            index = lm.training_index(AUTO_MAX_COPY_CHARS)
        except CharlmError as e:
            if not (lm.payload.get("corpus") or {}).get("built_by"):
                notes.append(f"no copy guard ({str(e).split(';')[0]}); --max-copy 0: no note")
            return None, cfg
        if index is None:  # a big text: the guard is asked for, not given by default
            return None, cfg
    return index, replace(cfg, max_copy=AUTO_MAX_COPY)


def form_report(vocab: Any, cfg: SampleConfig, text: str) -> dict[str, Any]:
    """What --json adds with a form: the layout asked for and each line's rhyme group (as
    `scan` reads the text)."""
    from charlm.generation.constraints import free_shape
    from charlm.generation.form.layout import layout_for
    from charlm.generation.form.rhyme import RhymeBook
    from charlm.generation.form.scan import scan

    book = RhymeBook(cfg.rhyme_table)
    read = scan(text, book)
    shape = free_shape(vocab, cfg)
    if shape is not None:  # --rhyme alone, an English template: lines of free length
        return {
            "name": None,
            "lines": [ln["length"] for ln in read["lines"]],
            "stanzas": None,
            "rhyme": "".join(c + ("/" if end else "") for c, end in shape.lines),
            "template_lines": list(shape.targets) or None,
            "rhyme_table": read["rhyme_table"],
            "line_rhymes": [ln["rhyme"] for ln in read["lines"]],
        }
    layout = layout_for(cfg.form, cfg.rhyme, cfg.template, book, cfg.repeat_chorus)
    return {
        "name": layout.name or None,
        "lines": layout.lengths,
        "stanzas": layout.spec(),
        "rhyme": layout.scheme,
        "rhyme_table": book.table,
        "line_rhymes": [ln["rhyme"] for ln in read["lines"]],
    }
