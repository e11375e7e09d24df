"""What `charlm train --resume` refuses, and how it keeps the run's data position when the
number of torchrun processes changes. Each refusal names both values and the way out."""

from __future__ import annotations

from typing import Any

from charlm.config import TrainConfig
from charlm.errors import CheckpointError
from charlm.training.options import MODEL_FIELDS, TrainOptions

# Changing these mid-run would change what the saved data position or optimizer state means.
FROZEN_ON_RESUME = (
    "sampler", "seq_len", "val_fraction", "optimizer", "seed", "kn_order",
    "mix_fraction",
)  # fmt: skip


def check_resume_compatible(
    payload: dict[str, Any], opts: TrainOptions, fingerprint: str, where: str
) -> None:
    """Refuse an architecture or corpus change on --resume, naming both values."""
    stored = payload["model_config"]
    for k in MODEL_FIELDS:
        value = getattr(opts, k)
        if value is not None and value != stored.get(k):
            raise CheckpointError(
                f"{where}: --{k} {value} differs from the run's {k} {stored.get(k)}; "
                f"drop --{k} to resume, or start a new --run"
            )
    if opts.softmax in ("full", "adaptive"):
        had = "adaptive" if stored.get("cutoffs") else "full"
        if opts.softmax != had:
            raise CheckpointError(
                f"{where}: --softmax {opts.softmax} differs from the run's {had} softmax; "
                "drop --softmax to resume, or start a new --run"
            )
    old = payload.get("corpus", {}).get("fingerprint")
    if old and old != fingerprint:
        raise CheckpointError(
            f"{where}: the corpus differs from the one this run trained on (fingerprint "
            f"{fingerprint[:12]} vs {old[:12]}); pass the original --corpus, or start a new --run"
        )


def resume_batch_size(opts: TrainOptions, base: TrainConfig, where: str) -> int | None:
    """The per-process --batch-size that keeps the run's global batch (rows per step, what
    the saved data position counts in) when --resume runs on another number of processes;
    None when nothing changes. A global batch the processes cannot share is refused."""
    world = opts.processes or 1
    if opts.batch_size is None and world == base.processes:
        return None
    size = opts.batch_size or base.global_batch // world
    if size * world != base.global_batch:
        raise CheckpointError(
            f"{where}: the run's global batch is {base.global_batch} ({base.processes} "
            f"process(es) x --batch-size {base.batch_size}); {world} process(es) x "
            f"--batch-size {opts.batch_size or size} would change it. Resume on a number of "
            f"processes that divides {base.global_batch} (without --batch-size), or start a "
            "new --run"
        )
    return size


def check_frozen_on_resume(cfg: TrainConfig, base: TrainConfig, where: str) -> None:
    """Options whose change would change what the saved data position or optimizer means."""
    for k in FROZEN_ON_RESUME:
        if getattr(cfg, k) != getattr(base, k):
            raise CheckpointError(
                f"{where}: --{k.replace('_', '-')} {getattr(cfg, k)} differs from the run's "
                f"{getattr(base, k)}; it cannot change on --resume (start a new --run)"
            )
