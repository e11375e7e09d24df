"""The `charlm` command line: options -> configs -> library -> stdout (data) / stderr (chatter).

torch-using modules are imported inside the commands so that `charlm --help` stays fast.
Every CharlmError becomes one line on stderr and its exit code (see `_guard`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from charlm.config import ModelConfig, TrainConfig
from charlm.errors import EXIT_UNEXPECTED, CharlmError, UsageError
from charlm.version import __version__

app = typer.Typer(
    name="charlm",
    help="Character-level lyrics language models: train, generate, evaluate.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help and errors: faster to start (no Rich import for --help), and usage
    # errors stay one line in scripts.
    rich_markup_mode=None,
)

MODEL_DEFAULTS = ModelConfig(vocab_size=2)
TRAIN_DEFAULTS = TrainConfig()


def _default(value: object) -> str:
    return f" (default: {value})"


# Model options, shared by `train` and `info` (one declaration, one help text each).
Cell = Annotated[str | None, typer.Option(help=f"rnn, gru or lstm.{_default(MODEL_DEFAULTS.cell)}")]
Embed = Annotated[
    int | None,
    typer.Option(help="Embedding size; 0 = one-hot. (default: train sizes it from the corpus)"),
]
Hidden = Annotated[
    int | None,
    typer.Option(help="Hidden units per layer. (default: train sizes it from the corpus)"),
]
Layers = Annotated[
    int | None, typer.Option(help="Recurrent layers. (default: train sizes it from the corpus)")
]
Tie = Annotated[
    bool | None,
    typer.Option(
        "--tie/--no-tie",
        help="Share the embedding table with the output layer. (default: when --embed > 0)",
    ),
]
Impl = Annotated[
    str | None,
    typer.Option(
        help="torch, or scratch (charlm's own cells, hand-written BPTT)."
        + _default(MODEL_DEFAULTS.impl)
    ),
]


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


def _err(msg: str) -> None:
    print(f"charlm: {msg}", file=sys.stderr, flush=True)


def _guard(fn):
    """Turn library errors into one line and an exit code; CHARLM_DEBUG=1 shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CharlmError as e:
            if os.environ.get("CHARLM_DEBUG"):
                traceback.print_exc()
            if not getattr(e, "quiet", False):  # said once already (by rank 0 of torchrun)
                _err(f"error: {e}")
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as e:
            if os.environ.get("CHARLM_DEBUG"):
                raise
            _err(
                f"unexpected error: {type(e).__name__}: {e} (rerun with CHARLM_DEBUG=1 for details)"
            )
            raise typer.Exit(EXIT_UNEXPECTED) from None

    return wrapper


