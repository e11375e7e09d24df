"""`charlm runs`: what a checkpoint folder holds, one row a run, and `charlm runs rm`.

Rows are read from each run folder's metrics.jsonl and the header of its best.pt (or last.pt),
memory-mapped so that a 300 MB checkpoint costs milliseconds. Nothing here writes, except
`remove`, which only deletes a whole run folder that no trainer holds.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from charlm.errors import ResourceError, UsageError
from charlm.store.lock import LOCK_NAME, RunLock
from charlm.store.run_folder import RunFolder, record_score

SORT_KEYS = ("name", "corpus", "model", "steps", "best_ppl", "trained_s", "updated", "size_mb")
_FILES = ("best.pt", "last.pt", "metrics.jsonl")


@dataclass(frozen=True)
class RunRow:
    name: str
    corpus: str  # the corpus file's name ("?" when no checkpoint says)
    model: str  # e.g. "lstm 1x256" ("?" when no checkpoint is readable)
    steps: int
    best_ppl: float | None  # best held-out perplexity (training perplexity without held-out)
    trained_s: float  # training time so far, seconds
    updated: float  # newest file's modification time, seconds since the epoch
    size_mb: float  # every file in the folder
    base: str = ""  # --init-from: the run or base it started from ("" = from scratch)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.updated))
        return d


def _header(path: Path) -> dict[str, Any]:
    """model_config and corpus of a checkpoint, without reading (or verifying) its tensors."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a damaged file is shown as such, not fatal to a listing
        return {}
    return payload if isinstance(payload, dict) else {}


def run_row(folder: Path) -> RunRow:
    files = [p for p in folder.iterdir() if p.is_file()]
    metrics = RunFolder(folder).read_metrics()
    head = next((h for h in map(_header, (folder / "best.pt", folder / "last.pt")) if h), {})
    cfg, corpus = head.get("model_config") or {}, head.get("corpus") or {}
    model = f"{cfg['cell']} {cfg['layers']}x{cfg['hidden']}" if cfg else "?"
    scores = [record_score(m) for m in metrics]
    scores = [s for s in scores if isinstance(s, int | float)]
    last = metrics[-1] if metrics else {}
    return RunRow(
        name=folder.name,
        corpus=Path(str(corpus.get("source", "?"))).name or "?",
        model=model,
        steps=int(last.get("step", (head.get("metrics") or {}).get("step", 0))),
        best_ppl=min(scores) if scores else None,
        trained_s=float(last.get("elapsed_s", 0.0)),
        updated=max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime),
        size_mb=sum(p.stat().st_size for p in files) / 1e6,
        base=_base_name(head.get("base")),
    )


def _base_name(base: Any) -> str:
    """What a fine-tuning run started from, as its `base` record names it ("" if none)."""
    return str(base.get("name", "?")) if isinstance(base, dict) else ""


def list_runs(checkpoint_dir: Path, sort: str = "updated") -> list[RunRow]:
    """Every run folder (one holding a checkpoint or metrics) under checkpoint_dir, sorted by
    `sort` (numbers and times largest first, names A to Z; best_ppl lowest first)."""
    if sort not in SORT_KEYS:
        raise UsageError(f"--sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
    if not checkpoint_dir.is_dir():
        return []
    rows = [run_row(d) for d in sorted(checkpoint_dir.iterdir())
            if d.is_dir() and not d.name.startswith(".")
            and any((d / f).exists() for f in _FILES)]  # fmt: skip
    if sort in ("name", "corpus", "model"):
        return sorted(rows, key=lambda r: getattr(r, sort))
    if sort == "best_ppl":
        return sorted(rows, key=lambda r: (r.best_ppl is None, r.best_ppl or 0.0))
    return sorted(rows, key=lambda r: getattr(r, sort), reverse=True)


def remove(checkpoint_dir: Path, name: str) -> RunRow:
    """Delete the run folder `name`; refuses what is not a run, or one a trainer holds."""
    folder = checkpoint_dir / name
    if "/" in name or name in ("", ".", "..") or name.startswith("."):
        raise UsageError(f"{name!r} is not a run name")
    if not folder.is_dir() or not any((folder / f).exists() for f in _FILES):
        raise UsageError(f"{folder}: no such run (see charlm runs)")
    if folder.is_symlink():  # a run linked in from elsewhere: the link goes, its target stays
        row = run_row(folder)
        folder.unlink()
        return row
    if (folder / LOCK_NAME).exists():
        with RunLock(folder):  # raises ResourceError while a live trainer holds it
            pass
    row = run_row(folder)
    try:
        shutil.rmtree(folder)
    except OSError as e:
        raise ResourceError(f"{folder}: could not delete it ({e.strerror})") from None
    return row


def render(console, rows: list[RunRow], checkpoint_dir: Path) -> None:
    from rich.table import Table

    t = Table(title=f"{len(rows)} run(s) in {checkpoint_dir}", title_justify="left")
    for col, justify in (("run", "left"), ("corpus", "left"), ("model", "left"),
                         ("steps", "right"), ("best ppl", "right"), ("trained", "right"),
                         ("updated", "left"), ("size", "right"), ("from", "left")):  # fmt: skip
        t.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        t.add_row(
            r.name, r.corpus, r.model, f"{r.steps:,}",
            f"{r.best_ppl:.2f}" if r.best_ppl is not None else "-",
            _duration(r.trained_s), time.strftime("%m-%d %H:%M", time.localtime(r.updated)),
            f"{r.size_mb:,.1f} MB", r.base or "-",
        )  # fmt: skip
    if not console.is_terminal:  # a pipe or a log file has no width: do not squeeze into 80
        console.width = max(console.width, 160)
    console.print(t)


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
