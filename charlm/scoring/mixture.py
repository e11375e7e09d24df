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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charlm.data.vocab import UNK_ID, Vocab, chunk_spans
from charlm.scoring import dynamic
from charlm.scoring.adapt import CACHE_ORDER, Adaptation, cache_probs, fit_weights
from charlm.scoring.dynamic import Dynamic
from charlm.scoring.evaluate import (
    EvalResult,
    EvalStopped,
    logprobs_and_entropy,
    target_logprobs,
)
from charlm.scoring.gate import Gate, entropy, fit_gate
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.lexicon import MIN_WEIGHT, Lexicon, LexiconCounts, fit_share, mix_scores
from charlm.scoring.lexicon import from_payload as lexicon_from_payload

Counts = KneserNey | LexiconCounts  # the corpus's count model, leaning on a lexicon or not

MAX_KN_CHARS = 5_000_000  # past this the network trains alone (kept from the dict-table days)
MIN_TUNE_CHARS = 64  # fewer tune characters than this cannot fit a weight worth shipping
FIT_CHARS = 50_000  # the weight is one number: the first 50k tune characters fit it as well
# The orders a run's count model is chosen from (pick_order), lowest first: each next one is
# counted only while the last one paid. Eight characters are four or five Chinese words but one
# or two English ones: on the King James Bible's first 1.1M characters the mixture with a 600 s
# network scored 1.0105 nats/char at order 8, 0.9979 at 12, 0.9954 at 16 (the count model
# alone 1.1312, 1.1276, 1.1238: it ranks them as the mixture does); on the Jay Chou lyrics and
# the Tang poems order 12 scored a little worse than 8 (5.0632 against 5.0623, 4.9502 against
# 4.9483), so 16 is never counted there.
KN_ORDERS = (8, 12, 16)
# A higher order holds about twice the tables of the one below it and asks generation more
# lookups (1M English characters: 0.43 ms a character at 12, 0.52 ms at 16, from a context
# not counted; benchmarks/kn_orders.py): it must buy at least this many nats a character on
# the tune slice, or the lower order is kept
ORDER_GAIN = 1e-3
# pick_order counts at most the last this many characters of the training text: the choice
# follows the kind of text, and counting all of the Tang poems' 3.8M at 8 and 12 added 32 s
# to a run's start
PICK_CHARS = 1_000_000


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


