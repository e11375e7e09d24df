"""Every command-line option, declared once: an Annotated alias with its help text, reused
by each command that takes it. A command's parameters are these aliases; `charlm train`'s
parameters are named as TrainOptions' fields, so the mapping is derived (`train_options`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from charlm.config import ModelConfig, TrainConfig
from charlm.training.options import TrainOptions

MODEL_DEFAULTS = ModelConfig(vocab_size=2)
TRAIN_DEFAULTS = TrainConfig()


def _default(value: object) -> str:
    return f" (default: {value})"


def _opt(kind: Any, help: str, *names: str) -> Any:
    """An option of type `kind` (None allowed: "not given") with this help."""
    return Annotated[kind | None, typer.Option(*names, help=help)]


# ---- shared by several commands ---------------------------------------------------------------

CkptDir = Annotated[
    Path,
    typer.Option(
        "--checkpoint-dir", envvar="CHARLM_CHECKPOINT_DIR", help="Folder holding run folders."
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device", envvar="CHARLM_DEVICE", help="auto (cuda, mps, cpu), cpu, cuda or mps."
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but data and errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object a line on stdout.")]
Checkpoint = _opt(str, "A .pt file or a run name. Default: newest run's best.pt.")
Encoding = _opt(str, "Corpus encoding. (default: utf-8)")

RhymeTable = Annotated[
    str,
    typer.Option(help="十三辙 (the rhymes of song lyrics) or 中华新韵 (the 14 groups of 2005)."),
]

# ---- the model: train and info ----------------------------------------------------------------

Cell = _opt(str, f"rnn, gru or lstm.{_default(MODEL_DEFAULTS.cell)}")
Embed = _opt(int, "Embedding size; 0 = one-hot. (default: train sizes it from the corpus)")
Hidden = _opt(int, "Hidden units per layer. (default: train sizes it from the corpus)")
Layers = _opt(int, "Recurrent layers. (default: train sizes it from the corpus)")
Tie = _opt(
    bool,
    "Share the embedding table with the output layer. (default: when --embed > 0)",
    "--tie/--no-tie",
)
Impl = _opt(
    str,
    "torch, or scratch (charlm's own cells, hand-written BPTT)." + _default(MODEL_DEFAULTS.impl),
)

# ---- train ------------------------------------------------------------------------------------

D = TRAIN_DEFAULTS
TrainCorpus = _opt(str, "Zip, .txt, folder or - (stdin). Default: the bundled Tang/Song corpus.")
Run = _opt(str, "Run name (folder under --checkpoint-dir).")
Preset = _opt(str, "auto (the defaults, sized from the corpus) or d2l (the textbook).")
Resume = Annotated[bool, typer.Option("--resume", help="Continue --run (default: the newest run).")]
InitFrom = _opt(
    str,
    "Start from this network: a run, a .pt file, or zh (the shipped Chinese base; builtin:zh "
    "when a run of yours is named zh). Its architecture; its vocabulary plus the corpus's.",
)
Dropout = _opt(float, "Dropout. (default: auto from corpus size)")
NoBidirectional = Annotated[bool, typer.Option("--bidirectional", help="Refused: cannot generate.")]
Sampler = _opt(str, f"random or consecutive.{_default(D.sampler)}")
BatchSize = _opt(int, f"Windows per batch.{_default(D.batch_size)}")
SeqLen = _opt(int, f"Characters per window.{_default(D.seq_len)}")
Epochs = _opt(int, f"Passes over the training text.{_default(D.epochs)}")
MaxSteps = _opt(int, "Stop after this many steps (0 = off).")
MaxTime = _opt(float, "Stop after this many seconds, saving.")
Optimizer = _opt(str, f"sgd, adam or adamw.{_default(D.optimizer)}")
Lr = _opt(float, f"Learning rate.{_default(D.lr)}")
WeightDecay = _opt(float, "Weight decay. (default: auto from corpus size)")
Clip = _opt(float, f"Max global gradient norm; 0 = off.{_default(D.clip)}")
Warmup = _opt(int, f"LR warm-up steps.{_default(D.warmup)}")
EvalEvery = _opt(int, f"Steps between evaluations.{_default(D.eval_every)}")
EvalEpochs = _opt(int, "Evaluate every N epochs instead of --eval-every.")
EarlyStop = _opt(
    int,
    "Stop after this many evaluations without improvement (0 = never)." + _default(D.early_stop),
)
LrPatience = _opt(
    int,
    "Evaluations without improvement before the LR halves." + _default(D.lr_patience),
)
UnkProb = _opt(float, f"Chance a once-seen char trains <unk>.{_default(D.unk_prob)}")
TrainPrecision = _opt(
    str,
    "fp32, or bf16 (autocast the training forward pass). (default: bf16 where the "
    "hardware has it, else fp32)",
)
KnOrder = _opt(
    int, "Kneser-Ney n-gram order mixed with the network; 0 = off." + _default(D.kn_order)
)
MixFraction = _opt(
    float, "Training-text tail used to fit the mixture weight." + _default(D.mix_fraction)
)
ValFraction = _opt(float, f"Held-out tail fraction.{_default(D.val_fraction)}")
Newline = _opt(str, "keep, or space (the textbook).")
MaxChars = _opt(int, "Use only the first N characters.")
MaxCorpusBytes = _opt(int, "Refuse corpora larger than this.")
Preview = _opt(list[str], "Prefix to sample at each evaluation (repeatable).")
Members = _opt(
    int,
    "With --max-time: up to this many networks, one after another as the budget "
    "allows, averaged; 1 = one network." + _default(D.members),
)
Tensorboard = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write TensorBoard events to <run>/tensorboard (needs the package).",
    ),
]
TrainSeed = _opt(int, "Seed; chosen, printed and stored if absent.")

# TrainOptions fields that are no option (decided by the machine, not the user)
NOT_OPTIONS = frozenset({"processes"})


def train_options(values: dict[str, Any]) -> TrainOptions:
    """`charlm train`'s parsed parameters -> TrainOptions, by name: every TrainOptions field
    but NOT_OPTIONS is a parameter of the same name (tests/test_cli_options.py checks both
    ways); the other parameters (device, folders, output) are not training options."""
    given = {f.name: values[f.name] for f in fields(TrainOptions) if f.name not in NOT_OPTIONS}
    if given["preview"] is not None:
        given["preview"] = tuple(given["preview"]) or None
    return TrainOptions(**given)
