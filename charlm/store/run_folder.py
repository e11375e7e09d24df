"""One run folder's files behind one small object:

checkpoints/<run>/last.pt        everything needed to resume (written at each evaluation)
                 /best.pt        weights, vocabulary, configs: what generate/evaluate use
                 /metrics.jsonl  one JSON object per evaluation
                 /.lock          one trainer at a time (lock.py)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from charlm.errors import UsageError
from charlm.store import checkpoint
from charlm.store.lock import RunLock

# The perplexities a metrics record holds, and what every table, chart and summary calls them.
PPL_LABELS = {"train_ppl": "train", "val_ppl": "held-out"}


def record_score(rec: dict[str, Any]) -> float | None:
    """The score a metrics record counts for "best": the held-out perplexity, or the training
    perplexity when the run has no held-out text."""
    return rec.get("val_ppl") or rec.get("train_ppl")


def check_checkpoint_dir(path: Path) -> Path:
    """--checkpoint-dir (or CHARLM_CHECKPOINT_DIR) as a folder charlm can make and write
    run folders in: refused up front when it, or a folder on its way, is a file."""
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"passes through {part}, which is"
            raise UsageError(
                f"--checkpoint-dir {path} {where} a file, not a folder; pass a folder (or set "
                "CHARLM_CHECKPOINT_DIR to one)"
            )
    return path


def _record(line: bytes) -> dict[str, Any] | None:
    """One metrics line, or None when it is not a record charlm wrote: undecodable (a
    flipped bit), not JSON, not an object, without its step, or a figure that is not a
    number."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict):
        return None
    for key, value in rec.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in NUMERIC_FIELDS and value is not None and not number:
            return None
    step = rec.get("step")
    if not isinstance(step, int) or isinstance(step, bool):  # every record charlm writes has one
        return None
    return rec


# the figures of a metrics record that tables and plots compute with
NUMERIC_FIELDS = frozenset({
    "step", "epoch", "elapsed_s", "train_loss", "train_ppl", "epoch_train_ppl", "val_loss",
    "val_ppl", "val_ppl_net", "mix_weight", "lr", "grad_norm", "chars_per_s", "member",
})  # fmt: skip


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / "metrics.jsonl"

    def has_checkpoints(self) -> bool:
        return self.last.exists() or self.best.exists()

    def lock(self) -> RunLock:
        return RunLock(self.path)

    def save_last(self, payload: dict[str, Any]) -> None:
        checkpoint.save(payload, self.last)

    def save_best(self, payload: dict[str, Any]) -> None:
        checkpoint.save(payload, self.best)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records; a line a crash cut short is skipped, the others still count."""
        try:
            lines = self.metrics.read_bytes().splitlines()
        except OSError:
            return []
        return [r for r in map(_record, lines) if r is not None]

    def truncate_metrics(self, step: int) -> None:
        """Drop records after `step`: on resume they belong to a future that did not happen."""
        records = self.read_metrics()
        keep = [r for r in records if r["step"] <= step]
        if len(keep) != len(records):
            tmp = self.metrics.with_suffix(".jsonl.tmp")
            tmp.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8"
            )
            os.replace(tmp, self.metrics)

    def remove_if_unused(self) -> None:
        """A fresh run that never wrote a checkpoint leaves no folder behind."""
        if not self.has_checkpoints():
            shutil.rmtree(self.path, ignore_errors=True)
