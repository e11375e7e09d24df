"""After training: dynamic evaluation fitted on the network best.pt ships, and stored in it.

The rate is fitted once, at the end, on the tune slice (scoring/dynamic.py): every candidate
is a pass over the slice with a backward step per segment, too dear for each evaluation. It
runs within --max-time: the loop leaves it FIT_SHARE of the budget, and a fit cut short keeps
the best rate it tried (0, the static network, is always tried first).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from charlm.scoring.adapt import Adaptation
from charlm.scoring.dynamic import Dynamic
from charlm.scoring.mixture import MixtureFit
from charlm.store import checkpoint
from charlm.store.run_folder import RunFolder

FIT_SHARE = 0.03  # of --max-time, kept for the fit (18 s of 600)


def fit_into_best(
    folder: RunFolder,
    mix_fit: MixtureFit,
    device: torch.device,
    deadline: float | None,
    echo: Callable[[str], None],
) -> Dynamic | None:
    """Fit dynamic evaluation on best.pt's networks and write best.pt again with it (atomic,
    a new digest); None when there is no best.pt or no mixture in it. `deadline`:
    time.monotonic() the fit must end by (None: no budget)."""
    if not folder.best.exists():
        return None
    payload = checkpoint.load(folder.best)
    if not payload.get("kn"):
        return None
    model, _, _ = checkpoint.restore_model(payload, str(folder.best), device)
    stop = (lambda: time.monotonic() >= deadline) if deadline else None
    t0 = time.perf_counter()
    adapt = payload["kn"].get("adapt")
    adaptation = Adaptation.from_payload(adapt) if adapt else None
    dyn = mix_fit.fit_dynamic(model, adaptation, device, stop)
    if dyn is None:
        echo("dynamic evaluation for --adapt: not fitted (--max-time left no time for it)")
        return None
    payload["kn"] = {**payload["kn"], "dynamic": dyn.to_payload()}
    payload["digest"] = checkpoint.payload_digest(payload)
    folder.save_best(payload)
    said = f"rate {dyn.lr:g}" if dyn.lr > 0 else "off: it did not help on the tune slice"
    echo(f"dynamic evaluation for --adapt: {said} ({time.perf_counter() - t0:.1f} s)")
    return dyn
