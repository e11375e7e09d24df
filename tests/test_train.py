import json
import math

import pytest
import torch

from charlm import checkpoint
from charlm.config import ModelConfig, TrainConfig
from charlm.corpus import split_text
from charlm.errors import DivergedError
from charlm.train import RunData, Trainer
from charlm.vocab import Vocab

from .conftest import tiny_text


def make_data(text=None):
    text = text or tiny_text()
    train, val = split_text(text, 0.1)
    vocab = Vocab.build(train)
    enc = lambda t: torch.from_numpy(vocab.encode(t))  # noqa: E731
    return RunData(vocab, enc(train), enc(val), {"source": "tiny", "fingerprint": "f"})


def make_trainer(tmp_path, data, resume=None, **over):
    kw = dict(batch_size=4, seq_len=12, epochs=3, eval_every=7, seed=11, warmup=3, early_stop=0)
    kw.update(over)
    cfg = TrainConfig(**kw)
    mcfg = ModelConfig(
        vocab_size=len(data.vocab), cell="lstm", embed=8, hidden=16, layers=2, dropout=0.3
    )
    tmp_path.mkdir(exist_ok=True)
    return Trainer(
        mcfg, cfg, data, tmp_path, torch.device("cpu"), ["分开"], echo=lambda s: None, resume=resume
    )


@pytest.mark.parametrize(
    ("sampler", "precision"), [("random", "fp32"), ("consecutive", "fp32"), ("random", "bf16")]
)
def test_resume_is_bitwise_equal_to_straight_run(tmp_path, sampler, precision):
    data = make_data()
    kw = dict(sampler=sampler, precision=precision)
    straight = make_trainer(tmp_path / "a", data, max_steps=46, **kw)
    straight.run()

    first = make_trainer(tmp_path / "b", data, max_steps=23, **kw)  # mid-epoch, off-eval
    first.run()
    payload = checkpoint.load(tmp_path / "b" / "last.pt")
    second = make_trainer(tmp_path / "b", data, resume=payload, max_steps=46, **kw)
    second.run()

    for (k, a), (_, b) in zip(
        straight.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    steps = lambda p: [json.loads(x)["step"] for x in p.read_text().splitlines()]  # noqa: E731
    a_steps, b_steps = (
        steps(tmp_path / "a" / "metrics.jsonl"),
        steps(tmp_path / "b" / "metrics.jsonl"),
    )
    assert len(b_steps) == len(set(b_steps))  # no duplicates
    assert set(a_steps) <= set(b_steps)
    a_rec = {
        json.loads(x)["step"]: json.loads(x)
        for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    }
    b_rec = {
        json.loads(x)["step"]: json.loads(x)
        for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    }
    for s in a_steps:
        assert a_rec[s]["val_loss"] == b_rec[s]["val_loss"]


def test_same_seed_same_weights(tmp_path):
    data = make_data()
    a = make_trainer(tmp_path / "a", data, max_steps=10)
    b = make_trainer(tmp_path / "b", data, max_steps=10)
    a.run(), b.run()
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )


def test_training_lowers_perplexity_and_writes_metrics(tmp_path):
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=120, lr=5e-3, eval_every=40, weight_decay=0.01)
    summary = t.run()
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    keys = {
        "step",
        "epoch",
        "elapsed_s",
        "train_loss",
        "train_ppl",
        "val_loss",
        "val_ppl",
        "lr",
        "grad_norm",
        "chars_per_s",
    }
    assert keys <= recs[0].keys()
    assert recs[-1]["val_ppl"] < recs[0]["val_ppl"] * 0.8
    assert summary["best_val_ppl"] == min(r["val_ppl"] for r in recs)
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    best = checkpoint.load(tmp_path / "best.pt")
    assert "optimizer_state" not in best  # generate needs weights only


def test_consecutive_sampler_carries_state(tmp_path, monkeypatch):
    data = make_data()
    t = make_trainer(tmp_path, data, sampler="consecutive", max_steps=3)
    seen = []
    orig = t.model.forward

    def spy(x, state=None):
        seen.append(state is None)
        return orig(x, state)

    monkeypatch.setattr(t.model, "forward", spy)
    t._step(*next(t._batches()), __import__("charlm.train", fromlist=["_Window"])._Window())
    t._step(*next(t._batches()), __import__("charlm.train", fromlist=["_Window"])._Window())
    assert seen[:2] == [True, False]


def test_nonfinite_steps_never_reach_weights_then_diverge(tmp_path):
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=50)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    t.model.out_bias.data[0] = math.nan  # any NaN in the output makes the loss NaN
    with pytest.raises(DivergedError, match="--lr"):
        t.run()
    assert not (tmp_path / "best.pt").exists()
    for n, p in t.model.named_parameters():
        if n != "out_bias":
            assert torch.equal(before[n], p), n


def test_lr_schedule_warmup_then_plateau_halving():
    from charlm.train import Progress, lr_at

    cfg = TrainConfig(lr=1e-2, warmup=4)
    p = Progress(seed=0)
    assert [round(lr_at(cfg, Progress(seed=0, step=s)), 6) for s in range(5)] == [
        0.0025,
        0.005,
        0.0075,
        0.01,
        0.01,
    ]
    p.step, p.lr_scale = 100, 0.25
    assert lr_at(cfg, p) == pytest.approx(0.0025)


def test_plateau_halves_lr_and_early_stops(tmp_path):
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=10_000, eval_every=5, lr_patience=1, early_stop=3,
                     lr=1e-9)  # fmt: skip
    summary = t.run()  # a learning rate this small never improves: halve, halve, stop
    assert summary["stopped"] == "early-stop"
    assert t.prog.lr_scale == pytest.approx(0.5**3)


def test_once_seen_characters_train_the_unknown_symbol(tmp_path):
    text = tiny_text() + "独\n"  # 独 appears once in the training text
    data = make_data(text + "分开" * 400)
    t = make_trainer(tmp_path, data, unk_prob=1.0)
    rare_id = data.vocab.encode("独")[0]
    assert t.rare[rare_id] and not t.rare[data.vocab.encode("分")[0]]
    x = torch.tensor([[rare_id, data.vocab.encode("分")[0]]])
    nx, ny = t._noise(x, x.clone())
    assert nx.tolist() == [[0, x[0, 1].item()]] and ny.tolist() == nx.tolist()
