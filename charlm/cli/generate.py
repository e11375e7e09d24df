"""`charlm generate`: load a checkpoint (api.load), write new lyrics to stdout as they come,
one JSON object a sample with --json; novelty reports go to stderr."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, console, guard, leave_fast
from charlm.errors import UsageError

DEFAULT_LENGTH = 200  # characters after the prefix; with --lines N, this many a line


SAMPLE_SEPARATOR = "%"  # between samples, alone on its line: fortune(6)'s convention
# The copy guard's default span: on the Jay Chou model it cut copied 16-grams from 4.0 % to
# 0.6 % and the longest copy from 51 characters to 16, for 7-10 % in the text's perplexity
# under the model (README, "Is it copying?"); 8 cost 39 %.
AUTO_MAX_COPY = 16
# ...on training texts up to this long: its index of the Tang poems (4M characters) cost 5.4 s
# and 270 MB a generate (7.8 s against 2.4 s), Jay Chou's nothing measurable.
AUTO_MAX_COPY_CHARS = 1_000_000


@app.command(cls=GroupedCommand, short_help="Write new lyrics from a prefix to stdout.")
@guard
def generate(
    checkpoint: o.Checkpoint = None,
    prefix: Annotated[
        str | None, typer.Option(help="Text to continue; - reads it from stdin.  [default: 分开]")
    ] = None,
    length: Annotated[
        int | None,
        typer.Option(
            help="Characters to generate after the prefix.  [default: 200; with --lines N, "
            "200 a line]"
        ),
    ] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = wilder.")] = 0.8,
    top_k: Annotated[int, typer.Option(help="Sample from the k likeliest (0 = off).")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass in (0, 1] (1 = off).")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Same seed -> same text.")] = None,
    num_samples: Annotated[int, typer.Option(help="Samples, generated as one batch.")] = 1,
    separator: Annotated[
        str, typer.Option(help='The line written between samples ("" for a blank one).')
    ] = SAMPLE_SEPARATOR,
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
        int | None,
        typer.Option(
            help="Never copy more than N training characters in a row (0 = off).  [default: "
            f"{AUTO_MAX_COPY} when the training text is at hand, else off]"
        ),
    ] = None,
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
            "loops are capped).  [default: on when the checkpoint has it]",
        ),
    ] = None,
    form: Annotated[
        str,
        typer.Option(
            help="Line lengths, e.g. 7,7,7,7 (/ for a stanza break: 7,7/7,7), or a named form "
            "(七言绝句, 浣溪沙, ...; see --list-forms). The prefix starts the first line."
        ),
    ] = "",
    rhyme: Annotated[
        str,
        typer.Option(
            help="A scheme letter per line (AABB; X = free; / between stanzas); lines with "
            "the same letter end in the same rhyme group. With --form, on its lines; alone, "
            "lines of the model's own length, ending on a rhyming word (English too)."
        ),
    ] = "",
    rhyme_with: Annotated[
        str,
        typer.Option(
            help="The first rhyme's sound: a group name (江阳), a character (光), "
            "or an English word (night)."
        ),
    ] = "",
    rhyme_table: o.RhymeTable = "十三辙",
    template: Annotated[
        str | None,
        typer.Option(
            help="A song (FILE, or - for stdin) whose shape to copy: line lengths, "
            "stanzas, symbols, which lines rhyme."
        ),
    ] = None,
    repeat_chorus: Annotated[
        bool,
        typer.Option(
            "--repeat-chorus", help="With --template: a line repeated there comes back repeated."
        ),
    ] = False,
    line_candidates: Annotated[
        int,
        typer.Option(
            help="With a form: draw N candidates for each line and keep the likeliest "
            "(0 = 2, or 1 for a named form; more is more fluent and slower)."
        ),
    ] = 0,
    loop_guard: Annotated[
        bool,
        typer.Option(
            "--loop-guard/--no-loop-guard",
            help="No character 4 times in a row, no phrase looping within a line.",
        ),
    ] = True,
    list_forms: Annotated[
        bool,
        typer.Option("--list-forms", help="Print the named forms (lengths, rhymes, tones), exit."),
    ] = False,
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
      charlm generate --form 7,7,7,7 --rhyme AABB --rhyme-with 光 --seed 3
      charlm generate --checkpoint songs_en --rhyme ABAB/CCDD --prefix "When "
      charlm generate --form 七言绝句 --acrostic 春夏秋冬
      charlm generate --template my_song.txt --repeat-chorus
    """
    leave_fast()
    if list_forms:
        from charlm.generation.form.layout import describe_forms

        print(describe_forms(json_out), flush=True)
        return
    # torch-using modules: here, not at the top, so `charlm --help` stays fast
    from charlm import api
    from charlm.config import SampleConfig
    from charlm.data.corpus import read_stdin_text
    from charlm.system.runtime import new_seed

    seed_given = seed is not None
    if acrostic and 0 < lines < len(acrostic):
        raise UsageError(
            f"--lines {lines} is fewer than the {len(acrostic)} lines --acrostic {acrostic} "
            "starts; drop --lines (an acrostic writes one line a head)"
        )
    if length is None:  # --lines asks for lines: the character cap must not cut them short
        length = DEFAULT_LENGTH * max(1, lines or len(acrostic))
    if template is not None:
        if form:  # before the file is read: the usage error comes first
            raise UsageError("--form and --template: choose one")
        template = read_template(template, prefix == "-")
    cfg = SampleConfig(
        length=length, temperature=temperature, top_k=top_k, top_p=top_p,
        lines=lines or len(acrostic), num_samples=num_samples,
        seed=seed if seed_given else new_seed(), precision=precision, acrostic=acrostic,
        max_copy=max_copy or 0, form=form, rhyme=rhyme, rhyme_with=rhyme_with,
        rhyme_table=rhyme_table, template=template or "", repeat_chorus=repeat_chorus,
        loop_guard=loop_guard, line_candidates=line_candidates,
    )  # fmt: skip
    if prefix == "-":
        prefix = read_stdin_text("--prefix -").rstrip("\n")
    lm = api.load(checkpoint, checkpoint_dir=checkpoint_dir, device=device)
    adapt = lm.check_adapt(adapt)
    from charlm.store.checkpoint import shadow_note

    notes = [n for n in [shadow_note(checkpoint, checkpoint_dir)] if n]
    prefix = lm.prefix_for(prefix, cfg.acrostic, skip_unknown, notes)
    index = lm.training_index() if cfg.max_copy or report_novelty else None
    if max_copy is None:  # the default: a guard when the training text is at hand
        index, cfg = _default_copy_guard(lm, cfg, notes, index)
    out = console(quiet)
    steps = lm.stream(prefix, cfg, adapt, index)
    first = next(steps)  # the options are checked before the first piece: nothing said yet
    from rich.markup import escape  # a note may quote a prefix with [brackets] in it

    for note in notes:
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if not seed_given:
        out.print(f"[dim]seed {cfg.seed}[/]")
    texts = write_samples(itertools.chain([first], steps), cfg.num_samples, json_out, separator)
    _report(out, lm, cfg, prefix, texts, index if report_novelty else None, json_out)