def _quiet_broken_pipe() -> None:
    # The reader went away (`| head`): point stdout at /dev/null so the interpreter's final
    # flush does not raise again on the way out.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _console(quiet: bool):
    from rich.console import Console

    # soft_wrap: log lines keep their length in a pipe or a narrow terminal instead of folding.
    return Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"charlm {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Character-level lyrics language models: train, generate, evaluate.

    Example: charlm train --corpus lyrics.zip --max-time 300 && charlm generate --prefix 分开
    """


# --------------------------------------------------------------------------------------------
# train


@app.command()
@_guard
def train(
    corpus: Annotated[
        str | None,
        typer.Option(help="Zip, .txt, folder or - (stdin). Default: the bundled Tang/Song corpus."),
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="Run name (folder under --checkpoint-dir).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="auto (the defaults, sized from the corpus) or d2l (the textbook)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue --run (default: the newest run).")
    ] = False,
    cell: Cell = None,
    embed: Embed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    dropout: Annotated[
        float | None, typer.Option(help="Dropout. (default: auto from corpus size)")
    ] = None,
    tie: Tie = None,
    impl: Impl = None,
    bidirectional: Annotated[
        bool, typer.Option("--bidirectional", help="Refused: cannot generate.")
    ] = False,
    sampler: Annotated[
        str | None, typer.Option(help=f"random or consecutive.{_default(TRAIN_DEFAULTS.sampler)}")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Windows per batch.{_default(TRAIN_DEFAULTS.batch_size)}")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option(help=f"Characters per window.{_default(TRAIN_DEFAULTS.seq_len)}")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help=f"Passes over the training text.{_default(TRAIN_DEFAULTS.epochs)}"),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (0 = off).")
    ] = None,
    max_time: Annotated[
        float | None, typer.Option(help="Stop after this many seconds, saving.")
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(help=f"sgd, adam or adamw.{_default(TRAIN_DEFAULTS.optimizer)}")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help=f"Learning rate.{_default(TRAIN_DEFAULTS.lr)}")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Weight decay. (default: auto from corpus size)")
    ] = None,
    clip: Annotated[
        float | None,
        typer.Option(help=f"Max global gradient norm; 0 = off.{_default(TRAIN_DEFAULTS.clip)}"),
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(help=f"LR warm-up steps.{_default(TRAIN_DEFAULTS.warmup)}")
    ] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(help=f"Steps between evaluations.{_default(TRAIN_DEFAULTS.eval_every)}"),
    ] = None,
    eval_epochs: Annotated[
        int | None, typer.Option(help="Evaluate every N epochs instead of --eval-every.")
    ] = None,
    early_stop: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many evaluations without improvement (0 = never)."
            + _default(TRAIN_DEFAULTS.early_stop)
        ),
    ] = None,
    lr_patience: Annotated[
        int | None,
        typer.Option(
            help="Evaluations without improvement before the LR halves."
            + _default(TRAIN_DEFAULTS.lr_patience)
        ),
    ] = None,
    unk_prob: Annotated[
        float | None,
        typer.Option(
            help=f"Chance a once-seen char trains <unk>.{_default(TRAIN_DEFAULTS.unk_prob)}"
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32, or bf16 (autocast the training forward pass). (default: bf16 where the "
            "hardware has it, else fp32)"
        ),
    ] = None,
    kn_order: Annotated[
        int | None,
        typer.Option(
            help="Kneser-Ney n-gram order mixed with the network; 0 = off."
            + _default(TRAIN_DEFAULTS.kn_order)
        ),
    ] = None,
    mix_fraction: Annotated[
        float | None,
        typer.Option(
            help="Training-text tail used to fit the mixture weight."
            + _default(TRAIN_DEFAULTS.mix_fraction)
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(help=f"Held-out tail fraction.{_default(TRAIN_DEFAULTS.val_fraction)}"),
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="Corpus encoding. (default: utf-8)")] = None,
    newline: Annotated[str | None, typer.Option(help="keep, or space (the textbook).")] = None,
    max_chars: Annotated[int | None, typer.Option(help="Use only the first N characters.")] = None,
    max_corpus_bytes: Annotated[
        int | None, typer.Option(help="Refuse corpora larger than this.")
    ] = None,
    preview: Annotated[
        list[str] | None, typer.Option(help="Prefix to sample at each evaluation (repeatable).")
    ] = None,
    members: Annotated[
        int | None,
        typer.Option(
            help="With --max-time: up to this many networks, one after another as the budget "
            "allows, averaged; 1 = one network." + _default(TRAIN_DEFAULTS.members)
        ),
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also write TensorBoard events to <run>/tensorboard (needs the package).",
        ),
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Seed; chosen, printed and stored if absent.")
    ] = None,
    device: Device = "auto",
    checkpoint_dir: CkptDir = Path("checkpoints"),
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """Train a model on a corpus; writes CHECKPOINT_DIR/RUN/{best,last}.pt and metrics.jsonl.

    \b
    Examples:
      charlm train --max-time 180
      charlm train --corpus jaychou_lyrics.txt.zip --run jay --cell gru --max-time 300
      charlm train --run jay --resume --epochs 80
      charlm train --run jay --tensorboard
      torchrun --nproc-per-node 2 -m charlm -- train --run big --corpus big.txt
    """
    started = time.monotonic()  # --max-time is the wall time of the whole command
    from charlm.cli.commands import run_train
    from charlm.training.options import TrainOptions

    opts = TrainOptions(
        corpus=corpus, run=run, preset=preset, resume=resume,
        cell=cell, embed=embed, hidden=hidden, layers=layers, dropout=dropout, tie=tie,
        impl=impl, bidirectional=bidirectional,
        sampler=sampler, batch_size=batch_size, seq_len=seq_len, epochs=epochs,
        max_steps=max_steps, max_time=max_time, optimizer=optimizer, lr=lr,
        weight_decay=weight_decay, clip=clip, warmup=warmup, eval_every=eval_every,
        eval_epochs=eval_epochs, early_stop=early_stop, lr_patience=lr_patience,
        unk_prob=unk_prob, precision=precision, kn_order=kn_order, mix_fraction=mix_fraction,
        val_fraction=val_fraction, seed=seed,
        encoding=encoding, newline=newline, max_chars=max_chars,
        max_corpus_bytes=max_corpus_bytes, preview=tuple(preview) if preview else None,
        tensorboard=tensorboard, members=members,
    )  # fmt: skip
    summary = run_train(opts, device, checkpoint_dir, _console(quiet), quiet, started_at=started)
    if json_out and summary is not None:  # None: not rank 0 of a torchrun run
        print(json.dumps(summary, ensure_ascii=False), flush=True)


# --------------------------------------------------------------------------------------------
# generate


@app.command()
@_guard
def generate(
    checkpoint: Annotated[
        str | None, typer.Option(help="A .pt file or a run name. Default: newest run's best.pt.")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Text to continue; - reads it from stdin. Default: 分开.")
    ] = None,
    length: Annotated[int, typer.Option(help="Characters to generate after the prefix.")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = wilder.")] = 0.8,
    top_k: Annotated[int, typer.Option(help="Sample from the k likeliest (0 = off).")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass in (0, 1] (1 = off).")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Same seed -> same text.")] = None,
    num_samples: Annotated[int, typer.Option(help="Samples, generated as one batch.")] = 1,
    lines: Annotated[int, typer.Option(help="Stop once the text has N lines (0 = off).")] = 0,
    precision: Annotated[
        str,
        typer.Option(help="fp32, or bf16 / fp16: faster steps, logits differ in the 3rd decimal."),
    ] = "fp32",
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop prefix characters the model never saw.")
    ] = False,
    acrostic: Annotated[
        str,
        typer.Option(
            help="藏头诗: start line k with the k-th of these characters (one line each)."
        ),
    ] = "",
    max_copy: Annotated[
        int,
        typer.Option(help="Never copy more than N training characters in a row (0 = off)."),
    ] = 0,
    report_novelty: Annotated[
        bool,
        typer.Option(
            "--report-novelty",
            help="Per sample: share of its 4/8/16-grams found in the training text, longest "
            "copy (stderr; in --json as novelty).",
        ),
    ] = False,
    adapt: Annotated[
        bool | None,
        typer.Option(
            "--adapt/--no-adapt",
            help="Let the song return to its own lines (a cache of what it has written; "
            "loops are capped). Default: on when the checkpoint has it.",
        ),
    ] = None,
    device: Device = "auto",
    checkpoint_dir: CkptDir = Path("checkpoints"),
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """Write new lyrics to stdout, beginning with the prefix, as they are generated.

    \b
    Examples:
      charlm generate --prefix 分开 --seed 1
      charlm generate --checkpoint jay --num-samples 3 --lines 4 --json
      echo 不分开 | charlm generate --prefix - --temperature 0
      charlm generate --acrostic 春夏秋冬 --seed 2
      charlm generate --max-copy 8 --report-novelty
    """
    _leave_fast()
    from charlm.cli.commands import run_generate
    from charlm.config import SampleConfig

    seed_given = seed is not None
    if seed is None:
        from charlm.system.runtime import new_seed

        seed = new_seed()
    cfg = SampleConfig(
        length=length,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        lines=lines or len(acrostic),
        num_samples=num_samples,
        seed=seed,
        precision=precision,
        acrostic=acrostic,
        max_copy=max_copy,
    )
    if prefix == "-":
        prefix = sys.stdin.read().rstrip("\n")
    run_generate(
        cfg=cfg,
        spec=checkpoint,
        prefix=prefix,
        skip_unknown=skip_unknown,
        adapt=adapt,
        report_novelty=report_novelty,
        device_name=device,
        ckdir=checkpoint_dir,
        json_out=json_out,
        seed_given=seed_given,
        console=_console(quiet),
    )


# --------------------------------------------------------------------------------------------
# evaluate


@app.command()
@_guard
def evaluate(
    checkpoint: Annotated[
        str | None, typer.Option(help="A .pt file or a run name. Default: newest run's best.pt.")
    ] = None,
    corpus: Annotated[
        str | None, typer.Option(help="Text to score. Default: the run's own corpus.")
    ] = None,
    split: Annotated[str, typer.Option(help="val, train or all.")] = "val",
    baseline: Annotated[
        str | None,
        typer.Option(help="kn: also score a Kneser-Ney 8-gram built on the same training text."),
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="Corpus encoding. (default: utf-8)")] = None,
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="Also score with the model adapted to the text read so far (song cache), "
            "beside the static numbers.",
        ),
    ] = False,
    device: Device = "auto",
    checkpoint_dir: CkptDir = Path("checkpoints"),
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """Score a checkpoint on text: loss, perplexity, bits per character.

    Prints the perplexity on stdout (a table on stderr), or with --json:
    {"loss", "perplexity", "bits_per_char", "chars", "unknown_chars", ...}; with --adapt,
    stdout has the adapted perplexity second and the JSON an "adapted" object.

    \b
    Examples:
      charlm evaluate
      charlm evaluate --adapt --json
      charlm evaluate --checkpoint jay --split all --corpus other_lyrics.txt --json
    """
    _leave_fast()
    from charlm.cli.commands import run_evaluate

    if split not in ("val", "train", "all"):
        raise UsageError(f"--split must be val, train or all, not {split!r}")
    if baseline not in (None, "kn"):
        raise UsageError(f"--baseline must be kn, not {baseline!r}")
    result = run_evaluate(
        spec=checkpoint,
        corpus_src=corpus,
        which=split,
        baseline=baseline == "kn",
        adapt=adapt,
        encoding=encoding,
        device_name=device,
        ckdir=checkpoint_dir,
        console=_console(quiet),
    )
    if json_out:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    elif adapt:
        print(f"{result['perplexity']:.4f}\t{result['adapted']['perplexity']:.4f}", flush=True)
    else:
        print(f"{result['perplexity']:.4f}", flush=True)


# --------------------------------------------------------------------------------------------
# info


@app.command()
@_guard
def info(
    checkpoint: Annotated[
        str | None, typer.Option(help="Describe this .pt file or run (else the options below).")
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size without a checkpoint.")] = 2614,
    cell: Cell = None,
    embed: Embed = None,
    hidden: Hidden = None,
    layers: Layers = None,
    tie: Tie = None,
    impl: Impl = None,
    bidirectional: Annotated[
        bool, typer.Option("--bidirectional", help="Show the shapes torch would give.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Batch for the tensor shapes.")] = 32,
    seq_len: Annotated[int, typer.Option(help="Sequence length for the tensor shapes.")] = 35,
    checkpoint_dir: CkptDir = Path("checkpoints"),
    json_out: Json = False,
) -> None:
    """Show a model's weight shapes, parameter counts and tensor shapes (batch-first).

    \b
    Examples:
      charlm info --checkpoint jay
      charlm info --cell lstm --layers 2 --hidden 512 --vocab-size 2614 --json
      charlm info --cell gru --layers 2 --bidirectional
    """
    _leave_fast()
    from charlm.models.shapes import describe, render
    from charlm.store import checkpoint as ckpt

    networks = 1
    if checkpoint:
        path = ckpt.resolve(checkpoint, checkpoint_dir, "best")
        payload = ckpt.load(path)
        cfg = ModelConfig.from_dict(payload["model_config"])
        networks += len(payload.get("members") or [])
    else:
        d = MODEL_DEFAULTS
        embed = d.embed if embed is None else embed
        cfg = ModelConfig(
            vocab_size=vocab_size, cell=cell or d.cell, embed=embed, hidden=hidden or d.hidden,
            layers=layers or d.layers, tie=embed > 0 if tie is None else tie, dropout=0.0,
            impl=impl or d.impl,
        )  # fmt: skip
    if not (1 <= batch_size <= 1 << 16 and 1 <= seq_len <= 1 << 16):
        raise UsageError("--batch-size and --seq-len must be in [1, 65536]")
    shapes = {**describe(cfg, batch_size, seq_len, bidirectional), "networks": networks}
    print(json.dumps(shapes, ensure_ascii=False) if json_out else render(shapes), flush=True)


# --------------------------------------------------------------------------------------------
# runs

runs_app = typer.Typer(
    help="List the runs under the checkpoint folder; `runs rm NAME` deletes one.",
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
@_guard
def runs(
    ctx: typer.Context,
    sort: Annotated[
        str,
        typer.Option(help="name, corpus, model, steps, best_ppl, trained_s, updated or size_mb."),
    ] = "updated",
    checkpoint_dir: CkptDir = Path("checkpoints"),
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """A table of the runs (on stderr); their names on stdout, or JSON lines with --json.

    \b
    Examples:
      charlm runs
      charlm runs --sort best_ppl --json
      charlm runs rm old-run --yes
    """
    if ctx.invoked_subcommand:
        return
    from charlm.store.listing import list_runs, render

    rows = list_runs(Path(checkpoint_dir), sort)
    render(_console(quiet), rows, Path(checkpoint_dir))
    for r in rows:
        print(json.dumps(r.as_dict(), ensure_ascii=False) if json_out else r.name, flush=True)


@runs_app.command("rm")
@_guard
def runs_rm(
    name: Annotated[
        str, typer.Argument(help="The run to delete (a folder under --checkpoint-dir).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    checkpoint_dir: CkptDir = Path("checkpoints"),
    quiet: Quiet = False,
) -> None:
    """Delete one run folder and everything in it (asks first unless --yes).

    \b
    Example:
      charlm runs rm old-run --yes
    """
    from charlm.store.listing import remove, run_row

    folder = Path(checkpoint_dir) / name
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{folder}: not deleted; pass --yes to delete without asking")
        row = run_row(folder) if folder.is_dir() else None
        size = f" ({row.size_mb:,.1f} MB)" if row else ""
        if not typer.confirm(f"delete run {folder}{size}?", err=True):
            raise typer.Exit(1)
    row = remove(Path(checkpoint_dir), name)
    _console(quiet).print(f"deleted {folder} ({row.size_mb:,.1f} MB)")


# --------------------------------------------------------------------------------------------
# plot


@app.command()
@_guard
def plot(
    runs: Annotated[list[str], typer.Argument(help="Run names (or run folders) to overlay.")],
    out: Annotated[Path, typer.Option(help="The PNG to write.")] = Path("charlm-plot.png"),
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Draw held-out perplexity in the terminal instead.")
    ] = False,
    checkpoint_dir: CkptDir = Path("checkpoints"),
) -> None:
    """Plot train and held-out perplexity against step and against time (PNG, or --terminal).

    Needs the plot extra: pip install 'charlm-lyrics[plot]'. Prints the PNG's path on stdout.

    \b
    Examples:
      charlm plot jay tang --out curves.png
      charlm plot jay --terminal
    """
    from charlm.cli.plot import load_series, terminal_chart, write_png

    dirs = [Path(r) if Path(r).is_dir() else Path(checkpoint_dir) / r for r in runs]
    series = load_series(dirs)
    if terminal:
        print(terminal_chart(series), file=sys.stderr, flush=True)
        return
    print(write_png(series, out), flush=True)


def _sigterm(signum: int, _frame: object) -> None:
    # Outside the training loop (which saves first), SIGTERM unwinds like Ctrl-C: cleanup
    # handlers run, the lock is released, and the exit code is 143.
    from charlm.errors import Interrupted

    raise Interrupted(signum)


_FAST_EXIT = False  # set by commands that write no files (see _leave_fast)


def _leave_fast() -> None:
    """This command writes no files: once its output is flushed, the process may end without
    the interpreter's teardown. Tearing torch down takes 0.5-0.8 s on a 2-core machine, a
    quarter of `charlm generate`'s wall time; nothing of charlm's is left to clean up."""
    global _FAST_EXIT
    _FAST_EXIT = True


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app()
    except SystemExit as e:
        if not _FAST_EXIT:
            raise
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a reader that went away, a closed stream
                code = code or 0
        os._exit(code)
