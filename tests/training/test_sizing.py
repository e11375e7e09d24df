"""sizing.py: the default model follows the time budget; explicit sizes always win."""

import pytest
import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.training.sizing import (
    CHARS_PER_PARAM,
    MANY_PASSES,
    TRAIN_SHARE,
    core_params,
    fit_to_budget,
    measure_speed,
    smaller,
)

BIG = ModelConfig(vocab_size=50, cell="lstm", embed=256, hidden=1024, layers=2)


def fake_speed(table):
    seen = []

    def speed(m):
        seen.append((m.layers, m.hidden))
        return table[m.hidden]

    return speed, seen


def test_a_model_that_fits_is_kept_without_a_note():
    speed, seen = fake_speed(dict.fromkeys((1024, 768, 512, 384, 256, 192, 128), 1e9))
    m, note, _ = fit_to_budget(BIG, TrainConfig(max_time=60), 1_000_000, torch.device("cpu"),
                            speed=speed)  # fmt: skip
    assert m == BIG and note is None
    assert seen == [(1, 128), (1, 512), (2, 1024)]  # the smallest, then a bisection


def test_a_text_bigger_than_the_budget_reads_does_not_shrink_the_model_further():
    # 100M characters in 0.8 x 100 s: no candidate reads them once; the largest that sees 4
    # characters a weight is kept (the one-pass rule forced the smallest here)
    speed, seen = fake_speed({1024: 200_000, 768: 500_000, 512: 1_200_000, 384: 2_000_000,
                              256: 4_000_000, 192: 5_000_000, 128: 6_000_000})  # fmt: skip
    m, note, passes = fit_to_budget(BIG, TrainConfig(max_time=100), 10**8, torch.device("cpu"),
                                    speed=speed)  # fmt: skip
    assert (m.layers, m.hidden, m.embed) == (1, 768, 256) and m.cell == "lstm"
    assert CHARS_PER_PARAM * core_params(m) <= 500_000 * TRAIN_SHARE * 100
    assert CHARS_PER_PARAM * core_params(BIG) > 200_000 * TRAIN_SHARE * 100
    assert seen == [(1, 128), (1, 512), (2, 1024), (1, 768)]  # the smallest, then a bisection
    assert "1x768" in note and "--hidden" in note
    assert passes == pytest.approx(500_000 * TRAIN_SHARE * 100 / 10**8)
    assert f"{passes:.1f} passes" in note


def test_steps_down_to_the_largest_that_sees_ten_characters_a_weight():
    # every candidate makes one pass over 1M characters (8M seen): the rule is now the
    # characters seen per weight of the recurrence
    speed, _ = fake_speed(dict.fromkeys((1024, 768, 512, 384, 256, 192, 128), 100_000))
    m, note, _ = fit_to_budget(BIG, TrainConfig(max_time=100), 1_000_000, torch.device("cpu"),
                            speed=speed)  # fmt: skip
    seen = 100_000 * TRAIN_SHARE * 100  # 8M characters
    assert core_params(m) * CHARS_PER_PARAM <= seen
    sizes = (1024, 768, 512, 384, 256, 192, 128)
    bigger = smaller(BIG, sizes[sizes.index(m.hidden) - 1], False)  # the next candidate up
    assert m != BIG and core_params(bigger) * CHARS_PER_PARAM > seen
    assert f"{seen / core_params(m):.0f} characters a weight" in note
    # a text read MANY_PASSES times over is what runs out: the corpus rule's model stays
    small_text = int(seen / MANY_PASSES)
    kept, note, _ = fit_to_budget(BIG, TrainConfig(max_time=100), small_text, torch.device("cpu"),
                               speed=speed)  # fmt: skip
    assert kept == BIG and note is None


