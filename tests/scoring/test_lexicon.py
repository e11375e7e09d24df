"""lexicon.py: a language's word list as a count model the corpus's counts lean on."""

import itertools
import json
import math

import numpy as np
import pytest
import torch

from charlm.config import TrainConfig
from charlm.data.vocab import UNK_ID, Vocab
from charlm.errors import UsageError
from charlm.scoring import lexicon
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.lexicon import LexiconCounts
from charlm.scoring.mixture import Mixture, from_payload, to_payload
from charlm.scoring.mixture_fit import MixtureFit

from ..conftest import invoke, tiny_text

ENGLISH = "the night is long and the road is longer still\n" * 40


def _vocab(text: str) -> Vocab:
    return Vocab.build(text)


def test_the_lexicon_text_is_its_words_in_the_vocabulary_s_ids_the_same_every_time():
    vocab = _vocab("我们爱情朋友\n")
    ids = lexicon.lexicon_ids("zh", vocab)
    assert np.array_equal(ids, lexicon.lexicon_ids("zh", vocab))  # rebuilt the same on load
    assert ids.dtype == np.int64 and len(ids) > 1000
    assert set(np.unique(ids)) <= set(range(len(vocab)))
    assert (ids == UNK_ID).any()  # a word's characters the corpus lacks are its <unk>
    text = "".join(vocab.tokens[i] if i else "?" for i in ids)
    assert "我们" in text and "爱情" in text and "朋友" in text
    # a word made only of characters the vocabulary lacks is left out: it says nothing
    joined, starts, freqs = lexicon.words("zh")
    words = [joined[a:b] for a, b in itertools.pairwise(starts)]
    assert "我们" in words and "天空" in words  # 天空 is <unk> alone here: left out
    # each word kept round(log2(freq + 1)) times, at least once
    known = [any(c in "我们爱情朋友" for c in w) for w in words]
    kept = sum(len(w) * max(1, round(math.log2(f + 1)))
               for w, f, k in zip(words, freqs, known, strict=True) if k)  # fmt: skip
    assert len(ids) == kept and kept < len(joined)


def test_coverage_picks_the_lexicon_for_chinese_text_and_none_for_english():
    for text, want in ((tiny_text(), "zh"), (ENGLISH, None)):
        vocab = _vocab(text)
        counts = np.bincount(vocab.encode(text), minlength=len(vocab))
        assert lexicon.choose(vocab, counts) == want
        assert (lexicon.coverage("zh", vocab, counts) >= lexicon.MIN_COVERAGE) == (want == "zh")
    vocab = _vocab(tiny_text())
    ids = torch.from_numpy(vocab.encode(tiny_text()).astype(np.int64))
    assert lexicon.for_corpus("none", vocab, ids) is None
    lex = lexicon.for_corpus("auto", vocab, ids)
    assert lex.name == "zh" and lex.kn.order == lexicon.ORDER and lex.kn.vocab_size == len(vocab)
    assert vocab.tokens[lex.keep[0]] == "\n"  # what it never writes, the commonest first
    with pytest.raises(UsageError):
        TrainConfig(lexicon="en")


@pytest.fixture(scope="module")
def leaning():
    text = tiny_text()
    vocab = _vocab(text)
    ids = vocab.encode(text).astype(np.int64)
    corpus = KneserNey(ids, len(vocab), 4)
    keep = lexicon.keep_ids("zh", vocab, np.bincount(ids, minlength=len(vocab)))
    return vocab, ids, LexiconCounts(corpus, lexicon.build("zh", vocab), "zh", 0.2, keep)