class MixtureFit:
    """A run's count model, and the honest way to fit its weight.

    Two count models: one counts the training text without the tune slice and scores the tune
    slice (so the weight is fitted on text neither model has seen), the other counts all of it
    and is the one that ships. `fit(model)` gives the mixture for the network as it is now.
    With a `lexicon` (lexicon.for_corpus), both lean on it at the share b that scores the tune
    slice best (`lexicon_weight`; 0 where it is under lexicon.MIN_WEIGHT: not leaned on).
    """

    def __init__(
        self,
        fit_ids: torch.Tensor,
        tune_ids: torch.Tensor,
        order: int,
        vocab: int,
        reset_ids: tuple[int, ...] = (),
        lexicon: Lexicon | None = None,
    ) -> None:
        self.kn: Counts = KneserNey(torch.cat([fit_ids, tune_ids]), vocab, order)
        self.tune_ids = fit_slice(tune_ids, fit_ids, vocab)
        self.tune_chars = len(tune_ids)  # the whole slice: text no network trains on
        # the end of the fit text, whose gradients give dynamic evaluation's RMS rule its
        # scales (a copy: fit_ids may be a memory map)
        self.scale_ids = fit_ids[-(dynamic.SCALE_CHARS + 1) :].clone()
        fit_kn: Counts = KneserNey(fit_ids, vocab, order)
        self.lexicon_weight = 0.0
        self.lexicon_name = lexicon.name if lexicon is not None else None  # the one tried
        tune_logp = None  # the fit's count model's ln p of the tune slice, once read
        if lexicon is not None:  # its share b, fitted against the corpus counts alone
            leaning = LexiconCounts(fit_kn, lexicon.kn, lexicon.name, 0.5, lexicon.keep)
            parts = leaning.parts(self.tune_ids)  # (T-1,) each: read once, for b and the logp
            b = fit_share(parts)
            tune_logp = parts[0]  # the corpus counts alone
            if b >= MIN_WEIGHT:
                self.lexicon_weight = b
                self.kn = replace(leaning, corpus=self.kn, weight=b)
                fit_kn = replace(leaning, weight=b)
                tune_logp = mix_scores(*parts, b)
        self.tune_kn_logp = (kn_logprobs(fit_kn, self.tune_ids) if tune_logp is None
                             else torch.from_numpy(tune_logp))  # fmt: skip
        self.tune_kn_entropy = torch.from_numpy(fit_kn.entropies(self.tune_ids))  # the gate's
        # the song cache over the tune slice, without and with resets at blank lines
        self.caches = {r: cache_probs(self.tune_ids, CACHE_ORDER, r) for r in {(), reset_ids}}

    def fit(
        self,
        net_logp: torch.Tensor | None = None,
        weight: float | None = None,
        adaptation: Adaptation | None = None,
    ) -> Mixture:
        """The mixture with its weight, and the song cache's weights, fitted by EM on the tune
        slice (or the given ones). `net_logp` (len(tune_ids) - 1,): the network's log-probs of
        `tune_ids` (`evaluate.target_logprobs`), needed unless `weight` is given."""
        if weight is None:
            weight = fit_weight(net_logp, self.tune_kn_logp)
            adaptation = self._fit_adaptation(mix_logprobs(net_logp, self.tune_kn_logp, weight))
        return Mixture(self.kn, weight, adaptation)

    def _fit_adaptation(self, static_logp: torch.Tensor) -> Adaptation | None:
        """Weights per match length; resetting at blank lines or not, whichever the tune
        slice likes better (a corpus of separate poems resets, one of run-on lyrics need not)."""
        best, best_ll = None, -math.inf
        for reset, (p_cache, match) in self.caches.items():
            a = Adaptation(fit_weights(static_logp, p_cache, match, CACHE_ORDER), reset)
            ll = float(a.mix(static_logp, self.tune_ids).sum()) if len(static_logp) else 0.0
            if ll > best_ll:
                best, best_ll = a, ll
        return best

    def fit_gate(
        self,
        model: torch.nn.Module,
        weight: float,
        device: torch.device | str = "cpu",
        stop: Callable[[], bool] | None = None,
    ) -> tuple[Gate, Adaptation | None] | None:
        """The gate (gate.py) for `model`, the networks that ship, fitted on the tune slice
        from their one weight `weight`, and the song cache refitted over the gated mixture;
        None where the gate does not beat the one weight. `stop()` true: EvalStopped."""
        net_logp, h_net = logprobs_and_entropy(model, self.tune_ids, device, stop)
        gate = fit_gate(net_logp, self.tune_kn_logp, h_net, self.tune_kn_entropy, weight)
        if gate is None:
            return None
        static = gate.mix(net_logp, self.tune_kn_logp, h_net, self.tune_kn_entropy)
        return gate, self._fit_adaptation(static)

    def fit_dynamic(
        self,
        model: torch.nn.Module,
        adaptation: Adaptation | None,
        device: torch.device | str = "cpu",
        stop: Callable[[], bool] | None = None,
        gate: Gate | None = None,
    ) -> Dynamic | None:
        """The dynamic evaluation rate (0 among the candidates; the RMS rule, its scales read
        on the end of the fit text after the static network) whose adapted pipeline, the
        mixture weight refitted over it and the shipped song cache (`adaptation`, fitted on
        more of the tune slice than this fit can afford: refitted on 8k characters of the Tang
        poems it scored their held-out split at 100.3 against 82.1), scores the start of the
        tune slice best (dynamic.FIT_CHARS characters). `stop()` true (the time budget is
        spent): the best candidate so far, a rate cut short compared on the characters it read
        (at least dynamic.MIN_FIT_CHARS); None when no rate but 0 was compared."""
        ids = self.tune_ids[: dynamic.FIT_CHARS + 1]
        kn = self.tune_kn_logp[: len(ids) - 1]

        def score(net: torch.Tensor, h_net: torch.Tensor) -> tuple[float, float]:
            """The weight fitted over these n positions and the log-likelihood there."""
            n = len(net)
            weight = fit_weight(net, kn[:n])  # stored; a gate (`gate`) mixes in its place
            mixed = self._tune_mix(net, h_net, gate, weight)
            return weight, float((adaptation.mix(mixed, ids[: n + 1]) if adaptation
                                  else mixed).sum())  # fmt: skip

        best, best_read, compared, rms = None, None, False, ()
        for lr in (0.0, *dynamic.RATES):
            if lr > 0 and not rms:
                if len(self.scale_ids) < 2:  # no fit text to read the scales on
                    break
                try:
                    rms = dynamic.grad_scale(model, self.scale_ids, device, stop)
                except EvalStopped:
                    break
            # (n,) each: the positions read before the budget ran out (all, mostly)
            net, h_net = dynamic.dynamic_logprobs_and_entropy(model, ids, lr, device, stop, True,
                                                              rms)  # fmt: skip
            cut = len(net) < len(ids) - 1
            if best is None:  # the static network, the baseline: read whole or no fit
                if cut:
                    return None
                best, best_read = Dynamic(lr, score(net, h_net)[0]), (net, h_net)
            elif not cut or len(net) >= dynamic.MIN_FIT_CHARS:
                # against the best so far on the same positions (a cut read: its first n)
                n, compared = len(net), True
                weight, ll = score(net, h_net)
                if ll > score(best_read[0][:n], best_read[1][:n])[1]:
                    best, best_read = Dynamic(lr, weight, rms), (net, h_net)
            if cut or (stop is not None and stop()):
                break
        if not compared:
            return None  # no rate but 0 was scored in the time
        if best.lr > 0:  # the held-out text follows the tune slice: read it first (WARM_CHARS)
            best = replace(best, warm=min(self.tune_chars, dynamic.WARM_CHARS))
        whole = len(best_read[0]) == len(self.tune_ids) - 1  # what the shipped cache was fit on
        if best.lr > 0 and adaptation is not None and whole:
            best = replace(best, cache=self._refit_cache(best, best_read, adaptation, gate))
        return best

    def _refit_cache(
        self,
        dyn: Dynamic,
        read: tuple[torch.Tensor, torch.Tensor],
        adaptation: Adaptation,
        gate: Gate | None,
    ) -> Adaptation:
        """The song cache's weights refitted over the dynamic mixture of the whole tune slice
        (`read`: the learning network's log-probs and entropies there), resetting as the
        shipped cache does. A network that learns the song as it reads leaves the cache less
        to add: on the Jay Chou lyrics (a tune slice of 2,921 characters) the weights fell from
        0.10-0.15 to 0.04-0.10 for 1-3 character matches, and the held-out text went from
        20.76 to 20.60. Where the tune slice is longer than the dynamic fit reads, the
        shipped weights stay: refitted on its first 8,000 characters they scored the Tang
        poems' held-out split at 100.3 against 82.1."""
        mixed = self._tune_mix(*read, gate, dyn.weight)
        counted = self.caches.get(adaptation.reset_ids) if adaptation.order == CACHE_ORDER else None
        p_cache, match = counted or cache_probs(self.tune_ids, adaptation.order,
                                                adaptation.reset_ids)  # fmt: skip
        weights = fit_weights(mixed, p_cache, match, adaptation.order)
        return Adaptation(weights, adaptation.reset_ids)

    def _tune_mix(
        self, net: torch.Tensor, h_net: torch.Tensor, gate: Gate | None, weight: float
    ) -> torch.Tensor:
        """The network's log-probs of the first n tune targets (n,), and its entropies there,
        mixed with the count model's: by `gate` where there is one, else by `weight`."""
        n = len(net)
        kn, h_kn = self.tune_kn_logp[:n], self.tune_kn_entropy[:n]
        return gate.mix(net, kn, h_net, h_kn) if gate else mix_logprobs(net, kn, weight)

    def payload(self, weight: float, adaptation: Adaptation | None) -> dict[str, Any]:
        return to_payload(self.kn, weight, adaptation)


