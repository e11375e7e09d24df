"""Every command-line option, declared once: an Annotated alias with its help text, reused
by each command that takes it. A command's parameters are these aliases; `charlm train`'s
parameters are named as TrainOptions' fields, so the mapping is derived (`train_options`)."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from charlm.config import ModelConfig, TrainConfig
from charlm.generation import request
from charlm.training.options import TrainOptions

MODEL_DEFAULTS = ModelConfig(vocab_size=2)
TRAIN_DEFAULTS = TrainConfig()


def _default(value: object) -> str:
    return f"  [default: {value}]"  # click's own style, so every default reads alike


def _opt(
    kind: Any, help: str, *names: str, choices: tuple[str, ...] = (), metavar: str | None = None
) -> Any:
    """An option of type `kind` (None allowed: "not given") with this help; with `choices`,
    --help lists them ([a|b|c]) and the shell completes them (the command checks the value)."""
    if not choices:
        return Annotated[kind | None, typer.Option(*names, help=help, metavar=metavar)]
    return Annotated[
        kind | None,
        typer.Option(*names, help=help, metavar=f"[{'|'.join(choices)}]",
                     autocompletion=complete_from(choices)),
    ]  # fmt: skip


def complete_from(choices: tuple[str, ...]):
    def complete(incomplete: str) -> list[str]:
        return [c for c in choices if c.startswith(incomplete)]

    return complete


def complete_run(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run names under --checkpoint-dir (as typed so far, else its default), for the shell."""
    folder = Path(ctx.params.get("checkpoint_dir") or os.environ.get(CKPT_ENV) or "checkpoints")
    try:
        runs = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        runs = []
    return [r for r in runs if r.startswith(incomplete)]


# --help shows each command's options in these titled groups, in this order (app.GroupedCommand);
# tests/cli/test_options.py checks that every option of these commands has a group.
OUTPUT = ("Output", ("quiet", "json_out", "help"))
HELP_GROUPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "train": (
        ("Corpus", ("corpus", "encoding", "newline", "max_chars", "max_corpus_bytes",
                    "val_fraction")),
        ("Run", ("run", "resume", "init_from", "keep_base_chars", "preset", "seed",
                 "checkpoint_dir", "device", "dry_run")),
        ("Budget and stopping", ("max_time", "epochs", "max_steps", "early_stop", "lr_patience")),
        ("Model", ("cell", "hidden", "layers", "embed", "tie", "softmax", "dropout",
                   "weight_drop", "impl", "members", "bidirectional")),
        ("Optimisation", ("optimizer", "lr", "decay", "weight_decay", "warmup", "clip",
                          "batch_size", "seq_len", "sampler", "unk_prob", "precision")),
        ("Evaluation and count model", ("eval_every", "eval_epochs", "kn_order", "mix_fraction",
                                        "lexicon", "preview", "tensorboard")),
        OUTPUT,
    ),
    "generate": (
        ("Model", ("checkpoint", "checkpoint_dir", "device", "precision", "adapt")),
        ("Start and length", ("prefix", "skip_unknown", "length", "lines", "num_samples",
                              "separator")),
        ("Sampling", ("temperature", "top_k", "top_p", "seed")),
        ("Lyric form", ("form", "rhyme", "rhyme_with", "rhyme_table", "template",
                        "repeat_chorus", "acrostic", "line_candidates", "loop_guard",
                        "list_forms")),
        ("Originality", ("max_copy", "report_novelty")),
        OUTPUT,
    ),
    "evaluate": (
        ("Model", ("checkpoint", "checkpoint_dir", "device")),
        ("Text", ("corpus", "split", "encoding")),
        ("Measures", ("baseline", "adapt")),
        OUTPUT,
    ),
    "info": (
        ("A checkpoint", ("checkpoint", "checkpoint_dir")),
        ("Or a model from options", ("vocab_size", "cell", "hidden", "layers", "embed", "tie",
                                     "impl", "bidirectional")),
        ("Tensor shapes", ("batch_size", "seq_len")),
        ("Output", ("json_out", "help")),
    ),
}  # fmt: skip


# ---- shared by several commands ---------------------------------------------------------------

