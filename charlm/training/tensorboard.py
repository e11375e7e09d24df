"""`charlm train --tensorboard`: each evaluation's figures as TensorBoard scalars.

Events go to `<run>/tensorboard/` (view them with `tensorboard --logdir checkpoints`), one
point per evaluation, the same numbers as metrics.jsonl. The package is optional
(`pip install 'charlm-lyrics[tensorboard]'`); asking without it is a usage error before any
training starts.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from charlm.errors import UsageError

INSTALL = "pip install 'charlm-lyrics[tensorboard]'"
# metrics.jsonl key -> TensorBoard tag (grouped: perplexities on one card, the rest apart)
SCALARS = {
    "train_ppl": "perplexity/train",
    "val_ppl": "perplexity/held-out",
    "val_ppl_net": "perplexity/held-out network alone",
    "mix_weight": "mixture/network weight",
    "lr": "optimizer/learning rate",
    "grad_norm": "optimizer/gradient norm",
    "chars_per_s": "speed/train chars per s",
}


def check_available() -> None:
    """UsageError naming the install command when the tensorboard package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError(f"--tensorboard needs the tensorboard package: {INSTALL}")


class EventLog:
    """A TensorBoard writer for one run folder; `write(record)` after each evaluation."""

    def __init__(self, run_dir: Path, resume_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # On resume, points past the resumed step belong to a future that did not happen
        # (metrics.jsonl drops them too): purge_step hides them. It hides steps >= itself,
        # and the resumed step's own point is real: it is the step after.
        self.writer = SummaryWriter(
            log_dir=str(Path(run_dir) / "tensorboard"),
            purge_step=resume_step + 1 if resume_step else None,
        )

    def write(self, record: dict[str, Any]) -> None:
        for key, tag in SCALARS.items():
            value = record.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, record["step"])
        self.writer.flush()  # a point appears in TensorBoard as soon as it is measured

    def close(self) -> None:
        self.writer.close()
