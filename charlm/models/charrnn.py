"""CharRNN: characters in, next-character logits out.

    x (B, T) ids ─► embedding (B, T, E)  or exact one-hot (B, T, V)
                 ─► RNN / GRU / LSTM, L layers, dropout between layers ─► (B, T, H)
                 ─► dropout ─► linear ─► logits (B, T, V)

With ModelConfig.cutoffs the last step is a two-level ("adaptive", Grave et al. 2017) softmax:
the frequent characters and one score per cluster of rarer ones share a softmax, and a rare
character's chance is its cluster's times its share inside the cluster. The model then returns
log-probabilities (normalised logits: softmax, temperature and every mixture read them as
they read logits), and training (forward with targets) scores a cluster only on the rows
whose target is in it: the Tang poems' 7.7k characters need 772 scores a character, not 7.7k.

The state is models.state.State, a tuple of (L, B, H) tensors. Only `CharRNN._recurrence`
converts to and from the form torch's modules take (a bare tensor for RNN/GRU), so nothing
else special-cases the LSTM.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from charlm.config import ModelConfig
from charlm.models.dropout import Dropout, dropout
from charlm.models.loss import cross_entropy
from charlm.models.scratch import ScratchRNN, recurrence
from charlm.models.state import State, zero_state

TORCH_MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def choose_path(cfg: ModelConfig, device: torch.device | str = "cpu") -> str:
    """How the input reaches the recurrence, chosen once when the model is built:

    embedding       an embedding table, then the recurrent module (--embed N)
    one_hot_gather  one layer with one-hot input: one_hot(x) @ W_ih.T is a row of W_ih, so the
                    input part of every gate is a gather, and charlm's recurrence
                    (scratch.recurrence) runs the time steps; exact, and much faster on a CPU
    one_hot_dense   one-hot vectors into the module: deeper stacks, and torch's cells on a
                    GPU, where cuDNN's fused kernel beats a per-step loop even with dense input
    """
    if cfg.embed > 0:
        return "embedding"
    if cfg.layers == 1 and (torch.device(device).type == "cpu" or cfg.impl == "scratch"):
        return "one_hot_gather"
    return "one_hot_dense"


class CharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        self.path = choose_path(cfg, device)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed) if cfg.embed > 0 else None
        # torch warns (and does nothing) for dropout with one layer
        between = cfg.dropout if cfg.layers > 1 else 0.0
        if cfg.impl == "scratch":
            self.rnn = ScratchRNN(cfg.cell, cfg.input_size, cfg.hidden, cfg.layers, between)
        else:
            self.rnn = TORCH_MODULES[cfg.cell](
                cfg.input_size, cfg.hidden, num_layers=cfg.layers, batch_first=True, dropout=between
            )
        self.drop = Dropout(cfg.dropout)
        if cfg.tie:
            # Tied output: project to the embedding size, then score against the embedding
            # table itself. Rare characters share what their input vector learned, and the
            # (V, H) output matrix, the biggest in a small model, disappears.
            self.proj = nn.Linear(cfg.hidden, cfg.embed)
            self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        else:
            self.head = nn.Linear(cfg.hidden, cfg.vocab_size)
        if cfg.cutoffs:  # one score per tail cluster, beside the head's characters
            self.cluster = nn.Linear(cfg.embed if cfg.tie else cfg.hidden, len(cfg.cutoffs))
            # (V,) each id's level: 0 the head, i + 1 cluster i (not saved: the cutoffs say it)
            level = torch.bucketize(torch.arange(cfg.vocab_size), torch.tensor(cfg.cutoffs),
                                    right=True)  # fmt: skip
            self.register_buffer("level", level, persistent=False)
        self.to(device)

    def forward(
        self, x: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """x (B, T) int64, state (see State) or None for zeros -> logits (B, T, V), state.
        With targets (B, T) int64: the mean training loss (a float32 scalar) instead of the
        logits; computed here so that DistributedDataParallel sees it as the forward."""
        out, state = self.hidden_states(x, state)
        if targets is not None:
            return self.loss(self.drop(out), targets), state
        return self.logits(self.drop(out)), state  # (B, T, V)

    def hidden_states(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """x (B, T) int64 -> the top layer's outputs (B, T, H), before dropout, and the state."""
        if self.path == "embedding":
            out, state = self._recurrence(self.drop(self.embed(x)), state)  # (B, T, E)->(B, T, H)
        elif self.path == "one_hot_gather":
            out, state = self._gathered_recurrence(x, state)
        else:
            one_hot = F.one_hot(x, self.cfg.vocab_size).to(self.out_dtype)  # (B, T, V)
            out, state = self._recurrence(one_hot, state)
        return out, state

    def _recurrence(self, inp: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """inp (B, T, D) -> out (B, T, H) and the tuple state. The one place that speaks torch's
        state form: a bare h tensor for nn.RNN / nn.GRU, (h, c) for nn.LSTM."""
        if self.cfg.impl == "scratch":
            return self.rnn(inp, state)  # ScratchRNN takes and returns the tuple form
        bare = self.cfg.cell != "lstm"
        hx = state[0] if bare and state is not None else state
        if self.training and self.cfg.weight_drop > 0:
            # one mask per forward (per batch), the same at every time step; the module's own
            # parameters stay as they are (functional_call swaps them for this call only)
            dropped = {
                f"weight_hh_l{i}": dropout(
                    getattr(self.rnn, f"weight_hh_l{i}"), self.cfg.weight_drop
                )
                for i in range(self.cfg.layers)
            }
            out, new = torch.func.functional_call(self.rnn, dropped, (inp, hx))
        else:
            out, new = self.rnn(inp, hx)
        return out, ((new,) if bare else tuple(new))

    def _gathered_recurrence(self, x: torch.Tensor, state: State | None):
        w_ih, w_hh, b_ih, b_hh = layer_weights(self, 0)
        if self.training and self.cfg.weight_drop > 0:
            w_hh = dropout(w_hh, self.cfg.weight_drop)  # (G*H, H), as _recurrence does
        zx = F.embedding(x, w_ih.t()) + b_ih  # (B, T, G*H) == one_hot(x) @ w_ih.T + b_ih
        if state is None:
            state = zero_state(self.cfg.cell, 1, x.shape[0], self.cfg.hidden, zx)
        out, last = recurrence(self.cfg.cell, zx, tuple(s[0] for s in state), w_hh.t(), b_hh)
        return out, tuple(s[None] for s in last)  # each (1, B, H)

    @property
    def out_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def output_layer(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hidden outputs (..., H) -> what scores them: u (..., D) and the character table
        W (V, D) with its bias (V,); D is the embedding size when tied, else H."""
        if self.cfg.tie:
            return self.proj(h), self.embed.weight, self.out_bias
        return h, self.head.weight, self.head.bias

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden outputs (..., H) -> next-character logits (..., V); with cutoffs, float32
        log-probabilities."""
        u, w, b = self.output_layer(h)
        z = F.linear(u, w, b)  # (..., V)
        if not self.cfg.cutoffs:
            return z
        return two_level(z, self.cluster(u), self.cfg.cutoffs, self.level)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Hidden outputs (B, T, H) (after dropout), targets (B, T) -> the mean cross-entropy,
        float32 (the loss itself outside any autocast, as a full softmax's always was)."""
        u, w, b = self.output_layer(h.flatten(0, 1))  # (N, D)
        y = targets.flatten()  # (N,)
        device = u.device.type
        if not self.cfg.cutoffs:
            z = F.linear(u, w, b)  # (N, V)
            with torch.autocast(device, enabled=False):
                return cross_entropy(z, y)
        k = self.cfg.cutoffs[0]
        head = torch.cat([F.linear(u, w[:k], b[:k]), self.cluster(u)], 1)  # (N, k + K)
        where = self.level[y]  # (N,) 0 for a head character, i + 1 for one in cluster i
        tails = []
        for i, (lo, hi) in enumerate(itertools.pairwise((*self.cfg.cutoffs, len(self.level)))):
            rows = (where == i + 1).nonzero()[:, 0]  # (n_i,)
            if len(rows):
                tails.append((F.linear(u[rows], w[lo:hi], b[lo:hi]), y[rows] - lo))  # (n_i, C)
        with torch.autocast(device, enabled=False):
            loss = cross_entropy(head, torch.where(where == 0, y, k + where - 1))
            for z, t in tails:  # each tail's mean, weighted by its share of the rows
                loss = loss + cross_entropy(z, t) * (len(t) / len(y))
        return loss


def two_level(
    z: torch.Tensor, zc: torch.Tensor, cutoffs: tuple[int, ...], level: torch.Tensor
) -> torch.Tensor:
    """A two-level softmax's log-probabilities (..., V), float32: z (..., V) every character's
    score, zc (..., K) each cluster's, level (V,) each id's level (0 the head, i + 1 cluster i).
    ln p = z - the log-normaliser of the character's level: the head's, or a cluster's less its
    own score in the head. Shared by CharRNN.logits and the generation stepper."""
    z, zc = z.float(), zc.float()
    k = cutoffs[0]
    head = torch.logsumexp(torch.cat([z[..., :k], zc], -1), -1, keepdim=True)  # (..., 1)
    bounds = (*cutoffs, z.shape[-1])
    norms = [head] + [torch.logsumexp(z[..., lo:hi], -1, keepdim=True) - zc[..., i, None] + head
                      for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]  # fmt: skip
    if z.requires_grad:  # dynamic evaluation learns through it: out of place
        return z - torch.cat(norms, -1).index_select(-1, level)  # (..., V)
    for norm, (lo, hi) in zip(norms, itertools.pairwise((0, *bounds)), strict=True):
        z[..., lo:hi] -= norm  # in place, a level at a time: generation's one pass
    return z


# two_level_scores: below this many rows, one shift and one product for every cluster (measured,
# LSTM 1x384 on 7,662 characters: 1.28x the steps a second at 1 row, 1.15x at 8, 0.93x at 32)
FEW_ROWS = 16


def two_level_scores(
    z: torch.Tensor,
    zc: torch.Tensor,
    cutoffs: tuple[int, ...],
    tail_level: torch.Tensor,
    member: torch.Tensor,
) -> torch.Tensor:
    """Scores (..., V), float32, whose log_softmax is two_level's distribution, for a consumer
    that takes the log-softmax itself (generation). Each cluster's characters are shifted by
    the cluster's head score less the cluster's own log-normaliser, so that their exps sum to
    the cluster's exp(zc); the head's scores stay as they are, and the consumer's log-softmax
    normalises the lot. z (..., V), zc (..., K); tail_level (V - k,) each rarer character's
    cluster (0 .. K-1), member (K, V - k) the same as rows of 0/1. In place.

    Two ways to the same numbers. With few rows (a step is bound by per-operation overhead
    there: one log-sum-exp a cluster cost 130 us of a 600 us step at batch 1) one shift serves
    every cluster and one product sums them (60 us); its shift is the tail's maximum, so a
    cluster whose every score lies 70+ below it would underflow and takes the other way. With
    many rows (bound by passes over the scores) one log-sum-exp a cluster reads them fewer
    times."""
    z, zc = z.float(), zc.float()
    if z.numel() // z.shape[-1] < FEW_ROWS:
        tail = z[..., cutoffs[0] :]  # (..., V - k), a view
        top = tail.amax(-1, keepdim=True)  # (..., 1)
        sums = F.linear(torch.exp(tail - top), member)  # (..., K): each cluster's sum of exps
        if bool((sums >= 1e-30).all()):
            tail += (zc - top - sums.log()).index_select(-1, tail_level)
            return z
    for i, (lo, hi) in enumerate(itertools.pairwise((*cutoffs, z.shape[-1]))):
        part = z[..., lo:hi]  # (..., size of cluster i), a view
        part += zc[..., i, None] - torch.logsumexp(part, -1, keepdim=True)
    return z


def layer_weights(model: CharRNN, layer: int) -> tuple[torch.Tensor, ...]:
    """Recurrent layer `layer` in torch's layout, whichever --impl holds it:
    (weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H))."""
    if model.cfg.impl == "scratch":
        return model.rnn.torch_layout(layer)
    return tuple(
        getattr(model.rnn, f"{n}_l{layer}")
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
