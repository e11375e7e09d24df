"""train.py: the step, the loop, exact resume, the plateau rule, noise, and the mixture."""

import json
import math

import pytest
import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.data.corpus import split_text
from charlm.data.ids_cache import encode_text
from charlm.data.prepared import RunData
from charlm.data.vocab import UNK_ID
from charlm.errors import DivergedError
from charlm.scoring.evaluate import EvalResult, evaluate
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.mixture import Scores, score_text
from charlm.store import checkpoint
from charlm.store.run_folder import RunFolder
from charlm.system.runtime import bf16_supported
from charlm.training.heldout import HeldOut
from charlm.training.loop import Trainer
from charlm.training.optim import Plateau, lr_at
from charlm.training.setup import run_data
from charlm.training.step import train_step

from ..conftest import tiny_text

CPU = torch.device("cpu")


def make_data(text=None, kn_order=0):
    text = encode_text(text or tiny_text(), "f", 0.1, None)
    cfg = TrainConfig(kn_order=kn_order)
    return run_data(text, {"source": "tiny", "fingerprint": "f"}, cfg)


def make_trainer(path, data, resume=None, **over):
    kw = dict(batch_size=4, seq_len=12, epochs=3, eval_every=7, seed=11, warmup=3, early_stop=0,
              kn_order=0)  # fmt: skip
    kw.update(over)
    cfg = TrainConfig(**kw)
    mcfg = ModelConfig(
        vocab_size=len(data.vocab), cell="lstm", embed=8, hidden=16, layers=2, dropout=0.3
    )
    path.mkdir(exist_ok=True)
    return Trainer(mcfg, cfg, data, RunFolder(path), CPU, previews=["分开"],
                   echo=lambda s: None, resume=resume)  # fmt: skip


def resumed(path, data, **over):
    return make_trainer(path, data, resume=checkpoint.load(path / "last.pt"), **over)


def metrics(path):
    return {r["step"]: r for r in RunFolder(path).read_metrics()}


def assert_same_weights(a, b):
    for (k, x), (_, y) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), k


PRECISIONS = ["fp32"] + (["bf16"] if bf16_supported(CPU) else [])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    ("sampler", "unk_prob"), [("random", 1.0), ("consecutive", 1.0), ("consecutive", 0.5)]
)
def test_resume_is_bitwise_equal_to_straight_run(tmp_path, sampler, unk_prob, precision):
    text = tiny_text() + "独\n孤\n" + tiny_text(5)  # once-seen characters: noise is drawn
    data = make_data(text)
    kw = dict(sampler=sampler, precision=precision, unk_prob=unk_prob)
    straight = make_trainer(tmp_path / "a", data, max_steps=46, **kw)
    straight.run()
    make_trainer(tmp_path / "b", data, max_steps=23, **kw).run()  # mid-epoch, off-eval
    second = resumed(tmp_path / "b", data, max_steps=46, **kw)
    second.run()
    assert_same_weights(straight, second)
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert len(b) == len(RunFolder(tmp_path / "b").read_metrics())  # no duplicated steps
    assert set(a) <= set(b) and 23 in b  # the stop at 23 was scored, then training went on
    for s in a:
        assert a[s]["val_loss"] == b[s]["val_loss"] and a[s]["lr"] == b[s]["lr"]


def test_resume_across_an_epoch_boundary_with_a_mixture(tmp_path):
    data = make_data(kn_order=3)
    assert data.tune_ids is not None
    kw = dict(kn_order=3, sampler="consecutive")
    nb = make_trainer(tmp_path / "n", data, **kw).batches_per_epoch
    stop, end = nb - 2, nb + 9  # stop inside epoch 0, finish inside epoch 1
    straight = make_trainer(tmp_path / "a", data, max_steps=end, **kw)
    straight.run()
    make_trainer(tmp_path / "b", data, max_steps=stop, **kw).run()
    second = resumed(tmp_path / "b", data, max_steps=end, **kw)
    assert second.prog.epoch == 0 and second.prog.step == stop
    second.run()
    assert second.prog.epoch == 1
    assert_same_weights(straight, second)
    assert straight.prog.mix_weight == second.prog.mix_weight
    assert 0 < second.prog.mix_weight < 1


