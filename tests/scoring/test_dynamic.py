"""dynamic.py: the network learns from what it has scored, never from what it scores next."""

import json
import math

import pytest
import torch

from charlm.config import ModelConfig
from charlm.models.charrnn import CharRNN
from charlm.scoring import dynamic
from charlm.scoring.adapt import Adaptation
from charlm.scoring.dynamic import Dynamic, dynamic_logprobs
from charlm.scoring.evaluate import target_logprobs

from ..conftest import invoke, train_tiny


@pytest.fixture
def net():
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=12, cell="gru", embed=8, hidden=16, dropout=0.0))


def test_rate_zero_is_the_static_network_and_the_model_is_untouched(net):
    ids = torch.randint(0, 12, (200,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    static = target_logprobs(net, ids, streams=1)
    assert torch.allclose(dynamic_logprobs(net, ids, 0.0), static, atol=1e-5)
    dynamic_logprobs(net, ids, 0.5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_position_is_scored_before_the_network_learns_from_it(net):
    ids = torch.randint(0, 12, (130,))
    a = dynamic_logprobs(net, ids, 0.5)
    changed = ids.clone()
    changed[70:] = (changed[70:] + 1) % 12  # the future differs from position 70 on
    b = dynamic_logprobs(net, changed, 0.5)
    assert torch.equal(a[:69], b[:69])  # targets 1..69 saw only ids[:70]: the same
    assert not torch.equal(a[69:], b[69:])


def test_learning_as_it_reads_scores_a_repeated_passage_better(net):
    phrase = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    ids = phrase.repeat(40)
    static = dynamic_logprobs(net, ids, 0.0)
    adapted = dynamic_logprobs(net, ids, 0.3)
    late = slice(len(ids) // 2, None)  # after the network has read the phrase a few times
    assert adapted[late].mean() > static[late].mean() + 0.5
    assert torch.isfinite(dynamic_logprobs(net, ids, 50.0)).all()  # a huge rate stays finite


def test_the_stored_block_is_checked():
    ok = Dynamic(0.1, 0.4)
    assert Dynamic.from_payload(ok.to_payload()) == ok
    warm = Dynamic(0.1, 0.4, warm=300)
    assert Dynamic.from_payload(warm.to_payload()).warm == 300
    bad_blocks = [([1], TypeError), ({"lr": -1, "weight": 0.5}, ValueError),
                  ({"lr": 0.1, "weight": 2}, ValueError), ({"weight": 0.5}, KeyError),
                  ({"lr": 0.1, "weight": 0.5, "warm": -1}, ValueError),
                  ({"lr": 0.1, "weight": 0.5, "warm": 2.5}, ValueError),
                  ({"lr": 0.1, "weight": 0.5, "warm": dynamic.WARM_CHARS + 1},
                   ValueError)]  # fmt: skip
    for bad, error in bad_blocks:
        with pytest.raises(error):
            Dynamic.from_payload(bad)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ck = tmp_path_factory.mktemp("dyn")
    return train_tiny(ck, "d", "--cell", "gru", "--embed", "16", "--hidden", "32",
                      "--dropout", "0", "--batch-size", "8", "--seq-len", "16",
                      "--eval-every", "30", "--max-steps", "90", "--seed", "3",
                      "--mix-fraction", "0.2")  # fmt: skip


def test_training_fits_it_into_best_pt_and_evaluate_adapt_reports_each_part(trained, runner):
    payload = torch.load(trained / "d" / "best.pt", weights_only=True)
    block = Dynamic.from_payload(payload["kn"]["dynamic"])
    assert block.lr in (0.0, *dynamic.RATES)
    assert bool(block.rms) == (block.lr > 0)  # a rate learns by the RMS rule, its scales stored
    r = invoke(runner, ["evaluate", "--checkpoint", "d", "--checkpoint-dir", trained,
                        "--adapt", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    adapted = out["adapted"]
    assert "cache_only" in adapted
    if block.lr > 0:
        assert adapted["dynamic_lr"] == block.lr and "dynamic_only" in adapted
        assert adapted["dynamic_rule"] == "rms"
        # the held-out split follows the tune slice: read first, as much as the fit recorded
        assert 0 < block.warm <= dynamic.WARM_CHARS
        assert adapted["dynamic_warm_chars"] == block.warm
    else:
        assert "dynamic_only" not in adapted
        assert adapted["perplexity"] == pytest.approx(adapted["cache_only"]["perplexity"])
    assert math.isfinite(adapted["perplexity"])


def test_a_damaged_block_is_a_damaged_checkpoint(trained, runner, tmp_path):
    from charlm.store import checkpoint

    payload = torch.load(trained / "d" / "best.pt", weights_only=True)
    rms = [torch.ones(3, dtype=torch.bfloat16)]  # scales of another network's shapes
    for block in ({"lr": "fast", "weight": 0.5}, {"lr": 0.003, "weight": 0.5, "rule": "rms",
                                                  "rms": rms}):  # fmt: skip
        payload["kn"]["dynamic"] = block
        payload["digest"] = checkpoint.payload_digest(payload)
        bad = tmp_path / "bad.pt"
        torch.save(payload, bad)
        r = invoke(runner, ["evaluate", "--checkpoint", bad, "--adapt"])
        assert r.exit_code == 4 and "Traceback" not in r.output
        assert "kn block" in r.stderr


def test_generate_learns_a_long_prefix_and_only_with_adapt(trained):
    from dataclasses import replace

    import charlm

    from ..conftest import tiny_text

    lm = charlm.load("d", checkpoint_dir=trained)
    lm.mixture = replace(lm.mixture, dynamic=Dynamic(0.3, lm.mixture.weight))
    prefix = tiny_text()[:40]
    assert lm.network_for(prefix, adapt=False) is lm.model
    assert lm.network_for(prefix[:10], adapt=True) is lm.model  # shorter than a segment
    net = lm.network_for(prefix, adapt=True)
    pairs = zip(net.state_dict().values(), lm.model.state_dict().values(), strict=True)
    moved = [not torch.equal(a, b) for a, b in pairs]
    assert net is not lm.model and any(moved)
    assert lm.generate_text(prefix, seed=1, length=20, adapt=True).startswith(prefix)


def _stop_after(calls: int):
    """A stop() that says the budget is spent from its (calls + 1)-th question on."""
    asked = [0]

    def stop() -> bool:
        asked[0] += 1
        return asked[0] > calls

    return stop


def test_a_read_cut_short_keeps_the_positions_it_scored(net):
    ids = torch.randint(0, 12, (161,))  # 10 segments
    whole, h_whole = dynamic.dynamic_logprobs_and_entropy(net, ids, 0.3)
    part, h_part = dynamic.dynamic_logprobs_and_entropy(
        net, ids, 0.3, stop=_stop_after(4), partial=True
    )
    assert len(part) == 4 * dynamic.SEGMENT == len(h_part)
    torch.testing.assert_close(part, whole[: len(part)])
    torch.testing.assert_close(h_part, h_whole[: len(part)])


@pytest.mark.parametrize(("calls", "min_chars", "fitted"),
                         [(40, 100, 0.003), (40, 1000, None), (10, 100, None),
                          (28, 100, None)])  # fmt: skip
def test_the_fit_compares_a_rate_cut_short_on_what_it_read(net, monkeypatch, calls, min_chars,
                                                           fitted):  # fmt: skip
    """FIT_CHARS 400: the static read takes 25 segments, the fit asks once more, the gradient
    scales take 4 segments (SCALE_CHARS 64), then the rate 0.003 reads 10 segments (160
    characters) before the budget ends. Compared on those against the static network's first
    160, it wins on a repeated phrase; with MIN_FIT_CHARS above what it read, the budget
    ending inside the static read, or inside the scales' read, there is no fit."""
    from charlm.scoring.mixture_fit import MixtureFit

    monkeypatch.setattr(dynamic, "FIT_CHARS", 400)
    monkeypatch.setattr(dynamic, "SCALE_CHARS", 64)
    monkeypatch.setattr(dynamic, "RATES", (0.003, 0.001))
    monkeypatch.setattr(dynamic, "MIN_FIT_CHARS", min_chars)
    text = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]).repeat(80)  # (1120,)
    fit = MixtureFit(text[:600], text[600:], 3, 12)
    dyn = fit.fit_dynamic(net, None, stop=_stop_after(calls))
    assert (dyn.lr if dyn else None) == fitted


def test_the_gradient_scales_have_each_weight_s_shape_and_are_zero_where_the_text_never_goes():
    torch.manual_seed(0)  # untied: the input table's rows only move for characters read
    net = CharRNN(ModelConfig(vocab_size=12, cell="gru", embed=8, hidden=16, dropout=0.0,
                              tie=False))  # fmt: skip
    ids = torch.tensor([1, 2, 3, 4, 1, 2, 3, 5] * 8)  # ids 0 and 6..11 never an input
    rms = dynamic.grad_scale(net, ids)
    assert [r.shape for r in rms] == [p.shape for p in net.parameters()]
    assert all(bool((r >= 0).all()) for r in rms)
    embed = dict(zip([n for n, _ in net.named_parameters()], rms, strict=True))["embed.weight"]
    assert float(embed[0].abs().sum()) == 0.0 and float(embed[6:].abs().sum()) == 0.0
    assert bool((embed[1:6].abs().sum(dim=1) > 0).all())


def test_with_even_scales_the_rms_rule_is_the_sgd_step(net):
    """rms + EPS = 1 everywhere: the divisor is 1 and every weight's pull is PULL."""
    ids = torch.randint(0, 12, (100,))
    even = tuple(torch.full_like(p, 1.0 - dynamic.EPS) for p in net.parameters())
    sgd = dynamic.dynamic_logprobs(net, ids, 0.3)
    rms = dynamic.dynamic_logprobs(net, ids, 0.3, rms=even)
    torch.testing.assert_close(rms, sgd, atol=1e-5, rtol=1e-5)


def test_the_rms_rule_learns_a_repeated_passage_and_never_looks_ahead(net):
    phrase = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    ids = phrase.repeat(40)
    rms = dynamic.grad_scale(net, torch.randint(0, 12, (400,)))
    static = dynamic_logprobs(net, ids, 0.0, rms=rms)
    assert torch.allclose(static, dynamic_logprobs(net, ids, 0.0), atol=1e-6)
    adapted = dynamic_logprobs(net, ids, 0.01, rms=rms)
    late = slice(len(ids) // 2, None)
    assert adapted[late].mean() > static[late].mean() + 0.5
    assert torch.isfinite(dynamic_logprobs(net, ids, 5.0, rms=rms)).all()
    changed = ids.clone()
    changed[70:] = (changed[70:] + 1) % 12
    b = dynamic_logprobs(net, changed, 0.01, rms=rms)
    assert torch.equal(adapted[:69], b[:69]) and not torch.equal(adapted[69:], b[69:])


def test_the_scales_travel_in_bf16_and_are_checked(net):
    rms = dynamic.grad_scale(net, torch.randint(0, 12, (200,)))
    block = Dynamic(0.003, 0.6, rms).to_payload()
    assert block["rule"] == "rms" and all(r.dtype == torch.bfloat16 for r in block["rms"])
    back = Dynamic.from_payload(block)
    assert (back.lr, back.weight) == (0.003, 0.6)
    for a, b in zip(back.rms, rms, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=0)
    back.check_fits(net)
    other = CharRNN(ModelConfig(vocab_size=13, cell="gru", embed=8, hidden=16, dropout=0.0))
    with pytest.raises(ValueError, match="does not match"):
        back.check_fits(other)
    assert "rule" not in Dynamic(0.1, 0.4).to_payload()  # no scales: the SGD step, as before
    for bad, error in [({**block, "rule": "adam"}, ValueError),
                       ({**block, "rms": [-block["rms"][0]]}, ValueError),
                       ({**block, "rms": "x"}, TypeError), ({**block, "rms": [1.0]}, TypeError),
                       ({k: v for k, v in block.items() if k != "rms"}, KeyError)]:  # fmt: skip
        with pytest.raises(error):
            Dynamic.from_payload(bad)


@pytest.mark.parametrize(("fit_chars", "refit"), [(1000, True), (400, False)])
def test_the_cache_is_refitted_over_the_dynamic_mixture_only_on_the_whole_tune_slice(
    net, monkeypatch, fit_chars, refit
):
    """The tune slice is 520 characters: a fit reading 1,000 reads it all and refits the song
    cache's weights over the learning network's mixture (where the network has learned the
    phrase, the cache adds less); one reading 400 keeps the shipped weights."""
    from charlm.scoring.mixture_fit import MixtureFit

    monkeypatch.setattr(dynamic, "FIT_CHARS", fit_chars)
    monkeypatch.setattr(dynamic, "RATES", (0.01,))
    text = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]).repeat(80)  # (1120,)
    fit = MixtureFit(text[:600], text[600:], 3, 12)
    shipped = Adaptation((0.0, 0.5, 0.5, 0.5))
    dyn = fit.fit_dynamic(net, shipped)
    assert dyn is not None and dyn.lr == 0.01
    assert dyn.warm == 520  # the whole tune slice, which no network trained on, read first
    if not refit:
        assert dyn.cache is None
        return
    assert dyn.cache is not None and dyn.cache.weights != shipped.weights
    back = Dynamic.from_payload(dyn.to_payload())
    assert back.cache == dyn.cache and back.lr == dyn.lr


def test_the_adapted_figure_mixes_the_refitted_cache(net):
    from charlm.scoring.kneser_ney import KneserNey
    from charlm.scoring.mixture import Mixture, mix_logprobs, score_text

    ids = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 12)
    kn = KneserNey(ids[:40], 12, 3)
    shipped, refit = Adaptation((0.0, 0.1, 0.2, 0.3)), Adaptation((0.0, 0.05, 0.1, 0.6))
    mixture = Mixture(kn, 0.5, shipped, Dynamic(0.3, 0.6, cache=refit))
    scores = score_text(net, ids, "cpu", mixture, adapt=True)
    dyn = mix_logprobs(dynamic_logprobs(net, ids, 0.3), torch.from_numpy(kn.log_probs(ids)), 0.6)
    assert scores.adapted.loss == pytest.approx(-float(refit.mix(dyn, ids).mean()), rel=1e-9)
    assert scores.adapted.loss != pytest.approx(-float(shipped.mix(dyn, ids).mean()), rel=1e-6)


def test_evaluate_reports_the_refitted_cache_weights(trained):
    from dataclasses import replace

    import charlm

    from ..conftest import tiny_text

    lm = charlm.load("d", checkpoint_dir=trained)
    assert lm.mixture.adaptation is not None
    order = lm.mixture.adaptation.order
    refit = Adaptation((0.0,) + (0.05,) * order, lm.mixture.adaptation.reset_ids)
    lm.mixture = replace(lm.mixture, dynamic=Dynamic(0.3, lm.mixture.weight, cache=refit))
    out = lm.evaluate(tiny_text()[:300], adapt=True)["adapted"]
    assert out["dynamic_cache_weights"] == list(refit.weights)
    assert out["dynamic_rule"] == "sgd"  # no scales: the SGD step


def test_the_held_out_text_is_read_after_the_tune_slice_it_continues(net):
    """With `warm`, the learning network reads the text before the scored one first: the
    scores are the last part of one read of both, and the static scores do not move."""
    from charlm.scoring.kneser_ney import KneserNey
    from charlm.scoring.mixture import Mixture, mix_logprobs, score_text

    before = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 8)  # (64,) the phrase the text repeats
    ids = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 4)  # (32,)
    kn = KneserNey(before, 12, 3)
    mixture = Mixture(kn, 0.5, Adaptation((0.0, 0.1, 0.1, 0.1)), Dynamic(0.3, 0.6))
    cold = score_text(net, ids, "cpu", mixture, adapt=True)
    warm = score_text(net, ids, "cpu", mixture, adapt=True, warm=before)
    both = dynamic_logprobs(net, torch.cat([before, ids]), 0.3)[-(len(ids) - 1) :]
    expected = mix_logprobs(both, torch.from_numpy(kn.log_probs(ids)), 0.6)
    assert warm.dynamic_only.loss == pytest.approx(-float(expected.mean()), rel=1e-9)
    assert warm.dynamic_only.loss < cold.dynamic_only.loss  # it learned the phrase first
    assert warm.shipped.loss == cold.shipped.loss and warm.cache_only.loss == cold.cache_only.loss


def test_evaluate_reads_the_recorded_tune_slice_before_the_held_out_split_only(trained):
    from dataclasses import replace

    import charlm

    lm = charlm.load("d", checkpoint_dir=trained)
    lm.mixture = replace(lm.mixture, dynamic=Dynamic(0.3, lm.mixture.weight, warm=120))
    val = lm.evaluate(adapt=True)["adapted"]
    assert val["dynamic_warm_chars"] == 120
    whole = lm.evaluate(adapt=True, split="all")["adapted"]  # nothing precedes the corpus
    assert whole["dynamic_warm_chars"] == 0
    lm.mixture = replace(lm.mixture, dynamic=Dynamic(0.3, lm.mixture.weight))  # before: none
    assert lm.evaluate(adapt=True)["adapted"]["dynamic_warm_chars"] == 0
