"""`charlm info`: a model's weight shapes, parameter counts and tensor shapes (batch-first),
from a checkpoint or from model options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, guard, leave_fast
from charlm.config import ModelConfig
from charlm.errors import UsageError


@app.command(cls=GroupedCommand, short_help="Show a model's weights and tensor shapes.")
@guard
def info(
    checkpoint: Annotated[
        str | None, typer.Option(help="Describe this .pt file or run (else the options below).")
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size without a checkpoint.")] = 2614,
    cell: o.Cell = None,
    embed: o.Embed = None,
    hidden: o.Hidden = None,
    layers: o.Layers = None,
    tie: o.Tie = None,
    impl: o.Impl = None,
    bidirectional: Annotated[
        bool, typer.Option("--bidirectional", help="Show the shapes torch would give.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Batch for the tensor shapes.")] = 32,
    seq_len: Annotated[int, typer.Option(help="Sequence length for the tensor shapes.")] = 35,
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    json_out: o.Json = False,
) -> None:
    """Show a model's weight shapes, parameter counts and tensor shapes (batch-first).

    \b
    Examples:
      charlm info --checkpoint jay
      charlm info --cell lstm --layers 2 --hidden 512 --vocab-size 2614 --json
      charlm info --cell gru --layers 2 --bidirectional
    """
    leave_fast()
    from charlm.models.shapes import describe, render
    from charlm.store import checkpoint as ckpt

    networks, base = 1, None
    if checkpoint:
        path = ckpt.resolve(checkpoint, checkpoint_dir, "best")
        payload = ckpt.load(path)
        cfg = ModelConfig.from_dict(payload["model_config"])
        networks += len(payload.get("members") or [])
        base = payload.get("base")  # --init-from: the network this run started from
    else:
        d = o.MODEL_DEFAULTS
        embed = d.embed if embed is None else embed
        cfg = ModelConfig(
            vocab_size=vocab_size, cell=cell or d.cell, embed=embed, hidden=hidden or d.hidden,
            layers=layers or d.layers, tie=embed > 0 if tie is None else tie, dropout=0.0,
            impl=impl or d.impl,
        )  # fmt: skip
    if not (1 <= batch_size <= 1 << 16 and 1 <= seq_len <= 1 << 16):
        raise UsageError("--batch-size and --seq-len must be in [1, 65536]")
    shapes = {**describe(cfg, batch_size, seq_len, bidirectional), "networks": networks}
    if isinstance(base, dict):
        shapes["base"] = base
    print(json.dumps(shapes, ensure_ascii=False) if json_out else render(shapes), flush=True)