def test_core_params_count_the_recurrence_and_projection_not_the_tables():
    from charlm.models.charrnn import CharRNN

    one_hot = ModelConfig(vocab_size=50, cell="gru", embed=0, hidden=64, layers=2, tie=False)
    untied = ModelConfig(vocab_size=900, cell="rnn", embed=32, hidden=48, tie=False)
    for cfg in (BIG, smaller(BIG, 128, False), one_hot, untied):
        net = CharRNN(cfg)
        rnn = sum(p.numel() for p in net.rnn.parameters())
        proj = sum(p.numel() for p in net.proj.parameters()) if cfg.tie else 0
        table = 3 * 64 * 50 if cfg.embed == 0 else 0  # a one-hot input's weight is a table
        assert core_params(cfg) == rnn + proj - table


@pytest.mark.parametrize("fits", [1024, 768, 512, 384, 256, 192, 128, 0])
def test_bisection_finds_the_largest_that_fits_in_few_measurements(fits):
    table = {h: (2_000_000 if h <= fits else 1_000) for h in (1024, 768, 512, 384, 256, 192,
                                                              128)}  # fmt: skip
    speed, seen = fake_speed(table)
    m, _, _ = fit_to_budget(BIG, TrainConfig(max_time=100), 10**8, torch.device("cpu"),
                         speed=speed)  # fmt: skip
    assert m.hidden == max(fits, 128)
    assert len(seen) <= 4 if fits else seen == [(1, 128)]  # a big corpus: one measurement


def test_the_embedding_is_half_the_hidden_size_within_64_to_256():
    from charlm.training.sizing import auto_sizes, embed_for

    assert [embed_for(h) for h in (64, 128, 384, 512, 600, 1024)] == [64, 64, 192, 256, 256, 256]
    # a second layer from 1M training characters
    assert (auto_sizes(999_999)["layers"], auto_sizes(1_000_000)["layers"]) == (1, 2)


def test_a_smaller_candidate_keeps_a_one_hot_input_one_hot():
    one_hot = ModelConfig(vocab_size=50, embed=0, hidden=512, tie=False)
    assert smaller(one_hot, 256, embed_given=False).embed == 0
    assert smaller(BIG, 256, embed_given=False).embed == 128  # hidden / 2
    assert smaller(BIG, 256, embed_given=True).embed == 256  # the user's


def test_no_budget_or_given_embedding():
    m, note, _ = fit_to_budget(BIG, TrainConfig(max_time=0), 10**9, torch.device("cpu"),
                            speed=lambda m: 1.0)  # fmt: skip
    assert m == BIG and note is None
    speed, _ = fake_speed({1024: 1, 768: 1, 512: 1, 384: 1, 256: 1, 192: 1, 128: 1})
    m, note, _ = fit_to_budget(BIG, TrainConfig(max_time=10), 10**9, torch.device("cpu"),
                            embed_given=True, speed=speed)  # fmt: skip
    assert (m.hidden, m.embed) == (128, 256) and "0.0 passes" in note  # the smallest, at worst


def test_measure_speed_is_positive_and_leaves_the_seed_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    cfg = ModelConfig(vocab_size=20, cell="gru", embed=8, hidden=16)
    rate = measure_speed(cfg, TrainConfig(batch_size=4, seq_len=8), torch.device("cpu"))
    assert rate > 0 and torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("given", [["--hidden", "64"], ["--layers", "1"]])
def test_explicit_sizes_skip_the_budget_rule(monkeypatch, tmp_path, corpus_file, given):
    import charlm.training.setup
    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare

    calls = []
    monkeypatch.setattr(charlm.training.setup, "fit_to_budget", lambda *a, **k: calls.append(a))
    opts = TrainOptions(corpus=str(corpus_file), max_time=5.0, batch_size=4, seq_len=8,
                        hidden=64 if "--hidden" in given else None,
                        layers=1 if "--layers" in given else None)  # fmt: skip
    prepare(opts, tmp_path, torch.device("cpu"), echo=lambda s: None)
    assert calls == []


