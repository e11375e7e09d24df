"""`charlm train --init-from RUN|FILE|zh|none`: start a new run from another run's network.

    base checkpoint ─► BaseNetwork (weights, configs, vocabulary, lineage record)
    new corpus's vocabulary (or, with --keep-base-chars, union_vocab: the base's, then the
    corpus's other characters) ─► fit_state: the base's row (or column) for every character
    it knows, its average one for the others

The architecture is the base's (sizing is skipped); the count model, the mixture and the song
cache are built on the new corpus as in any run. Without --init-from, a budgeted run on a
small Chinese text starts from the shipped base by itself (`auto_base`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError, UsageError
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint
from charlm.training.options import MODEL_FIELDS, REGULARISERS, TrainOptions
from charlm.training.sizing import MANY_PASSES

# Fine-tuning defaults (options given always win). The rate stays the usual 3e-3: on Jay Chou
# from the shipped base, 120 s, it beat 1e-3 (157.5 against 164.5 held-out) and dropout stays
# the corpus rule's (0.3 instead of 0.6: 165.0 and 161.6). Weight decay pulls weights towards
# zero, i.e. away from the base, so it stays small (not measured against the corpus rule's).
# Several networks stay on: a fine-tuned network stops improving within minutes on a small
# corpus (Jay Chou: at 82 s), and one alone stopped the run there (600 s budget, ended at
# 199 s); each new member starts from the base again.
FINE_TUNE: dict[str, Any] = {"weight_decay": 0.01, "warmup": 20}
AUTO_BASE = "zh"  # the shipped base a small Chinese text starts from
# auto_base: the share of the training text's characters (whitespace aside) the base knows.
# The Jay Chou lyrics 0.957; the Tang poems in traditional script 0.725; English 0.02.
BASE_COVERAGE = 0.9


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
    if not spec.strip():  # "" would resolve as "the newest run": a base is named, not guessed
        raise UsageError("--init-from needs a run, a .pt file, zh (the shipped base) or none")
    path = checkpoint.resolve(spec, ckdir, "best").resolve()  # recorded whole: resume elsewhere
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


def auto_base(opts: TrainOptions, passes: float | None) -> bool:
    """Whether a run without --init-from may start from the shipped base, on what the options
    and the sizing say: a budget (--max-time) whose sized network would read the text
    MANY_PASSES times or more (short of text, not of compute: what a base knows is what it
    lacks), and nothing given that the base's architecture would override. Whether the base
    knows the text's characters is `covers`' to say."""
    if opts.init_from is not None or not opts.max_time or passes is None:
        return False
    given = [k for k in MODEL_FIELDS if k not in REGULARISERS and getattr(opts, k) is not None]
    return not given and opts.softmax in (None, "auto") and passes >= MANY_PASSES


def covers(base: Vocab, vocab: Vocab, counts: torch.Tensor) -> float:
    """The share of the text's characters, whitespace aside, that `base` knows: counts (V,)
    how often each id of `vocab` occurs in it."""
    known = torch.tensor([c in base and not c.isspace() for c in vocab.tokens])
    text = torch.tensor([i > 0 and not c.isspace() for i, c in enumerate(vocab.tokens)])
    total = float(counts[text].sum())
    return float(counts[known].sum()) / total if total else 0.0


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
    """The base's weights for a CharRNN of `cfg` on `vocab`. Each tensor with a dimension along
    the vocabulary (embedding and output rows, the output bias, one-hot input columns) takes,
    for every character of `vocab`, the base's row for that character, and for one the base
    lacks the base's average one (the mean row; the median bias, so it starts neither likely
    nor impossible). The unknown symbol keeps the base's. Everything else is the base's."""
    old = base.vocab.tokens
    if base.model_config.cutoffs and vocab.tokens[: len(old)] != old:
        # its clusters are ranges of its own ids: they must stay where they are
        raise CheckpointError("a base with a two-level softmax keeps its vocabulary's order")
    rows = [0] + [base.vocab.id_of(c) if c in base.vocab else -1 for c in vocab.tokens[1:]]
    pick = torch.tensor([max(r, 0) for r in rows])  # (V,) the base's id of each character
    new = torch.tensor([r < 0 for r in rows])  # (V,) characters the base lacks
    dims = vocab_dims(base.model_config)
    out = {}
    for name, t in base.state.items():
        if name not in dims:
            out[name] = t.clone()
            continue
        d = dims[name]  # (V, E), (V, H), (V,) or (G*H, V): the vocabulary's dimension
        fill = t.median(dim=d, keepdim=True).values if t.dim() == 1 else t.mean(d, keepdim=True)
        got = t.index_select(d, pick)
        mask = new.view([-1 if i == d else 1 for i in range(t.dim())])
        out[name] = torch.where(mask, fill, got).contiguous()
    return out


def vocab_dims(cfg: ModelConfig) -> dict[str, int]:
    """Which dimension of each weight runs along the vocabulary: the ones whose size changes
    with it (two probe networks, one character apart; none of their weights are kept)."""
    v = cfg.vocab_size  # as big as the config's own: its cutoffs, if any, stay inside
    a = {k: x.shape for k, x in CharRNN(cfg).state_dict().items()}
    b = {k: x.shape for k, x in CharRNN(replace(cfg, vocab_size=v + 1)).state_dict().items()}
    return {k: next(d for d, (x, y) in enumerate(zip(a[k], b[k], strict=True)) if x != y)
            for k in a if a[k] != b[k]}  # fmt: skip
