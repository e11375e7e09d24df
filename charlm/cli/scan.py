"""`charlm scan FILE|-`: the form of a lyric (per line: length, last character, rhyme group,
scheme letter; the scheme and the share of adjacent lines that rhyme), as a table on stdout
or JSON with --json. Needs no model."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from charlm.cli import options as o
from charlm.cli.app import GroupedCommand, app, guard
from charlm.errors import UsageError


@app.command(cls=GroupedCommand, short_help="Read a lyric's form: line lengths, rhymes, scheme.")
@guard
def scan(
    lyric: Annotated[str, typer.Argument(help="A lyric as a UTF-8 text file, or - for stdin.")],
    rhyme_table: o.RhymeTable = "十三辙",
    json_out: o.Json = False,
) -> None:
    """Read the form of a lyric: line lengths, rhyme groups, the rhyme scheme.

    \b
    Examples:
      charlm scan my_song.txt
      charlm generate --form 7,7,7,7 --rhyme AABB | charlm scan - --json
    """
    # pypinyin's tables: here, not at the top, so `charlm --help` stays fast
    from charlm.data.corpus import read_text_arg
    from charlm.generation.form.rhyme import TABLES, RhymeBook
    from charlm.generation.form.scan import render
    from charlm.generation.form.scan import scan as read_form

    if rhyme_table not in TABLES:
        raise UsageError(f"--rhyme-table must be {' or '.join(TABLES)}, not {rhyme_table!r}")
    text = read_text_arg(lyric, "lyric")
    result = read_form(text, RhymeBook(rhyme_table))
    print(json.dumps(result, ensure_ascii=False) if json_out else render(result), flush=True)