def test_a_time_budget_sizes_the_default_model_down_and_says_so(monkeypatch, tmp_path):
    """The --max-time path of `prepare`: on a machine too slow for the corpus rule's model,
    the run trains the largest that fits (here the smallest: every size is slow), and says
    why; without a budget the corpus rule's model stands."""
    import random

    import charlm.training.sizing
    from charlm.training.options import TrainOptions
    from charlm.training.setup import prepare

    rnd = random.Random(0)  # 44k characters: the corpus rule asks 1x192
    corpus_file = tmp_path / "lyrics.txt"
    corpus_file.write_text("\n".join("".join(rnd.choices("春夏秋冬风花雪月山水", k=10))
                                      for _ in range(4000)), encoding="utf-8")  # fmt: skip
    monkeypatch.setattr(charlm.training.sizing, "measure_speed", lambda *a: 1.0)  # chars/s

    def setup(**kw):
        opts = TrainOptions(corpus=str(corpus_file), batch_size=4, seq_len=8, **kw)
        return prepare(opts, tmp_path, torch.device("cpu"), echo=lambda s: None)

    rule, sized = setup(), setup(max_time=5.0)
    assert sized.model_config.hidden < rule.model_config.hidden == 192
    assert any("model sized to the budget" in n for n in sized.notes)
    assert not any("model sized" in n for n in rule.notes)
    # it reads its text far fewer than MANY_PASSES times: light regularisation, the window
    # given (8) kept; without a budget the corpus rule's regularisation stands
    assert (sized.model_config.dropout, sized.train_config.weight_decay) == (0.2, 0.01)
    assert sized.train_config.seq_len == 8
    assert any(n.startswith("light regularisation (--dropout 0.2, --weight-decay 0.01)")
               for n in sized.notes)  # fmt: skip
    assert rule.model_config.dropout > 0.5 and rule.train_config.weight_decay > 0.5
    kept = setup(max_time=5.0, dropout=0.4)  # a dropout given is the user's
    assert (kept.model_config.dropout, kept.train_config.weight_decay) == (0.4, 0.01)


def test_light_regularisation_only_for_a_model_short_of_compute():
    from charlm.training.sizing import LIGHT, LIGHT_PASSES, lighten

    m = ModelConfig(vocab_size=50, hidden=384, dropout=0.3)
    cfg = TrainConfig(weight_decay=0.25, seq_len=64)
    for passes in (None, MANY_PASSES, 50.0):  # no budget, or a text read over and over
        assert lighten(m, cfg, passes, set()) == (m, cfg, None)
    for passes in (0.01, 2.0, LIGHT_PASSES):  # short of compute: LIGHT
        m2, cfg2, note = lighten(m, cfg, passes, set())
        assert (m2.dropout, cfg2.weight_decay, cfg2.seq_len) == tuple(LIGHT.values())
        assert m2.hidden == 384 and cfg2.batch_size == cfg.batch_size
        assert f"{passes:.1f} times" in note and "--seq-len 128" in note
    # in between, moving toward the corpus rule's with the passes: no cliff
    middle = (LIGHT_PASSES * MANY_PASSES) ** 0.5
    steps = [lighten(m, cfg, p, set()) for p in (middle * 0.99, middle * 1.01, MANY_PASSES - 0.01)]
    drops = [s[0].dropout for s in steps]
    assert LIGHT["dropout"] < drops[0] < drops[1] < drops[2] <= 0.3
    assert drops[0] == pytest.approx(0.25, abs=0.002) and drops[2] == pytest.approx(0.3, abs=0.001)
    assert [s[1].seq_len for s in steps] == [128, 64, 64]  # the window below the middle
    # never more regularisation than the corpus rule's, nor a shorter window; given ones stay
    low = ModelConfig(vocab_size=50, dropout=0.1)
    m3, cfg3, note = lighten(low, TrainConfig(weight_decay=0.005, seq_len=256), 2.0, set())
    assert (m3.dropout, cfg3.weight_decay, cfg3.seq_len, note) == (0.1, 0.005, 256, None)
    m4, cfg4, note = lighten(m, cfg, 2.0, {"dropout", "seq_len"})
    assert (m4.dropout, cfg4.weight_decay, cfg4.seq_len) == (0.3, 0.01, 64)
    assert "--dropout" not in note


