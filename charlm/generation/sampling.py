"""Text generation: warm up on the prefix in one forward pass, then one cell step a character.

No printing here: `generate` yields text pieces and the caller decides where they go.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import DataError, UsageError
from charlm.generation import constraints
from charlm.generation.choice import LineChoice, follow
from charlm.generation.constraints import Draft
from charlm.generation.form.layout import is_named
from charlm.generation.novelty import TrainingIndex
from charlm.generation.request import DEFAULT_PREFIX
from charlm.models.ensemble import make_stepper
from charlm.scoring.mixture import Mixture
from charlm.system.runtime import make_generator

# Best of N lines with a form. On the Jay Chou defaults (benchmarks/form.py, 64 songs of
# 7,7,7,7/7,7,7,7 AABBCCDD): N = 1 puts the text at 1.22x the perplexity of unconstrained
# text, N = 2 at 0.82x for 1.9x its wall time, N = 4 at 0.55x for 3.2x.
LINE_CANDIDATES = 2
# A named form's tonal pattern makes nearly every slot look ahead (form/constraint.py), so a
# second candidate line doubles the costliest part of the step. On the Tang poems' model (600
# s), 128 poems of 七言绝句 in one candidate line (and TONE_K = 3) came out at 1.01x the
# perplexity of free text in 1.48x its time; best of 2 at 0.82x in 2.51x (benchmarks/form.py).
NAMED_FORM_CANDIDATES = 1
MAX_ROWS = 16_384  # samples x candidate lines in one batch
SEQ_CHUNK = 2048  # sequences a rule scores in one batch (Lookahead.sequences)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PREVIEW_PREFIXES = (DEFAULT_PREFIX, "不分开")  # sampled at each training evaluation


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top-k and/or the smallest top-p nucleus; the rest become -inf. (B, V) -> (B, V)."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches top_p; the first always stays.
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick_next(logits: torch.Tensor, cfg: SampleConfig, generator: torch.Generator) -> torch.Tensor:
    """(B, V) logits -> (B,) ids. Temperature 0 is greedy; sampling draws on the CPU generator."""
    logits = logits.float()
    # never write the unknown symbol, unless a rule left nothing else (a template's symbol
    # the model never saw, which the draft spells out)
    unk = logits[:, UNK_ID].clone()
    logits[:, UNK_ID] = float("-inf")
    dead = logits.amax(dim=1) == float("-inf")  # (B,)
    if dead.any():
        logits[dead, UNK_ID] = unk[dead]
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
    probs = torch.softmax(logits, dim=-1).cpu()  # (B, V)
    # Inverse-CDF draw: one uniform per row against the running sum. Same distribution as
    # torch.multinomial, several times faster on a large vocabulary.
    cdf = probs.double().cumsum(dim=-1)  # (B, V); double so the sum of 1e5 tiny terms holds
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u).clamp_max(probs.shape[1] - 1)  # (B, 1)
    # a zero-probability id can tie the cdf at a boundary: step forward to a real one
    idx = torch.where(probs.gather(1, idx) > 0, idx, probs.argmax(dim=-1, keepdim=True))
    return idx.squeeze(1).to(logits.device)


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
    rules = constraints.build(vocab, cfg, start, mixture, adapt, copy_index, prefix, choice.rows)
    cfg = constraints.fit_to_form(cfg, rules, prefix)  # a form decides the song's length
    keep = max([1] + [c.looks_back for c in rules])  # ids each row keeps for the rules
    draft = Draft.start(prefix, start, choice.rows, cfg.lines, keep)
    yield [prefix] * cfg.num_samples  # after the rules: a refused option writes nothing
    if cfg.length == 0 or draft.finished:
        return
    logits, state = model(torch.tensor([start] * choice.rows, device=device))  # (R, Tp, V)
    last = logits[:, -1]  # (R, V): the whole prefix in one pass
    stepper = make_stepper(model, DTYPES[cfg.precision])
    state = stepper.cast_states(stepper.split(state))
    look = Lookahead(stepper)
    for _ in range(cfg.length):
        draft.peek = lambda cands, allowed, state=state: look.mass(cands, allowed, state)
        draft.peek_rows = lambda rows, ids, state=state: look.rows(rows, ids, state)
        draft.score = lambda row, seqs, state=state: look.sequences(row, seqs, state)
        shipped = last if choice.k > 1 else None  # what a candidate line is scored by
        for rule in rules:
            last = rule(last, draft)  # (R, V) -> (R, V)
            if shipped is not None and getattr(rule, "ships", False):
                shipped = last.clone()  # later rules mask in place
        nxt = pick_next(last, cfg, g)  # (R,)
        pieces, index = choice.add(_log_softmax(shipped), nxt, draft.add(nxt.tolist(), vocab))
        yield pieces
        if draft.finished:
            return
        last, state = look.step(nxt, state)  # one cell step: (R,) -> (R, V)
        if index is not None:  # a line was chosen: every candidate goes on from it
            last, state = follow(index, last, state, [draft, *rules])


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


class Lookahead:
    """The network's distribution one step past each of K candidates, from the current state:
    what a rule that plans the next character (a rhyme, a line break) weighs candidates by.
    The count model is left out here: over B*K contexts it tripled the cost of a form
    (benchmarks/form.py) for a perplexity 2 % lower."""

    def __init__(self, stepper) -> None:
        self.stepper = stepper
        self._ahead: tuple | None = None  # the last mass(): (state, cands, logits, states)

    def step(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """stepper.step(ids (B,), state) -> (B, V) logits and the next states, read from the
        look ahead when it already took this step: when mass() ran from `state` and every
        row's id was one of its candidates (a tonal form looks ahead before most of its
        characters, and the step it then takes is one it has already computed)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] is state:
            _, cands, logits, states = ahead
            hit = cands == ids[:, None].to(cands.device)  # (B, K)
            if bool(hit.any(dim=1).all()):
                rows = torch.arange(len(ids), device=cands.device) * cands.shape[1]
                rows = rows + hit.int().argmax(dim=1)  # (B,) the row of each id's candidate
                return logits[rows], [tuple(t[rows] for t in s) for s in states]
        return self.stepper.step(ids, state)

    def mass(self, cands: torch.Tensor, allowed: torch.Tensor, state: list) -> torch.Tensor:
        """cands (B, K) ids, allowed (B, V) bool -> (B, K) log-probability that the character
        after each candidate is one its row allows. The allowed share of exp(logits) is one
        matrix product: no (B, K, V) log-softmax or masked copy (a tonal form asks this at
        most of its slots, where those were half its wall time)."""
        b, k = cands.shape
        wide = [tuple(t.repeat_interleave(k, dim=0) for t in s) for s in state]  # (B*K, H)
        flat, states = self.stepper.step(cands.reshape(-1), wide)  # (B*K, V)
        self._ahead = (state, cands, flat, states)  # the step after the draw, if a candidate
        # one fused softmax: a quarter of the time of exp(logits - max) / sum taken apart
        probs = torch.softmax(flat.float().view(b, k, -1), dim=2)  # (B, K, V)
        part = torch.bmm(probs, allowed.to(probs.dtype)[:, :, None].to(probs.device))  # (B, K, 1)
        # -inf where nothing allowed is left (or all of it under e^-87 of the likeliest)
        return torch.log(part.squeeze(2))

    def rows(self, rows: torch.Tensor, ids: torch.Tensor, state: list) -> torch.Tensor:
        """rows (P,) and ids (P,) -> (P, V) log-probs of the next character after writing
        ids[p] on row rows[p]: a look past only the candidates a rule needs."""
        at = rows.to(state[0][0].device)
        picked = [tuple(t[at] for t in s) for s in state]  # (P, H) each
        logits, _ = self.stepper.step(ids.to(at.device), picked)  # (P, V)
        return torch.log_softmax(logits.float(), dim=-1)

    def sequences(self, row: int, seqs: list[list[int]], state: list) -> torch.Tensor:
        """(W,) log-probs of each id sequence's second id onwards, from row `row`'s state with
        its first id written (the caller has the first one's probability). How a rule weighs
        whole words: a rhyme, and the line break after it. In chunks of SEQ_CHUNK rows."""
        out = []
        for at in range(0, len(seqs), SEQ_CHUNK):
            chunk = seqs[at : at + SEQ_CHUNK]
            width = max(len(q) for q in chunk)
            ids = torch.tensor([q + [-1] * (width - len(q)) for q in chunk])  # (W, L), -1 pad
            st = [tuple(t[row : row + 1].expand(len(chunk), -1) for t in s) for s in state]
            total = torch.zeros(len(chunk), dtype=torch.float64)
            for j in range(width - 1):
                logits, st = self.stepper.step(ids[:, j].clamp_min(0), st)  # (W, V)
                nxt = ids[:, j + 1]  # (W,)
                lp = torch.log_softmax(logits.float(), dim=-1).gather(1, nxt.clamp_min(0)[:, None])
                total += torch.where(nxt >= 0, lp.squeeze(1).double(), 0.0)
            out.append(total)
        return torch.cat(out)
