"""`charlm train`: parse the options into TrainOptions, train (training.run), print the
summary as JSON with --json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, console, guard, leave_fast


@app.command(cls=GroupedCommand, short_help="Train a model on a corpus into a run folder.")
@guard
def train(
    corpus: o.TrainCorpus = None,
    run: o.Run = None,
    preset: o.Preset = None,
    resume: o.Resume = False,
    init_from: o.InitFrom = None,
    keep_base_chars: o.KeepBaseChars = False,
    cell: o.Cell = None,
    embed: o.Embed = None,
    hidden: o.Hidden = None,
    layers: o.Layers = None,
    dropout: o.Dropout = None,
    weight_drop: o.WeightDrop = None,
    tie: o.Tie = None,
    softmax: o.Softmax = None,
    impl: o.Impl = None,
    bidirectional: o.NoBidirectional = False,
    sampler: o.Sampler = None,
    batch_size: o.BatchSize = None,
    seq_len: o.SeqLen = None,
    epochs: o.Epochs = None,
    max_steps: o.MaxSteps = None,
    max_time: o.MaxTime = None,
    optimizer: o.Optimizer = None,
    lr: o.Lr = None,
    decay: o.Decay = None,
    weight_decay: o.WeightDecay = None,
    clip: o.Clip = None,
    warmup: o.Warmup = None,
    eval_every: o.EvalEvery = None,
    eval_epochs: o.EvalEpochs = None,
    early_stop: o.EarlyStop = None,
    lr_patience: o.LrPatience = None,
    unk_prob: o.UnkProb = None,
    precision: o.TrainPrecision = None,
    kn_order: o.KnOrder = None,
    mix_fraction: o.MixFraction = None,
    lexicon: o.Lexicon = None,
    val_fraction: o.ValFraction = None,
    encoding: o.Encoding = None,
    newline: o.Newline = None,
    max_chars: o.MaxChars = None,
    max_corpus_bytes: o.MaxCorpusBytes = None,
    preview: o.Preview = None,
    members: o.Members = None,
    tensorboard: o.Tensorboard = False,
    seed: o.TrainSeed = None,
    device: o.Device = "auto",
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    dry_run: o.DryRun = False,
    quiet: o.Quiet = False,
    json_out: o.Json = False,
) -> None:
    """Train a model on a corpus; writes CHECKPOINT_DIR/RUN/{best,last}.pt and metrics.jsonl.

    \b
    Examples:
      charlm train --max-time 180
      charlm train --corpus jaychou_lyrics.txt.zip --run jay --cell gru --max-time 300
      charlm train --run jay --resume --epochs 80
      charlm train --corpus my_lyrics.txt --init-from zh --max-time 600
      charlm train --run jay --tensorboard
      charlm train --corpus my_lyrics.txt --max-time 600 --dry-run
      torchrun --nproc-per-node 2 -m charlm -- train --run big --corpus big.txt
    """
    started = time.monotonic()  # --max-time is the wall time of the whole command
    if int(os.environ.get("RANK", "0") or 0) > 0:
        # a torchrun follower writes no files; the C++ teardown of its process group (gloo's
        # threads) could abort at interpreter exit ("terminate called...", -6): skip it
        leave_fast()
    opts = o.train_options(locals())
    from charlm.training.run import plan_only, run_training  # torch: `--help` stays fast

    if dry_run:
        plan = plan_only(opts, device, checkpoint_dir, console(quiet))
        if json_out:
            print(json.dumps(plan, ensure_ascii=False), flush=True)
        return
    summary = run_training(opts, device, checkpoint_dir, console(quiet), quiet, started)
    if json_out and summary is not None:  # None: not rank 0 of a torchrun run
        print(json.dumps(summary, ensure_ascii=False), flush=True)