def test_a_small_text_trains_with_a_batch_and_window_that_fit(tmp_path, runner):
    """A 40-line song was refused ("needs 2,112 characters"): the window, then the batch,
    shrink (the sizes the user left out) and the header says so; sizes given are kept."""
    from charlm.config import TrainConfig
    from charlm.training.sizing import MIN_BATCHES, fit_batches

    cfg, note = fit_batches(TrainConfig(), 396, False, False)
    assert (cfg.batch_size, cfg.seq_len) == (4, 16) and "small text" in note
    from charlm.data.batching import batches_per_epoch

    assert batches_per_epoch(396, cfg.batch_size, cfg.seq_len) >= MIN_BATCHES
    kept, _ = fit_batches(TrainConfig(), 396, True, False)  # --batch-size given: it stays
    assert kept.batch_size == 32 and kept.seq_len == 8
    same, none = fit_batches(TrainConfig(), 200_000, False, False)
    assert same == TrainConfig() and none is None
    # exactly MIN_BATCHES batches of 32 x 64 is enough; one character fewer is not
    assert fit_batches(TrainConfig(), 8256, False, False)[1] is None
    assert fit_batches(TrainConfig(), 8255, False, False)[0].seq_len == 32
    # past the first floors (4 windows of 16) the window goes on to 8
    tiny, _ = fit_batches(TrainConfig(), 150, False, False)
    assert (tiny.batch_size, tiny.seq_len) == (4, 8)
    from ..conftest import invoke

    song = tmp_path / "song.txt"
    song.write_text("".join(f"第{i % 9}行歌词在这里\n" for i in range(40)), encoding="utf-8")
    r = invoke(runner, ["train", "--corpus", song, "--checkpoint-dir", tmp_path / "ck",
                        "--max-steps", "4", "--eval-every", "2", "--hidden", "16"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "small text: --batch-size" in r.stderr


def test_a_text_read_over_and_over_gets_more_networks_and_no_decay():
    """Its networks stop improving long before the deadline: the decay would only keep new
    ones from starting in the budget's last half. What the user gave stays; a model short of
    compute, or a run without a budget, is untouched."""
    from charlm.training.sizing import MANY_MEMBERS, for_many_passes

    cfg = TrainConfig(max_time=600, decay=0.5, members=4)
    for passes in (None, 0.5, MANY_PASSES - 0.01):
        assert for_many_passes(cfg, passes, set()) == (cfg, None)
    many, note = for_many_passes(cfg, MANY_PASSES, set())
    assert (many.decay, many.members) == (0.0, MANY_MEMBERS) and many.lr == cfg.lr
    assert "--decay 0" in note and f"--members {MANY_MEMBERS}" in note and "20 times" in note
    kept, note = for_many_passes(cfg, 80.0, {"members"})
    assert (kept.decay, kept.members) == (0.0, 4) and "--members" not in note
    assert for_many_passes(cfg, 80.0, {"members", "decay"}) == (cfg, None)


def test_a_budgeted_run_on_a_short_text_records_the_rule_and_keeps_what_is_given(tmp_path, runner):
    """End to end: the header says so, the checkpoint records it (a resumed run reads it
    back from there), and --members given stays. --max-time 600 for a 3k-character text:
    hundreds of passes even on a slow machine; --max-steps ends the run."""
    from charlm.store import checkpoint
    from charlm.training.sizing import MANY_MEMBERS

    from ..conftest import invoke

    song = tmp_path / "song.txt"
    song.write_text("".join(f"第{i % 9}行歌词在这里，月光{i % 5}\n" for i in range(300)),
                    encoding="utf-8")  # fmt: skip
    for run, extra, members in (("auto", [], MANY_MEMBERS), ("given", ["--members", "2"], 2)):
        r = invoke(runner, ["train", "--corpus", song, "--checkpoint-dir", tmp_path / "ck",
                            "--run", run, "--max-time", "600", "--max-steps", "4",
                            "--eval-every", "2", *extra])  # fmt: skip
        assert r.exit_code == 0, r.stderr
        assert "several networks (--decay 0" in r.stderr
        assert ("--members 8" in r.stderr) == (not extra)
        cfg = checkpoint.load(tmp_path / "ck" / run / "best.pt")["train_config"]
        assert (cfg["decay"], cfg["members"]) == (0.0, members)