def test_resume_through_lr_halving_matches_straight_run(tmp_path):
    data = make_data()
    # lr so small nothing improves after the first evaluation: the LR halves every 2 evals
    kw = dict(eval_every=4, lr_patience=2, lr=1e-7, warmup=0)
    straight = make_trainer(tmp_path / "a", data, max_steps=40, **kw)
    straight.run()
    make_trainer(tmp_path / "b", data, max_steps=18, **kw).run()  # between two evaluations
    second = resumed(tmp_path / "b", data, max_steps=40, **kw)
    second.run()
    assert straight.prog.plateau == second.prog.plateau
    assert straight.prog.plateau["lr_scale"] < 0.25  # it did halve, more than once
    assert_same_weights(straight, second)


def _scripted(monkeypatch, ppl_by_step):
    """Held-out perplexity as a script of step -> value, to drive the plateau rule."""

    def scores(self, state, stop=None):
        r = EvalResult(loss=math.log(ppl_by_step[state.prog.step]), chars=10, unknown_chars=0)
        return Scores(r, r, None)

    monkeypatch.setattr(HeldOut, "scores", scores)


def test_an_unscheduled_evaluation_does_not_move_the_plateau(tmp_path, monkeypatch):
    """Bug: a stop at --max-steps scored 180 and lowered the best, so after --resume the
    scheduled 185 counted as bad, where a straight run counts it as an improvement on 190."""
    _scripted(monkeypatch, {5: 190.0, 7: 180.0, 10: 185.0, 15: 186.0})
    data = make_data()
    kw = dict(eval_every=5, lr_patience=2, early_stop=2)
    straight = make_trainer(tmp_path / "a", data, max_steps=15, **kw)
    straight.run()
    make_trainer(tmp_path / "b", data, max_steps=7, **kw).run()
    assert RunFolder(tmp_path / "b").read_metrics()[-1]["best"]  # best.pt did take the 180
    second = resumed(tmp_path / "b", data, max_steps=15, **kw)
    second.run()
    assert second.prog.plateau == straight.prog.plateau
    p = straight.prog.plateau
    assert (p["best"], p["bad_evals"], p["lr_scale"]) == (pytest.approx(185.0), 1, 1.0)
    assert second.prog.best_val_ppl == pytest.approx(180.0)  # best.pt keeps the better model
    assert straight.prog.best_val_ppl == pytest.approx(185.0)


def test_plateau_rule_by_hand():
    cfg = TrainConfig(lr_patience=2, early_stop=3)
    p = Plateau()
    p = p.after(100.0, True, cfg)
    assert (p.best, p.bad_evals, p.lr_scale) == (100.0, 0, 1.0)
    p = p.after(99.999, True, cfg)  # below the 1e-4 relative threshold: not progress
    assert (p.bad_evals, p.lr_scale) == (1, 1.0)
    p = p.after(math.inf, False, cfg)  # non-finite: bad, best kept
    assert (p.best, p.bad_evals, p.lr_scale) == (99.999, 2, 0.5)
    assert not p.should_stop(cfg)
    p = p.after(150.0, True, cfg)
    assert p.bad_evals == 3 and p.should_stop(cfg)
    p = p.after(50.0, True, cfg)
    assert (p.best, p.bad_evals, p.lr_scale) == (50.0, 0, 0.5)  # the scale is not restored


def test_lr_schedule_warmup_then_plateau_scale():
    cfg = TrainConfig(lr=1e-2, warmup=4)
    assert [round(lr_at(cfg, s, 1.0), 6) for s in range(5)] == [0.0025, 0.005, 0.0075, 0.01, 0.01]
    assert lr_at(cfg, 100, 0.25) == pytest.approx(0.0025)
    assert lr_at(TrainConfig(lr=0.5, warmup=0), 0, 1.0) == 0.5