def _report(out, lm, cfg, prefix: str, texts: list[str], index, json_out: bool) -> None:
    """After the text: a note if --length cut it short, then the JSON lines (with novelty and
    form when asked), or the novelty reports on stderr."""
    reports = [index.report(lm.vocab.encode(t)) for t in texts] if index is not None else []
    shaped = cfg.has_form or cfg.free_lines  # they decide the line count themselves
    short = sum(t.count("\n") < cfg.lines for t in texts) if cfg.lines and not shaped else 0
    if short:
        out.print(f"[yellow]note:[/] {short} sample(s) reached --length {cfg.length} before "
                  f"{cfg.lines} lines; raise --length", highlight=False)  # fmt: skip
    if json_out:
        for b, text in enumerate(texts):
            rec = {"text": text, "prefix": prefix, "seed": cfg.seed, "sample": b,
                   "checkpoint": str(lm.path)}  # fmt: skip
            if reports:
                rec["novelty"] = reports[b]
            if cfg.has_form or cfg.free_lines:
                rec["form"] = lm.form_report(cfg, text)
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    elif reports:
        from charlm.generation.novelty import render_report  # here: `--help` stays fast

        for b, r in enumerate(reports):
            out.print(render_report(b, r), markup=False)


def _default_copy_guard(lm, cfg, notes: list[str], index):
    """--max-copy not given: the guard at AUTO_MAX_COPY when the training text can be read
    as it was and holds at most AUTO_MAX_COPY_CHARS (`index`, if already read), else none;
    a text that cannot be read gets a note saying why (it is not needed to generate; a
    shipped base, whose text is not installed, goes without a word)."""
    from dataclasses import replace

    from charlm.errors import CharlmError

    if index is None:
        try:
            index = lm.training_index(AUTO_MAX_COPY_CHARS)
        except CharlmError as e:
            if not (lm.payload.get("corpus") or {}).get("built_by"):
                notes.append(f"no copy guard ({str(e).split(';')[0]}); --max-copy 0: no note")
            return None, cfg
        if index is None:  # a big text: the guard is asked for, not given by default
            return None, cfg
    return index, replace(cfg, max_copy=AUTO_MAX_COPY)


def write_samples(steps, n: int, json_out: bool, separator: str = SAMPLE_SEPARATOR) -> list[str]:
    """Write the samples to stdout: one sample as it comes (flushed at each line break), several
    one after another with a `separator` line between (a blank line would read as a stanza
    break); with --json nothing (the caller writes JSON). Returns the texts."""
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
            out.write(
                (f"{separator}\n" if b else "") + text + ("" if text.endswith("\n") else "\n")
            )
        out.flush()
    return texts


def read_template(source: str, stdin_taken: bool) -> str:
    """--template FILE or - (stdin), as text; refused clearly when unreadable."""
    if source == "-" and stdin_taken:
        raise UsageError("--prefix - and --template - both read stdin; save one to a file")
    from charlm.data.corpus import read_text_arg  # here: `charlm --help` stays fast

    return read_text_arg(source, "template")
