"""RNN (tanh), GRU and LSTM written from their equations, with a hand-written backward
through time. `--impl scratch` uses these instead of torch's modules.

Fused gate layout (G gates of H units side by side, batch-first x (B, T, D)):

    RNN   G=1  z = x W_x + h W_h + b                    h' = tanh(z)
    LSTM  G=4  z = x W_x + h W_h + b = [i | f | g | o]   c' = s(f) c + s(i) tanh(g)
                                                          h' = s(o) tanh(c')
    GRU   G=3  zx = x W_x + b = [r | u | n]  zh = h W_h = [r | u | n]
               r = s(zx_r + zh_r)  u = s(zx_u + zh_u)  n = tanh(zx_n + r (zh_n + b_hn))
               h' = (1 - u) n + u h

W_x (D, G*H), W_h (H, G*H), b (G*H); the GRU keeps its candidate's recurrent bias b_hn (H)
apart because the reset gate multiplies it. Mapping to torch (`copy_from_torch`): W_x =
weight_ih.T, W_h = weight_hh.T, b = bias_ih + bias_hh (GRU: for r and u only; the n part of
bias_ih goes in b, bias_hh's n part is b_hn). Gate orders match torch's: LSTM (i, f, g, o),
GRU (r, z, n).

Each layer's recurrence is one torch.autograd.Function: forward keeps what backward needs, and
backward runs the time loop in reverse by hand (no autograd inside it), so clipping,
optimizers, checkpoints and the rest of charlm work unchanged. The same recurrence serves
`--embed 0` with torch's weights: a one-hot input times W_x is a row of W_x, so the input part
of the gates is a gather instead of a (V x G*H) matmul.
"""

from __future__ import annotations

import torch
from torch import nn

from charlm.models.dropout import dropout
from charlm.models.state import zero_state

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


# ---- the recurrence, forward and backward by hand ---

# Each function takes zx (B, T, G*H), the input part of every gate for every step (computed
# outside in one matmul, or as a row gather for one-hot input), and adds the recurrent part
# zh = h W_h + b_h step by step. Backward returns d zx; the input matmul's own gradient is the
# caller's (again one matmul over all steps).


def _rnn_forward(zx, h, Wh, bh):
    """zx (B, T, H), h (B, H) -> out (B, T, H)."""
    zx = zx + bh  # the recurrent bias is the same every step: add it once
    out = zx.new_empty(zx.shape)
    for t in range(zx.shape[1]):
        h = torch.tanh(torch.addmm(zx[:, t], h, Wh))  # two operations a step
        out[:, t] = h
    return out


def _rnn_backward(h0, Wh, out, dout, dhT):
    T = out.shape[1]
    dtanh = 1 - out * out  # (B, T, H): tanh' = 1 - tanh^2, for every step at once
    WhT = Wh.t().contiguous()
    dz = torch.empty_like(out)
    dh = dhT
    for t in reversed(range(T)):
        torch.mul(dh + dout[:, t], dtanh[:, t], out=dz[:, t])
        dh = dz[:, t] @ WhT
    return (dz, dh, *_recurrent_grads(h0, out, dz))


def _lstm_forward(zx, h, c, Wh, bh):
    H = h.shape[1]
    B, T, _ = zx.shape
    out = zx.new_empty(B, T, H)
    cs = zx.new_empty(B, T, H)
    acts = zx.new_empty(B, T, 4 * H)  # gate activations, kept for backward
    zx = zx + bh  # the recurrent bias is the same every step: add it once
    for t in range(T):
        z = torch.addmm(zx[:, t], h, Wh)
        i, f = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H : 2 * H])
        g, o = torch.tanh(z[:, 2 * H : 3 * H]), torch.sigmoid(z[:, 3 * H :])
        c = f * c + i * g
        h = o * torch.tanh(c)
        out[:, t], cs[:, t] = h, c
        acts[:, t] = torch.cat([i, f, g, o], dim=1)
    return out, cs, acts


def _lstm_backward(h0, c0, Wh, out, cs, acts, dout, dhT, dcT):
    T, H = out.shape[1], out.shape[2]
    dz = torch.empty_like(acts)
    dh, dc = dhT.clone(), dcT.clone()
    WhT = Wh.t().contiguous()
    for t in reversed(range(T)):
        i, f, g, o = acts[:, t].split(H, dim=1)
        c_prev = cs[:, t - 1] if t > 0 else c0
        tc = torch.tanh(cs[:, t])
        dh = dh + dout[:, t]
        dc = dc + dh * o * (1 - tc * tc)
        dz[:, t] = torch.cat(
            [
                dc * g * i * (1 - i),
                dc * c_prev * f * (1 - f),
                dc * i * (1 - g * g),
                dh * tc * o * (1 - o),
            ],
            dim=1,
        )
        dc = dc * f
        dh = dz[:, t] @ WhT
    return (dz, dh, dc, *_recurrent_grads(h0, out, dz))


