"""Train options and the rules that turn them into configs: presets, the sizing rule, run
names, the bundled corpus, and which changes --resume refuses (naming both values)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from charlm.config import BIDIRECTIONAL_REASON, ModelConfig, TrainConfig
from charlm.data.corpus import CorpusOptions
from charlm.errors import CheckpointError, DataError, UsageError

DEFAULT_CORPUS_NAME = "tang_song_zh.zip"
MODEL_FIELDS = ("cell", "embed", "hidden", "layers", "dropout", "tie", "impl")
# Changing these mid-run would change what the saved data position or optimizer state means.
FROZEN_ON_RESUME = (
    "sampler", "seq_len", "val_fraction", "optimizer", "seed", "kn_order",
    "mix_fraction",
)  # fmt: skip


# Option sets a flag away. Explicit options win over a preset.
PRESETS: dict[str, dict[str, Any]] = {
    # The defaults: model size and regularisation from the corpus length (auto_sizes).
    "auto": {},
    # Dive into Deep Learning, "RNN from scratch" on the Jay Chou lyrics: the first 10,000
    # characters with line breaks as spaces, one-hot input, RNN 256, SGD lr 100, clip 0.01.
    "d2l": {
        "max_chars": 10_000, "newline": "space", "cell": "rnn", "embed": 0, "tie": False,
        "hidden": 256, "layers": 1, "dropout": 0.0, "batch_size": 32, "seq_len": 35,
        "optimizer": "sgd", "lr": 100.0, "clip": 0.01, "epochs": 250, "weight_decay": 0.0,
        "warmup": 0, "val_fraction": 0.0, "kn_order": 0, "unk_prob": 0.0, "early_stop": 0,
        "eval_epochs": 50, "precision": "fp32",
    },
}  # fmt: skip


@dataclass(frozen=True)
class TrainOptions:
    """Every `charlm train` option as the user gave it. None means "not given": a preset, the
    sizing rule (auto_sizes), the stored run (on --resume) or TrainConfig's default decides."""

    corpus: str | None = None
    run: str | None = None
    preset: str | None = None
    resume: bool = False
    # the model (ModelConfig)
    cell: str | None = None
    embed: int | None = None
    hidden: int | None = None
    layers: int | None = None
    dropout: float | None = None
    tie: bool | None = None
    impl: str | None = None
    bidirectional: bool = False
    # training (TrainConfig)
    sampler: str | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    epochs: int | None = None
    max_steps: int | None = None
    max_time: float | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    clip: float | None = None
    warmup: int | None = None
    eval_every: int | None = None
    eval_epochs: int | None = None  # evaluate every N epochs instead (resolved to eval_every)
    early_stop: int | None = None
    lr_patience: int | None = None
    unk_prob: float | None = None
    precision: str | None = None
    kn_order: int | None = None
    mix_fraction: float | None = None
    val_fraction: float | None = None
    seed: int | None = None
    processes: int | None = None  # not an option: how many processes torchrun started
    members: int | None = None
    # the corpus (CorpusOptions)
    encoding: str | None = None
    newline: str | None = None
    max_chars: int | None = None
    max_corpus_bytes: int | None = None
    # previews printed at each evaluation
    preview: tuple[str, ...] | None = None
    tensorboard: bool = False  # also write TensorBoard events (tensorboard.py)

    def fill(self, values: dict[str, Any]) -> TrainOptions:
        """These values for the options left out; options given always win."""
        return replace(self, **{k: v for k, v in values.items() if getattr(self, k) is None})


def apply_preset(opts: TrainOptions) -> TrainOptions:
    if not opts.preset:
        return opts
    if opts.preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, not {opts.preset!r}")
    return opts.fill(PRESETS[opts.preset])


