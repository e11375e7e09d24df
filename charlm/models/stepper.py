"""One recurrent step at a time, for generation.

A generated character costs one cell step, and a step with batch 1 is bound by reading the
weights once. torch's nn.LSTM spends most of a one-step call on bookkeeping (about 1.6 ms for
LSTM 512x2 here, where reading the 13 MB of weights takes 0.3 ms), so the stepper fuses each
layer's input and recurrent weights into one (G*H, D+H) matrix, prepared once: a step is then
one matrix-vector product per layer plus the gate arithmetic (`scratch.cell_step`, beside the
training recurrences). The values agree with CharRNN.forward to float rounding (tested).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from charlm.models.charrnn import CharRNN, layer_weights, two_level_scores
from charlm.models.scratch import cell_step
from charlm.models.state import State


class StepperBackend(Protocol):
    """What generation calls of a network: read the prefix, then one step a character. The
    torch steppers here are one backend; another (numpy, say) implements the same three."""

    def prime(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[State]]:
        """ids (R, T), the prefix on every row -> its last logits (R, V) and per-layer states."""
        ...

    def step(self, ids: torch.Tensor, states: list[State]) -> tuple[torch.Tensor, list[State]]:
        """ids (R,) and per-layer states -> logits (R, V) and the next states."""
        ...


class Stepper:
    """Built from a CharRNN in eval mode; `step(ids (B,), states) -> (logits (B, V), states)`."""

    def __init__(self, model: CharRNN, dtype: torch.dtype = torch.float32) -> None:
        self.model, self.cfg, self.dtype = model, model.cfg, dtype
        # Half-precision copies halve the bytes read per character (opt-in: `--precision`).
        cast = (lambda t: t.to(dtype)) if dtype != torch.float32 else (lambda t: t)
        self.layers = [
            {k: cast(v) for k, v in self._layer(i).items()} for i in range(self.cfg.layers)
        ]
        m = model
        self.embed = cast(m.embed.weight.detach()) if m.embed is not None else None
        if self.cfg.tie:
            self.out = (
                cast(m.proj.weight.detach()),
                cast(m.proj.bias.detach()),
                self.embed,
                cast(m.out_bias.detach()),
            )
        else:
            self.out = (cast(m.head.weight.detach()), cast(m.head.bias.detach()))
        # a two-level softmax (CharRNN.logits): the cluster scores beside the characters'
        self.cluster = None
        if self.cfg.cutoffs:
            k = self.cfg.cutoffs[0]
            tail_level = m.level[k:] - 1  # (V - k,) each rarer character's cluster
            member = F.one_hot(tail_level, len(self.cfg.cutoffs)).float().t()  # (K, V - k)
            self.cluster = (cast(m.cluster.weight.detach()), cast(m.cluster.bias.detach()),
                            tail_level, member.contiguous())  # fmt: skip

    @torch.no_grad()
    def _layer(self, i: int) -> dict[str, torch.Tensor]:
        w_ih, w_hh, b_ih, b_hh = layer_weights(self.model, i)
        if i == 0 and self.cfg.embed == 0:
            # one-hot input: a row of this (V, G*H) table instead of a product
            return {
                "table": w_ih.t().contiguous(),
                "b_ih": b_ih,
                "w_hh": w_hh.contiguous(),
                "b_hh": b_hh,
            }
        if self.cfg.cell == "gru":  # the reset gate needs the two parts apart
            return {
                "w_ih": w_ih.contiguous(),
                "b_ih": b_ih,
                "w_hh": w_hh.contiguous(),
                "b_hh": b_hh,
            }
        # [x, h] @ [W_ih | W_hh]^T in one product
        return {"w": torch.cat([w_ih, w_hh], dim=1).contiguous(), "b": b_ih + b_hh}  # (G*H, D+H)

    def _gates(self, layer: dict, x: torch.Tensor, ids: torch.Tensor | None, h: torch.Tensor):
        if "table" in layer:  # one-hot input: gather instead of multiply
            gx = F.embedding(ids, layer["table"]) + layer["b_ih"]
            return gx, F.linear(h, layer["w_hh"], layer["b_hh"])
        if "w" in layer:
            return F.linear(torch.cat([x, h], dim=1), layer["w"], layer["b"]), None
        return F.linear(x, layer["w_ih"], layer["b_ih"]), F.linear(h, layer["w_hh"], layer["b_hh"])

    @torch.inference_mode()
    def prime(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[State]]:
        """The whole prefix in one forward pass of the network: ids (R, T) -> (R, V), states."""
        logits, state = self.model(ids)  # (R, T, V)
        return logits[:, -1], self.cast_states(self.split(state))

    @staticmethod
    def split(state: State) -> list[State]:
        """CharRNN's state ((L, B, H) tensors) -> one (B, H) tuple per layer."""
        return [tuple(s[i] for s in state) for i in range(state[0].shape[0])]

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, states: list[State]) -> tuple[torch.Tensor, list[State]]:
        """ids (B,) and per-layer states (see split) -> logits (B, V) and the next states."""
        x = F.embedding(ids, self.embed) if self.embed is not None else None  # (B, E)
        new = []
        for i, layer in enumerate(self.layers):
            gx, gh = self._gates(layer, x, ids if i == 0 else None, states[i][0])  # (B, G*H)
            new.append(cell_step(self.cfg.cell, gx, gh, states[i]))
            x = new[-1][0]  # this layer's h feeds the next
        return self._logits(x).float(), new

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, H) -> (B, V) logits; a two-level softmax's are its two_level_scores (what
        generation does with them starts with a log-softmax, which normalises the head)."""
        if self.cfg.tie:
            w_p, b_p, table, bias = self.out
            u = F.linear(h, w_p, b_p)  # (B, E)
            z = F.linear(u, table, bias)
        else:
            u, z = h, F.linear(h, *self.out)
        if self.cluster is None:
            return z
        w_c, b_c, tail_level, member = self.cluster
        return two_level_scores(z, F.linear(u, w_c, b_c), self.cfg.cutoffs, tail_level, member)

    def cast_states(self, states: list[State]) -> list[State]:
        return [tuple(t.to(self.dtype) for t in s) for s in states]
