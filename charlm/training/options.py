"""`charlm train`'s options as the user gave them (TrainOptions), the presets, and the rules
that turn them into configs (model_config_for, train_config_for). The sizing
rule is sizing.py's; what --resume refuses is resume.py's."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from charlm.config import BIDIRECTIONAL_REASON, ModelConfig, TrainConfig
from charlm.errors import UsageError

# A --max-time run that did not give --eval-every evaluates at most about this share of its
# training time (optim.eval_interval). On the first 1.1M characters of the King James Bible an
# evaluation (the tune slice and 50k held-out characters scored, best.pt and last.pt written)
# took 1.6 s against 5 s for 50 steps: a quarter of the budget went to evaluating. (Here, not
# in optim.py: this module is read by `charlm --help`, which must not import torch.)
EVAL_SHARE = 0.1
MODEL_FIELDS = ("cell", "embed", "hidden", "layers", "dropout", "weight_drop", "tie", "impl")
REGULARISERS = ("dropout", "weight_drop")  # model fields that are not architecture
SOFTMAXES = ("auto", "full", "adaptive")  # --softmax (softmax.py)
NO_BASE = "none"  # --init-from none: from scratch, whatever init_from.auto_base would say


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
    init_from: str | None = None  # a run, a checkpoint file, a shipped base, none (init_from.py)
    keep_base_chars: bool = False  # --init-from: the base's characters the text lacks stay
    # the model (ModelConfig)
    cell: str | None = None
    embed: int | None = None
    hidden: int | None = None
    layers: int | None = None
    dropout: float | None = None
    weight_drop: float | None = None
    tie: bool | None = None
    impl: str | None = None
    softmax: str | None = None  # auto | full | adaptive (softmax.py): sets ModelConfig.cutoffs
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
    lexicon: str | None = None
    val_fraction: float | None = None
    seed: int | None = None
    processes: int | None = None  # not an option: how many processes torchrun started
    members: int | None = None
    decay: float | None = None
    # the corpus (CorpusOptions)
    encoding: str | None = None
    newline: str | None = None
    max_chars: int | None = None
    max_corpus_bytes: int | None = None
    # previews printed at each evaluation
    preview: tuple[str, ...] | None = None
    tensorboard: bool = False  # also write TensorBoard events (tensorboard.py)

    def __post_init__(self) -> None:
        # here, not where the value is used: --resume and --init-from would never read it
        if self.softmax is not None and self.softmax not in SOFTMAXES:
            raise UsageError(
                f"--softmax must be one of {', '.join(SOFTMAXES)}, not {self.softmax!r}"
            )

        if self.keep_base_chars and self.init_from in (None, NO_BASE):
            raise UsageError(
                "--keep-base-chars keeps a base's characters: it needs --init-from RUN|FILE|zh"
            )

    def fill(self, values: dict[str, Any]) -> TrainOptions:
        """These values for the options left out; options given always win."""
        return replace(self, **{k: v for k, v in values.items() if getattr(self, k) is None})


def apply_preset(opts: TrainOptions) -> TrainOptions:
    if not opts.preset:
        return opts
    if opts.preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, not {opts.preset!r}")
    return opts.fill(PRESETS[opts.preset])


def model_config_for(vocab_size: int, opts: TrainOptions) -> ModelConfig:
    if opts.bidirectional:
        raise UsageError(f"--bidirectional: {BIDIRECTIONAL_REASON}")
    given = {k: getattr(opts, k) for k in MODEL_FIELDS if getattr(opts, k) is not None}
    if given.get("embed") == 0 and "tie" not in given:
        given["tie"] = False  # one-hot input has no table to tie to
    return ModelConfig(vocab_size=vocab_size, **given)


def train_config_for(opts: TrainOptions, base: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from the options given, over `base` (the stored run on --resume)."""
    names = [f.name for f in fields(TrainConfig) if f.name != "eval_share"]
    changes = {k: getattr(opts, k) for k in names if getattr(opts, k) is not None}
    if opts.eval_every is not None or opts.eval_epochs is not None:
        changes["eval_share"] = 0.0  # a cadence given is kept, on a resume too
    elif base is None and changes.get("max_time"):
        changes["eval_share"] = EVAL_SHARE
    return replace(base, **changes) if base else TrainConfig(**changes)
