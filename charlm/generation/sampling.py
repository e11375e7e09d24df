"""Text generation: warm up on the prefix in one forward pass, then one cell step a character.

No printing here: `generate` yields text pieces and the caller decides where they go.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import Vocab
from charlm.errors import DataError, UsageError
from charlm.generation import constraints
from charlm.generation.choice import LineChoice, follow
from charlm.generation.filters import TopK, TopP, draw, sampling_filters
from charlm.generation.form.layout import is_named
from charlm.generation.lookahead import Lookahead
from charlm.generation.novelty import TrainingIndex
from charlm.generation.processor import StepContext
from charlm.generation.request import DEFAULT_PREFIX
from charlm.models.ensemble import make_stepper
from charlm.scoring.mixture import Mixture
from charlm.system.runtime import make_generator

# Best of N lines with a form: 2 buys most of the fluency for about twice the time
# (benchmarks/form.py; figures in docs/lyric-form.md)
LINE_CANDIDATES = 2
# A named form's tones make nearly every slot look ahead (form/constraint.py): a second line
# would double the costliest part of each step for less than it buys there
NAMED_FORM_CANDIDATES = 1
MAX_ROWS = 16_384  # samples x candidate lines in one batch
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PREVIEW_PREFIXES = (DEFAULT_PREFIX, "不分开")  # sampled at each training evaluation


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top-k and/or the smallest top-p nucleus; the rest become -inf. (B, V) -> (B, V)."""
    if top_k:
        logits = TopK(top_k)(logits)
    return TopP(top_p)(logits) if top_p < 1.0 else logits


def pick_next(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator) -> torch.Tensor:
    """(B, V) logits -> (B,) ids through the sampling filters and the draw (what every step
    of `generate` ends with)."""
    for p in sampling_filters(cfg):
        logits = p(logits)
    return draw(logits, cfg.temperature == 0, generator)


def start_ids(vocab: Vocab, prefix: str) -> list[int]:
    """Ids to warm up on. An empty prefix starts as if after a line break (the start of a
    lyric line), or after the most frequent character when the corpus has no line breaks."""
    if prefix:
        return [int(i) for i in vocab.encode(prefix)]
    newline = vocab.id_of("\n")
    return [newline] if newline is not None else [1]


def check_prefix(vocab: Vocab, prefix: str, skip_unknown: bool) -> str:
    """The prefix to use; unknown characters are an error, or dropped with skip_unknown."""
    unknown = vocab.unknown_chars(prefix)
    if not unknown:
        return prefix
    if skip_unknown:
        return "".join(c for c in prefix if c in vocab)
    shown = " ".join(repr(c) for c in unknown[:20])
    raise DataError(
        f"prefix has {len(unknown)} character(s) the model never saw: {shown}; "
        "change --prefix or pass --skip-unknown to drop them"
    )


@torch.inference_mode()
def generate(
    model: torch.nn.Module,
    vocab: Vocab,
    prefix: str,
    cfg: SampleConfig,
    device: torch.device | str = "cpu",
    mixture: Mixture | None = None,
    adapt: bool = False,
    copy_index: TrainingIndex | None = None,
) -> Iterator[list[str]]:
    """Yield, per step, one text piece per sample: first the prefix, then one character each.

    Samples that reached `cfg.lines` lines yield "" from then on; the generator stops after
    `cfg.length` new characters or when every sample is done. `prefix` must already be in the
    vocabulary (see check_prefix). Each step's distribution goes through the constraints
    (constraints.build: the mixture with the count model, the song cache with `adapt`, the
    loop guard, the copy guard with `copy_index` and cfg.max_copy, the form, acrostic heads)
    before the draw; with a form, each sample draws its lines as candidates (choice.py).
    """
    model.eval()
    g = make_generator(cfg.seed)
    choice = LineChoice(cfg.num_samples, line_candidates(cfg, vocab))
    start = start_ids(vocab, prefix)  # each candidate line is a row of the batch (R rows)
    pipe = constraints.build(vocab, cfg, start, mixture, adapt, copy_index, prefix, choice.rows)
    cfg = constraints.fit_to_form(cfg, pipe, prefix)  # a form decides the song's length
    ctx = StepContext.start(prefix, start, choice.rows, cfg.lines, pipe.looks_back)
    yield [prefix] * cfg.num_samples  # after the processors: a refused option writes nothing
    if cfg.length == 0 or ctx.finished:
        return
    stepper = make_stepper(model, DTYPES[cfg.precision])
    last, state = stepper.prime(torch.tensor([start] * choice.rows, device=device))  # (R, V)
    look = Lookahead(stepper)
    for _ in range(cfg.length):
        ctx.ahead = look.at(state)  # what the form's rules look one step ahead through
        scores, shipped = pipe(last, ctx, keep_shipped=choice.k > 1)  # (R, V) each
        nxt = draw(scores, cfg.temperature == 0, g)  # (R,)
        pieces, index = choice.add(_log_softmax(shipped), nxt, ctx.add(nxt.tolist(), vocab))
        yield pieces
        if ctx.finished:
            return
        last, state = look.step(nxt, state)  # one cell step: (R,) -> (R, V)
        if index is not None:  # a line was chosen: every candidate goes on from it
            last, state = follow(index, last, state, [ctx, pipe])


def line_candidates(cfg: SampleConfig, vocab: Vocab | None = None) -> int:
    """Candidate lines a sample draws (best of N): cfg.line_candidates, else LINE_CANDIDATES
    with a form (whose rows advance in step; NAMED_FORM_CANDIDATES with a named, tonal one)
    and 1 without (nor with a template on an English model, whose lines end where the model
    makes them)."""
    if not cfg.has_form or (vocab is not None and constraints.writes_free_lines(vocab, cfg)):
        return 1
    k = cfg.line_candidates or (NAMED_FORM_CANDIDATES if is_named(cfg.form) else LINE_CANDIDATES)
    if k * cfg.num_samples > MAX_ROWS:
        raise UsageError(
            f"--num-samples {cfg.num_samples} x {k} candidate lines is over {MAX_ROWS} rows; "
            "ask for fewer samples"
        )
    return k


def _log_softmax(logits: torch.Tensor | None) -> torch.Tensor | None:
    return None if logits is None else torch.log_softmax(logits.float(), dim=-1)