def test_plateau_halves_lr_and_early_stops(tmp_path):
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=10_000, eval_every=5, lr_patience=1, early_stop=3,
                     lr=1e-9)  # fmt: skip
    summary = t.run()  # a learning rate this small never improves: halve, halve, stop
    assert summary["stopped"] == "early-stop"
    assert t.prog.plateau["lr_scale"] == pytest.approx(0.5**3)
    assert summary["steps"] == 20  # first evaluation sets the best, then three bad ones


def test_same_seed_same_weights(tmp_path):
    data = make_data()
    a = make_trainer(tmp_path / "a", data, max_steps=10)
    b = make_trainer(tmp_path / "b", data, max_steps=10)
    a.run(), b.run()
    assert_same_weights(a, b)
    c = make_trainer(tmp_path / "c", data, max_steps=10, seed=12)
    c.run()
    assert not torch.equal(a.model.embed.weight, c.model.embed.weight)


def test_training_lowers_perplexity_and_writes_metrics(tmp_path):
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=120, lr=5e-3, eval_every=40, weight_decay=0.01)
    summary = t.run()
    recs = RunFolder(tmp_path).read_metrics()
    keys = {"step", "epoch", "elapsed_s", "train_loss", "train_ppl", "val_loss", "val_ppl", "lr",
            "grad_norm", "chars_per_s", "best"}  # fmt: skip
    assert keys <= recs[0].keys() and [r["step"] for r in recs] == [40, 80, 120]
    assert recs[-1]["val_ppl"] < recs[0]["val_ppl"] * 0.8
    assert summary["best_val_ppl"] == min(r["val_ppl"] for r in recs)
    assert summary["stopped"] == "max-steps"
    best = checkpoint.load(tmp_path / "best.pt")
    assert "optimizer_state" not in best  # generate needs weights only


def test_held_out_perplexity_in_training_equals_evaluate(tmp_path):
    data = make_data(kn_order=3)
    t = make_trainer(tmp_path, data, max_steps=21, kn_order=3)
    t.run()
    rec = metrics(tmp_path)[21]
    payload = checkpoint.load(tmp_path / "last.pt")
    model, _, _ = checkpoint.restore_model(payload, "last.pt")
    mixture = checkpoint.restore_mixture(payload, len(data.vocab), "last.pt")
    s = score_text(model, data.val_ids, CPU, mixture)
    assert s.shipped.perplexity == pytest.approx(rec["val_ppl"], rel=1e-9)
    assert s.network.perplexity == pytest.approx(rec["val_ppl_net"], rel=1e-9)
    assert evaluate(model, data.val_ids).perplexity == pytest.approx(rec["val_ppl_net"], rel=1e-9)
    assert s.shipped.perplexity < s.network.perplexity  # the mixture helps this tiny model


def test_tune_slice_reaches_neither_the_network_nor_the_fitting_count_model(tmp_path):
    # the training text ends with a slice holding a character found nowhere before it
    text = tiny_text() + "鲸" * 200
    train, _ = split_text(text + tiny_text(2), 0.1)
    encoded = encode_text(train, "f", 0.0, None)
    vocab = encoded.vocab
    data = run_data(encoded, {}, TrainConfig(kn_order=3, mix_fraction=0.06))
    whale = int(vocab.encode("鲸")[0])
    assert (data.tune_ids == whale).any() and not (data.train_ids == whale).any()
    # the corpus's counts alone (a lexicon would lean the fit's counts on its words too)
    t = make_trainer(tmp_path, data, kn_order=3, mix_fraction=0.06, max_steps=30,
                     lexicon="none")  # fmt: skip
    seen = []
    real_step = train_step

    def spy(model, opt, x, y, state, **kw):
        seen.append(torch.cat([x, y]))
        return real_step(model, opt, x, y, state, **kw)

    import charlm.training.loop as train_module

    train_module.train_step = spy
    try:
        t.run()
    finally:
        train_module.train_step = real_step
    assert seen and not any((b == whale).any() for b in seen)
    fit_kn = KneserNey(data.train_ids.tolist(), len(vocab), 3)
    # scored by the model without it, the whale as <unk> as held-out text scores it
    unk_whale = [UNK_ID if i == whale else i for i in data.tune_ids.tolist()]
    expected = torch.from_numpy(fit_kn.log_probs(unk_whale))
    assert torch.equal(t.mix_fit.tune_kn_logp, expected)
    assert t.mix_fit.kn.prob([whale, whale], whale) > 0.5  # the shipped model counts it


