"""Mixing the network with the Kneser-Ney count model.

A network and a count model are wrong in different places: the network generalises across
similar contexts, the count table remembers long exact phrases. Their per-character mixture

    p(w | h) = lam * p_net(w | h) + (1 - lam) * p_kn(w | h)

beats both on small corpora. `lam` is fitted by EM on a "tune" slice cut from the end of the
training text, which neither the network nor the count model used for fitting it and which the
held-out split never sees. Where a language's word list helps the tune slice, p_kn is itself
the corpus's counts leaning on the list's (lexicon.py: LexiconCounts, fitted in MixtureFit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charlm.data.vocab import Vocab
from charlm.scoring import dynamic
from charlm.scoring.adapt import Adaptation
from charlm.scoring.dynamic import Dynamic
from charlm.scoring.evaluate import (
    EvalResult,
    logprobs_and_entropy,
    target_logprobs,
)
from charlm.scoring.gate import Gate, entropy
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.lexicon import LexiconCounts
from charlm.scoring.lexicon import from_payload as lexicon_from_payload

Counts = KneserNey | LexiconCounts  # the corpus's count model, leaning on a lexicon or not


@dataclass(frozen=True)
class Mixture:
    kn: Counts
    weight: float  # lam: the network's share
    adaptation: Adaptation | None = None  # the song cache fitted beside it (adapt.py)
    dynamic: Dynamic | None = None  # dynamic evaluation fitted beside it (dynamic.py)
    # the network's share per character from both models' entropies (gate.py); None = `weight`
    gate: Gate | None = None

    def mix(
        self,
        net_logp: torch.Tensor,
        kn_logp: torch.Tensor,
        h_net: torch.Tensor | None = None,
        h_kn: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ln p of each target (N,) under the mixture: gated where there is a gate (then
        both models' entropies before each target, (N,) each, are needed)."""
        if self.gate is None:
            return mix_logprobs(net_logp, kn_logp, self.weight)
        if h_net is None or h_kn is None:
            raise ValueError("a gated mixture needs both models' entropies")
        return self.gate.mix(net_logp, kn_logp, h_net, h_kn)

    def next_logprobs(self, net_logits: torch.Tensor, contexts: list[list[int]]) -> torch.Tensor:
        """(B, V) network logits and each row's context ids -> (B, V) mixture log-probs."""
        logp_net = torch.log_softmax(net_logits.double(), dim=-1).cpu()  # (B, V)
        if isinstance(self.kn, LexiconCounts):  # the gate reads the corpus counts' certainty
            both = self.kn.distributions_and_corpus(contexts)
            p_kn, p_corpus = (torch.from_numpy(p) for p in both)  # (B, V) each
        else:
            p_kn = p_corpus = torch.from_numpy(self.kn.distributions(contexts))  # (B, V)
        lam = torch.full((len(p_kn), 1), self.weight, dtype=torch.float64)  # (B, 1)
        if self.gate is not None:  # it reads the corpus counts' entropy, as in scoring
            h_kn = -(p_corpus * torch.log(p_corpus.clamp_min(1e-300))).sum(-1)
            lam = torch.sigmoid(self.gate.logits(entropy(logp_net), h_kn))[:, None]
        p = lam * logp_net.exp() + (1 - lam) * p_kn
        return torch.log(p).to(net_logits.device)


@dataclass(frozen=True)
class Scores:
    """One text scored: what ships (the mixture when there is one) and the network alone."""

    shipped: EvalResult
    network: EvalResult
    weight: float | None  # the network's share in the mixture (its mean where gated); None = alone
    adapted: EvalResult | None = None  # what ships, adapted to the text as it is read
    # the two adaptations apart: the song cache alone, dynamic evaluation alone (when fitted)
    cache_only: EvalResult | None = None
    dynamic_only: EvalResult | None = None


