"""adapt.py: the song cache scores from the past only, learns repeats, and cannot loop forever."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from charlm.scoring.adapt import (
    Adaptation,
    LineGuard,
    StreamCache,
    adapt_logprobs,
    cache_probs,
    fit_weights,
)

from ..conftest import tiny_text, train_tiny


def brute_cache(seq, order, reset=()):
    """p_cache and the match length by definition: a loop over every earlier position."""
    n = len(seq)
    doc = [0] * n
    for i in range(1, n):  # a new document starts after each blank line
        doc[i] = doc[i - 1] + (i >= 2 and seq[i - 1] in reset and seq[i - 2] in reset)
    ps, ms = [], []
    for i in range(1, n):
        best = (-1, 0.0)
        for length in range(order):
            if i - length < 0 or doc[i - length] != doc[i]:
                break
            ctx = list(seq[i - length : i])
            earlier = [j for j in range(1, i)
                       if j - length >= 0 and doc[j - length] == doc[j] == doc[i]
                       and list(seq[j - length : j]) == ctx]  # fmt: skip
            if earlier:
                best = (length, sum(seq[j] == seq[i] for j in earlier) / len(earlier))
        ms.append(best[0])
        ps.append(best[1])
    return np.array(ps), np.array(ms)


@pytest.mark.parametrize("reset", [(), (3,)])
def test_cache_probs_equal_the_definition(reset):
    rng = np.random.default_rng(0)
    for _ in range(25):
        seq = rng.integers(0, 4, size=int(rng.integers(2, 70)))
        p, m = cache_probs(seq, 4, reset)
        bp, bm = brute_cache(list(seq), 4, reset)
        assert np.array_equal(m, bm) and np.allclose(p, bp)


def test_a_text_of_one_character_has_nothing_to_score():
    p, m = cache_probs(np.array([5]), 4)
    assert p.shape == m.shape == (0,)


def test_generation_cache_equals_the_scoring_cache():
    rng = np.random.default_rng(1)
    seq = rng.integers(0, 5, size=300)
    seq[::17] = 4  # blank lines (4, 4) now and then
    seq[1::17] = 4
    p, m = cache_probs(seq, 5, (4,))
    cache = StreamCache(5, 5, (4,))
    cache.add(int(seq[0]))
    for i in range(1, len(seq)):
        dist, length = cache.distribution()
        assert length == m[i - 1]
        assert (dist[seq[i]] if dist is not None else 0.0) == pytest.approx(p[i - 1])
        cache.add(int(seq[i]))


def test_scores_never_depend_on_the_future():
    rng = np.random.default_rng(2)
    seq = torch.from_numpy(rng.integers(1, 6, size=400))
    other = seq.clone()
    other[250:] = torch.from_numpy(rng.integers(1, 6, size=150))  # a different future
    static = torch.full((399,), math.log(1 / 6), dtype=torch.float64)
    a = Adaptation((0.0, 0.3, 0.5, 0.7, 0.9), (3,))
    x, y = a.mix(static, seq), a.mix(static, other)
    assert torch.equal(x[:249], y[:249]) and not torch.equal(x, y)


def test_one_line_repeated_falls_toward_perplexity_one():
    line = [int(c) for c in "1234567890"] + [0]  # a 10-character line and its break
    seq = np.array(line * 30)
    v = 11
    static = torch.full((len(seq) - 1,), math.log(1 / v), dtype=torch.float64)
    p_cache, match = cache_probs(seq, 8)
    a = Adaptation(fit_weights(static, p_cache, match, 8))
    logp = a.mix(static, seq)
    per_line = [math.exp(-float(logp[k * 11 : (k + 1) * 11].mean())) for k in range(29)]
    assert per_line[0] > 5  # the first time through, only the static model knows anything
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(per_line[1:]))
    assert per_line[-1] < 1.05


def test_weights_default_to_the_shared_fit_on_sparse_match_lengths():
    static = torch.full((40,), math.log(0.1), dtype=torch.float64)
    match = np.array([-1] * 10 + [0] * 30)
    p = np.where(match >= 0, 0.9, 0.0)
    w = fit_weights(static, p, match, 4)
    assert w[0] == 0.0 and w[1] > 0.5  # length 0 has 30 positions: its own weight
    assert w[2] == w[3] == w[4]  # lengths 1-3 never matched: the shared weight
    assert w[2] == pytest.approx(w[1])  # ... fitted over every matched position, not zero


def feed(guard, text):
    """Characters as ids (digits), with "|" as the line break (id 0); True where the break
    was forbidden when it came."""
    blocked = []
    for ch in text:
        i = 0 if ch == "|" else int(ch)
        if i == 0:
            blocked.append(guard.mask(torch.zeros(1, 10))[0, 0] == float("-inf"))
        guard.add(0, i)
    return blocked


def test_line_guard_allows_two_and_never_three():
    assert feed(LineGuard(1, 0, k=2), "12|12|") == [False, False]
    guard = LineGuard(1, 0, k=2)
    feed(guard, "12|12|")
    assert feed(guard, "1") == [] and not guard._would_repeat(0)  # "1" differs from "12"
    assert feed(guard, "2|") == [True]  # a third "12" cannot end


def test_line_guard_turns_a_line_at_the_character_that_would_complete_a_repeat():
    """After 123|123| the line 12 may not take 3 (a third 123 could not end, and a model that
    wanted the break there would write a tail); any other character may come, and 12 may end."""
    guard = LineGuard(1, 0, k=2)
    feed(guard, "123|123|12")
    row = guard.mask(torch.zeros(1, 10))[0]
    assert torch.isinf(row).nonzero().flatten().tolist() == [3]
    guard = LineGuard(1, 0, k=2)
    feed(guard, "123|456|12")  # 123 came once: it may come again
    assert not torch.isinf(guard.mask(torch.zeros(1, 10))[0]).any()
    guard = LineGuard(1, 0, k=2)
    feed(guard, "123|123|12")
    only = torch.full((1, 10), float("-inf"))
    only[0, 3] = 0.0  # nothing else to write: the row is left as it is
    assert guard.mask(only)[0, 3] == 0


def test_line_guard_stops_a_cycle_of_two_lines():
    # A B A B is allowed (a chorus of two lines, twice); the third B cannot end
    assert feed(LineGuard(1, 0, k=2), "1|2|1|2|1|2|") == [False] * 5 + [True]
    # a block of three lines, three times: the ninth line cannot end either
    assert feed(LineGuard(1, 0, k=2), "1|2|3|" * 3)[-1]
    # different lines never trip it
    assert not any(feed(LineGuard(1, 0, k=2), "1|2|3|4|5|6|7|8|9|"))


def test_line_guard_stops_a_character_run_past_twelve():
    guard = LineGuard(1, 0)
    feed(guard, "5" * 12)
    logits = guard.mask(torch.zeros(1, 10))[0]
    assert logits[5] == float("-inf") and logits[0] == 0 and logits[6] == 0
    guard = LineGuard(1, 0)
    feed(guard, "56" * 6)  # 每天 six times: allowed, a seventh 每 is not
    assert guard.mask(torch.zeros(1, 10))[0, 5] == float("-inf")
    guard = LineGuard(1, 0)
    feed(guard, "5" * 11 + "|" + "5")  # a new line starts a new run
    assert guard.mask(torch.zeros(1, 10))[0, 5] == 0


def test_line_guard_caps_a_line_within_sixteen():
    # "1" three times among other lines is allowed, a fourth time within 16 lines is not
    assert feed(LineGuard(1, 0), "1|2|1|3|1|4|1|") == [False] * 6 + [True]
    # ... but it is once the earlier ones have left the window
    assert not any(feed(LineGuard(1, 0), "1|2|1|3|1|" + "4|5|6|7|8|9|2|3|4|5|6|7|" + "1|"))
    # blank lines may come as often as stanzas do
    assert not any(feed(LineGuard(1, 0), "1||2||3||4||5||"))


def test_line_guard_window_is_sixteen_lines_exactly():
    # "1" three times, the third 10 lines back; the fourth may not end as line 16 of the
    # window (the current line and 15 before it), and may as line 17 (the first has left)
    fill = [a + b for a in "234" for b in "23456789"]  # distinct lines, no "0" (the break)
    lines = ["1", *fill[:4], "1", *fill[4:8], "1", *fill[8:12]]  # ones at 0, 5 and 10
    assert feed(LineGuard(1, 0), "|".join([*lines, "1"]) + "|")[-1]  # as line 15
    assert not feed(LineGuard(1, 0), "|".join([*lines, fill[12], "1"]) + "|")[-1]  # as 16


def test_line_guard_blocks_of_up_to_eight_lines():
    # a block of 4 or 8 lines may come twice, not a third time; one of 9 is past the limit
    assert feed(LineGuard(1, 0), "|".join("2345" * 3) + "|") == [False] * 11 + [True]
    eight = [str(n) for n in range(11, 19)]
    assert feed(LineGuard(1, 0), "|".join(eight * 3) + "|") == [False] * 23 + [True]
    nine = [str(n) for n in range(11, 20)]
    assert not any(feed(LineGuard(1, 0), "|".join(nine * 3) + "|"))


def test_line_guard_units_of_up_to_six_characters():
    guard = LineGuard(1, 0)
    feed(guard, "234567" * 2)  # a six-character unit twice fills 12: a third may not start
    assert guard.mask(torch.zeros(1, 10))[0, 2] == float("-inf")
    guard = LineGuard(1, 0)
    feed(guard, "2345678" + "23456")  # a seven-character unit is past the rule
    assert not torch.isinf(guard.mask(torch.zeros(1, 10))[0]).any()


def test_generation_mixes_the_cache_at_eight_tenths_of_its_weight():
    # "12" was written, then "1": the cache says "2" for sure; the fitted weight at match
    # length 1 is 0.5, generation uses 0.8 of it (0.4) against a uniform network
    cache = StreamCache(3, 10)
    for i in (1, 2, 1):
        cache.add(i)
    static = torch.full((1, 10), math.log(0.1))
    out = adapt_logprobs(static, [cache], Adaptation((0.0, 0.5, 0.5, 0.5)))[0].exp()
    assert out[2] == pytest.approx(0.6 * 0.1 + 0.4) and out[3] == pytest.approx(0.6 * 0.1)


def test_payload_round_trip_and_validation():
    a = Adaptation((0.0, 0.2, 0.9), (5,))
    assert Adaptation.from_payload(json.loads(json.dumps(a.to_payload()))) == a
    for bad in ({"weights": [0.0, 1.5]}, {"weights": [0.1]}, {}, {"weights": [0.5] * 34}):
        with pytest.raises((ValueError, KeyError)):
            Adaptation.from_payload(bad)
    # the largest cache a checkpoint may carry: 33 weights (match lengths -1 to 31)
    assert Adaptation.from_payload({"weights": [0.5] * 33}).order == 32


# ---- through the trainer and the CLI ----------------------------------------------------------


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("adapt"), "a", "--max-steps", "5", "--batch-size",
                      "8", "--seq-len", "16", "--hidden", "32", "--seed", "1", "--mix-fraction",
                      "0.2", "--kn-order", "2")  # fmt: skip


def test_evaluate_adapt_reports_beside_the_unchanged_static_numbers(adapted_run, runner):
    base = ["evaluate", "--checkpoint-dir", str(adapted_run), "--json"]
    static = json.loads(runner.invoke(app_(), base).stdout)
    both = json.loads(runner.invoke(app_(), [*base, "--adapt"]).stdout)
    assert both["perplexity"] == static["perplexity"] and "adapted" not in static
    # tiny_text repeats six lines: the song cache learns them as it reads, where a barely
    # trained network and a bigram count model cannot
    assert both["adapted"]["perplexity"] < 0.8 * static["perplexity"]
    assert len(both["adapted"]["weights"]) == 9
    plain = runner.invoke(app_(), ["evaluate", "--checkpoint-dir", str(adapted_run), "--adapt"])
    static_s, adapted_s = plain.stdout.split()
    assert float(static_s) == pytest.approx(static["perplexity"], rel=1e-4)
    assert float(adapted_s) == pytest.approx(both["adapted"]["perplexity"], rel=1e-4)


def test_generate_adapts_by_default_and_is_seeded(adapted_run, runner):
    args = ["generate", "--checkpoint-dir", str(adapted_run), "--seed", "4", "--length", "300"]
    first, again = (runner.invoke(app_(), args) for _ in range(2))
    off = runner.invoke(app_(), [*args, "--no-adapt"])
    assert first.exit_code == 0 and first.stdout == again.stdout
    assert off.exit_code == 0 and off.stdout != first.stdout


def test_generation_never_writes_a_line_three_times_in_a_row(tmp_path, runner):
    """A corpus that repeats one line makes greedy decoding loop on it; the guard stops it."""
    corpus = tmp_path / "loop.txt"
    corpus.write_text("天空下雨我还在等你\n" * 60 + tiny_text(3), encoding="utf-8")
    r = runner.invoke(app_(), ["train", "--corpus", str(corpus), "--run", "l", "--checkpoint-dir",
                               str(tmp_path), "--max-steps", "5", "--batch-size", "8",
                               "--seq-len", "16", "--hidden", "16", "--mix-fraction", "0.3",
                               "--val-fraction", "0.05", "--seed", "2"])  # fmt: skip
    # seeded: five steps leave some networks that do not loop even without the guard
    assert r.exit_code == 0, r.output
    args = ["generate", "--checkpoint-dir", str(tmp_path), "--prefix", "天空", "--length", "200",
            "--temperature", "0", "--max-copy", "0"]  # fmt: skip  # the line guard alone
    runs = {}
    for flag in ("--adapt", "--no-adapt"):
        lines = runner.invoke(app_(), [*args, flag]).stdout.split("\n")[:-2]  # last may be cut
        runs[flag] = max(sum(1 for _ in g) for _, g in itertools.groupby(lines))
    assert runs["--adapt"] <= 2 < runs["--no-adapt"]


def test_adapt_without_a_fitted_cache_is_a_usage_error(tmp_path, runner, corpus_file):
    args = ["train", "--corpus", str(corpus_file), "--run", "n", "--checkpoint-dir",
            str(tmp_path), "--max-steps", "3", "--kn-order", "0", "--batch-size", "4",
            "--seq-len", "8"]  # fmt: skip
    r = runner.invoke(app_(), args)
    assert r.exit_code == 0, r.output
    for cmd in (["evaluate", "--adapt"], ["generate", "--adapt"]):
        out = runner.invoke(app_(), [*cmd, "--checkpoint-dir", str(tmp_path)])
        assert out.exit_code == 2 and "song cache" in out.stderr


def test_the_fitted_weights_come_from_the_tune_slice_only(tmp_path):
    """Two runs that differ only in their held-out text fit the same song-cache weights."""
    from charlm.config import ModelConfig, TrainConfig
    from charlm.data.ids_cache import encode_text
    from charlm.store.run_folder import RunFolder
    from charlm.training.loop import Trainer
    from charlm.training.setup import run_data

    fitted = []
    for k, tail in enumerate(["天空下雨我还在等你\n" * 40, "窗外的麻雀在电线杆上多嘴\n" * 30]):
        text = tiny_text() + tail
        enc = encode_text(text, "f", len(tail) / len(text), None)
        cfg = TrainConfig(batch_size=4, seq_len=8, max_steps=4, eval_every=2, kn_order=3,
                          mix_fraction=0.1, seed=2)  # fmt: skip
        data = run_data(enc, {}, cfg)
        mcfg = ModelConfig(vocab_size=len(data.vocab), cell="gru", embed=4, hidden=8)
        (tmp_path / str(k)).mkdir()
        t = Trainer(mcfg, cfg, data, RunFolder(tmp_path / str(k)), torch.device("cpu"),
                    previews=[], echo=lambda s: None)  # fmt: skip
        t.run()
        fitted.append(t.prog.adapt)
    assert fitted[0] is not None and fitted[0] == fitted[1]


def app_():
    from charlm.cli import app

    return app