def test_random_sampler_resets_state_and_consecutive_resets_each_epoch(tmp_path, monkeypatch):
    data = make_data()
    for sampler in ("random", "consecutive"):
        t = make_trainer(tmp_path / sampler, data, sampler=sampler)
        starts = []
        real = t.model.forward

        def spy(x, state=None, targets=None, real=real, starts=starts, t=t):
            if t.model.training:
                starts.append(state is None)
            return real(x, state, targets)

        monkeypatch.setattr(t.model, "forward", spy)
        nb = t.batches_per_epoch
        t.train_config = TrainConfig(
            **{**t.train_config.__dict__, "max_steps": nb + 3, "eval_every": 1000}
        )
        t.run()
        assert len(starts) == nb + 3
        if sampler == "random":
            assert all(starts)
        else:  # zeros at the start of each epoch, carried within it
            assert [i for i, fresh in enumerate(starts) if fresh] == [0, nb]


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
    assert t.prog.skipped_steps == 8


def test_train_step_is_one_clipped_step():
    torch.manual_seed(0)
    from charlm.models.charrnn import CharRNN

    m = CharRNN(ModelConfig(vocab_size=7, cell="gru", embed=4, hidden=5, dropout=0))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.randint(7, (2, 6)), torch.randint(7, (2, 6))
    before = [p.detach().clone() for p in m.parameters()]
    r = train_step(m, opt, x, y, None, lr=0.5, clip=1e-3, bf16=False)
    assert r.finite and r.grad_norm > 1e-3 and opt.param_groups[0]["lr"] == 0.5
    step = torch.cat(
        [(b - p.detach()).flatten() for b, p in zip(before, m.parameters(), strict=True)]
    )
    assert step.norm().item() == pytest.approx(0.5 * 1e-3, rel=1e-4)  # lr x clipped norm
    assert len(r.state) == 1 and not r.state[0].requires_grad  # detached


def test_unknown_noise_is_per_position_so_inputs_and_targets_agree(tmp_path):
    rare = "独孤鲸鹤鸥鹭"
    text = tiny_text(20) + "\n".join(rare) + "\n" + tiny_text(20)
    data = make_data(text)
    t = make_trainer(tmp_path, data, unk_prob=0.5, sampler="consecutive", seq_len=8)
    ids = {int(data.vocab.encode(c)[0]) for c in rare}
    assert len(t.noise.positions) >= len(rare)
    batches = []
    for x, y in t._batches():
        batches.append((x, y))
        if len(batches) == t.batches_per_epoch:
            break
    hidden = set()
    for k, (x, y) in enumerate(batches):
        assert torch.equal(x[:, 1:], y[:, :-1])  # a target is the next input, noise included
        if k:
            assert torch.equal(batches[k - 1][1][:, -1], x[:, 0])  # and across batches
        hidden |= {int(i) for i in x.flatten()} & ids
    seen_unk = any((x == UNK_ID).any() for x, _ in batches)
    assert seen_unk and hidden  # with p = 0.5, some once-seen characters hidden, some shown
    t.noise.restore()
    assert not (data.train_ids == UNK_ID).any()


def test_changed_hyper_parameters_on_resume_take_effect(tmp_path):
    data = make_data()
    make_trainer(tmp_path, data, max_steps=10, weight_decay=1.0).run()
    t = resumed(tmp_path, data, max_steps=20, weight_decay=0.25, lr=1e-3)
    assert t.opt.param_groups[0]["weight_decay"] == 0.25  # not the stored 1.0
    assert t.opt.param_groups[1]["weight_decay"] == 0.0
    t.run()
    assert metrics(tmp_path)[14]["lr"] == pytest.approx(1e-3)
    last = checkpoint.load(tmp_path / "last.pt")
    assert last["optimizer_state"]["param_groups"][0]["weight_decay"] == 0.25
    assert last["train_config"]["lr"] == 1e-3


