"""Whether the output layer is one softmax or two levels, and where its clusters split.

A character vocabulary of thousands (Chinese) makes the output layer most of a training step:
on the Tang poems' first 2M characters (7.7k distinct) LSTM 1x384 with a tied 192-wide output
spends 7.7k scores of 192 multiply-adds a character there, against the recurrence's 0.9M. In
a two-level softmax (models/charrnn.py) a character costs the head's scores plus, only where
the target is rare, its cluster's. The clusters are chosen from the training text's counts (ids
are in count order) to make that expected cost smallest: on the Tang poems the head holds 192
characters (55 % of the text), three clusters split the rest at 932 and 2,672; 772 scores a
character instead of 7,662 (Jay Chou's 2,525: 379). A training step there ran 2.5x faster.

What the speed buys is steps, so auto uses two levels only for a model short of compute: one
the time budget's sizing finds reading its text fewer than MANY_PASSES times with one softmax.
Then it is sized again with two levels (a bigger or longer-trained network). On the Tang poems'
first 2M characters at 600 s (fp32, 2 cores): LSTM 1x384 for 1,450 steps instead of 1x256 for
1,010, held out 115.89 against 127.44 (network alone 143.5 against 182.9). A text read over
and over (the Jay Chou lyrics, 130+ passes) is short of text: there the speed bought more
steps and networks but no better model (145.60 against 144.06, one run each), so it keeps one
softmax; so does a run without --max-time or with its size given (nothing sizes it).
"""

from __future__ import annotations

import itertools

import numpy as np

from charlm.errors import UsageError
from charlm.training.options import SOFTMAXES
from charlm.training.sizing import MANY_PASSES

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


def two_levels_pay(softmax: str | None, cutoffs: tuple[int, ...], passes: float | None) -> bool:
    """Whether auto (`softmax` None or "auto") takes the two-level layer `cutoffs` (cutoffs_for's
    pick; () for none): when the budget's sizing, with one softmax, found the model reading its
    text fewer than MANY_PASSES times (`passes`; None: no budget)."""
    auto = softmax in (None, "auto")
    return auto and bool(cutoffs) and passes is not None and passes < MANY_PASSES


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