CKPT_ENV = "CHARLM_CHECKPOINT_DIR"
CkptDir = Annotated[
    Path,
    typer.Option("--checkpoint-dir", envvar=CKPT_ENV, help="Folder holding run folders."),
]
Device = Annotated[
    str,
    typer.Option(
        "--device", envvar="CHARLM_DEVICE", help="auto: cuda, then mps, then cpu.",
        metavar="[auto|cpu|cuda|mps]", autocompletion=complete_from(("auto", "cpu", "cuda", "mps")),
    ),
]  # fmt: skip
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but data and errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object a line on stdout.")]
Checkpoint = Annotated[
    str | None,
    typer.Option(
        help="A .pt file, a run name, or zh (the shipped base).  [default: the newest run's "
        "best.pt]",
        autocompletion=complete_run,
    ),
]
Encoding = _opt(str, "Corpus encoding.  [default: utf-8]", metavar="CODEC")

# ---- generate: each option is a GenerationRequest field, help and choices declared there -------


def request_option(name: str, kind: Any) -> Any:
    """`charlm generate`'s option for GenerationRequest's field `name` (its help, flag and
    choices read from the field; tests/cli/test_options.py checks every field has one)."""
    meta = request.meta_of(name)
    names = (meta["flag"],) if "flag" in meta else ()
    choices = meta["choices"]
    extra: dict[str, Any] = {}
    if choices:
        extra = {"metavar": f"[{'|'.join(choices)}]", "autocompletion": complete_from(choices)}
    elif "metavar" in meta:
        extra = {"metavar": meta["metavar"]}
    return Annotated[kind, typer.Option(*names, help=request.help_of(name), **extra)]


Prefix = request_option("prefix", str | None)
Length = request_option("length", int | None)
Temperature = request_option("temperature", float)
TopK = request_option("top_k", int)
TopP = request_option("top_p", float)
Seed = request_option("seed", int | None)
NumSamples = request_option("num_samples", int)
Lines = request_option("lines", int)
SamplePrecision = request_option("precision", str)
SkipUnknown = request_option("skip_unknown", bool)
Acrostic = request_option("acrostic", str)
MaxCopy = request_option("max_copy", int | None)
ReportNovelty = request_option("report_novelty", bool)
Adapt = request_option("adapt", bool | None)
Form = request_option("form", str)
Rhyme = request_option("rhyme", str)
RhymeWith = request_option("rhyme_with", str)
RhymeTable = request_option("rhyme_table", str)
Template = request_option("template", str | None)
RepeatChorus = request_option("repeat_chorus", bool)
LineCandidates = request_option("line_candidates", int)
LoopGuard = request_option("loop_guard", bool)
Separator = Annotated[
    str, typer.Option(help='The line written between samples ("" for a blank one).')
]
ListForms = Annotated[
    bool, typer.Option("--list-forms", help="Print the named forms (lengths, rhymes, tones), exit.")
]

# ---- the model: train and info ----------------------------------------------------------------

Cell = _opt(str, f"The recurrent cell.{_default(MODEL_DEFAULTS.cell)}",
            choices=("rnn", "gru", "lstm"))  # fmt: skip
Embed = _opt(int, "Embedding size; 0 = one-hot.  [default: sized from the corpus]")
Hidden = _opt(int, "Hidden units per layer.  [default: sized from the corpus]")
Layers = _opt(int, "Recurrent layers.  [default: sized from the corpus]")
Tie = _opt(
    bool,
    "Share the embedding table with the output layer.  [default: when --embed > 0]",
    "--tie/--no-tie",
)
Softmax = _opt(
    str,
    "Output layer: full (one softmax), adaptive (two levels: frequent characters, then "
    "clusters of rare ones; fewer scores a character), auto (adaptive for 1,000+ characters "
    "where it scores 2x fewer, when --max-time finds the model short of compute).  "
    "[default: auto]",
    choices=("auto", "full", "adaptive"),
)
Impl = _opt(
    str,
    "torch, or scratch (charlm's own cells, hand-written BPTT)." + _default(MODEL_DEFAULTS.impl),
    choices=("torch", "scratch"),
)

# ---- train ------------------------------------------------------------------------------------

D = TRAIN_DEFAULTS
TrainCorpus = _opt(
    str, "Zip, .txt, folder or - (stdin).  [default: the bundled Tang/Song corpus]", metavar="PATH"
)
Run = Annotated[
    str | None,
    typer.Option(help="Run name (folder under --checkpoint-dir).", autocompletion=complete_run),
]
Preset = _opt(str, "auto (the defaults, sized from the corpus) or d2l (the textbook).",
              choices=("auto", "d2l"))  # fmt: skip
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue --run.  [default: the newest run]")
]
InitFrom = _opt(
    str,
    "Start from this network: a run, a .pt file, zh (the shipped Chinese base; builtin:zh "
    "when a run of yours is named zh), or none (from scratch). Its architecture, on the "
    "corpus's characters.  [default: zh for a Chinese text the --max-time budget reads 20+ "
    "times over, else none]",
    metavar="RUN|FILE|zh|none",
)
KeepBaseChars = Annotated[
    bool,
    typer.Option(
        "--keep-base-chars",
        help="With a base: keep its characters the corpus never uses (a prompt may use them; "
        "held-out text then scores each as itself, not as the unknown symbol).",
    ),
]
Dropout = _opt(float, "Dropout.  [default: from the corpus size]")
WeightDrop = _opt(
    float, "DropConnect on the recurrent (hidden-to-hidden) weights while training.  [default: 0]"
)
NoBidirectional = Annotated[bool, typer.Option("--bidirectional", help="Refused: cannot generate.")]
Sampler = _opt(str, f"Random windows, or consecutive streams (state carried).{_default(D.sampler)}",
                choices=("random", "consecutive"))  # fmt: skip
