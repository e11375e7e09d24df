"""The sampling filters as processors, and the draw: what turns a step's rewritten scores into
one character a row.

    NoUnknown    the unknown symbol is never written, unless a rule left nothing else
    Temperature  scores / T (T = 0 is greedy: no filter, the likeliest is taken)
    TopK         keep the k likeliest
    TopP         keep the smallest nucleus of mass p
"""

from __future__ import annotations

import torch

from charlm.config import SampleConfig
from charlm.data.vocab import UNK_ID
from charlm.generation.processor import Processor, StepContext


class NoUnknown(Processor):
    """(B, V) scores -> float scores with <unk> at -inf, but where a rule left a row nothing else
    (a template's symbol the model never saw, which the context then spells out)."""

    def __call__(self, scores: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        scores = scores.float()
        unk = scores[:, UNK_ID].clone()
        scores[:, UNK_ID] = float("-inf")
        dead = scores.amax(dim=1) == float("-inf")  # (B,)
        if dead.any():
            scores[dead, UNK_ID] = unk[dead]
        return scores


class Temperature(Processor):
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self, scores: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        return scores / self.t


class TopK(Processor):
    """Scores below the k-th largest become -inf."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, scores: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        if self.k >= scores.size(-1):
            return scores
        kth = torch.topk(scores, self.k, dim=-1).values[:, -1:]  # (B, 1)
        return scores.masked_fill(scores < kth, float("-inf"))


class TopP(Processor):
    """Keep the smallest set of likeliest characters whose mass reaches p; the first stays."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, scores: torch.Tensor, ctx: StepContext | None = None) -> torch.Tensor:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, dim=-1)
        # drop a character when the mass before it already reaches p
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= self.p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, float("-inf"))


def sampling_filters(cfg: SampleConfig) -> list[Processor]:
    """The processors that end every step, in order; greedy (temperature 0) needs none but
    NoUnknown (the likeliest is the likeliest, filtered or not)."""
    out: list[Processor] = [NoUnknown()]
    if cfg.temperature > 0:
        out.append(Temperature(cfg.temperature))
        if cfg.top_k:
            out.append(TopK(cfg.top_k))
        if cfg.top_p < 1.0:
            out.append(TopP(cfg.top_p))
    return out


def draw(scores: torch.Tensor, greedy: bool, generator: torch.Generator) -> torch.Tensor:
    """(B, V) filtered scores -> (B,) ids: the likeliest, or one draw each on the CPU generator
    by inverse CDF (float64 sums, so 1e5 tiny terms hold; several times faster than
    torch.multinomial on a large vocabulary)."""
    if greedy:
        return scores.argmax(dim=-1)
    probs = torch.softmax(scores, dim=-1).cpu()  # (B, V)
    cdf = probs.double().cumsum(dim=-1)  # (B, V)
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u).clamp_max(probs.shape[1] - 1)  # (B, 1)
    # a zero-probability id can tie the cdf at a boundary: step forward to a real one
    idx = torch.where(probs.gather(1, idx) > 0, idx, probs.argmax(dim=-1, keepdim=True))
    return idx.squeeze(1).to(scores.device)
