"""CharRNN: characters in, next-character logits out.

    x (B, T) ids ─► embedding (B, T, E)  or exact one-hot (B, T, V)
                 ─► RNN / GRU / LSTM, L layers, dropout between layers ─► (B, T, H)
                 ─► dropout ─► linear ─► logits (B, T, V)

The state is whatever torch's recurrent module uses: h (L, B, H), or (h, c) for an LSTM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from charlm.config import ModelConfig

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class CharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed) if cfg.embed > 0 else None
        # torch warns (and does nothing) for dropout with one layer
        between = cfg.dropout if cfg.layers > 1 else 0.0
        if cfg.impl == "scratch":
            from charlm.scratch import ScratchRNN

            self.rnn = ScratchRNN(cfg.cell, cfg.input_size, cfg.hidden, cfg.layers, between)
        else:
            self.rnn = _CELLS[cfg.cell](
                cfg.input_size, cfg.hidden, num_layers=cfg.layers, batch_first=True, dropout=between
            )
        self.drop = nn.Dropout(cfg.dropout)
        if cfg.tie:
            # Tied output: project to the embedding size, then score against the embedding
            # table itself. Rare characters share what their input vector learned, and the
            # (V, H) output matrix, the biggest in a small model, disappears.
            self.proj = nn.Linear(cfg.hidden, cfg.embed)
            self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        else:
            self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x (B, T) int64 -> logits (B, T, V) and the state after the last step."""
        if self.embed is not None:
            inp = self.drop(self.embed(x))  # (B, T, E)
        elif self._gather_one_hot and (x.device.type == "cpu" or self.cfg.impl == "scratch"):
            # On a GPU, cuDNN's fused kernel beats a per-step loop even with the dense input.
            return self._one_hot_gather_forward(x, state)
        else:
            inp = F.one_hot(x, self.cfg.vocab_size).to(self.out_dtype)  # (B, T, V)
        out, state = self.rnn(inp, state)  # (B, T, H)
        return self.logits(self.drop(out)), state  # (B, T, V)

    @property
    def _gather_one_hot(self) -> bool:
        # One-hot input times W_ih is a row of W_ih: gather it instead of a (V x G*H) matmul.
        # Done for one torch layer (the textbook model); deeper stacks keep the dense input.
        return self.cfg.layers == 1

    def _one_hot_gather_forward(self, x: torch.Tensor, state: State | None):
        from charlm.scratch import recurrence

        b = x.shape[0]
        w_ih, w_hh, b_ih, b_hh = layer_weights(self, 0)
        zx = F.embedding(x, w_ih.t()) + b_ih  # (B, T, G*H) == one_hot(x) @ w_ih.T + b_ih
        if state is None:
            zeros = zx.new_zeros(1, b, self.cfg.hidden)
            state = (zeros, zeros) if self.cfg.cell == "lstm" else zeros
        s0 = (state[0][0], state[1][0]) if self.cfg.cell == "lstm" else state[0]
        out, s = recurrence(self.cfg.cell, zx, s0, w_hh.t(), b_hh)
        state = (s[0][None], s[1][None]) if self.cfg.cell == "lstm" else s[None]  # (1, B, H)
        return self.logits(self.drop(out)), state

    @property
    def out_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden outputs (..., H) -> next-character logits (..., V)."""
        if self.cfg.tie:
            return F.linear(self.proj(h), self.embed.weight, self.out_bias)  # (..., E) -> (..., V)
        return self.head(h)


def layer_weights(model: CharRNN, layer: int) -> tuple[torch.Tensor, ...]:
    """Recurrent layer `layer` in torch's layout, whichever --impl holds it:
    (weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H))."""
    rnn = model.rnn
    if model.cfg.impl == "scratch":
        return rnn.torch_layout(layer)
    return tuple(
        getattr(rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a batch boundary (truncated BPTT): the values carry on, the gradient
    does not, otherwise backward would run through every batch since the epoch began."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_tensors(state: State | None) -> list[torch.Tensor]:
    """The state as a list of tensors (for checkpoints): [], [h] or [h, c]."""
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(tensors: list[torch.Tensor], cell: str) -> State | None:
    if not tensors:
        return None
    return (tensors[0], tensors[1]) if cell == "lstm" else tensors[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