def _gru_forward(zx, h, Wh, bh):
    H = h.shape[1]
    B, T, _ = zx.shape
    out = zx.new_empty(B, T, H)
    acts = zx.new_empty(B, T, 4 * H)  # r, u, n and zh_n, kept for backward
    for t in range(T):
        zh = h @ Wh + bh
        r = torch.sigmoid(zx[:, t, :H] + zh[:, :H])
        u = torch.sigmoid(zx[:, t, H : 2 * H] + zh[:, H : 2 * H])
        n = torch.tanh(zx[:, t, 2 * H :] + r * zh[:, 2 * H :])
        h = (1 - u) * n + u * h
        out[:, t] = h
        acts[:, t] = torch.cat([r, u, n, zh[:, 2 * H :]], dim=1)
    return out, acts


def _gru_backward(h0, Wh, out, acts, dout, dhT):
    B, T, H = out.shape
    dzx = out.new_empty(B, T, 3 * H)
    dzh = out.new_empty(B, T, 3 * H)
    dh = dhT.clone()
    for t in reversed(range(T)):
        r, u, n, hn = acts[:, t].split(H, dim=1)
        h_prev = out[:, t - 1] if t > 0 else h0
        dh = dh + dout[:, t]
        dn = dh * (1 - u) * (1 - n * n)  # through tanh: d(pre-activation of n)
        du = dh * (h_prev - n) * u * (1 - u)
        dr = dn * hn * r * (1 - r)
        dzx[:, t] = torch.cat([dr, du, dn], dim=1)
        dzh[:, t] = torch.cat([dr, du, dn * r], dim=1)
        dh = dh * u + dzh[:, t] @ Wh.T
    return (dzx, dh, *_recurrent_grads(h0, out, dzh))


def _recurrent_grads(h0, out, dzh):
    """dW_h and db_h for all steps at once: a sum over (B, T) is one matmul."""
    h_prev = torch.cat([h0[:, None], out[:, :-1]], dim=1)  # (B, T, H)
    dWh = h_prev.flatten(0, 1).T @ dzh.flatten(0, 1)  # (H, G*H)
    return dWh, dzh.sum(dim=(0, 1))


class _RNNLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zx, h0, Wh, bh):
        out = _rnn_forward(zx, h0, Wh, bh)
        ctx.save_for_backward(h0, Wh, out)
        return out, out[:, -1].clone()

    @staticmethod
    def backward(ctx, dout, dhT):
        h0, Wh, out = ctx.saved_tensors
        return _rnn_backward(h0, Wh, out, _z(dout, out), _z(dhT, h0))


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zx, h0, c0, Wh, bh):
        out, cs, acts = _lstm_forward(zx, h0, c0, Wh, bh)
        ctx.save_for_backward(h0, c0, Wh, out, cs, acts)
        return out, out[:, -1].clone(), cs[:, -1].clone()

    @staticmethod
    def backward(ctx, dout, dhT, dcT):
        h0, c0, Wh, out, cs, acts = ctx.saved_tensors
        return _lstm_backward(h0, c0, Wh, out, cs, acts, _z(dout, out), _z(dhT, h0), _z(dcT, c0))


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zx, h0, Wh, bh):
        out, acts = _gru_forward(zx, h0, Wh, bh)
        ctx.save_for_backward(h0, Wh, out, acts)
        return out, out[:, -1].clone()

    @staticmethod
    def backward(ctx, dout, dhT):
        h0, Wh, out, acts = ctx.saved_tensors
        return _gru_backward(h0, Wh, out, acts, _z(dout, out), _z(dhT, h0))


def _z(grad, like):
    return torch.zeros_like(like) if grad is None else grad


def recurrence(cell: str, zx, state, Wh, bh):
    """zx (B, T, G*H) input part of the gates, state (h0,) or (h0, c0) each (B, H), W_h
    (H, G*H), b_h (G*H) -> out (B, T, H) and the final state in the same tuple form, with the
    hand-written backward."""
    layer = {"rnn": _RNNLayer, "gru": _GRULayer, "lstm": _LSTMLayer}[cell]
    out, *last = layer.apply(zx, *state, Wh, bh)
    return out, tuple(last)


def layer_forward(cell: str, x, state, Wx, Wh, b, b_hn=None):
    """One layer: x (B, T, D), state (h0,) or (h0, c0) each (B, H) -> out (B, T, H), state."""
    zx = x @ Wx + b  # (B, T, G*H): the input part of every step in one matmul
    return recurrence(cell, zx, state, Wh, recurrent_bias(cell, Wh, b_hn))


def recurrent_bias(cell: str, Wh: torch.Tensor, b_hn: torch.Tensor | None) -> torch.Tensor:
    """b_h (G*H): the GRU's candidate keeps its own recurrent bias (the reset gate multiplies
    it); for the other cells b already holds torch's two biases added together, so zeros."""
    if cell == "gru":
        return torch.cat([b_hn.new_zeros(2 * Wh.shape[0]), b_hn])
    return Wh.new_zeros(Wh.shape[1])


