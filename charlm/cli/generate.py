"""`charlm generate`: load a checkpoint (api.load), write new lyrics to stdout as they come,
one JSON object a sample with --json; novelty reports go to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import app, console, guard, leave_fast


@app.command()
@guard
def generate(
    checkpoint: o.Checkpoint = None,
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
    device: o.Device = "auto",
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    quiet: o.Quiet = False,
    json_out: o.Json = False,
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
    leave_fast()
    # torch-using modules: here, not at the top, so `charlm --help` stays fast
    from charlm import api
    from charlm.config import SampleConfig
    from charlm.system.runtime import new_seed

    seed_given = seed is not None
    cfg = SampleConfig(
        length=length, temperature=temperature, top_k=top_k, top_p=top_p,
        lines=lines or len(acrostic), num_samples=num_samples,
        seed=seed if seed_given else new_seed(), precision=precision, acrostic=acrostic,
        max_copy=max_copy,
    )  # fmt: skip
    if prefix == "-":
        prefix = sys.stdin.read().rstrip("\n")
    lm = api.load(checkpoint, checkpoint_dir=checkpoint_dir, device=device)
    adapt = lm.check_adapt(adapt)
    prefix = lm.prefix_for(prefix, cfg.acrostic, skip_unknown)
    index = lm.training_index() if cfg.max_copy or report_novelty else None
    out = console(quiet)
    if not seed_given:
        out.print(f"[dim]seed {cfg.seed}[/]")
    texts = write_samples(lm.stream(prefix, cfg, adapt, index), cfg.num_samples, json_out)
    reports = [index.report(lm.vocab.encode(t)) for t in texts] if report_novelty else []
    if json_out:
        for b, text in enumerate(texts):
            rec = {"text": text, "prefix": prefix, "seed": cfg.seed, "sample": b,
                   "checkpoint": str(lm.path)}  # fmt: skip
            if reports:
                rec["novelty"] = reports[b]
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    elif reports:
        from charlm.generation.novelty import render_report

        for b, r in enumerate(reports):
            out.print(render_report(b, r), markup=False)


def write_samples(steps, n: int, json_out: bool) -> list[str]:
    """Write the samples to stdout: one sample as it comes (flushed at each line break), several
    one after another with a blank line between; with --json nothing (the caller writes JSON).
    Returns the texts."""
    out, texts = sys.stdout, [""] * n
    stream = n == 1 and not json_out  # one sample: write it as it comes
    for i, pieces in enumerate(steps):
        for b, p in enumerate(pieces):
            texts[b] += p
        if stream:
            out.write(pieces[0])
            if "\n" in pieces[0] or i % 32 == 0:
                out.flush()
    if json_out:
        return texts
    for b, text in enumerate(texts):
        if stream:
            out.write("" if text.endswith("\n") else "\n")
        else:
            out.write(("\n" if b else "") + text + ("" if text.endswith("\n") else "\n"))
        out.flush()
    return texts