def pick_order(
    fit_ids: torch.Tensor, tune_ids: torch.Tensor, vocab: int, orders: tuple[int, ...] = KN_ORDERS
) -> tuple[int, dict[int, float]]:
    """The order whose count model, counting the training text less the tune slice (its last
    PICK_CHARS), scores the tune slice best, and the nats/char there of each order counted.
    The orders are tried lowest first, and the walk stops at the first that does not beat the
    one before by ORDER_GAIN (a text whose characters hang on 8 before them never counts 16).
    The network is not trained yet: the count model alone decides, which ranked the orders as
    the mixture did on the three corpora measured (KN_ORDERS)."""
    fit = fit_ids[-PICK_CHARS:]
    tune = fit_slice(tune_ids, fit, vocab)

    def nats_at(k: int) -> float:
        return -float(kn_logprobs(KneserNey(fit, vocab, k), tune).mean())

    best = orders[0]
    nats = {best: nats_at(best)}
    for k in orders[1:]:
        nats[k] = nats_at(k)
        if nats[k] > nats[best] - ORDER_GAIN:
            break
        best = k
    return best, nats


def fit_slice(tune_ids: torch.Tensor, fit_ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """What each fit scores: the first FIT_CHARS + 1 ids of the tune slice, every character
    the fit text (`fit_ids`) lacks as <unk>. The tune slice stands for text the models have
    not read, so it is scored as the held-out split is: there a character the training text
    lacks is <unk>, which both models have learned to expect. Scored as themselves, such
    characters cost the network ~13 nats each (an output it never trained on): on the Jay
    Chou lyrics 8 % of the tune slice, which pulled the network's fitted share to 0.33 where
    the held-out text wants 0.54 (held out 147.8 against 144.7 refitted this way). Returns a
    new (<= FIT_CHARS + 1,) tensor; `tune_ids` is left as it is."""
    tune = tune_ids[: FIT_CHARS + 1].numpy().copy()  # (T,) of the ids' dtype
    known = np.zeros(vocab, dtype=bool)
    for i, j in chunk_spans(0, len(fit_ids)):  # a chunk at a time: fit_ids may be a memory map
        known[np.unique(fit_ids[i:j].numpy())] = True
    tune[~known[tune]] = UNK_ID
    return torch.from_numpy(tune)


def mix_logprobs(net_logp: torch.Tensor, kn_logp: torch.Tensor, weight: float) -> torch.Tensor:
    if weight >= 1:
        return net_logp
    if weight <= 0:
        return kn_logp
    return torch.logaddexp(net_logp + math.log(weight), kn_logp + math.log1p(-weight))


def fit_weight(net_logp: torch.Tensor, kn_logp: torch.Tensor, iters: int = 100) -> float:
    """EM for the one mixture weight that maximises the likelihood of the tune slice."""
    if len(net_logp) == 0:
        return 1.0
    lam = 0.5
    for _ in range(iters):
        a = net_logp + math.log(lam)
        b = kn_logp + math.log1p(-lam)
        new = float(torch.exp(a - torch.logaddexp(a, b)).mean())
        new = min(max(new, 1e-4), 1 - 1e-4)
        if abs(new - lam) < 1e-7:
            lam = new
            break
        lam = new
    return lam


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
