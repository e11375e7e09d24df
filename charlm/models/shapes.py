"""`charlm info`: a model's weights and tensor shapes, read off the real modules.

Shapes are not computed by formula: the model (or, for --bidirectional, the torch module that
would be built) runs one forward pass on zeros, so what is printed is what torch produces.
"""

from __future__ import annotations

from typing import Any

import torch

from charlm.config import BIDIRECTIONAL_REASON, ModelConfig
from charlm.models.charrnn import TORCH_MODULES, CharRNN


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
    tensors = {**tensors, "rnn output": _shape(out), **_state_shapes(state)}
    tensors["logits"] = _shape(logits)
    return _summary(cfg.__dict__, batch, seq_len, model.named_parameters(), tensors)


def _state_shapes(state) -> dict[str, list[int]]:
    """h_n, and c_n for an LSTM, from a charlm tuple state or torch's (bare h or (h, c))."""
    state = state if isinstance(state, tuple) else (state,)
    return {f"state {name}_n": _shape(t) for name, t in zip("hc", state, strict=False)}


def _summary(model_config: dict, batch: int, seq_len: int, named_params, tensors: dict) -> dict:
    weights = [{"name": n, "shape": _shape(p), "params": p.numel()} for n, p in named_params]
    return {
        "model_config": model_config,
        "batch": batch,
        "seq_len": seq_len,
        "weights": weights,
        "total_params": sum(w["params"] for w in weights),
        "tensors": tensors,
        "generates": True,
    }


def _describe_bidirectional(cfg: ModelConfig, batch: int, seq_len: int) -> dict[str, Any]:
    rnn = TORCH_MODULES[cfg.cell](
        cfg.input_size, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True
    )
    x = torch.zeros(batch, seq_len, cfg.input_size)
    out, state = rnn(x)
    tensors = {"rnn input": _shape(x), "rnn output": _shape(out), **_state_shapes(state)}
    named = ((f"rnn.{n}", p) for n, p in rnn.named_parameters())
    d = _summary({**cfg.__dict__, "bidirectional": True}, batch, seq_len, named, tensors)
    return {**d, "generates": False, "reason": BIDIRECTIONAL_REASON}


def render(d: dict[str, Any]) -> str:
    """Plain text for stdout (no Rich: this is the command's data)."""
    c = d["model_config"]
    inp = f"embedding {c['embed']}" if c["embed"] else "one-hot input"
    extras = [
        ", tied output" if c.get("tie") else "",
        ", bidirectional" if c.get("bidirectional") else "",
        # a two-level softmax (charrnn.py): where its clusters start
        f", two-level softmax (clusters from ids {', '.join(map(str, c['cutoffs']))})"
        if c.get("cutoffs")
        else "",
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
    if d.get("networks", 1) > 1:  # an averaged run (ensemble.py): each network as above
        lines += ["", f"{d['networks']} networks of this shape, averaged: "
                      f"{d['networks'] * d['total_params']:,} parameters in all"]  # fmt: skip
    if d.get("base"):  # a fine-tuning run (train --init-from): where it started
        b = {k: v for k, v in d["base"].items() if isinstance(v, str | list)}  # as written
        chain = " -> ".join(map(str, b.get("lineage") or [b.get("name", "?")]))
        lines += ["", f"started from {chain} ({b.get('path', '?')}, digest "
                      f"{str(b.get('digest', '?'))[:12]}, base corpus "
                      f"{str(b.get('fingerprint') or '?')[:12]})"]  # fmt: skip
    if not d["generates"]:
        lines += ["", f"cannot generate: {d['reason']}"]
    return "\n".join(lines)
