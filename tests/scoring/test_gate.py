"""gate.py: the network's share per character from both models' entropies, and the count
model's entropies computed without its (N, V) distributions."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from charlm.scoring.gate import Gate, entropy, fit_gate
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.mixture import Mixture, from_payload, to_payload
from charlm.scoring.mixture_fit import MixtureFit

from ..conftest import invoke, train_tiny


def _dense_entropy(kn: KneserNey, ids: np.ndarray) -> np.ndarray:
    w = kn.order - 1
    ctxs = [list(ids[max(0, i + 1 - w) : i + 1]) if w else [] for i in range(len(ids) - 1)]
    p = kn.distributions(ctxs)
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(1)


@pytest.mark.parametrize("seed", range(6))
def test_count_model_entropies_equal_those_of_its_full_distributions(seed):
    rng = np.random.default_rng(seed)
    v, order = int(rng.integers(5, 30)), int(rng.integers(1, 6))
    text = rng.integers(seed % 2, v, size=int(rng.integers(60, 400)))  # seed 0, 2, 4: <unk> in it
    text = np.where(rng.random(len(text)) < 0.5, text, text % 4 + 1)  # some repeated contexts
    kn = KneserNey(text, v, order)
    test = rng.integers(0, v, size=150)
    h = kn.entropies(test, chunk=37)  # chunks that cut contexts in two
    assert h.shape == (149,)
    assert np.allclose(h, _dense_entropy(kn, test), atol=1e-10)


def _two_regimes(n=4000, seed=0, informative=True):
    """Where the count model is sure (low entropy) it is right, elsewhere the network is."""
    g = torch.Generator().manual_seed(seed)
    h_kn = torch.rand(n, generator=g, dtype=torch.float64) * 4
    h_net = torch.rand(n, generator=g, dtype=torch.float64) * 4
    which = h_kn < 2 if informative else torch.rand(n, generator=g) < 0.5
    kn = torch.where(which, math.log(0.9), math.log(0.02)).double()
    net = torch.where(which, math.log(0.05), math.log(0.6)).double()
    return net, kn, h_net, h_kn


def test_the_gate_trusts_each_model_where_it_is_sure_and_beats_one_weight():
    net, kn, h_net, h_kn = _two_regimes()
    gate = fit_gate(net, kn, h_net, h_kn, weight=0.5)
    assert gate is not None and gate.kn > 0  # the count model unsure: more network
    one = -torch.logaddexp(net + math.log(0.5), kn + math.log(0.5)).mean()
    gated = -gate.mix(net, kn, h_net, h_kn).mean()
    assert gated < one - 0.2
    net2, kn2, h_net2, h_kn2 = _two_regimes(seed=1)  # and on text it was not fitted on
    assert -gate.mix(net2, kn2, h_net2, h_kn2).mean() < gated + 0.02


def test_entropies_that_say_nothing_keep_one_weight():
    assert fit_gate(*_two_regimes(informative=False), weight=0.5) is None
    assert fit_gate(*_two_regimes(n=150), weight=0.5) is None  # too short to check itself


def test_the_gate_never_extrapolates_past_the_entropies_it_was_fitted_on():
    gate = Gate(0.1, -2.0, 1.5, (0.5, 3.0), (1.0, 2.0))
    far = gate.logits(torch.tensor([0.0, 9.0]), torch.tensor([0.0, 9.0]))
    edge = gate.logits(torch.tensor([0.5, 3.0]), torch.tensor([1.0, 2.0]))
    assert torch.allclose(far, edge)


def test_generation_draws_from_the_distribution_scoring_scores():
    ids = [1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 5, 1, 2, 3, 6, 2, 3, 1] * 3
    kn = KneserNey(ids, 8, 3)
    gate = Gate(0.2, -0.7, 0.9, (0.0, 3.0), (0.0, 3.0))
    mixture = Mixture(kn, 0.5, gate=gate)
    torch.manual_seed(0)
    logits = torch.randn(4, 8) * 2  # (B, V)
    contexts = [[1, 2], [3], [], [5, 5]]
    logp = mixture.next_logprobs(logits, contexts)  # (B, V)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4, dtype=logp.dtype))
    net = torch.log_softmax(logits.double(), -1)
    p_kn = torch.from_numpy(kn.distributions(contexts))
    h_kn = -(p_kn * p_kn.log()).sum(-1)  # (B,) the count model's entropy at each context
    for w in range(8):
        want = mixture.mix(net[:, w], p_kn[:, w].log(), entropy(net), h_kn)
        assert torch.allclose(logp[:, w], want)
    with pytest.raises(ValueError, match="entropies"):
        mixture.mix(net[:, 0], p_kn[:, 0].log())


def test_the_gate_travels_in_the_checkpoint_block_and_a_damaged_one_is_refused():
    kn = KneserNey([1, 2, 3, 1, 2, 4], 8, 2)
    gate = Gate(0.3, -0.5, 0.8, (0.1, 2.5), (0.2, 3.0))
    assert from_payload(to_payload(kn, 0.6, None, gate=gate), 8).gate == gate
    assert from_payload(to_payload(kn, 0.6, None), 8).gate is None
    for bad in ([0.3, -0.5, 0.8], [0.3, -0.5, 0.8, 2.5, 0.1, 0.2, 3.0], [math.nan] * 7):
        with pytest.raises(ValueError):
            from_payload({**to_payload(kn, 0.6, None), "gate": bad}, 8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ck = tmp_path_factory.mktemp("gate")
    return train_tiny(ck, "g", "--cell", "gru", "--embed", "16", "--hidden", "32",
                      "--dropout", "0", "--batch-size", "8", "--seq-len", "16",
                      "--eval-every", "30", "--max-steps", "60", "--seed", "3",
                      "--mix-fraction", "0.2")  # fmt: skip


def test_a_fitted_gate_is_written_into_best_pt_and_evaluate_scores_with_it(
    trained, runner, monkeypatch, tmp_path
):
    import shutil

    from charlm import api
    from charlm.store.run_folder import RunFolder
    from charlm.training.adapt_fit import fit_into_best

    run = tmp_path / "g"
    shutil.copytree(trained / "g", run)
    lm = api.load(run / "best.pt")
    data = lm.corpus_split(None, "val")
    n_tune = int(len(data.train_ids) * 0.2)
    fit = MixtureFit(data.train_ids[:-n_tune], data.train_ids[-n_tune:], lm.mixture.kn.order,
                     len(lm.vocab))  # fmt: skip
    gate = Gate(0.4, -0.6, 0.7, (0.0, 4.0), (0.0, 4.0))
    monkeypatch.setattr(MixtureFit, "fit_gate", lambda *a, **k: (gate, None))
    said = []
    fit_into_best(RunFolder(run), fit, torch.device("cpu"), None, said.append)
    assert any(s.startswith("mixture gate: the network's share") for s in said)
    assert api.load(run / "best.pt").mixture.gate == gate
    r = invoke(runner, ["evaluate", "--checkpoint", run / "best.pt", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    # scored by hand: each model's log-probs and entropies, mixed by the gate
    from charlm.scoring.evaluate import logprobs_and_entropy

    ids = data.ids
    net, h_net = logprobs_and_entropy(lm.model, ids)
    kn = lm.mixture.kn
    h_kn = torch.from_numpy(_dense_entropy(kn, ids.numpy().astype(np.int64)))
    mixed = gate.mix(net, torch.from_numpy(kn.log_probs(ids)), h_net, h_kn)
    assert out["perplexity"] == pytest.approx(math.exp(-float(mixed.mean())), rel=1e-9)
    share = torch.sigmoid(gate.logits(h_net, h_kn)).mean()
    assert out["mix_weight"] == pytest.approx(float(share))


def test_dynamic_evaluation_is_gated_by_the_learning_network_s_own_entropies():
    from charlm.config import ModelConfig
    from charlm.models.charrnn import CharRNN
    from charlm.scoring.dynamic import Dynamic, dynamic_logprobs_and_entropy
    from charlm.scoring.evaluate import logprobs_and_entropy
    from charlm.scoring.mixture import score_text

    torch.manual_seed(0)
    net = CharRNN(ModelConfig(vocab_size=8, cell="gru", embed=8, hidden=16, dropout=0.0))
    ids = torch.tensor([1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 5, 1, 2, 3, 6, 2, 3, 1] * 4)
    static, h_static = logprobs_and_entropy(net, ids)
    lp0, h0 = dynamic_logprobs_and_entropy(net, ids, 0.0)  # rate 0: the static network
    assert torch.allclose(lp0, static, atol=1e-5) and torch.allclose(h0, h_static, atol=1e-5)
    kn = KneserNey(ids[:40], 8, 3)
    gate = Gate(0.2, -0.7, 0.9, (0.0, 3.0), (0.0, 3.0))
    mixture = Mixture(kn, 0.5, gate=gate, dynamic=Dynamic(0.3, 0.5))
    from charlm.scoring.adapt import Adaptation

    mixture = dataclasses.replace(mixture, adaptation=Adaptation((0.0, 0.1, 0.2, 0.3)))
    scores = score_text(net, ids, "cpu", mixture, adapt=True)
    lp, h = dynamic_logprobs_and_entropy(net, ids, 0.3)
    h_kn = torch.from_numpy(kn.entropies(ids))
    want = gate.mix(lp, torch.from_numpy(kn.log_probs(ids)), h, h_kn)
    assert scores.dynamic_only.loss == pytest.approx(-float(want.mean()), rel=1e-9)
