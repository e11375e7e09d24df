#!/usr/bin/env python3
"""`charlm scan` on big inputs: the bundled corpus repeated to each size, scanned by the real
command (a subprocess, wall time), to show the cost grows with the input, not its square.

    .venv/bin/python benchmarks/scan.py            # 1, 2 and 5 MB of the bundled corpus
    .venv/bin/python benchmarks/scan.py --corpus ../shared/corpora/quantangshi.txt.zip
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlm.training.setup import default_corpus  # noqa: E402


def corpus_text(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return "".join(
            z.read(n).decode("utf-8") for n in sorted(z.namelist()) if n.endswith(".txt")
        )


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help="a zip (default: the bundled one)")
    base = corpus_text(ap.parse_args().corpus or default_corpus())
    print("| input | lines | wall | per MB |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in (1, 2, 5):
            data = (base * (mb * 2**20 // len(base.encode()) + 1)).encode()[: mb * 2**20]
            text = data.decode("utf-8", errors="ignore")
            path = Path(tmp) / f"{mb}mb.txt"
            path.write_text(text, encoding="utf-8")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "charlm", "scan", str(path), "--json"],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            wall = time.perf_counter() - t0
            print(f"| {mb} MB | {text.count(chr(10)):,} | {wall:.1f} s | {wall / mb:.1f} s |")


if __name__ == "__main__":
    main()
