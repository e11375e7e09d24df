"""After training: the mixture's gate and dynamic evaluation, fitted on the networks best.pt
ships and stored in it.

The gate (scoring/gate.py) reads the entropy of the averaged networks' distribution, which the
evaluations during training (each network's target probabilities, averaged) never form: it is
fitted once, on best.pt's networks, and the song cache is refitted over the gated mixture.
The dynamic evaluation rate is fitted once too (scoring/dynamic.py): every candidate
is a pass over the slice with a backward step per segment, too dear for each evaluation. It
runs within --max-time: the loop leaves it FIT_SHARE of the budget, and a fit cut short keeps
the best rate it tried (0, the static network, is always read first), a rate the deadline cut
inside its read compared on the characters it read (MixtureFit.fit_dynamic)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from charlm.scoring.adapt import Adaptation
from charlm.scoring.dynamic import Dynamic
from charlm.scoring.evaluate import EvalStopped
from charlm.scoring.gate import Gate
from charlm.scoring.mixture_fit import MixtureFit
from charlm.store import checkpoint
from charlm.store.run_folder import RunFolder

# of --max-time, kept for the fit (24 s of 600): the Jay Chou lyrics' 3 x LSTM 1x512 read the
# gradient scales in ~5 s and each rate in ~3.5 s, after ~1 s for the gate
FIT_SHARE = 0.04


def fit_into_best(
    folder: RunFolder,
    mix_fit: MixtureFit,
    device: torch.device,
    deadline: float | None,
    echo: Callable[[str], None],
) -> Dynamic | None:
    """Fit the gate and dynamic evaluation on best.pt's networks and write best.pt again with
    them (atomic, a new digest); the fitted dynamic evaluation, None when there is no best.pt,
    no mixture in it, or no time. `deadline`: time.monotonic() the fits must end by (None:
    no budget)."""
    if not folder.best.exists():
        return None
    payload = checkpoint.load(folder.best)
    if not payload.get("kn"):
        return None
    model, _, _ = checkpoint.restore_model(payload, str(folder.best), device)
    stop = (lambda: time.monotonic() >= deadline) if deadline else None
    gate = _fit_gate(payload, mix_fit, model, device, stop, echo)
    adapt = payload["kn"].get("adapt")  # refitted over the gated mixture where there is one
    adaptation = Adaptation.from_payload(adapt) if adapt else None
    t0 = time.perf_counter()
    dyn = mix_fit.fit_dynamic(model, adaptation, device, stop, gate)
    if dyn is None:
        echo("dynamic evaluation for --adapt: not fitted (--max-time left no time for it)")
    else:
        payload["kn"] = {**payload["kn"], "dynamic": dyn.to_payload()}
        said = f"rate {dyn.lr:g}" if dyn.lr > 0 else "off: it did not help on the tune slice"
        echo(f"dynamic evaluation for --adapt: {said} ({time.perf_counter() - t0:.1f} s)")
    if gate is not None or dyn is not None:
        payload["digest"] = checkpoint.payload_digest(payload)
        folder.save_best(payload)
    return dyn


def _fit_gate(
    payload: dict[str, Any],
    mix_fit: MixtureFit,
    model: torch.nn.Module,
    device: torch.device,
    stop: Callable[[], bool] | None,
    echo: Callable[[str], None],
) -> Gate | None:
    """Fit the gate into payload["kn"], with the song cache refitted over it, and return it;
    or say why one weight stays (None)."""
    t0 = time.perf_counter()
    weight = float(payload["kn"]["weight"])
    try:
        fitted = mix_fit.fit_gate(model, weight, device, stop)
    except EvalStopped:
        echo("mixture gate: not fitted (--max-time left no time for it); one weight ships")
        return None
    if fitted is None:
        echo(f"mixture gate: no better than one weight on the tune slice; w {weight:.2f} ships")
        return None
    gate, adaptation = fitted
    payload["kn"] = {**payload["kn"], "gate": gate.to_payload(),
                     "adapt": adaptation.to_payload() if adaptation else None}  # fmt: skip
    echo(
        f"mixture gate: the network's share follows both models' certainty "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return gate