def test_run_data_without_enough_text_for_the_tune_slice_trains_the_network_alone():
    train = tiny_text(4)  # ~ 300 characters: 5 % is under MIN_TUNE_CHARS
    encoded = encode_text(train, "f", 0.0, None)
    data = run_data(encoded, {}, TrainConfig(kn_order=3))
    assert data.tune_ids is None and len(data.train_ids) == len(train)
    data = run_data(encoded, {}, TrainConfig(kn_order=3, mix_fraction=0.4))
    assert data.tune_ids is not None and len(data.train_ids) + len(data.tune_ids) == len(train)


def test_rundata_fields():
    data = make_data()
    assert isinstance(data, RunData) and data.train_ids.dtype == torch.uint16
    assert json.dumps(data.corpus)


def test_max_time_counts_from_the_command_start(tmp_path):
    import time

    data = make_data()
    t = make_trainer(tmp_path, data, max_time=30.0, eval_every=1000)
    t.started_at = time.monotonic() - 31  # preparation already took all of it
    summary = t.run()
    assert summary["stopped"] == "max-time" and summary["steps"] == 1


@pytest.mark.slow
def test_max_time_keeps_room_for_the_final_evaluation_and_save(tmp_path, monkeypatch):
    """Bug: the final evaluation and save came after the deadline (20 s took 31-36 s on a
    busy machine). The loop stops when what the last evaluation and save took would not fit."""
    import time

    real = HeldOut.scores

    def slow(self, state, stop=None):  # an evaluation of 1 s, at every step
        time.sleep(1.0)
        return real(self, state, stop)

    monkeypatch.setattr(HeldOut, "scores", slow)
    t = make_trainer(tmp_path, make_data(), max_time=4.0, eval_every=1, epochs=100)
    t.started_at = time.monotonic()
    summary = t.run()
    took = time.monotonic() - t.started_at
    assert summary["stopped"] == "max-time" and took <= 3.8, took  # without the room: >= 4


def test_training_scores_a_fixed_capped_part_of_a_long_held_out_split(tmp_path, monkeypatch):
    import charlm.training.heldout as heldout_module

    monkeypatch.setattr(heldout_module, "EVAL_CHARS", 50)
    data = make_data()
    t = make_trainer(tmp_path, data, max_steps=7)
    assert len(data.val_ids) > 51 and torch.equal(t.eval_ids, data.val_ids[:51])
    t.run()
    payload = checkpoint.load(tmp_path / "last.pt")
    model, _, _ = checkpoint.restore_model(payload, "last.pt")
    capped = evaluate(model, data.val_ids[:51]).perplexity
    assert metrics(tmp_path)[7]["val_ppl"] == pytest.approx(capped, rel=1e-9)


@pytest.mark.parametrize("kn_order", [0, 3])  # with a mixture, the weight fit is cut short too
def test_a_signal_during_evaluation_stops_it_and_saves_the_step(tmp_path, monkeypatch, kn_order):
    import os
    import signal

    import charlm.scoring.evaluate

    monkeypatch.setattr(charlm.scoring.evaluate, "CHUNK_TOKENS", 16)
    real = HeldOut._network_logprobs
    calls, nth = [], 2 if kn_order == 0 else 3  # with a mixture, the tune slice is scored too

    def signalled(*a, **k):
        calls.append(1)
        if len(calls) == nth:  # the second evaluation: a Ctrl-C arrives as it starts
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(HeldOut, "_network_logprobs", signalled)
    t = make_trainer(tmp_path, make_data(kn_order=kn_order), kn_order=kn_order, max_steps=40)
    summary = t.run()
    assert summary["stopped"] == "interrupted" and summary["signal"] == signal.SIGINT
    assert list(metrics(tmp_path)) == [7]  # the interrupted evaluation left no record
    assert checkpoint.load(tmp_path / "last.pt")["progress"]["step"] == 14