# ---- one step at a time, for generation (stepper.py) ---


def cell_step(cell: str, gx: torch.Tensor, gh: torch.Tensor | None, state: tuple) -> tuple:
    """The same equations as the recurrences above for one step: gx (B, G*H) the input part of
    the gates with its bias, gh (B, G*H) the recurrent part with its bias (None when the caller
    already summed both into gx; the GRU needs them apart), state (h,) or (h, c) each (B, H)
    -> the new state. Written for few tensor operations: a one-step call is bound by
    per-operation overhead as much as by arithmetic."""
    H = state[0].shape[-1]
    if cell == "gru":
        ru = (gx[:, : 2 * H] + gh[:, : 2 * H]).sigmoid()
        n = torch.addcmul(gx[:, 2 * H :], ru[:, :H], gh[:, 2 * H :]).tanh()
        return (torch.lerp(n, state[0], ru[:, H:]),)  # (1 - u) n + u h
    z = gx if gh is None else gx + gh
    if cell == "rnn":
        return (z.tanh(),)
    s = z.sigmoid()  # i, f, o from one call (the g slice is unused)
    c = torch.addcmul(s[:, H : 2 * H] * state[1], s[:, :H], z[:, 2 * H : 3 * H].tanh())
    return (s[:, 3 * H :] * c.tanh(), c)


# ---- a drop-in for nn.RNN / nn.GRU / nn.LSTM (batch_first) ---


class ScratchRNN(nn.Module):
    """Like torch's batch-first recurrent modules, with charlm's tuple state: forward(x, state)
    -> (out (B, T, H), (h,) or (h, c) each (L, B, H)); dropout between layers as torch's."""

    def __init__(self, cell: str, input_size: int, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.cell, self.hidden, self.layers, self.dropout = cell, hidden, layers, dropout
        g = GATES[cell] * hidden
        bound = hidden**-0.5  # torch's init: U(-1/sqrt(H), 1/sqrt(H)) for every weight
        for layer in range(layers):
            d = input_size if layer == 0 else hidden
            self.register_parameter(
                f"W_x_l{layer}", nn.Parameter(torch.empty(d, g).uniform_(-bound, bound))
            )
            self.register_parameter(
                f"W_h_l{layer}", nn.Parameter(torch.empty(hidden, g).uniform_(-bound, bound))
            )
            # b stands for torch's two biases added together, hence twice the spread
            self.register_parameter(
                f"b_l{layer}", nn.Parameter(torch.empty(g).uniform_(-bound, bound) * 2)
            )
            if cell == "gru":
                self.register_parameter(
                    f"b_hn_l{layer}", nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
                )

    def torch_layout(self, layer: int) -> tuple[torch.Tensor, ...]:
        """This layer as torch's (weight_ih (G*H, D), weight_hh (G*H, H), bias_ih, bias_hh)."""
        Wx, Wh, b, *b_hn = self.params(layer)
        return Wx.t(), Wh.t(), b, recurrent_bias(self.cell, Wh, b_hn[0] if b_hn else None)

    def params(self, layer: int) -> list[torch.Tensor]:
        names = ["W_x", "W_h", "b"] + (["b_hn"] if self.cell == "gru" else [])
        return [getattr(self, f"{n}_l{layer}") for n in names]

    def forward(self, x: torch.Tensor, state=None):
        """x (B, T, D), state (see models.state.State) or None -> out (B, T, H), state."""
        if state is None:
            state = zero_state(self.cell, self.layers, x.shape[0], self.hidden, x)
        finals = []
        for layer in range(self.layers):
            if layer > 0 and self.dropout and self.training:
                x = dropout(x, self.dropout)
            x, last = layer_forward(
                self.cell, x, tuple(s[layer] for s in state), *self.params(layer)
            )
            finals.append(last)
        return x, tuple(torch.stack(parts) for parts in zip(*finals, strict=True))  # (L, B, H)

    @torch.no_grad()
    def copy_from_torch(self, m: nn.RNNBase) -> None:
        """Take the weights of a torch nn.RNN/GRU/LSTM (mapping in the module docstring)."""
        H = self.hidden
        for layer in range(self.layers):
            wih, whh = getattr(m, f"weight_ih_l{layer}"), getattr(m, f"weight_hh_l{layer}")
            bih, bhh = getattr(m, f"bias_ih_l{layer}"), getattr(m, f"bias_hh_l{layer}")
            p = self.params(layer)
            p[0].copy_(wih.T)
            p[1].copy_(whh.T)
            if self.cell == "gru":
                p[2].copy_(torch.cat([bih[: 2 * H] + bhh[: 2 * H], bih[2 * H :]]))
                p[3].copy_(bhh[2 * H :])
            else:
                p[2].copy_(bih + bhh)
