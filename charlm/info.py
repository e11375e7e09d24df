"""`charlm info`: a model's weights and tensor shapes, read off the real modules.

Shapes are not computed by formula: the model (or, for --bidirectional, the torch module that
would be built) runs one forward pass on zeros, so what is printed is what torch produces.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from charlm.config import BIDIRECTIONAL_REASON, ModelConfig
from charlm.model import CharRNN

_TORCH = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


@torch.no_grad()
def describe(
    cfg: ModelConfig, batch: int, seq_len: int, bidirectional: bool = False
) -> dict[str, Any]:
    """Weights (name, shape, count) and batch-first tensor shapes for a (batch, seq_len) input."""
    if bidirectional:
        return _describe_bidirectional(cfg, batch, seq_len)
    model = CharRNN(cfg).eval()
    x = torch.zeros(batch, seq_len, dtype=torch.long)
    logits, state = model(x)
    inp = model.embed(x) if model.embed is not None else torch.zeros(batch, seq_len, cfg.vocab_size)
    out, _ = model.rnn(inp)
    tensors = {
        "input x": _shape(x),
        f"{'embedding' if cfg.embed else 'one-hot'} output": _shape(inp),
    }
    tensors["rnn output"] = _shape(out)
    if cfg.cell == "lstm":
        tensors["state h_n"], tensors["state c_n"] = _shape(state[0]), _shape(state[1])
    else:
        tensors["state h_n"] = _shape(state)
    tensors["logits"] = _shape(logits)
    weights = [
        {"name": n, "shape": _shape(p), "params": p.numel()} for n, p in model.named_parameters()
    ]
    return {
        "model_config": cfg.__dict__,
        "batch": batch,
        "seq_len": seq_len,
        "weights": weights,
        "total_params": sum(w["params"] for w in weights),
        "tensors": tensors,
        "generates": True,
    }


def _describe_bidirectional(cfg: ModelConfig, batch: int, seq_len: int) -> dict[str, Any]:
    rnn = _TORCH[cfg.cell](
        cfg.input_size, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True
    )
    x = torch.zeros(batch, seq_len, cfg.input_size)
    out, state = rnn(x)
    tensors = {"rnn input": _shape(x), "rnn output": _shape(out)}
    if cfg.cell == "lstm":
        tensors["state h_n"], tensors["state c_n"] = _shape(state[0]), _shape(state[1])
    else:
        tensors["state h_n"] = _shape(state)
    weights = [
        {"name": f"rnn.{n}", "shape": _shape(p), "params": p.numel()}
        for n, p in rnn.named_parameters()
    ]
    return {
        "model_config": {**cfg.__dict__, "bidirectional": True},
        "batch": batch,
        "seq_len": seq_len,
        "weights": weights,
        "total_params": sum(w["params"] for w in weights),
        "tensors": tensors,
        "generates": False,
        "reason": BIDIRECTIONAL_REASON,
    }


def render(d: dict[str, Any]) -> str:
    """Plain text for stdout (no Rich: this is the command's data)."""
    c = d["model_config"]
    inp = f"embedding {c['embed']}" if c["embed"] else "one-hot input"
    extras = [
        ", tied output" if c.get("tie") else "",
        ", bidirectional" if c.get("bidirectional") else "",
    ]
    lines = [
        f"{c['cell']} x{c['layers']}, hidden {c['hidden']}, {inp}, vocab {c['vocab_size']}"
        f"{''.join(extras)}, impl {c.get('impl', 'torch')}",
        "",
        f"{'weight':<28} {'shape':<18} {'params':>12}",
    ]
    for w in d["weights"]:
        lines.append(f"{w['name']:<28} {'x'.join(map(str, w['shape'])):<18} {w['params']:>12,}")
    lines += [
        f"{'total':<47} {d['total_params']:>12,}",
        "",
        f"tensors for batch {d['batch']}, seq_len {d['seq_len']} (batch-first):",
    ]
    for name, shape in d["tensors"].items():
        lines.append(f"  {name:<22} ({', '.join(map(str, shape))})")
    if not d["generates"]:
        lines += ["", f"cannot generate: {d['reason']}"]
    return "\n".join(lines)
