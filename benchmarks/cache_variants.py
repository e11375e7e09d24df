#!/usr/bin/env python3
"""The song cache against the alternatives measured and left off: one table per checkpoint.

    .venv/bin/python benchmarks/cache_variants.py --checkpoint RUN_OR_PT --corpus jay
    .venv/bin/python benchmarks/cache_variants.py --checkpoint tang2m/best.pt --corpus tang2m.txt

The checkpoint's networks, count model and gate stay as trained; only the cache changes, each
variant fitted on the run's own tune slice (charlm's split: setup.run_data with the default
--val-fraction and --mix-fraction; the corpus must be the one the run trained on) and scored
on the whole held-out split, over the static mixture and over the dynamically evaluated one:

    shipped        the cache that ships: the longest earlier match (contexts up to 7
                   characters), one weight per match length (adapt.py)
    longest-32     the same with contexts up to 31 characters (lengths 8+ in 4 buckets)
    chain          every match length, from the static model up:
                   p_L = (c_L + a_L p_(L-1)) / (n_L + a_L), a_L = e^u + e^v * distinct_L,
                   (u, v) per length bucket, fitted by gradient on the tune slice
    chain-2        a corpus-wide chain (never reset) under a per-document one (reset at blank
                   lines); the same as chain for a text without blank lines
    two-longest    two shipped-style caches mixed, one per document and one corpus-wide
    history-N      chain, the cache having already read the last N training characters
    refit-dynamic  the shipped cache's weights refitted over the dynamic mixture's tune slice

The networks read the held-out text in one stream, as dynamic evaluation does (its rate 0 for
the static row): within 0.1 of `charlm evaluate`. The contexts are counted by a Python loop:
the Tang poems' first 2M characters take about 6 minutes on 2 cores, Jay Chou one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from recipe import corpus_path  # noqa: E402

from charlm import api  # noqa: E402
from charlm.config import TrainConfig  # noqa: E402
from charlm.data.corpus import read_corpus  # noqa: E402
from charlm.data.ids_cache import encode_text  # noqa: E402
from charlm.scoring import dynamic  # noqa: E402
from charlm.scoring.adapt import (  # noqa: E402
    CACHE_ORDER,
    Adaptation,
    blank_line_ids,
    cache_probs,
    fit_weights,
)
from charlm.scoring.evaluate import logprobs_and_entropy, perplexity  # noqa: E402
from charlm.scoring.lexicon import Lexicon, LexiconCounts  # noqa: E402
from charlm.scoring.mixture import kn_logprobs, mix_logprobs  # noqa: E402
from charlm.scoring.mixture_fit import MixtureFit  # noqa: E402
from charlm.training.setup import run_data  # noqa: E402

LONG = 32  # the longest context + 1 the long variants count
BUCKETS = 12  # match lengths 0-7 one each, then 8-11, 12-15, 16-23, 24-31


def bucket(length: int) -> int:
    if length < 8:
        return length
    return 8 if length < 12 else 9 if length < 16 else 10 if length < 24 else 11


def counts(seq: np.ndarray, order: int, reset: tuple[int, ...] = (), hist: int = 0):
    """For each target seq[i], i > hist: per context length L < order, how often the L
    characters before it came earlier in its document (n), how often followed by the target
    (c), by how many distinct characters (t). (M, order) each, M = len(seq) - 1 - hist."""
    ids = [int(x) for x in seq]
    n = len(ids)
    out = np.zeros((3, n - 1, order))
    follow: dict = defaultdict(lambda: defaultdict(int))
    start = 0
    for i in range(1, n):
        if reset and i >= 2 and ids[i - 1] in reset and ids[i - 2] in reset:
            follow, start = defaultdict(lambda: defaultdict(int)), i  # a blank line
        t = ids[i]
        for length in range(order):
            if i - length < start:
                break
            d = follow.get(tuple(ids[i - length : i]))
            if d is None:
                break
            out[0, i - 1, length] = sum(d.values())
            out[1, i - 1, length] = d.get(t, 0)
            out[2, i - 1, length] = len(d)
        for length in range(order):
            if i - length < start:
                break
            follow[tuple(ids[i - length : i])][t] += 1
    return out[:, hist:]


def chain(static: np.ndarray, feats: np.ndarray, params, base=None) -> torch.Tensor:
    """p of each target under the chain over the static log-probs (M,); (M,) float64."""
    u, v = params
    p = torch.from_numpy(np.exp(static)) if base is None else base
    n_all, c_all, t_all = (torch.from_numpy(f) for f in feats)
    for length in range(n_all.shape[1]):
        b = bucket(length)
        a = torch.exp(u[b]) + torch.exp(v[b]) * t_all[:, length]
        n, c = n_all[:, length], c_all[:, length]
        p = torch.where(n > 0, (c + a * p) / (n + a), p)
    return p


def fit_chain(static: np.ndarray, layers: list[np.ndarray], iters: int = 300):
    """(u, v) per layer, by Adam on the tune slice's mean log-loss."""
    params = [[torch.zeros(BUCKETS, dtype=torch.float64, requires_grad=True) for _ in "uv"]
              for _ in layers]  # fmt: skip
    opt = torch.optim.Adam([x for pair in params for x in pair], lr=0.05)
    for _ in range(iters):
        opt.zero_grad()
        p = None
        for feats, pair in zip(layers, params, strict=True):
            p = chain(static, feats, pair, p)
        (-torch.log(p).mean()).backward()
        opt.step()
    return [[x.detach() for x in pair] for pair in params]