def score_text(
    model: torch.nn.Module,
    ids: torch.Tensor,
    device: torch.device | str,
    mixture: Mixture | None = None,
    kn_logp: torch.Tensor | None = None,
    stop: Callable[[], bool] | None = None,
    adapt: bool = False,
    net_logp: torch.Tensor | None = None,
    warm: torch.Tensor | None = None,
) -> Scores:
    """Score ids (N,) under the network and, with a mixture, under the mixture too, and with
    `adapt` (and a fitted adaptation) under the adapted mixture: the song cache, and dynamic
    evaluation where it was fitted (then both together is `adapted`). `kn_logp`, `net_logp`
    (N-1,): the count model's and the network's log-probs of these ids, when the caller has
    them (a gated mixture scores the network again: it needs its entropies too); `stop` as in
    evaluate.target_logprobs. `warm` (W,): the text just before `ids` (the end of the training
    text, for its held-out split), which dynamic evaluation reads, learning, before `ids`; the
    static scores start from nothing, as during training."""
    gated = mixture is not None and mixture.gate is not None
    h_net = h_kn = None
    if gated:  # the gate reads both models' entropies before each character
        net_logp, h_net = logprobs_and_entropy(model, ids, device, stop)  # (N-1,) each
        h_kn = torch.from_numpy(mixture.kn.entropies(ids))  # (N-1,)
    elif net_logp is None:
        net_logp = target_logprobs(model, ids, device, stop=stop)  # (N-1,)
    network = EvalResult.from_logprobs(net_logp, ids[1:])
    if mixture is None:
        return Scores(network, network, None)
    kn_logp = kn_logprobs(mixture.kn, ids) if kn_logp is None else kn_logp
    mixed = mixture.mix(net_logp, kn_logp, h_net, h_kn)  # (N-1,)
    shipped = EvalResult.from_logprobs(mixed, ids[1:])
    weight = mixture.weight
    if gated and len(h_net):
        weight = float(torch.sigmoid(mixture.gate.logits(h_net, h_kn)).mean())
    if not adapt or mixture.adaptation is None:
        return Scores(shipped, network, weight)
    cache = EvalResult.from_logprobs(mixture.adaptation.mix(mixed, ids), ids[1:])
    dyn = mixture.dynamic
    if dyn is None or dyn.lr <= 0:
        return Scores(shipped, network, weight, cache, cache)
    n = len(ids) - 1
    read = ids if warm is None or not len(warm) else torch.cat([warm.to(ids.dtype), ids])
    if gated:  # the gate reads the learning network's entropies as it does the static one's
        dyn_net, h_dyn = dynamic.dynamic_logprobs_and_entropy(
            model, read, dyn.lr, device, stop, rms=dyn.rms
        )
        dyn_mixed = mixture.gate.mix(dyn_net[-n:], kn_logp, h_dyn[-n:], h_kn)  # ids' part (N-1,)
    else:
        dyn_net = dynamic.dynamic_logprobs(model, read, dyn.lr, device, stop, dyn.rms)
        dyn_mixed = mix_logprobs(dyn_net[-n:], kn_logp, dyn.weight)  # (N-1,)
    both = (dyn.cache or mixture.adaptation).mix(dyn_mixed, ids)
    dyn_only = EvalResult.from_logprobs(dyn_mixed, ids[1:])
    return Scores(shipped, network, weight, EvalResult.from_logprobs(both, ids[1:]),
                  cache, dyn_only)  # fmt: skip


def mix_logprobs(net_logp: torch.Tensor, kn_logp: torch.Tensor, weight: float) -> torch.Tensor:
    if weight >= 1:
        return net_logp
    if weight <= 0:
        return kn_logp
    return torch.logaddexp(net_logp + math.log(weight), kn_logp + math.log1p(-weight))


def kn_logprobs(kn: Counts, ids: torch.Tensor) -> torch.Tensor:
    """ln p_kn(ids[i] | ids[:i]) for i >= 1, (N-1,) float64."""
    return torch.from_numpy(kn.log_probs(ids))


def to_payload(
    kn: Counts,
    weight: float,
    adaptation: Adaptation | None,
    dyn: Dynamic | None = None,
    gate: Gate | None = None,
) -> dict[str, Any]:
    """What a checkpoint stores: the count tables as tensors (loading is a read, no rebuild),
    the weight, the song cache's weights and the dynamic evaluation fitted beside them."""
    t = kn.tables()
    return {
        "order": t["order"],
        "weight": float(weight),
        "adapt": adaptation.to_payload() if adaptation else None,
        **({"dynamic": dyn.to_payload()} if dyn else {}),
        **({"gate": gate.to_payload()} if gate else {}),
        **({"lexicon": kn.to_payload()} if isinstance(kn, LexiconCounts) else {}),
        "vocab_size": t["vocab_size"],
        "unk_mass": t["unk_mass"],
        "discounts": torch.from_numpy(t["discounts"]),
        "keys": [torch.from_numpy(k) for k in t["keys"]],
        # counts fit in 32 bits (a corpus under 2**31 characters): 12 bytes an n-gram, not 16
        "counts": [torch.from_numpy(c.astype(np.int32)) for c in t["counts"]],
    }


def from_payload(
    block: dict[str, Any] | None,
    vocab_size: int,
    vocab: Vocab | None = None,
    cache_root: Path | None = None,
) -> Mixture | None:
    """The mixture a checkpoint's kn block describes; ValueError/KeyError/TypeError if it is
    malformed. Format 1 blocks hold the training ids instead of tables: rebuilt from them. A
    block with a lexicon needs the `vocab` to rebuild it for (lexicon.py; its tables cached
    under `cache_root` where given)."""
    if not block:
        return None
    weight, order = float(block["weight"]), int(block["order"])
    if not 0.0 <= weight <= 1.0 or not 1 <= order <= 16:
        raise ValueError("kn.weight or kn.order out of range")
    if "ids" in block:  # format 1
        ids = block["ids"]
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
            raise TypeError("kn.ids is not a 1-d tensor")
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            raise ValueError("kn.ids fall outside the vocabulary")
        return Mixture(KneserNey(ids, vocab_size, order), weight)
    if int(block["vocab_size"]) != vocab_size:
        raise ValueError(
            f"kn.vocab_size {block['vocab_size']} is not the vocabulary's {vocab_size}"
        )
    adapt = block.get("adapt")
    adaptation = Adaptation.from_payload(adapt) if adapt else None
    dyn = block.get("dynamic")
    dyn = Dynamic.from_payload(dyn) if dyn is not None else None
    gate = Gate.from_payload(block["gate"]) if block.get("gate") is not None else None
    kn: Counts = KneserNey.from_tables(block)
    if block.get("lexicon") is not None:
        if vocab is None:
            raise ValueError("kn.lexicon needs the vocabulary to rebuild it")
        kn = lexicon_from_payload(block["lexicon"], kn, vocab, cache_root)
    return Mixture(kn, weight, adaptation, dyn, gate)
