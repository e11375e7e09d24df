#!/usr/bin/env python3
"""charlm performance benchmark: each row races charlm against a reference in the same run.

    .venv/bin/python benchmarks/bench.py            # table on stdout (about 6 minutes, 2 cores)
    .venv/bin/python benchmarks/bench.py --json     # one JSON object per row
    .venv/bin/python benchmarks/bench.py --quick    # shorter timings, for a smoke test

Machines here are shared and noisy: absolute numbers drift, ratios measured in one run hold.
Uses ../shared/corpora/jaychou_lyrics.txt.zip when present (rows that need it say so when not).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlm.config import ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from charlm.data.batching import random_batches  # noqa: E402
from charlm.data.corpus import read_corpus, split_text  # noqa: E402
from charlm.data.prepared import RunData  # noqa: E402
from charlm.data.vocab import Vocab  # noqa: E402
from charlm.generation.sampling import generate  # noqa: E402
from charlm.models.charrnn import CharRNN  # noqa: E402
from charlm.scoring.evaluate import evaluate  # noqa: E402
from charlm.store.run_folder import RunFolder  # noqa: E402
from charlm.system.runtime import bf16_supported  # noqa: E402
from charlm.training import step as step_mod  # noqa: E402
from charlm.training.loop import Trainer  # noqa: E402
from charlm.training.step import train_step  # noqa: E402

JAYCHOU = ROOT.parent / "shared" / "corpora" / "jaychou_lyrics.txt.zip"
ROWS: list[dict] = []


def row(name: str, charlm: float | None, ref: float | None, unit: str, target: str = "", **kw):
    ratio = charlm / ref if charlm and ref else None
    r = {
        "row": name,
        "charlm": charlm,
        "reference": ref,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        **kw,
    }
    ROWS.append(r)
    if ARGS.json:
        print(json.dumps(r, ensure_ascii=False), flush=True)
    else:
        fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")  # noqa: E731
        rs = "-" if ratio is None else f"{ratio:.2f}x"
        if kw.get("gb_per_s"):
            target = f"{target} ({kw['gb_per_s']} GB/s of weights)"
        print(
            f"| {name:<52} | {fmt(charlm):>10} | {fmt(ref):>10} | {unit:<8} | {rs:>7} | {target} |",
            flush=True,
        )


def corpus_ids() -> tuple[Vocab, torch.Tensor, torch.Tensor, str]:
    if JAYCHOU.exists():
        text, src = read_corpus(str(JAYCHOU)).text, "jaychou"
    else:
        text, src = read_corpus(str(ROOT / "corpora" / "tang_song_zh.zip")).text, "tang_song"
    train, val = split_text(text, 0.1)
    v = Vocab.build(train)
    return v, torch.from_numpy(v.encode(train)), torch.from_numpy(v.encode(val)), src


# ---- 1. training throughput ---


class BareModel(nn.Module):
    """The ten-line model a user would write: (embedding | one-hot) -> nn.RNN/LSTM -> linear."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.embed) if cfg.embed else None
        cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cfg.cell]
        self.rnn = cls(cfg.input_size, cfg.hidden, cfg.layers, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, x):
        inp = self.emb(x) if self.emb is not None else F.one_hot(x, self.cfg.vocab_size).float()
        y, _ = self.rnn(inp)
        return self.out(y)


