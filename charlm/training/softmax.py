"""Whether the output layer is one softmax or two levels, and where its clusters split.

A character vocabulary of thousands (Chinese) makes the output layer most of a training step:
on the Tang poems' first 2M characters (7.7k distinct) LSTM 1x384 with a tied 192-wide output
spends 7.7k scores a character there against the recurrence's 0.9M multiply-adds. In a
two-level softmax (models/charrnn.py) a character costs the head's scores plus, only where the
target is rare, its cluster's. The clusters are chosen from the training text's counts (ids are
in count order) to make that expected cost smallest: on the Tang poems the head holds 409
characters (65 % of the text), one cluster the next 1,557, the other the remaining 5.7k; 1.1k
scores a character instead of 7.7k (Jay Chou's 2.5k: 530).
"""

from __future__ import annotations

import itertools

import numpy as np

from charlm.errors import UsageError

SOFTMAXES = ("auto", "full", "adaptive")
# auto: two levels when they cut the scores a character by this factor ...
MIN_SAVING = 2.0
# ... and the vocabulary has at least this many entries: below it the output layer is not what
# a step spends its time on (English's 73 characters), and the clusters' own matmuls would be
MIN_VOCAB = 1000
MAX_TAILS = 3  # tail clusters: past 2-3 the saving is a few scores, each cluster a matmul
GRID = 48  # candidate cut points, spaced evenly in the log of the id


def expected_scores(probs: np.ndarray, cutoffs: tuple[int, ...]) -> float:
    """Scores computed a character in training, for ids in count order with chances `probs`
    (V,): the head's characters and cluster scores, and each cluster's size times its chance."""
    if not cutoffs:
        return float(len(probs))
    cum = np.concatenate([[0.0], np.cumsum(probs)])
    bounds = (*cutoffs, len(probs))
    tails = sum((cum[hi] - cum[lo]) * (hi - lo) for lo, hi in itertools.pairwise(bounds))
    return cutoffs[0] + len(cutoffs) + float(tails)


def choose_cutoffs(counts: np.ndarray) -> tuple[int, ...]:
    """The cutoffs (1 to MAX_TAILS tail clusters, on a log-spaced grid of ids) with the fewest
    expected scores a character, for `counts` (V,) of each id in the training text. Exact
    search over the grid by dynamic programming: best[j][t] is the cheapest tail cost of the
    ids from grid[j] on, split into at most t clusters."""
    v = len(counts)
    if v < 3:
        return ()
    probs = counts / max(counts.sum(), 1)
    cum = np.concatenate([[0.0], np.cumsum(probs)])
    grid = sorted({round(g) for g in np.geomspace(2, v - 1, GRID)} - {v})
    ends = [*grid, v]

    def cost(lo: int, hi: int) -> float:
        return (cum[hi] - cum[lo]) * (hi - lo) + 1  # the cluster's scores, and its head score

    n = len(grid)
    # best[t][j]: (cost, cutoffs) of clusters covering [grid[j], v) with at most t clusters
    best = [[(cost(grid[j], v), (grid[j],)) for j in range(n)]]
    for _ in range(MAX_TAILS - 1):
        prev, row = best[-1], []
        for j in range(n):
            options = [(cost(grid[j], v), (grid[j],))]
            for m in range(j + 1, n):  # cluster [grid[j], grid[m]), then the rest
                c, cuts = prev[m]
                options.append((cost(grid[j], ends[m]) + c, (grid[j], *cuts)))
            row.append(min(options))
        best.append(row)
    total, cuts = min((grid[j] + best[-1][j][0], best[-1][j][1]) for j in range(n))
    return cuts if total < v else ()


def cutoffs_for(softmax: str | None, counts: np.ndarray) -> tuple[tuple[int, ...], str | None]:
    """The model's cutoffs for --softmax (None: auto) and the training text's id counts (V,),
    with a note when auto picked two levels (None otherwise)."""
    softmax = softmax or "auto"
    if softmax not in SOFTMAXES:
        raise UsageError(f"--softmax must be one of {', '.join(SOFTMAXES)}, not {softmax!r}")
    if softmax == "full":
        return (), None
    cuts = choose_cutoffs(counts)
    probs = counts / max(counts.sum(), 1)
    saving = len(counts) / expected_scores(probs, cuts)
    if softmax == "adaptive":
        return cuts, None
    if len(counts) < MIN_VOCAB or saving < MIN_SAVING:
        return (), None
    head = float(probs[: cuts[0]].sum())
    note = (
        f"two-level softmax: the {cuts[0]:,} most frequent characters ({head:.0%} of the text) "
        f"and {len(cuts)} cluster(s) of rarer ones, {expected_scores(probs, cuts):,.0f} scores "
        f"a character instead of {len(counts):,} ({saving:.1f}x fewer; --softmax full for one)"
    )
    return cuts, note