def test_the_leaning_model_is_one_distribution_its_scores_and_generation_agree(leaning):
    _, ids, kn = leaning
    text = ids[:60]
    contexts = [list(text[max(0, i - 3) : i + 1]) for i in range(len(text) - 1)]
    p = kn.distributions(contexts)  # (59, V)
    assert np.allclose(p.sum(1), 1.0)
    assert np.allclose(np.log(p[np.arange(len(text) - 1), text[1:]]), kn.log_probs(text))
    corpus, lex = kn.corpus.distributions(contexts), kn.lexicon.distributions(contexts)
    keep = list(kn.keep)
    assert keep and np.array_equal(p[:, keep], corpus[:, keep])  # the line break's chance kept
    rest = 1 - corpus[:, keep].sum(1)  # what the corpus leaves to the characters of words
    want = 0.8 * corpus + 0.2 * rest[:, None] * lex / (1 - lex[:, keep].sum(1))[:, None]
    assert np.allclose(np.delete(p, keep, 1), np.delete(want, keep, 1))
    # the gate reads the corpus counts' entropy; seen() asks what the corpus had
    assert np.array_equal(kn.entropies(text), kn.corpus.entropies(text))
    assert kn.seen(np.array([[ids[0], ids[1]]]))[0]


def test_the_mixture_generates_from_the_leaning_model(leaning):
    _, ids, kn = leaning
    mixture = Mixture(kn, 0.5)
    torch.manual_seed(0)
    logits = torch.randn(2, kn.vocab_size)
    out = mixture.next_logprobs(logits, [list(ids[:5]), list(ids[7:9])])  # (2, V)
    assert torch.allclose(out.exp().sum(1), torch.ones(2, dtype=out.dtype))
    p_net = torch.softmax(logits.double(), -1)
    want = 0.5 * p_net[0] + 0.5 * torch.from_numpy(kn.distribution(list(ids[:5])))
    assert torch.allclose(out[0].exp(), want)


def test_the_fit_leans_on_the_lexicon_only_where_it_helps_the_tune_slice():
    """Training text without the tune slice's words: the lexicon knows them (b > 0, and the
    tune slice scores better); an English text the lexicon cannot write keeps its counts."""
    lines = ["我们的爱情\n", "朋友再见\n", "离开以后\n", "回忆过去\n"]
    fit_text = "".join(lines[i % 2] for i in range(300))  # only the first two lines
    tune_text = "".join(lines[2 + i % 2] for i in range(60))  # the other two: words it lacks
    vocab = _vocab(fit_text + tune_text)
    fit_ids = torch.from_numpy(vocab.encode(fit_text).astype(np.int64))
    tune_ids = torch.from_numpy(vocab.encode(tune_text).astype(np.int64))
    plain = MixtureFit(fit_ids, tune_ids, 4, len(vocab))
    counts = np.bincount(fit_ids.numpy(), minlength=len(vocab))
    lex = lexicon.Lexicon("zh", lexicon.build("zh", vocab), lexicon.keep_ids("zh", vocab, counts))
    leaning = MixtureFit(fit_ids, tune_ids, 4, len(vocab), lexicon=lex)
    assert isinstance(leaning.kn, LexiconCounts) and 0 < leaning.lexicon_weight < 1
    assert leaning.tune_kn_logp.mean() > plain.tune_kn_logp.mean() + 0.5  # nats a character
    assert torch.equal(leaning.tune_kn_entropy, plain.tune_kn_entropy)  # the gate's feature
    # a lexicon that only hurts (its words' characters are <unk> here) is not leaned on
    en = _vocab(ENGLISH)
    en_ids = torch.from_numpy(en.encode(ENGLISH).astype(np.int64))
    zh_on_en = lexicon.Lexicon("zh", lexicon.build("zh", en), ())
    fit = MixtureFit(en_ids[:1500], en_ids[1500:], 4, len(en), lexicon=zh_on_en)
    assert isinstance(fit.kn, KneserNey) and fit.lexicon_weight == 0.0


