"""Frozen configuration dataclasses, validated with messages a user can act on.

ModelConfig must match a checkpoint's weights; TrainConfig may change on --resume;
SampleConfig describes one `generate` call. All are plain data: they go into checkpoints as
dicts of primitives (`dataclasses.asdict`), never pickled.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields

from charlm.errors import CheckpointError, UsageError

CELLS = ("rnn", "gru", "lstm")
SAMPLERS = ("random", "consecutive")
OPTIMIZERS = ("sgd", "adam", "adamw")
BIDIRECTIONAL_REASON = (
    "a bidirectional model reads the characters that come after each position, so it cannot "
    "generate text one character at a time; charlm refuses --bidirectional"
)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise UsageError(msg)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture. Must equal the one a checkpoint was saved with."""

    vocab_size: int
    cell: str = "lstm"
    embed: int = 128  # 0 = exact one-hot input, as in the textbook
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.6
    # DropConnect on the hidden-to-hidden weights while training (AWD-LSTM, Merity et al.
    # 2017): the recurrence itself is regularised, which dropout on its inputs leaves alone
    weight_drop: float = 0.0
    tie: bool = True  # output layer shares the embedding table (needs embed > 0)
    impl: str = "torch"  # "scratch": charlm's own cells with a hand-written backward
    # A two-level ("adaptive") softmax: ids below cutoffs[0] (the vocabulary is ordered by
    # count) are scored with one score per tail cluster [cutoffs[i], cutoffs[i+1]); training
    # scores a tail only for the rows whose target lies in it. () = one softmax over all.
    cutoffs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))  # a checkpoint's list
        _check(
            all(isinstance(c, int) for c in self.cutoffs)
            and list(self.cutoffs) == sorted(set(self.cutoffs))
            and all(1 <= c < self.vocab_size for c in self.cutoffs),
            "cutoffs must be increasing ids inside the vocabulary",
        )
        _check(self.cell in CELLS, f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        _check(self.vocab_size >= 2, "the vocabulary needs at least one character")
        _check(0 <= self.embed <= 65536, "--embed must be in [0, 65536] (0 = one-hot)")
        _check(1 <= self.hidden <= 65536, "--hidden must be in [1, 65536]")
        _check(1 <= self.layers <= 64, "--layers must be in [1, 64]")
        _check(0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)")
        _check(0.0 <= self.weight_drop < 1.0, "--weight-drop must be in [0, 1)")
        _check(
            self.weight_drop == 0 or self.impl == "torch",
            "--weight-drop needs --impl torch (the scratch cells keep their weights fused)",
        )
        _check(not (self.tie and self.embed == 0), "--tie needs an embedding (--embed > 0)")
        _check(
            self.impl in ("torch", "scratch"), f"--impl must be torch or scratch, not {self.impl!r}"
        )

    @property
    def input_size(self) -> int:
        return self.embed if self.embed > 0 else self.vocab_size

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return _from_dict(cls, d, "model_config")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Everything here may change on --resume (the change is logged)."""

    sampler: str = "random"
    batch_size: int = 32
    seq_len: int = 64
    epochs: int = 100  # an upper bound: early stopping usually ends small corpora sooner
    max_steps: int = 0  # 0 = no limit
    max_time: float = 0.0  # seconds for this invocation; 0 = no limit
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 1.0  # decoupled (AdamW); small corpora need a lot of it
    clip: float = 1.0  # max global gradient norm; 0 = off
    warmup: int = 50  # steps of linear LR warm-up
    lr_patience: int = 2  # scheduled evaluations without improvement before the LR halves
    early_stop: int = 6  # ... before training stops; 0 = never
    val_fraction: float = 0.1
    eval_every: int = 50  # steps
    # > 0 (--max-time runs that did not give --eval-every): the steps between evaluations
    # grow so that they take at most this share of the training time (optim.eval_interval)
    eval_share: float = 0.0
    unk_prob: float = 1.0  # chance a once-seen training character is shown as <unk>
    precision: str = "fp32"  # "bf16": autocast the training forward pass (CPU with bf16, CUDA)
    kn_order: int = 8  # Kneser-Ney n-gram mixed with the network; 0 = network alone
    mix_fraction: float = 0.05  # end of the training text kept apart to fit the mixture weight
    # a language's word list the count model leans on (scoring/lexicon.py): auto = the one
    # that writes most of the corpus's characters, if any; zh; none
    lexicon: str = "auto"
    seed: int = 0
    # processes training together (torchrun): each takes batch_size of the global batch
    processes: int = 1
    # networks trained one after another within --max-time, averaged (members.py); 1 = one
    members: int = 4
    # the last fraction of the run (--max-time, else the step limit) over which the learning
    # rate falls linearly to zero (optim.py); 0 = a constant rate to the end
    decay: float = 0.0

    @property
    def global_batch(self) -> int:
        """Rows per optimizer step over all processes: what the data position counts in."""
        return self.batch_size * self.processes

    def __post_init__(self) -> None:
        _check(
            self.sampler in SAMPLERS,
            f"--sampler must be random or consecutive, not {self.sampler!r}",
        )
        _check(
            self.optimizer in OPTIMIZERS,
            f"--optimizer must be sgd, adam or adamw, not {self.optimizer!r}",
        )
        _check(1 <= self.batch_size <= 1 << 16, "--batch-size must be in [1, 65536]")
        _check(1 <= self.seq_len <= 1 << 16, "--seq-len must be in [1, 65536]")
        _check(self.epochs >= 1, "--epochs must be >= 1")
        _check(self.max_steps >= 0, "--max-steps must be >= 0 (0 = no limit)")
        _check(self.max_time >= 0, "--max-time must be >= 0 seconds (0 = no limit)")
        _check(math.isfinite(self.lr) and self.lr > 0, "--lr must be a positive number")
        _check(self.weight_decay >= 0, "--weight-decay must be >= 0")
        _check(math.isfinite(self.clip) and self.clip >= 0, "--clip must be >= 0 (0 = off)")
        _check(self.warmup >= 0, "--warmup must be >= 0")
        _check(self.lr_patience >= 1, "--lr-patience must be >= 1")
        _check(self.early_stop >= 0, "--early-stop must be >= 0 (0 = never)")
        _check(0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)")
        _check(self.eval_every >= 1, "--eval-every must be >= 1")
        _check(0.0 <= self.eval_share < 1.0, "eval_share must be in [0, 1)")
        _check(0.0 <= self.unk_prob <= 1.0, "--unk-prob must be in [0, 1]")
        _check(0 <= self.seed < 2**63, "--seed must be in [0, 2**63)")
        _check(self.precision in ("fp32", "bf16"), "--precision must be fp32 or bf16")
        _check(0 <= self.kn_order <= 16, "--kn-order must be in [0, 16] (0 = no count model)")
        _check(0 < self.mix_fraction < 0.5, "--mix-fraction must be in (0, 0.5)")
        _check(self.lexicon in ("auto", "zh", "none"), "--lexicon must be auto, zh or none")
        _check(self.processes >= 1, "processes must be >= 1")
        _check(1 <= self.members <= 16, "--members must be in [1, 16]")
        _check(0.0 <= self.decay <= 1.0, "--decay must be in [0, 1] (0 = off)")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d, "train_config")


@dataclass(frozen=True)
class SampleConfig:
    """One `generate` call: how many characters and how to pick each."""

    length: int = 200
    temperature: float = 0.8  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    lines: int = 0  # stop once the text has this many lines; 0 = off
    num_samples: int = 1
    seed: int = 0
    precision: str = "fp32"  # bf16 / fp16: weights read at half the bytes per step (faster)
    acrostic: str = ""  # 藏头诗: line k starts with acrostic[k]; the text has that many lines
    max_copy: int = 0  # never copy more than this many training characters in a row; 0 = off
    form: str = ""  # line lengths "7,7,7/7,7,7" or a named form (generation/form/layout.py)
    rhyme: str = ""  # a scheme letter per line, X = free ("AABB")
    rhyme_with: str = ""  # the first letter's rhyme: a group name or a character
    rhyme_table: str = "十三辙"  # or 中华新韵
    template: str = ""  # a song whose shape to give the new one (its text)
    repeat_chorus: bool = False  # with a template: a repeated line comes back repeated
    lookahead: bool = True  # weigh the slot before a rhyme by the rhymes that can follow
    loop_guard: bool = True  # no character 4 times in a row, no phrase looping in a line
    line_candidates: int = 0  # with a form: best of N lines (0 = the default: 2, 1 named)

    def __post_init__(self) -> None:
        _check(0 <= self.length <= 10_000_000, "--length must be in [0, 10000000]")
        _check("\n" not in self.acrostic, "--acrostic takes one character per line, no breaks")
        _check(self.max_copy == 0 or 2 <= self.max_copy <= 64, "--max-copy must be 0 or 2-64")
        _check(
            math.isfinite(self.temperature) and 0 <= self.temperature <= 100,
            "--temperature must be in [0, 100] (0 = greedy)",
        )
        _check(self.top_k >= 0, "--top-k must be >= 0 (0 = off)")
        _check(0 < self.top_p <= 1, "--top-p must be in (0, 1] (1 = off)")
        _check(self.lines >= 0, "--lines must be >= 0 (0 = off)")
        _check(1 <= self.num_samples <= 4096, "--num-samples must be in [1, 4096]")
        _check(0 <= self.line_candidates <= 16, "--line-candidates must be in [0, 16]")
        _check(0 <= self.seed < 2**63, "--seed must be in [0, 2**63)")
        _check(self.precision in ("fp32", "bf16", "fp16"), "--precision must be fp32, bf16 or fp16")
        _check(
            self.rhyme_table in ("十三辙", "中华新韵"), "--rhyme-table must be 十三辙 or 中华新韵"
        )
        _check(not (self.form and self.template), "--form and --template: choose one")
        _check(not (self.rhyme and self.template), "--rhyme and --template: the template rhymes")
        _check(
            not self.rhyme_with or bool(self.rhyme or self.template),
            "--rhyme-with needs --rhyme (or --template)",
        )
        _check(not self.repeat_chorus or bool(self.template), "--repeat-chorus needs --template")

    @property
    def has_form(self) -> bool:
        return bool(self.form or self.template)

    @property
    def free_lines(self) -> bool:
        """--rhyme alone: lines of the model's own length, rhymed (generation/form/free_lines)."""
        return bool(self.rhyme) and not self.has_form


def _from_dict(cls, d: dict, what: str):
    if not isinstance(d, dict):
        raise CheckpointError(f"{what} is not a mapping")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING}
    missing = sorted(required - d.keys())
    if missing:
        raise CheckpointError(f"{what} lacks {', '.join(missing)}")
    try:
        return cls(**{k: v for k, v in d.items() if k in known})
    except (UsageError, TypeError) as e:
        raise CheckpointError(f"{what} is invalid: {e}") from None
