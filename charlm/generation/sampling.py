"""Text generation: warm up on the prefix in one forward pass, then one cell step a character.

No printing here: `generate` yields text pieces and the caller decides where they go.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import DataError
from charlm.generation.novelty import TrainingIndex
from charlm.models.ensemble import make_stepper
from charlm.scoring.adapt import Adaptation, LineGuard, StreamCache, adapt_logprobs
from charlm.scoring.mixture import Mixture
from charlm.system.runtime import make_generator

DEFAULT_PREFIX = "分开"  # the textbook's prefix: generate's default
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
    logits[:, UNK_ID] = float("-inf")  # never write the unknown symbol
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
    vocabulary (see check_prefix). With a mixture, each step samples from the network's and
    the count model's mixed distribution; with `adapt` too (and a fitted adaptation), that is
    mixed with each sample's own song cache, and LineGuard stops a line repeating forever.
    With `copy_index` and cfg.max_copy, a character that would copy more than max_copy
    training characters in a row is removed from the distribution before the draw.
    """
    model.eval()
    g = make_generator(cfg.seed)
    n = cfg.num_samples
    heads = [int(i) for i in vocab.encode(cfg.acrostic)]  # line k starts with heads[k]
    lines = [prefix.count("\n")] * n
    done = [cfg.lines > 0 and c >= cfg.lines for c in lines]
    yield [prefix] * n
    if cfg.length == 0 or all(done):
        return
    start = start_ids(vocab, prefix)
    guard_copies = copy_index is not None and cfg.max_copy > 0
    # each sample's last ids, as far back as the count model or the copy guard looks
    keep = max(mixture.kn.order if mixture else 0, cfg.max_copy if guard_copies else 0, 1)
    history = [list(start[-keep:]) for _ in range(n)]
    song = _SongState(mixture.adaptation, n, vocab, start) if mixture and adapt else None
    newline = vocab.id_of("\n")
    line_len = [len(prefix.rsplit("\n", 1)[-1])] * n  # characters in each sample's last line
    x = torch.tensor([start] * n, device=device)  # (B, Tp)
    logits, state = model(x)  # the whole prefix in one pass
    last = logits[:, -1]  # (B, V)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
    stepper = make_stepper(model, dtype)
    state = stepper.cast_states(stepper.split(state))
    for _ in range(cfg.length):
        if mixture:
            last = mixture.next_logprobs(last, history)  # (B, V) log-probs act as logits
        if song:
            last = song.logprobs(last)  # (B, V)
        if guard_copies:
            last = _forbid_copies(last, copy_index, history, cfg.max_copy)
        if heads:
            last = _force_heads(last, heads, lines, line_len, newline)
        nxt = pick_next(last, cfg, g)  # (B,)
        for tail, i in zip(history, nxt.tolist(), strict=True):
            tail.append(i)
            del tail[:-keep]
        if song:
            song.add(nxt.tolist())
        chars = [vocab.tokens[i] for i in nxt.tolist()]
        out = []
        for b, ch in enumerate(chars):
            if done[b]:
                out.append("")
                continue
            out.append(ch)
            line_len[b] = 0 if ch == "\n" else line_len[b] + 1
            if ch == "\n":
                lines[b] += 1
                done[b] = cfg.lines > 0 and lines[b] >= cfg.lines
        yield out
        if all(done):
            return
        last, state = stepper.step(nxt, state)  # one cell step: (B,) -> (B, V)


def _forbid_copies(
    logits: torch.Tensor, index: TrainingIndex, history: list[list[int]], n: int
) -> torch.Tensor:
    """(B, V) -> (B, V) without the characters that would extend a copied span past n (the
    draw is then from what is left, renormalised; a row left with nothing stays as it was)."""
    for b, tail in enumerate(history):
        bad = torch.from_numpy(index.extensions(tail, n)).to(logits.device)  # (V,)
        if bad.any() and not bad.all():
            logits[b] = logits[b].masked_fill(bad, float("-inf"))
    return logits


def _force_heads(
    logits: torch.Tensor,
    heads: list[int],
    lines: list[int],
    line_len: list[int],
    newline: int | None,
) -> torch.Tensor:
    """(B, V) -> (B, V): a sample at the start of line k may only write heads[k], and the line
    may not end right after it (a line of its head alone is no line)."""
    for b, (k, n) in enumerate(zip(lines, line_len, strict=True)):
        if k >= len(heads):
            continue
        if n == 0:
            row = torch.full_like(logits[b], float("-inf"))
            row[heads[k]] = 0.0
            logits[b] = row
        elif n == 1 and newline is not None:
            logits[b, newline] = float("-inf")
    return logits


class _SongState:
    """Each sample's song cache and line guard, fed with the prefix and every new character."""

    def __init__(self, adaptation: Adaptation | None, n: int, vocab: Vocab, start: list[int]):
        if adaptation is None:
            raise ValueError("adapt needs a checkpoint with a fitted adaptation")
        self.adaptation = adaptation
        self.caches = [StreamCache(adaptation.order, len(vocab), adaptation.reset_ids)
                       for _ in range(n)]  # fmt: skip
        newline = vocab.id_of("\n")
        self.guard = LineGuard(n, newline) if newline is not None else None
        for i in start:
            self.add([i] * n)

    def logprobs(self, static_logp: torch.Tensor) -> torch.Tensor:
        p = adapt_logprobs(static_logp, self.caches, self.adaptation)
        return self.guard.mask(p) if self.guard else p

    def add(self, ids: list[int]) -> None:
        for b, i in enumerate(ids):
            self.caches[b].add(i)
            if self.guard:
                self.guard.add(b, i)
