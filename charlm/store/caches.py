"""Where tables derived from a checkpoint are cached (the lexicon's): beside the run, so every
invocation shares them wherever it runs from, or in the user's cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root_for(path: Path) -> Path | None:
    """Where tables derived from a checkpoint are cached (the lexicon's): the checkpoint
    folder holding its run, wherever the command runs from (a cache under the working folder's
    --checkpoint-dir missed every `--checkpoint /path/to/best.pt`), else, for a file outside a
    run (a shipped base), the user's cache folder; None where neither can be made."""
    run = path.resolve().parent
    if any((run / f).is_file() for f in ("best.pt", "last.pt", "metrics.jsonl")):
        return run.parent
    base = os.environ.get("CHARLM_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    folder = root if os.environ.get("CHARLM_CACHE_DIR") else root / "charlm"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only or not a folder: generation goes on without a cache
        return None
    return folder
