#!/usr/bin/env python3
"""Rebuild corpora/tang_song_zh.zip from Debian's fortunes-zh package.

    cd corpora && apt-get download fortunes-zh && python3 build_tang_song.py fortunes-zh_*.deb

Takes the Tang 300 poems (tang300) and Song 100 ci (song100), strips the ANSI colour escapes
and the `%` separators, drops the catalogue lines (titles `《...》` / `题目:`, authors `作者:`,
section marks like `其一`) so that a model trained on it writes verse, keeps every other line
break (a blank line between pieces), and writes a deterministic zip (fixed timestamps, sorted
members) beside this script.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# catalogue lines, not verse: a title alone on its line, 题目:..., 作者:..., 其一 / 其二 ...
CATALOGUE = re.compile(
    r"^(《[^》]*》[^，。？！；：]*|题目[:：].*|作者[:：].*|其[一二三四五六七八九十]+)$"
)
MEMBERS = {"song100": "song100.txt", "tang300": "tang300.txt"}


def clean(raw: str) -> str:
    pieces, cur = [], []
    for line in raw.replace("\r\n", "\n").split("\n"):
        line = ANSI.sub("", line).rstrip()
        if CATALOGUE.match(line.strip()):
            continue
        if line == "%":
            pieces.append("\n".join(cur).strip("\n"))
            cur = []
        else:
            cur.append(line)
    pieces.append("\n".join(cur).strip("\n"))
    pieces = [re.sub(r"\n{3,}", "\n\n", p) for p in pieces]  # a dropped mark leaves one gap
    return "\n\n".join(p for p in pieces if p) + "\n"


def main(deb: str) -> None:
    out = Path(__file__).resolve().parent / "tang_song_zh.zip"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        src = Path(tmp) / "usr/share/games/fortunes"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name in sorted(MEMBERS):
                text = clean((src / name).read_text(encoding="utf-8"))
                info = zipfile.ZipInfo(MEMBERS[name], date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, text.encode("utf-8"))
                print(f"{MEMBERS[name]}: {len(text):,} chars, {len(set(text)):,} distinct")
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
