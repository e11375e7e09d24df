"""`charlm evaluate`: score a checkpoint on a split of its corpus (or of --corpus); the
perplexity on stdout (JSON with --json), a table on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, console, guard, leave_fast
from charlm.errors import UsageError


@app.command(cls=GroupedCommand, short_help="Score a checkpoint on text: perplexity, bits/char.")
@guard
def evaluate(
    checkpoint: o.Checkpoint = None,
    corpus: Annotated[
        str | None, typer.Option(help="Text to score.  [default: the run's own corpus]")
    ] = None,
    split: Annotated[str, typer.Option(help="val, train or all.")] = "val",
    baseline: Annotated[
        str | None,
        typer.Option(help="kn: also score a Kneser-Ney 8-gram built on the same training text."),
    ] = None,
    encoding: o.Encoding = None,
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt",
            help="Also score with the model adapted to the text read so far (the song cache, "
            "and dynamic evaluation where training fitted it), beside the static numbers.",
        ),
    ] = False,
    device: o.Device = "auto",
    checkpoint_dir: o.CkptDir = Path("checkpoints"),
    quiet: o.Quiet = False,
    json_out: o.Json = False,
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
    leave_fast()
    from charlm import api  # torch: here, not at the top, so `charlm --help` stays fast

    if split not in ("val", "train", "all"):
        raise UsageError(f"--split must be val, train or all, not {split!r}")
    if baseline not in (None, "kn"):
        raise UsageError(f"--baseline must be kn, not {baseline!r}")
    out = console(quiet)
    lm = api.load(checkpoint, checkpoint_dir=checkpoint_dir, device=device)
    lm.check_adapt(adapt)
    data = lm.corpus_split(corpus, split, encoding)
    for note in data.notes:
        out.print(f"[yellow]note:[/] {note}", markup=True)
    if not corpus and data.changed:
        out.print(
            f"[yellow]warning:[/] {data.source} changed since training; scores may not compare"
        )
    if len(data.ids) < 2:
        raise UsageError(
            f"--split {split} of {data.source} has fewer than 2 characters; try --split all"
        )
    result = lm.score(data.ids, adapt, data.train_ids if baseline == "kn" else None,
                      data.preceding)  # fmt: skip
    result.update({"split": split, "corpus": data.source, "checkpoint": str(lm.path)})
    _table(out, result, api.BASELINE_ORDER)
    share = result["unknown_chars"] / max(1, result["chars"])
    if share >= MOSTLY_UNKNOWN:
        out.print(
            f"[yellow]warning:[/] {share:.0%} of these characters are unknown to the model "
            "(scored as one symbol, <unk>): the figure says little about this text; score "
            "text in the model's language, or train on it",
            highlight=False,
        )
    if json_out:
        print(json.dumps(result, ensure_ascii=False), flush=True)
    elif adapt:
        print(f"{result['perplexity']:.4f}\t{result['adapted']['perplexity']:.4f}", flush=True)
    else:
        print(f"{result['perplexity']:.4f}", flush=True)


MOSTLY_UNKNOWN = 0.2  # a share of unknown characters from which a score says little


def _table(console: Any, r: dict, baseline_order: int) -> None:
    from rich.table import Table

    t = Table(title=f"{r['checkpoint']} on {r['split']} ({r['chars']:,} chars, "
              f"{r['unknown_chars']:,} unknown)", title_justify="left")  # fmt: skip
    t.add_column("model")
    for k in ("perplexity", "bits/char", "loss"):
        t.add_column(k, justify="right")
    lex = r.get("lexicon")
    lexicon = f", lexicon {lex['name']} {lex['weight']:.2f}" if lex else ""
    mixed = f" (mixture, w={r['mix_weight']:.2f}{lexicon})" if "mix_weight" in r else ""
    rows = [("charlm" + mixed, r)]
    if "adapted" in r:
        a = r["adapted"]
        if "dynamic_only" in a:
            rows.append(("charlm adapted as it reads (song cache + dynamic evaluation)", a))
            rows.append(("  song cache alone", a["cache_only"]))
            rule = a.get("dynamic_rule", "sgd").upper()
            warm = a.get("dynamic_warm_chars", 0)
            after = f", after {warm:,} training chars" if warm else ""
            rows.append((f"  dynamic evaluation alone ({rule}, lr {a['dynamic_lr']:g}{after})",
                         a["dynamic_only"]))  # fmt: skip
        else:
            rows.append(("charlm + song cache (adapted as it reads)", a))
    if "mix_weight" in r:
        rows.append(("network alone", r["network"]))
    if "baseline_kn" in r:
        rows.append((f"Kneser-Ney {baseline_order}-gram baseline", r["baseline_kn"]))
    for name, m in rows:
        t.add_row(name, f"{m['perplexity']:.3f}", f"{m['bits_per_char']:.4f}", f"{m['loss']:.4f}")
    console.print(t)