def apply_chain(static: np.ndarray, layers: list[np.ndarray], params) -> np.ndarray:
    p = None
    with torch.no_grad():
        for feats, pair in zip(layers, params, strict=True):
            p = chain(static, feats, pair, p)
    return np.log(p.numpy())


def longest(feats: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """p_cache at the longest match below `order` and its bucket (-1: none); (M,) each."""
    seen = feats[0][:, :order] > 0
    length = np.where(seen.any(1), order - 1 - np.argmax(seen[:, ::-1], 1), -1)
    rows, at = np.arange(len(length)), np.maximum(length, 0)
    p = np.where(length >= 0, feats[1][rows, at] / np.maximum(feats[0][rows, at], 1), 0.0)
    return p, np.array([bucket(x) if x >= 0 else -1 for x in length])


def ppl(logp: np.ndarray | torch.Tensor) -> float:
    return perplexity(-float(np.mean(np.asarray(logp, dtype=np.float64))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a run name or a .pt file")
    ap.add_argument("--checkpoint-dir", default="checkpoints")
    ap.add_argument("--corpus", required=True, help="jay, tang, kjv11 or a file (the run's)")
    ap.add_argument("--history", default="2000,10000", help="training characters read first")
    args = ap.parse_args()
    lm = api.load(args.checkpoint, checkpoint_dir=args.checkpoint_dir, device="cpu")
    m = lm.mixture
    if m is None or m.adaptation is None:
        sys.exit(f"{lm.path}: no song cache to compare against")
    with tempfile.TemporaryDirectory() as tmp:
        text = read_corpus(str(corpus_path(args.corpus, Path(tmp)))).text
    data = run_data(encode_text(text, "", TrainConfig().val_fraction, None), {}, TrainConfig())
    if len(data.vocab) != len(lm.vocab) or data.tune_ids is None:
        sys.exit("the corpus is not the one this run trained on (or it has no tune slice)")
    reset = blank_line_ids(lm.vocab)
    lexicon = (
        Lexicon(m.kn.name, m.kn.lexicon, m.kn.keep) if isinstance(m.kn, LexiconCounts) else None
    )
    fit = MixtureFit(data.train_ids, data.tune_ids, m.kn.order, len(lm.vocab), reset, lexicon)
    tune, val = fit.tune_ids, data.val_ids
    v_kn, v_hkn = kn_logprobs(m.kn, val), torch.from_numpy(m.kn.entropies(val))

    def mixed(ids, kn, h_kn, lr: float, weight: float) -> torch.Tensor:  # (N-1,)
        rms = m.dynamic.rms if m.dynamic is not None else ()
        net, h = dynamic.dynamic_logprobs_and_entropy(lm.model, ids, lr, "cpu", rms=rms)
        return m.gate.mix(net, kn, h, h_kn) if m.gate else mix_logprobs(net, kn, weight)

    net, h = logprobs_and_entropy(lm.model, tune, "cpu")
    t_static = m.mix(net, fit.tune_kn_logp, h, fit.tune_kn_entropy).double().numpy()
    scored = {"static": mixed(val, v_kn, v_hkn, 0.0, m.weight).double().numpy()}
    dyn = m.dynamic
    if dyn is not None and dyn.lr > 0:
        scored["dynamic"] = mixed(val, v_kn, v_hkn, dyn.lr, dyn.weight).double().numpy()
    rows: dict[str, dict[str, float]] = {}

    def row(name: str, fn) -> None:
        rows[name] = {k: ppl(fn(s)) for k, s in scored.items()}
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in rows[name].values()) + " |",
              flush=True)  # fmt: skip

    print(
        f"{lm.path}: held-out {len(val):,} characters, tune slice {len(tune):,}; blank "
        f"lines reset the shipped cache: {bool(m.adaptation.reset_ids)}",
        file=sys.stderr,
    )
    print("| cache | " + " | ".join(f"over the {k} mixture" for k in scored) + " |")
    print("|---|" + "---|" * len(scored))
    row("none", lambda s: s)
    row("shipped", lambda s: m.adaptation.mix(torch.from_numpy(s), val).numpy())
    shipped_reset = m.adaptation.reset_ids
    t_long, v_long = counts(tune.numpy(), LONG, shipped_reset), counts(val.numpy(), LONG,
                                                                      shipped_reset)  # fmt: skip
    p_t, b_t = longest(t_long, LONG)
    p_v, b_v = longest(v_long, LONG)
    lam = np.asarray(fit_weights(torch.from_numpy(t_static), p_t, b_t, BUCKETS))[b_v + 1]
    row("longest-32", lambda s: np.log((1 - lam) * np.exp(s) + lam * p_v))
    params = fit_chain(t_static, [t_long])
    row("chain", lambda s: apply_chain(s, [v_long], params))
    if reset:
        t_all, v_all = counts(tune.numpy(), LONG), counts(val.numpy(), LONG)
        t_doc, v_doc = counts(tune.numpy(), LONG, reset), counts(val.numpy(), LONG, reset)
        params2 = fit_chain(t_static, [t_all, t_doc])
        row("chain-2", lambda s: apply_chain(s, [v_all, v_doc], params2))
        caches = {r: (cache_probs(tune, CACHE_ORDER, r), cache_probs(val, CACHE_ORDER, r))
                  for r in ((), reset)}  # fmt: skip
        row("two-longest", lambda s: two_longest(t_static, s, caches))
    train_ids = data.train_ids.numpy()
    for n in (int(x) for x in args.history.split(",") if x):
        before_val = np.concatenate([train_ids, data.tune_ids.numpy()])[-n:]
        hist_t = np.concatenate([train_ids[-n:], tune.numpy()])  # read before each: n chars
        hist_v = np.concatenate([before_val, val.numpy()])
        params_h = fit_chain(t_static, [counts(hist_t, LONG, hist=n)])
        v_h = counts(hist_v, LONG, hist=n)
        row(f"history-{n}", lambda s, p=params_h, f=v_h: apply_chain(s, [f], p))
    if "dynamic" in scored:
        t_dyn = mixed(tune, fit.tune_kn_logp, fit.tune_kn_entropy, dyn.lr, dyn.weight)
        p_c, match = fit.caches[shipped_reset]
        refit = Adaptation(fit_weights(t_dyn, p_c, match, CACHE_ORDER), shipped_reset)
        row("refit-dynamic", lambda s: refit.mix(torch.from_numpy(s), val).numpy())


def two_longest(t_static: np.ndarray, s: np.ndarray, caches) -> np.ndarray:
    """Three components (static, corpus-wide cache, per-document cache), one weight per match
    length each, by EM on the tune slice."""
    ((g_t, lg_t), (g_v, lg_v)), ((d_t, ld_t), (d_v, ld_v)) = caches.values()
    wg, wd = np.full(CACHE_ORDER + 1, 0.1), np.full(CACHE_ORDER + 1, 0.1)
    wg[0] = wd[0] = 0.0
    ps = np.exp(t_static)
    for _ in range(100):
        a, b = wg[lg_t + 1], wd[ld_t + 1]
        total = (1 - a - b) * ps + a * g_t + b * d_t
        for w, share, lengths in ((wg, a * g_t / total, lg_t), (wd, b * d_t / total, ld_t)):
            for length in range(CACHE_ORDER):
                at = lengths == length
                if at.sum() >= 20:
                    w[length + 1] = share[at].mean()
    a, b = wg[lg_v + 1], wd[ld_v + 1]
    return np.log(np.clip(1 - a - b, 1e-6, 1) * np.exp(s) + a * g_v + b * d_v)


if __name__ == "__main__":
    main()