def test_the_checkpoint_stores_the_lexicon_by_name_and_rebuilds_it(leaning):
    vocab, ids, kn = leaning
    block = to_payload(kn, 0.6, None)
    assert block["lexicon"] == {"name": "zh", "order": lexicon.ORDER, "weight": 0.2,
                                "keep": list(kn.keep)}  # fmt: skip
    back = from_payload(block, len(vocab), vocab)
    assert isinstance(back.kn, LexiconCounts) and back.kn.weight == 0.2
    assert np.allclose(back.kn.log_probs(ids[:200]), kn.log_probs(ids[:200]))
    with pytest.raises(ValueError):
        from_payload(block, len(vocab))  # no vocabulary to rebuild it for
    good = block["lexicon"]
    for bad, error in (({**good, "name": "xx"}, ValueError), ({**good, "weight": 1.5}, ValueError),
                       ({**good, "keep": [len(vocab)]}, ValueError),
                       ({"name": "zh", "order": 4}, KeyError), ([1], TypeError)):  # fmt: skip
        with pytest.raises(error):
            from_payload({**block, "lexicon": bad}, len(vocab), vocab)


def test_train_records_its_choice_and_none_turns_it_off(tmp_path, runner):
    corpus = tmp_path / "lyrics.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    for setting in ("none", "zh"):
        r = invoke(runner, ["train", "--corpus", corpus, "--run", setting, "--checkpoint-dir",
                            tmp_path, "--max-steps", "20", "--embed", "8", "--hidden", "16",
                            "--eval-every", "10", "--kn-order", "4", "--lexicon", setting,
                            "--seed", "1"])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert ("zh lexicon" in r.stderr) == (setting == "zh")  # the run says what it leans on
        payload = torch.load(tmp_path / setting / "best.pt", weights_only=True)
        assert payload["train_config"]["lexicon"] == setting
        if setting == "none":
            assert "lexicon" not in payload["kn"]
        r = invoke(runner, ["evaluate", "--checkpoint", setting, "--checkpoint-dir", tmp_path,
                            "--json"])  # fmt: skip
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert math.isfinite(out["perplexity"])
        assert ("lexicon" in out) == ("lexicon" in payload["kn"])  # reported where it ships
    r = invoke(runner, ["train", "--corpus", corpus, "--lexicon", "en", "--checkpoint-dir",
                        tmp_path])  # fmt: skip
    assert r.exit_code == 2 and "--lexicon" in r.stderr


def test_the_lexicon_tables_are_cached_in_the_checkpoint_folder_and_a_bad_entry_rebuilt(
    tmp_path, monkeypatch
):
    vocab = _vocab(tiny_text())
    fresh = lexicon.build("zh", vocab)
    first = lexicon.build("zh", vocab, cache_root=tmp_path)  # written
    (entry,) = (tmp_path / lexicon.CACHE_SUBDIR).iterdir()
    calls = []
    real = lexicon._build
    monkeypatch.setattr(lexicon, "_build", lambda *a: calls.append(a) or real(*a))
    again = lexicon.build("zh", vocab, cache_root=tmp_path)  # read, not built
    assert calls == []
    text = vocab.encode(tiny_text()[:300]).astype(np.int64)
    for kn in (first, again):
        assert np.array_equal(kn.log_probs(text), fresh.log_probs(text))
    entry.write_bytes(b"not a table")  # damaged: built again and rewritten
    assert np.array_equal(lexicon.build("zh", vocab, cache_root=tmp_path).log_probs(text),
                          fresh.log_probs(text))  # fmt: skip
    assert len(calls) == 1 and entry.read_bytes()[:2] == b"PK"
    # no folder to cache in: nothing is written anywhere
    lexicon.build("zh", vocab, cache_root=tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_the_share_is_the_one_that_scores_the_tune_slice_best(leaning):
    _, ids, kn = leaning
    parts = kn.parts(ids[:400])
    b = lexicon.fit_share(parts)
    grid = np.linspace(0.001, 0.999, 999)
    best = grid[np.argmax([lexicon.mix_scores(*parts, x).mean() for x in grid])]
    assert abs(b - best) < 2e-3
    assert np.allclose(lexicon.mix_scores(*parts, 0.2), kn.log_probs(ids[:400]))