def bare_rate(cfg: ModelConfig, tc: TrainConfig, ids: torch.Tensor, seconds: float) -> float:
    torch.manual_seed(0)
    m = BareModel(cfg)
    opt = (torch.optim.SGD if tc.optimizer == "sgd" else torch.optim.AdamW)(m.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batches = random_batches(ids, tc.batch_size, tc.seq_len, g)
    chars, t0, n = 0, None, 0
    while True:
        try:
            x, y = next(batches)
        except StopIteration:
            batches = random_batches(ids, tc.batch_size, tc.seq_len, g)
            continue
        loss = F.cross_entropy(m(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        if tc.clip:
            nn.utils.clip_grad_norm_(m.parameters(), tc.clip)
        opt.step()
        n += 1
        if n == 3:  # warm-up steps excluded
            t0 = time.perf_counter()
        elif n > 3:
            chars += x.numel()
            if time.perf_counter() - t0 > seconds:
                return chars / (time.perf_counter() - t0)


def _trainer(cfg: ModelConfig, tc: TrainConfig, data: RunData, tmp: Path) -> Trainer:
    return Trainer(cfg, tc, data, RunFolder(tmp), torch.device("cpu"), previews=[],
                   echo=lambda s: None)  # fmt: skip


def charlm_rate(
    cfg: ModelConfig, tc: TrainConfig, data: RunData, seconds: float, tmp: Path
) -> float:
    tmp.mkdir(parents=True, exist_ok=True)
    t = _trainer(cfg, tc, data, tmp)
    batches, n, t0, chars = t._batches(), 0, None, 0
    while True:
        x, y = next(batches)
        # the trainer's own step, as run() calls it (lr, clip, precision, carried state)
        r = train_step(t.model, t.opt, x, y, t.state.carry, lr=t._lr(), clip=tc.clip,
                       bf16=tc.precision == "bf16")  # fmt: skip
        t.state.carry = r.state if tc.sampler == "consecutive" else None
        n += 1
        if n == 3:
            t0 = time.perf_counter()
        elif n > 3:
            chars += x.numel()
            if time.perf_counter() - t0 > seconds:
                return chars / (time.perf_counter() - t0)


def textbook_configs(v: int) -> tuple[ModelConfig, TrainConfig]:
    return (
        ModelConfig(
            vocab_size=v, cell="rnn", embed=0, hidden=256, layers=1, dropout=0.0, tie=False
        ),
        TrainConfig(
            sampler="random",
            batch_size=32,
            seq_len=35,
            optimizer="sgd",
            lr=1.0,
            clip=0.01,
            warmup=0,
            weight_decay=0.0,
            unk_prob=0.0,
            kn_order=0,
        ),
    )


def rows_training(vocab, train_ids, val_ids, tmp: Path, secs: float) -> None:
    data = RunData(vocab, train_ids, val_ids, {})
    v = len(vocab)
    mcfg, tcfg = textbook_configs(v)
    a = charlm_rate(mcfg, tcfg, data, secs, tmp / "a")
    b = bare_rate(mcfg, tcfg, train_ids, secs)
    row("train chars/s, textbook (one-hot RNN 256, SGD)", a, b, "chars/s", ">= 1.5x")
    mcfg, tcfg = ModelConfig(vocab_size=v), TrainConfig(kn_order=0)
    a = charlm_rate(mcfg, tcfg, data, secs, tmp / "b")
    b = bare_rate(mcfg, tcfg, train_ids, secs)
    row(
        f"train chars/s, default ({mcfg.cell} {mcfg.layers}x{mcfg.hidden})",
        a,
        b,
        "chars/s",
        ">= 1.0x",
    )
    ROWS[-1]["_rate"] = a
    if bf16_supported(torch.device("cpu")):
        bf16 = charlm_rate(mcfg, replace(tcfg, precision="bf16"), data, secs, tmp / "d")
        row("train chars/s, default + bf16 autocast (CLI default)", bf16, b, "chars/s", ">= 1.0x")
    else:
        row("train chars/s, bf16 autocast: no native bf16 on this CPU", None, b, "chars/s")
    scratch = charlm_rate(replace(mcfg, impl="scratch"), tcfg, data, secs, tmp / "c")
    row("train chars/s, --impl scratch vs torch (default)", scratch, a, "chars/s", "report")


def step_rate(v: int, loss: str, secs: float) -> float:
    """Training chars/s of train_step (lstm 1x256, embedding 128, tied, batch 32, window 128, bf16
    autocast where the CPU has it) on random ids of a v-character vocabulary, with the blocked
    cross-entropy ("blocked") or the float32 copy and torch's cross-entropy it replaced."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=v, embed=128, hidden=256, dropout=0.2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, v, (32, 128), generator=g), torch.randint(0, v, (32, 128), generator=g)
    bf16 = bf16_supported(torch.device("cpu"))
    kept = step_mod.cross_entropy
    if loss == "torch":
        step_mod.cross_entropy = lambda z, t: F.cross_entropy(z.float(), t)
    try:
        n, t0 = 0, 0.0
        while True:
            train_step(model, opt, x, y, None, lr=1e-3, clip=1.0, bf16=bf16)
            n += 1
            if n == 2:  # warm-up steps excluded
                t0 = time.perf_counter()
            elif n > 2 and time.perf_counter() - t0 > secs:
                return (n - 2) * x.numel() / (time.perf_counter() - t0)
    finally:
        step_mod.cross_entropy = kept


def rows_loss(secs: float) -> None:
    """The blocked cross-entropy against the torch loss it replaced, alternating three times
    (the best of each kept: this machine's noise only ever slows a run)."""
    vocabs = ((9403, "9.4k (the Tang poems)"), (2500, "2.5k (Jay Chou)"), (73, "73 (English)"))
    for v, name in vocabs:
        best = {"torch": 0.0, "blocked": 0.0}
        for _ in range(3):
            for loss in best:
                best[loss] = max(best[loss], step_rate(v, loss, secs / 3))
        row(f"train chars/s, vocab {name}: blocked vs torch loss", best["blocked"],
            best["torch"], "chars/s", ">= 1.0x")  # fmt: skip


# ---- 2. FLOP utilisation ---


def matmul_peak(seconds: float) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - t0)


def train_flops_per_char(cfg: ModelConfig) -> float:
    """Matmul FLOPs of forward + backward (x3) per character: input, recurrent, output layers."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cfg.cell] * cfg.hidden
    f = 0.0
    for layer in range(cfg.layers):
        inp = (cfg.embed or 0) if layer == 0 else cfg.hidden  # one-hot input is a gather
        f += 2 * gates * (inp + cfg.hidden)
    if cfg.tie:  # project to the embedding size, then score against the table
        f += 2 * cfg.hidden * cfg.embed + 2 * cfg.embed * cfg.vocab_size
    else:
        f += 2 * cfg.hidden * cfg.vocab_size
    return 3 * f


def rows_flops(vocab, secs: float) -> None:
    peak = matmul_peak(secs)
    cfg = ModelConfig(vocab_size=len(vocab))
    rate = next((r["_rate"] for r in ROWS if "_rate" in r), None)
    achieved = rate * train_flops_per_char(cfg) if rate else None
    row(
        "default train step GFLOP/s vs fp32 matmul peak",
        achieved / 1e9 if achieved else None,
        peak / 1e9,
        "GFLOP/s",
        ">= 75%",
    )


# ---- 3. start-up ---


def wall(cmd: list[str], n: int = 5) -> float:
    best = math.inf
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def rows_startup() -> None:
    exe = Path(sys.executable).with_name("charlm")
    charlm = [str(exe)] if exe.exists() else [sys.executable, "-m", "charlm"]
    torch_t = wall([sys.executable, "-c", "import torch"])
    row("start-up: charlm --help", wall([*charlm, "--help"]), torch_t, "s", "<= 0.25 s")
    row(
        "start-up: charlm generate --help",
        wall([*charlm, "generate", "--help"]),
        torch_t,
        "s",
        "<= 0.25 s",
    )


# ---- 4. generation ---


@torch.inference_mode()
def naive_generate(model: CharRNN, n_samples: int, length: int) -> float:
    """One nn.LSTM call per step, softmax, multinomial: the loop most tutorials write."""
    x = torch.ones(n_samples, 1, dtype=torch.long)
    state = None
    t0 = time.perf_counter()
    for _ in range(length):
        emb = model.embed(x)
        out, state = model.rnn(emb, state)
        p = torch.softmax(model.logits(out[:, -1]), dim=-1)
        x = torch.multinomial(p, 1)
    return n_samples * length / (time.perf_counter() - t0)


def charlm_generate(
    model: CharRNN, vocab: Vocab, n_samples: int, length: int, precision: str = "fp32"
) -> float:
    cfg = SampleConfig(
        length=length, num_samples=n_samples, seed=0, temperature=1.0, precision=precision
    )
    prefix = "分开" if "分" in vocab else ""
    for _ in generate(model, vocab, prefix, replace(cfg, length=20)):  # warm-up, not timed
        pass
    t0 = time.perf_counter()
    for _ in generate(model, vocab, prefix, cfg):
        pass
    return n_samples * length / (time.perf_counter() - t0)


def rows_generation(vocab: Vocab, length: int) -> None:
    torch.manual_seed(0)
    model = CharRNN(
        ModelConfig(vocab_size=len(vocab), cell="lstm", embed=128, hidden=512, layers=2)
    ).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    one = charlm_generate(model, vocab, 1, length)
    row(
        "generate chars/s, 1 stream (LSTM 512x2)",
        one,
        naive_generate(model, 1, length),
        "chars/s",
        ">= 1,500",
        gb_per_s=round(one * weight_bytes / 1e9, 2),
    )
    many = charlm_generate(model, vocab, 32, length // 4)
    row(
        "generate chars/s, 32 samples batched",
        many,
        naive_generate(model, 32, length // 4),
        "chars/s",
        ">= 15,000",
    )
    half = charlm_generate(model, vocab, 1, length, "bf16")
    row(
        "generate chars/s, 1 stream, --precision bf16",
        half,
        naive_generate(model, 1, length),
        "chars/s",
        ">= 1,500",
        gb_per_s=round(half * weight_bytes / 2 / 1e9, 2),
    )
    half32 = charlm_generate(model, vocab, 32, length // 4, "bf16")
    row(
        "generate chars/s, 32 samples, --precision bf16",
        half32,
        naive_generate(model, 32, length // 4),
        "chars/s",
        ">= 15,000",
    )


# ---- 5. time to quality ---


def time_to(
    cfg: ModelConfig, tc: TrainConfig, data: RunData, tmp: Path, threshold: float
) -> float | None:
    tmp.mkdir(parents=True, exist_ok=True)
    _trainer(cfg, tc, data, tmp).run()
    for line in (tmp / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["val_ppl"] is not None and rec["val_ppl"] < threshold:
            return rec["elapsed_s"]
    return None


def rows_quality(vocab, train_ids, val_ids, tmp: Path, budget: float) -> None:
    if not JAYCHOU.exists():
        row("time to held-out ppl < 250 (needs jaychou)", None, None, "s")
        return
    v = len(vocab)
    n_tune = int(len(train_ids) * TrainConfig().mix_fraction)
    data = RunData(vocab, train_ids[:-n_tune], val_ids, {}, train_ids[-n_tune:])
    ours = time_to(
        ModelConfig(vocab_size=v),
        TrainConfig(max_time=budget, seed=0, eval_every=25),
        data,
        tmp / "q1",
        250,
    )
    mc, tc = textbook_configs(v)
    tc = TrainConfig(**{**tc.__dict__, "max_time": budget, "lr": 100.0 / 35, "eval_every": 25})
    book = time_to(mc, tc, RunData(vocab, train_ids, val_ids, {}), tmp / "q2", 250)
    row(
        f"time to held-out ppl < 250 (budget {budget:.0f} s)",
        ours,
        book,
        "s",
        "lower is better",
        note="reference: textbook setting; '-' = not reached",
    )


# ---- 6. evaluation ---


def rows_eval(vocab, train_ids) -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab))).eval()
    ids = train_ids[:50_000]
    t0 = time.perf_counter()
    evaluate(model, ids, streams=32)
    batched = len(ids) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    evaluate(model, ids[:10_000], streams=1)
    single = 10_000 / (time.perf_counter() - t0)
    row("evaluate chars/s, 32 streams vs 1 stream", batched, single, "chars/s", "")


def main() -> None:
    import tempfile

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    vocab, train_ids, val_ids, src = corpus_ids()
    secs = 3.0 if ARGS.quick else 12.0
    if not ARGS.json:
        print(
            f"charlm benchmark: corpus {src}, vocab {len(vocab):,}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads\n"
        )
        head = f"| {'row':<52} | {'charlm':>10} | {'reference':>10} | {'unit':<8} | {'ratio':>7}"
        print(head + " | target |")
        print(f"|{'-' * 54}|{'-' * 12}|{'-' * 12}|{'-' * 10}|{'-' * 9}|--------|")
    want = set(ARGS.only.split(",")) if ARGS.only else None
    on = lambda name: want is None or name in want  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if on("train") or on("flops"):
            rows_training(vocab, train_ids, val_ids, tmp, secs)
        if on("loss"):
            rows_loss(secs)
        if on("flops"):
            rows_flops(vocab, secs / 3)
        if on("startup"):
            rows_startup()
        if on("generate"):
            rows_generation(vocab, 200 if ARGS.quick else 1000)
        if on("quality"):
            rows_quality(vocab, train_ids, val_ids, tmp, 20.0 if ARGS.quick else 120.0)
        if on("eval"):
            rows_eval(vocab, train_ids)


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", help="comma-separated: train,loss,flops,startup,generate,quality,eval")
    ARGS = p.parse_args()
    main()
