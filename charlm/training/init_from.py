"""`charlm train --init-from RUN|FILE|zh`: start a new run from another run's network.

    base checkpoint ─► BaseNetwork (weights, configs, vocabulary, lineage record)
    new corpus's vocabulary ─► union_vocab: the base's ids kept, new characters appended
    ─► fit_state: the base's weights with a row (or column) for every new character

The architecture is the base's (sizing is skipped); the count model, the mixture and the song
cache are built on the new corpus as in any run. Characters the new corpus never uses stay in
the vocabulary: what the base knows about them is kept, and a later prompt may use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError, UsageError
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint
from charlm.training.options import MODEL_FIELDS, REGULARISERS, TrainOptions

# Fine-tuning defaults (options given always win). The rate stays the usual 3e-3: on Jay Chou
# from the shipped base, 120 s, it beat 1e-3 (157.5 against 164.5 held-out) and dropout stays
# the corpus rule's (0.3 instead of 0.6: 165.0 and 161.6). Weight decay pulls weights towards
# zero, i.e. away from the base, so it stays small (not measured against the corpus rule's).
# Several networks stay on: a fine-tuned network stops improving within minutes on a small
# corpus (Jay Chou: at 82 s), and one alone stopped the run there (600 s budget, ended at
# 199 s); each new member starts from the base again.
FINE_TUNE: dict[str, Any] = {"weight_decay": 0.01, "warmup": 20}


@dataclass(frozen=True)
class BaseNetwork:
    """A network to start from: its weights (float32, on its own vocabulary), its configs and
    the record a fine-tuned checkpoint keeps of it (`base`: name, path, fingerprint, digest)."""

    state: dict[str, torch.Tensor]
    model_config: ModelConfig
    vocab: Vocab
    record: dict[str, Any]
    notes: tuple[str, ...] = ()


def load_base(spec: str, ckdir: Path) -> BaseNetwork:
    """The base `spec` names: a checkpoint file, a run under ckdir (its best.pt), or a shipped
    base (`zh`, `builtin:zh`). An averaged checkpoint gives its first network."""
    path = checkpoint.resolve(spec, ckdir, "best")
    payload = checkpoint.load(path)
    _, vocab, mcfg = checkpoint.restore_model(payload, str(path))  # checks every shape
    state = {k: v.float() for k, v in payload["model_state"].items()}
    notes = [n for n in (checkpoint.shadow_note(spec, ckdir),) if n]
    if payload.get("members"):
        notes.append(f"--init-from {spec}: an averaged checkpoint; its first network is the base")
    corpus = payload.get("corpus") or {}
    record = {
        "name": spec,
        "path": str(path),
        "fingerprint": corpus.get("fingerprint", ""),
        "digest": payload["digest"],
        "vocab_size": len(vocab),
        "lineage": [*(payload.get("base") or {}).get("lineage", []), spec],
    }
    return BaseNetwork(state, mcfg, vocab, record, tuple(notes))


def union_vocab(base: Vocab, own: Vocab) -> Vocab:
    """The base's tokens in their order (its ids kept), then the new text's characters the
    base lacks, in the new text's order (most frequent first)."""
    return Vocab([*base.tokens, *(c for c in own.tokens[1:] if c not in base)])


def check_architecture(opts: TrainOptions, base: ModelConfig, spec: str) -> None:
    """The architecture is the base's: a size option that differs is refused, naming both.
    Dropout and weight drop are regularisation, not architecture: they may change."""
    for k in MODEL_FIELDS:
        value = getattr(opts, k)
        if k not in REGULARISERS and value is not None and value != getattr(base, k):
            raise UsageError(
                f"--init-from {spec}: --{k} {value} differs from the base's {k} "
                f"{getattr(base, k)}; the architecture is the base's: drop --{k}"
            )
    had = "adaptive" if base.cutoffs else "full"
    if opts.softmax in ("full", "adaptive") and opts.softmax != had:
        raise UsageError(
            f"--init-from {spec}: --softmax {opts.softmax} differs from the base's {had} "
            "softmax; the architecture is the base's: drop --softmax"
        )


def model_config_for(base: BaseNetwork, vocab: Vocab, opts: TrainOptions) -> ModelConfig:
    cfg = {**base.model_config.__dict__, "vocab_size": len(vocab)}
    for k in REGULARISERS:
        if getattr(opts, k) is not None:
            cfg[k] = getattr(opts, k)
    return ModelConfig(**cfg)


def fit_state(base: BaseNetwork, vocab: Vocab, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The base's weights for a CharRNN of `cfg` on the union vocabulary. A tensor whose shape
    differs from the new model's differs in the vocabulary's dimension (embedding and output
    rows, the output bias, one-hot input columns) and grows along it: the base's ids are kept,
    so its rows stay where they were, and a new character starts as the base's average one
    (the mean row; the median bias, so it starts neither likely nor impossible)."""
    old = len(base.vocab)
    if vocab.tokens[:old] != base.vocab.tokens:
        raise CheckpointError("the vocabulary does not extend the base's (its ids would move)")
    target = {k: tuple(v.shape) for k, v in CharRNN(cfg).state_dict().items()}
    out = {}
    for name, t in base.state.items():
        grown = [d for d, (a, b) in enumerate(zip(t.shape, target[name], strict=True)) if a != b]
        if not grown:
            out[name] = t.clone()
            continue
        d = grown[0]  # (V, E), (V, H), (V,) or (G*H, V): the vocabulary's dimension
        fill = t.median(dim=d, keepdim=True).values if t.dim() == 1 else t.mean(d, keepdim=True)
        shape = list(target[name])
        shape[d] -= old  # the new characters' rows (or columns)
        out[name] = torch.cat([t, fill.expand(shape)], dim=d).contiguous()
    return out
