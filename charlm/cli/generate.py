"""`charlm generate`: load a checkpoint (api.load), write new lyrics to stdout as they come,
one JSON object a sample with --json; novelty reports go to stderr."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, console, guard, leave_fast
from charlm.errors import UsageError
from charlm.generation.request import GenerationRequest, check_choice

SAMPLE_SEPARATOR = "%"  # between samples, alone on its line: fortune(6)'s convention


@app.command(cls=GroupedCommand, short_help="Write new lyrics from a prefix to stdout.")
@guard
def generate(
    checkpoint: o.Checkpoint = None,
    prefix: o.Prefix = None,
    length: o.Length = None,
    temperature: o.Temperature = 0.8,
    top_k: o.TopK = 0,
    top_p: o.TopP = 1.0,
    seed: o.Seed = None,
    num_samples: o.NumSamples = 1,
    separator: o.Separator = SAMPLE_SEPARATOR,
    lines: o.Lines = 0,
    precision: o.SamplePrecision = "fp32",
    skip_unknown: o.SkipUnknown = False,
    acrostic: o.Acrostic = "",
    max_copy: o.MaxCopy = None,
    report_novelty: o.ReportNovelty = False,
    adapt: o.Adapt = None,
    form: o.Form = "",
    rhyme: o.Rhyme = "",
    rhyme_with: o.RhymeWith = "",
    rhyme_table: o.RhymeTable = "十三辙",
    template: o.Template = None,
    repeat_chorus: o.RepeatChorus = False,
    line_candidates: o.LineCandidates = 0,
    loop_guard: o.LoopGuard = True,
    list_forms: o.ListForms = False,
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
    given = {k: v for k, v in locals().items() if k in REQUEST_FIELDS}
    check_choice(form, template is not None)  # before the file is read: the usage error first
    if template is not None:
        given["template"] = read_template(template, prefix == "-")
    request = GenerationRequest(**given)
    # torch-using modules: here, not at the top, so `charlm --help` stays fast
    from charlm import api
    from charlm.data.corpus import read_stdin_text

    if prefix == "-":
        request = replace(request, prefix=read_stdin_text("--prefix -").rstrip("\n"))
    lm = api.load(checkpoint, checkpoint_dir=checkpoint_dir, device=device)
    run = lm.prepare(request)
    steps = run.stream()
    first = next(steps)  # the options are checked before the first piece: nothing said yet
    out = console(quiet)
    from rich.markup import escape  # a note may quote a prefix with [brackets] in it

    for note in run.notes:
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if not run.seed_given:
        out.print(f"[dim]seed {run.cfg.seed}[/]")
    texts = write_samples(itertools.chain([first], steps), num_samples, json_out, separator)
    _report(out, run, texts, json_out)


# generate's parameters that are GenerationRequest fields (the rest: where and how to write)
REQUEST_FIELDS = frozenset(f.name for f in fields(GenerationRequest))


def _report(out, run, texts: list[str], json_out: bool) -> None:
    """After the text: a note if --length cut it short, then the JSON lines (with novelty and
    form when asked), or the novelty reports on stderr."""
    short = run.short_samples(texts)
    if short:
        out.print(f"[yellow]note:[/] {short} sample(s) reached --length {run.cfg.length} before "
                  f"{run.cfg.lines} lines; raise --length", highlight=False)  # fmt: skip
    if json_out:
        for rec in run.records(texts):
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return
    from charlm.generation.novelty import render_report  # here: `--help` stays fast

    for b, r in enumerate(run.novelty(texts)):
        out.print(render_report(b, r), markup=False)


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