BatchSize = _opt(int, f"Windows per batch.{_default(D.batch_size)}")
SeqLen = _opt(int, f"Characters per window.{_default(D.seq_len)}")
Epochs = _opt(int, f"Passes over the training text.{_default(D.epochs)}")
MaxSteps = _opt(int, "Stop after this many steps (0 = off).")
MaxTime = _opt(
    float,
    "A deadline in seconds for the whole command, the last evaluation and save included; "
    "the model is sized to it.",
)
Optimizer = _opt(str, f"The optimizer.{_default(D.optimizer)}", choices=("sgd", "adam", "adamw"))
Lr = _opt(float, f"Learning rate.{_default(D.lr)}")
WeightDecay = _opt(float, "Weight decay.  [default: from the corpus size]")
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
    "fp32, or bf16 (autocast the training forward pass).  [default: bf16 where the "
    "hardware has it, else fp32]",
    choices=("fp32", "bf16"),
)
KnOrder = _opt(
    int,
    "Kneser-Ney n-gram order mixed with the network; 0 = off."
    + _default("8, or 12 or 16 where the tune slice scores them better"),
)
MixFraction = _opt(
    float, "Training-text tail used to fit the mixture weight." + _default(D.mix_fraction)
)
Lexicon = _opt(
    str,
    "A language's word list the count model leans on (zh: jieba's 349k Chinese words); auto: "
    "the one that writes half the corpus's characters, if any." + _default(D.lexicon),
    choices=("auto", "zh", "none"),
)
ValFraction = _opt(float, f"Held-out tail fraction.{_default(D.val_fraction)}")
Newline = _opt(str, "Keep line breaks, or read them as spaces (the textbook).  [default: keep]",
                choices=("keep", "space"))  # fmt: skip
MaxChars = _opt(int, "Use only the first N characters.")
MaxCorpusBytes = _opt(int, "Refuse corpora larger than this.")
Preview = Annotated[
    list[str] | None,
    typer.Option(help="Prefix to sample at each evaluation (repeatable).", metavar="PREFIX"),
]
Members = _opt(
    int,
    "With --max-time: up to this many networks, one after another as the budget "
    "allows, averaged; 1 = one network.  [default: 4; 8 when the model reads its text 20 "
    "times over in the budget]",
)
Decay = _opt(
    float,
    "Fraction of the run (of --max-time, else of the step limit) at its end over which the "
    "learning rate falls linearly to zero; 0 = constant to the end.  [default: 0.5 with "
    "--max-time (0 when the model reads its text 20 times over in it), else 0]",
)
Tensorboard = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write TensorBoard events to <run>/tensorboard (needs the package).",
    ),
]
TrainSeed = _opt(int, "Seed; chosen, printed and stored if absent.")
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan (corpus, sizes, budget, base, regularisation, and why) and exit: "
        "nothing trains, no run folder is made (--json: the plan on stdout).",
    ),
]

# TrainOptions fields that are no option (decided by the machine, not the user)
NOT_OPTIONS = frozenset({"processes"})
# train's parameters that are no training option: where and how to run, what to print
TRAIN_SHELL = frozenset({"device", "checkpoint_dir", "quiet", "json_out", "dry_run"})


def train_options(values: dict[str, Any]) -> TrainOptions:
    """`charlm train`'s parsed parameters -> TrainOptions, by name: every TrainOptions field
    but NOT_OPTIONS is a parameter of the same name (tests/test_cli_options.py checks both
    ways); the other parameters (device, folders, output) are not training options."""
    given = {f.name: values[f.name] for f in fields(TrainOptions) if f.name not in NOT_OPTIONS}
    if given["preview"] is not None:
        given["preview"] = tuple(given["preview"]) or None
    return TrainOptions(**given)