def auto_sizes(n_train: int) -> dict[str, Any]:
    """Model size and regularisation from the training text's length: a rule, not a table.

    Capacity grows like sqrt(n) (256 hidden units at ~60k characters, 1024 from ~1M), a second
    layer comes at 1M characters, and dropout and weight decay shrink as data grows (0.6 and
    1.0 at 60k, 0.3 and 0.25 at 1M), because a small corpus is memorised long before a large
    one is. Tuned on one 60k corpus, then extended by these exponents, not per corpus.
    """
    n = max(n_train, 1)
    hidden = int(min(1024, max(128, 64 * round(math.sqrt(n) / 64))))
    ratio = 60_000 / n
    return {
        "hidden": hidden,
        "embed": int(min(256, max(64, hidden // 2))),
        "layers": 1 if n < 1_000_000 else 2,
        "dropout": round(min(0.6, max(0.1, 0.6 * ratio**0.25)), 3),
        "weight_decay": round(min(1.0, max(0.01, ratio**0.5)), 4),
    }


def with_auto_sizes(opts: TrainOptions, n_train: int) -> TrainOptions:
    """Fill the options the user left out from auto_sizes; explicit options always win."""
    auto = auto_sizes(n_train)
    if opts.embed == 0:
        auto.pop("embed")
    if opts.optimizer not in (None, "adamw"):
        # SGD and Adam add weight decay to the gradient, where clipping cannot bound it: a
        # decay sized for AdamW's decoupled form would blow the weights up. Off unless asked.
        auto["weight_decay"] = 0.0
    return opts.fill(auto)


def default_corpus() -> Path:
    """The bundled public-domain corpus (CHARLM_DEFAULT_CORPUS overrides where it is)."""
    env = os.environ.get("CHARLM_DEFAULT_CORPUS")
    path = (
        Path(env) if env else Path(__file__).resolve().parents[2] / "corpora" / DEFAULT_CORPUS_NAME
    )
    if not path.is_file():
        raise DataError(f"{path}: the bundled corpus is missing; pass --corpus FILE")
    return path


def new_run_name(checkpoint_dir: Path) -> str:
    base = time.strftime("%Y%m%d-%H%M%S")
    name, i = base, 1
    while (checkpoint_dir / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def check_run_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--run {name!r}: a run name is one folder name (letters, digits, -_.)")
    return name


def corpus_options(opts: TrainOptions) -> CorpusOptions:
    return CorpusOptions(
        encoding=opts.encoding,
        newline=opts.newline or "keep",
        max_chars=opts.max_chars or 0,
        **({"max_bytes": opts.max_corpus_bytes} if opts.max_corpus_bytes else {}),
    )


def model_config_for(vocab_size: int, opts: TrainOptions) -> ModelConfig:
    if opts.bidirectional:
        raise UsageError(f"--bidirectional: {BIDIRECTIONAL_REASON}")
    given = {k: getattr(opts, k) for k in MODEL_FIELDS if getattr(opts, k) is not None}
    if given.get("embed") == 0 and "tie" not in given:
        given["tie"] = False  # one-hot input has no table to tie to
    return ModelConfig(vocab_size=vocab_size, **given)


def train_config_for(opts: TrainOptions, base: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from the options given, over `base` (the stored run on --resume)."""
    names = [f.name for f in fields(TrainConfig)]
    changes = {k: getattr(opts, k) for k in names if getattr(opts, k) is not None}
    return replace(base, **changes) if base else TrainConfig(**changes)


def check_resume_compatible(
    payload: dict[str, Any], opts: TrainOptions, fingerprint: str, where: str
) -> None:
    """Refuse an architecture or corpus change on --resume, naming both values."""
    stored = payload["model_config"]
    for k in MODEL_FIELDS:
        value = getattr(opts, k)
        if value is not None and value != stored.get(k):
            raise CheckpointError(
                f"{where}: --{k} {value} differs from the run's {k} {stored.get(k)}; "
                f"drop --{k} to resume, or start a new --run"
            )
    old = payload.get("corpus", {}).get("fingerprint")
    if old and old != fingerprint:
        raise CheckpointError(
            f"{where}: the corpus differs from the one this run trained on (fingerprint "
            f"{fingerprint[:12]} vs {old[:12]}); pass the original --corpus, or start a new --run"
        )


def resume_batch_size(opts: TrainOptions, base: TrainConfig, where: str) -> int | None:
    """The per-process --batch-size that keeps the run's global batch (rows per step, what
    the saved data position counts in) when --resume runs on another number of processes;
    None when nothing changes. A global batch the processes cannot share is refused."""
    world = opts.processes or 1
    if opts.batch_size is None and world == base.processes:
        return None
    size = opts.batch_size or base.global_batch // world
    if size * world != base.global_batch:
        raise CheckpointError(
            f"{where}: the run's global batch is {base.global_batch} ({base.processes} "
            f"process(es) x --batch-size {base.batch_size}); {world} process(es) x "
            f"--batch-size {opts.batch_size or size} would change it. Resume on a number of "
            f"processes that divides {base.global_batch} (without --batch-size), or start a "
            "new --run"
        )
    return size


def check_frozen_on_resume(cfg: TrainConfig, base: TrainConfig, where: str) -> None:
    """Options whose change would change what the saved data position or optimizer means."""
    for k in FROZEN_ON_RESUME:
        if getattr(cfg, k) != getattr(base, k):
            raise CheckpointError(
                f"{where}: --{k.replace('_', '-')} {getattr(cfg, k)} differs from the run's "
                f"{getattr(base, k)}; it cannot change on --resume (start a new --run)"
            )
