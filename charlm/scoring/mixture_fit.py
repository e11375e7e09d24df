"""Fitting what ships: the mixture weight, the count model's order and its lexicon share,
the song cache's weights, the gate and dynamic evaluation's rate, each on the tune slice
(`MixtureFit`); the runtime they are fitted for lives in mixture.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from charlm.data.vocab import UNK_ID, chunk_spans
from charlm.scoring import dynamic
from charlm.scoring.adapt import CACHE_ORDER, Adaptation, cache_probs, fit_weights
from charlm.scoring.dynamic import Dynamic
from charlm.scoring.evaluate import (
    EvalStopped,
    logprobs_and_entropy,
)
from charlm.scoring.gate import Gate, fit_gate
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.lexicon import MIN_WEIGHT, Lexicon, LexiconCounts, fit_share, mix_scores
from charlm.scoring.mixture import Counts, Mixture, kn_logprobs, mix_logprobs, to_payload

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
