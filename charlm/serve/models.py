"""The runs a page may ask for, and the models loaded for them: named as `charlm runs` lists
them (no path leaves the checkpoint folder), loaded once, kept in a small LRU, and loaded
again when the file changed under the server (a run retrained while it is up).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from charlm.errors import CheckpointError, UsageError

# store's modules import torch: they are imported where a run is listed or named, so that the
# server prints its URL at once (torch takes ~2 s here)
BUILTIN = {"zh": "zh_base.pt"}  # as store.checkpoint.BUILTIN (tests/serve checks they agree)
BUILTIN_PREFIX = "builtin:"

MAX_LOADED = 3  # models kept in memory; a 35 MB checkpoint is ~40 MB loaded


def run_list(checkpoint_dir: Path) -> list[dict[str, Any]]:
    """The runs of `checkpoint_dir` (newest first, as `charlm runs --json` has them) and the
    shipped bases, each with `name`, `corpus`, `model`, `best_ppl`, `base`, `builtin`."""
    from charlm.store.listing import list_runs

    rows = [{**r.as_dict(), "builtin": False} for r in list_runs(checkpoint_dir)]
    rows = [r for r in rows if (checkpoint_dir / r["name"] / "best.pt").is_file()]
    for name, file in BUILTIN.items():
        path = Path(__file__).resolve().parents[1] / "assets" / file
        if not path.is_file():
            continue
        rows.append({"name": BUILTIN_PREFIX + name, "corpus": "shipped base",
                     "model": "", "best_ppl": None, "base": "", "builtin": True,
                     "size_mb": path.stat().st_size / 1e6})  # fmt: skip
    return rows


def resolve_run(name: Any, checkpoint_dir: Path) -> Path:
    """A request's `checkpoint`: a run name under `checkpoint_dir`, or a shipped base
    (`builtin:zh`, or `zh` where no run has that name). Paths are refused."""
    if not isinstance(name, str) or not name:
        raise UsageError("checkpoint: name a run (see GET /api/runs)")
    if name.startswith(BUILTIN_PREFIX) or (
        name in BUILTIN and not (checkpoint_dir / name).exists()
    ):
        base = name.removeprefix(BUILTIN_PREFIX)
        if base not in BUILTIN:
            raise UsageError(f"{name}: no such shipped base")
        from charlm.store import checkpoint

        return checkpoint.builtin_path(base)
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise UsageError(f"{name!r} is not a run name (see GET /api/runs)")
    path = checkpoint_dir / name / "best.pt"
    if not path.is_file():
        raise CheckpointError(f"{checkpoint_dir / name}: no such run, or it has no best.pt "
                              "(deleted meanwhile?); pick another run")  # fmt: skip
    return path


class ModelCache:
    """Loaded models by checkpoint path, at most MAX_LOADED, least recently used dropped. A
    file whose size or modification time changed is loaded again (its digest checked again)."""

    def __init__(self, checkpoint_dir: Path, device: str = "cpu") -> None:
        self.checkpoint_dir, self.device = checkpoint_dir, device
        self._models: OrderedDict[Path, tuple[tuple[int, int], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: Any) -> Any:
        """The LanguageModel for run `name` (see resolve_run); CharlmError with the CLI's words."""
        from charlm import api  # torch: loaded on first use, so the server starts at once

        path = resolve_run(name, self.checkpoint_dir)
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._models.get(path)
            if hit is not None and hit[0] == stamp:
                self._models.move_to_end(path)
                return hit[1]
        lm = api.load(path, checkpoint_dir=self.checkpoint_dir, device=self.device)
        with self._lock:
            self._models[path] = (stamp, lm)
            self._models.move_to_end(path)
            while len(self._models) > MAX_LOADED:
                self._models.popitem(last=False)
        return lm

    def loaded(self) -> list[str]:
        with self._lock:
            return [str(p) for p in self._models]
