"""How the model size is chosen: to the corpus, then to the time budget.

The corpus rule (auto_sizes) grows the model with the training text; a model too big for the
machine then sees a fraction of its text in the time it has. With --max-time and no explicit
--hidden / --layers, charlm measures, on this device, how fast candidates train (one warm-up
and the fastest of 3 timed steps each; the smallest first, which on a big corpus is often the
answer, then a bisection up to the corpus rule's model, since speed falls as the model grows:
at most 4 measurements) and keeps the largest one that sees CHARS_PER_PARAM characters per
weight of its recurrence in the budget (80 % of --max-time: the rest goes to reading,
evaluations and checkpoints), or reads its text MANY_PASSES times. A bigger model buys
parameters with characters it never sees (compute-optimal sizing); a text bigger than the
budget can read once does not shrink the model further: what it reads is what counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.data.batching import batches_per_epoch
from charlm.models.charrnn import CharRNN
from charlm.training.optim import make_optimizer
from charlm.training.options import TrainOptions
from charlm.training.step import train_step

CANDIDATES = (1024, 768, 512, 384, 256, 192, 128)  # hidden sizes tried below the corpus rule's
# characters the chosen model must see per weight of its recurrence (core_params) in the
# budget: the best lay near 5 on English and Chinese alike (RESULTS.md, "Sizing rule")
CHARS_PER_PARAM = 4.0
# ... unless it reads its text this many times over: then the text, not the compute, runs out,
# and the corpus rule's size (with its regularisation) stands (RESULTS.md, "Sizing rule")
MANY_PASSES = 20.0
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
TRAIN_SHARE = 0.8  # of --max-time, for training steps
TIMED_STEPS = 3  # a candidate's speed: the fastest of this many steps (after a warm-up)
DECAY = 0.5  # with --max-time, the learning rate falls to zero over this last part of it
# With --max-time the budget ends the run, not TrainConfig's 100-epoch cap (which ended a
# 600 s Jay Chou run at 399 s); early stopping still ends it
BUDGET_EPOCHS = 100_000
# A model the budget sized that reads its text fewer than MANY_PASSES times is short of compute,
# not of text: the corpus rule's regularisation holds it back, so it trains as the plain
# LSTM-512 anchor does (RESULTS.md, "Sizing rule"). Up to LIGHT_PASSES it is LIGHT; from
# MANY_PASSES the corpus rule's; in between, in between (see lighten).
LIGHT = {"dropout": 0.2, "weight_decay": 0.01, "seq_len": 128}
LIGHT_PASSES = 10.0


def embed_for(hidden: int) -> int:
    """The embedding size that goes with `hidden` units: half of it, within [64, 256]."""
    return int(min(256, max(64, hidden // 2)))


def auto_sizes(n_train: int) -> dict[str, Any]:
    """Model size and regularisation from the training text's length: a rule, not a table.

    Capacity grows like sqrt(n) (256 hidden units at ~60k characters, 1024 from ~1M), a second
    layer comes at 1M characters, and dropout and weight decay shrink as data grows (0.6 and
    1.0 at 60k, 0.3 and 0.25 at 1M), because a small corpus is memorised long before a large
    one is. Tuned on one 60k corpus, then extended by these exponents, not per corpus.
    """
    n = max(n_train, 1)
    hidden = int(min(1024, max(128, 64 * round(math.sqrt(n) / 64))))
    ratio = 60_000 / n
    return {
        "hidden": hidden,
        "embed": embed_for(hidden),
        "layers": 1 if n < 1_000_000 else 2,
        "dropout": round(min(0.6, max(0.1, 0.6 * ratio**0.25)), 3),
        "weight_decay": round(min(1.0, max(0.01, ratio**0.5)), 4),
    }


def with_auto_sizes(opts: TrainOptions, n_train: int) -> TrainOptions:
    """Fill the options the user left out from auto_sizes; explicit options always win."""
    auto = auto_sizes(n_train)
    if opts.embed == 0:
        auto.pop("embed")
    if opts.optimizer not in (None, "adamw"):
        # SGD and Adam add weight decay to the gradient, where clipping cannot bound it: a
        # decay sized for AdamW's decoupled form would blow the weights up. Off unless asked.
        auto["weight_decay"] = 0.0
    return opts.fill(auto)


MIN_BATCHES = 4  # batches an epoch must hold before the batch and window shrink to fit
MIN_BATCH, MIN_SEQ = 1, 8


def fit_batches(
    cfg: TrainConfig, n_train: int, batch_given: bool, seq_given: bool
) -> tuple[TrainConfig, str | None]:
    """A short text still trains: the window, then the batch, halve (the options the user left
    out, down to 16 characters and 4 windows, then to 8 and 1) until an epoch holds
    MIN_BATCHES batches; the note says so. Sizes the user gave are kept."""
    batch, seq = cfg.batch_size, cfg.seq_len
    processes = max(1, cfg.global_batch // max(1, cfg.batch_size))

    def enough(b: int, t: int) -> bool:
        return batches_per_epoch(n_train, b * processes, t) >= MIN_BATCHES

    for floor_b, floor_t in ((4, 16), (MIN_BATCH, MIN_SEQ)):
        while not enough(batch, seq):
            if not seq_given and seq > floor_t:
                seq = max(floor_t, seq // 2)
            elif not batch_given and batch > floor_b:
                batch = max(floor_b, batch // 2)
            else:
                break
    if (batch, seq) == (cfg.batch_size, cfg.seq_len):
        return cfg, None
    note = (
        f"small text: --batch-size {batch} --seq-len {seq} (from {cfg.batch_size} x "
        f"{cfg.seq_len}) so that {n_train:,} training characters make "
        f"{batches_per_epoch(n_train, batch * processes, seq)} batches an epoch (set them to "
        "choose)"
    )
    return replace(cfg, batch_size=batch, seq_len=seq), note


def measure_speed(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: torch.device,
    text: torch.Tensor | None = None,
) -> float:
    """Training characters per second of one model on this device: a warm-up step, then the
    fastest of TIMED_STEPS timed steps, on the start of `text` (the training ids) or, without
    it, random ids. A two-level softmax's speed depends on the text (how many targets are
    rare); a full one's does not. One timed step was noisy enough on a shared machine to flip
    the choice for the same corpus between LSTM 1x256 and 1x384 from one run to the next; other
    work only ever slows a step."""

    state = torch.get_rng_state()
    torch.manual_seed(0)
    model = CharRNN(model_cfg, device)
    opt = make_optimizer(model, cfg)
    shape = (cfg.batch_size, cfg.seq_len)
    if text is not None and len(text) > shape[0] * shape[1]:
        ids = text[: shape[0] * shape[1] + 1].to(device=device, dtype=torch.long)
        x, y = ids[:-1].view(shape), ids[1:].view(shape)
    else:
        x = y = torch.randint(model_cfg.vocab_size, shape, device=device)
    bf16 = cfg.precision == "bf16"
    train_step(model, opt, x, y, None, lr=cfg.lr, clip=cfg.clip, bf16=bf16)  # warm-up
    seconds = math.inf
    for _ in range(TIMED_STEPS):
        t0 = time.perf_counter()
        train_step(model, opt, x, y, None, lr=cfg.lr, clip=cfg.clip, bf16=bf16)
        seconds = min(seconds, time.perf_counter() - t0)
    torch.set_rng_state(state)  # the run's own seeding is untouched
    return x.numel() / max(seconds, 1e-9)


def core_params(cfg: ModelConfig) -> int:
    """Weights of the recurrence, and of the tied projection: what the characters seen must
    pay for. The embedding and output tables are left out (as in Kaplan et al.'s
    non-embedding count: a character's row learns from its own occurrences), so a vocabulary
    of thousands does not shrink the network that reads it."""
    g, h = GATES[cfg.cell], cfg.hidden
    first_in = max(cfg.embed, 0)  # a one-hot input's weight is a table too: left out
    rnn = sum(g * h * ((first_in if i == 0 else h) + h) + 2 * g * h for i in range(cfg.layers))
    return rnn + (h * cfg.embed + cfg.embed if cfg.tie else 0)


def smaller(model_cfg: ModelConfig, hidden: int, embed_given: bool) -> ModelConfig:
    """A one-layer candidate of `hidden` units; the embedding follows the sizing rule's
    hidden / 2 unless the user gave --embed."""
    embed = model_cfg.embed if embed_given or model_cfg.embed == 0 else embed_for(hidden)
    return replace(model_cfg, hidden=hidden, layers=1, embed=embed)


def fit_to_budget(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    n_train: int,
    device: torch.device,
    embed_given: bool = False,
    speed: Callable[[ModelConfig], float] | None = None,
    text: torch.Tensor | None = None,
) -> tuple[ModelConfig, str | None, float | None]:
    """The largest candidate, from `model_cfg` down, that sees CHARS_PER_PARAM characters per
    core weight (or makes MANY_PASSES over n_train characters) in TRAIN_SHARE of
    cfg.max_time; the note says what was chosen and why (None when the corpus rule's model
    already fits); and the passes over the text it will make (None: no budget). `text`: the
    training ids the speed is measured on (measure_speed)."""
    if not cfg.max_time:
        return model_cfg, None, None
    speed = speed or (lambda m: measure_speed(m, cfg, device, text))

    def need(m: ModelConfig) -> float:  # chars/s
        chars = min(CHARS_PER_PARAM * core_params(m), MANY_PASSES * n_train)
        return chars / (TRAIN_SHARE * cfg.max_time)

    sizes = [model_cfg] + [smaller(model_cfg, h, embed_given) for h in CANDIDATES
                           if h < model_cfg.hidden]  # fmt: skip
    chosen, rate = _largest_fast_enough(sizes, speed, need)
    seen = rate * TRAIN_SHARE * cfg.max_time
    passes = seen / max(n_train, 1)
    if chosen is model_cfg:
        return model_cfg, None, passes
    note = (
        f"model sized to the budget: {chosen.cell} {chosen.layers}x{chosen.hidden} trains "
        f"{rate:,.0f} chars/s here: {passes:.1f} passes over {n_train:,} "
        f"characters, {seen / core_params(chosen):.0f} characters a weight, in --max-time "
        f"{cfg.max_time:g}; a bigger one would see fewer than {CHARS_PER_PARAM:g} characters a "
        f"weight in fewer than {MANY_PASSES:g} passes (set --hidden / --layers to choose)"
    )
    return chosen, note, passes


def budget_passes(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    n_train: int,
    device: torch.device,
    text: torch.Tensor | None = None,
) -> float:
    """How many times this model, as it is, reads n_train characters in the budget's
    TRAIN_SHARE (the passes fit_to_budget reports for the model it chooses)."""
    speed = measure_speed(model_cfg, cfg, device, text)
    return speed * TRAIN_SHARE * cfg.max_time / max(n_train, 1)


def lighten(
    model_cfg: ModelConfig, cfg: TrainConfig, passes: float | None, given: set[str]
) -> tuple[ModelConfig, TrainConfig, str | None]:
    """A model that reads its text at most LIGHT_PASSES times in the budget trains with LIGHT
    regularisation (never more than the corpus rule's); between that and MANY_PASSES its
    dropout and weight decay move from LIGHT's to the corpus rule's (linearly in the log of
    the passes: no cliff where a slower machine reads a little less), and the longer window
    holds below their geometric middle. The options in `given` (the user's) are kept. The note
    says what changed (None: nothing did)."""
    if passes is None or passes >= MANY_PASSES:
        return model_cfg, cfg, None
    # 0 at LIGHT_PASSES or fewer, 1 at MANY_PASSES
    t = min(1.0, max(0.0, math.log(max(passes, 1e-9) / LIGHT_PASSES))
            / math.log(MANY_PASSES / LIGHT_PASSES))  # fmt: skip
    now = {"dropout": model_cfg.dropout, "weight_decay": cfg.weight_decay,
           "seq_len": cfg.seq_len}  # fmt: skip
    want = {k: round(LIGHT[k] + t * (now[k] - LIGHT[k]), 3) for k in ("dropout", "weight_decay")}
    want["seq_len"] = LIGHT["seq_len"] if t < 0.5 else now["seq_len"]
    new = {k: v for k, v in want.items()
           if k not in given and (v > now[k] if k == "seq_len" else v < now[k])}  # fmt: skip
    if not new:
        return model_cfg, cfg, None
    shown = ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in new.items())
    model_cfg = replace(model_cfg, dropout=new.pop("dropout", model_cfg.dropout))
    cfg = replace(cfg, **new)
    note = (
        f"light regularisation ({shown}): the model reads its text {passes:.1f} times in the "
        f"budget, fewer than {MANY_PASSES:g}: it is short of compute, not of text (set them to "
        "choose)"
    )
    return model_cfg, cfg, note


# A text the model reads MANY_PASSES times over is short of text, not of compute: its networks
# stop improving long before the deadline, and the decay, in which no new network may start,
# only leaves the budget's last half unused. On the Jay Chou lyrics at 600 s the run ended at
# 389 s with 4 networks (148.15 held out, the networks alone 192.6); without the decay and with
# up to 8 networks it used 567 s (146.60, 188.8) (benchmarks/recipe.py); a second run, 494 s
# and again 4 networks (the fifth did not fit), 147.80: the gain is within one run's noise,
# but the budget is no longer left unused.
MANY_MEMBERS = 8


def for_many_passes(
    cfg: TrainConfig, passes: float | None, given: set[str]
) -> tuple[TrainConfig, str | None]:
    """A model that reads its text at least MANY_PASSES times in the budget: no learning-rate
    decay and up to MANY_MEMBERS averaged networks, unless given (`given`: the user's options).
    The note says what changed (None: nothing did)."""
    if passes is None or passes < MANY_PASSES:
        return cfg, None
    new: dict[str, Any] = {}
    if "decay" not in given and cfg.decay > 0:
        new["decay"] = 0.0
    if "members" not in given and cfg.members < MANY_MEMBERS:
        new["members"] = MANY_MEMBERS
    if not new:
        return cfg, None
    shown = ", ".join(f"--{k} {v:g}" for k, v in new.items())
    note = (
        f"several networks ({shown}): the model reads its text {passes:.0f} times in the "
        "budget; its networks stop improving long before the deadline, and the averaged ones "
        "that follow use the rest (set them to choose)"
    )
    return replace(cfg, **new), note


def _largest_fast_enough(
    sizes: list[ModelConfig],
    speed: Callable[[ModelConfig], float],
    need: Callable[[ModelConfig], float],
) -> tuple[ModelConfig, float]:
    """sizes largest first; the largest whose speed is >= need(size) (the smallest when none
    is), and its speed. The smallest is measured first: on a big corpus it is often the answer.
    Bisection holds because speed falls and need rises with size."""
    lo_rate = speed(sizes[-1])
    if lo_rate < need(sizes[-1]) or len(sizes) == 1:
        return sizes[-1], lo_rate
    lo, hi = len(sizes) - 1, -1  # sizes[lo] is fast enough; everything at index <= hi is not
    rates = {lo: lo_rate}
    while lo - hi > 1:
        mid = (lo + hi) // 2
        rates[mid] = speed(sizes[mid])
        lo, hi = (mid, hi) if rates[mid] >= need(sizes[mid]) else (lo, mid)
    return sizes[lo], rates[lo]
