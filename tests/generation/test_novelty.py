"""novelty.py: copied n-grams and spans against brute force; --max-copy never copies more."""

import json

import numpy as np
import pytest

from charlm.data.corpus import split_text
from charlm.generation.novelty import TrainingIndex, ngram_hashes

from ..conftest import tiny_text, train_tiny


def brute_longest(train: list[int], sample: list[int]) -> int:
    s = ",".join(map(str, train)) + ","
    best = 0
    for i in range(len(sample)):
        for j in range(i + best + 1, len(sample) + 1):
            if ",".join(map(str, sample[i:j])) + "," in "," + s and _sub(train, sample[i:j]):
                best = j - i
            else:
                break
    return best


def _sub(a: list[int], b: list[int]) -> bool:
    return any(a[k : k + len(b)] == b for k in range(len(a) - len(b) + 1))


def test_index_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 4, size=300).tolist()
    index = TrainingIndex(np.array(train), 4)
    for _ in range(20):
        sample = rng.integers(0, 4, size=40).tolist()
        assert index.longest_copy(sample) == brute_longest(train, sample)
        for n in (2, 3, 5):
            grams = [sample[i : i + n] for i in range(len(sample) - n + 1)]
            want = np.mean([_sub(train, g) for g in grams])
            assert index.copied_share(sample, n) == pytest.approx(want)
        tail = sample[:3]
        ext = index.extensions(tail, 3)
        assert ext.tolist() == [_sub(train, [*tail, c]) for c in range(4)]


def test_copied_text_is_all_copied_and_random_text_is_not():
    rng = np.random.default_rng(1)
    train = rng.integers(1, 3000, size=20_000)
    index = TrainingIndex(train, 3000)
    r = index.report(train[5000:5300])
    assert r["copied_ngrams"] == {"4": 1.0, "8": 1.0, "16": 1.0} and r["longest_copy"] == 300
    r = index.report(rng.integers(1, 3000, size=300))
    assert r["copied_ngrams"]["4"] < 0.01 and r["longest_copy"] <= 2


def test_hashes_of_equal_ngrams_are_equal():
    h = ngram_hashes([5, 6, 7, 5, 6, 7, 0, 5, 6], 3)
    assert h[0] == h[3] and h[0] != h[1] and len(h) == 7
    assert ngram_hashes([1, 2], 3).size == 0


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    root = train_tiny(tmp_path_factory.mktemp("copy"), "c", "--max-steps", "30", "--batch-size",
                      "8", "--seq-len", "16", "--hidden", "32", "--seed", "1")  # fmt: skip
    return root, split_text(tiny_text(), 0.1)[0]


@pytest.mark.parametrize(("n", "temperature"), [(4, "0"), (4, "0.8"), (6, "1.0")])
def test_max_copy_never_copies_more_than_n(copy_run, runner, n, temperature):
    root, train = copy_run
    args = ["generate", "--checkpoint-dir", str(root), "--length", "300", "--seed", "2",
            "--temperature", temperature, "--max-copy", str(n), "--num-samples", "2",
            "--json"]  # fmt: skip
    r = runner.invoke(app(), args)
    assert r.exit_code == 0, r.stderr
    texts = [json.loads(x)["text"] for x in r.stdout.splitlines()]
    for text in texts:
        assert len(text) > 100
        assert not any(text[i : i + n + 1] in train for i in range(2, len(text) - n))
    assert runner.invoke(app(), args).stdout == r.stdout  # seeded
    if temperature == "0.8":  # without the guard the same draws do copy longer spans
        free = runner.invoke(app(), [a if a != str(n) else "0" for a in args]).stdout
        longest = [json.loads(x)["text"] for x in free.splitlines()]
        assert any(any(t[i : i + n + 1] in train for i in range(2, len(t) - n)) for t in longest)


def test_report_novelty_goes_to_stderr_or_into_json(copy_run, runner):
    root, _ = copy_run
    base = ["generate", "--checkpoint-dir", str(root), "--length", "80", "--seed", "3"]
    plain = runner.invoke(app(), base)
    reported = runner.invoke(app(), [*base, "--report-novelty"])
    assert reported.stdout == plain.stdout and "longest copy" in reported.stderr
    rec = json.loads(runner.invoke(app(), [*base, "--report-novelty", "--json"]).stdout)
    assert set(rec["novelty"]["copied_ngrams"]) == {"4", "8", "16"}
    assert rec["novelty"]["longest_copy"] >= 4  # this tiny model copies its six lines


def test_novelty_needs_the_training_text_as_it_was(tmp_path, runner):
    corpus = tmp_path / "lyrics.txt"
    corpus.write_text(tiny_text(), encoding="utf-8")
    r = runner.invoke(app(), ["train", "--corpus", str(corpus), "--run", "c", "--checkpoint-dir",
                              str(tmp_path), "--max-steps", "3", "--batch-size", "4",
                              "--seq-len", "8"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    corpus.write_text(tiny_text() + "多一行\n", encoding="utf-8")
    r = runner.invoke(app(), ["generate", "--checkpoint-dir", str(tmp_path), "--max-copy", "8"])
    assert r.exit_code == 3 and "changed" in r.stderr and r.stdout == ""


def app():
    from charlm.cli import app

    return app


def test_max_copy_never_writes_unknown_when_every_character_would_copy(tmp_path, runner):
    """Bug: on a corpus of random 春夏秋 lines, --max-copy 2 forbade every real character
    after 春夏 and the sampler wrote a literal <unk> (its fallback looked for a row with
    nothing left, and <unk> was always left)."""
    import random

    from ..conftest import invoke

    rnd = random.Random(0)
    text = "\n".join("".join(rnd.choice("春夏秋") for _ in range(rnd.randint(4, 9)))
                     for _ in range(1500))  # fmt: skip
    corpus = tmp_path / "c.txt"
    corpus.write_text(text, encoding="utf-8")
    ck = tmp_path / "ck"
    tiny = ["--hidden", "16", "--embed", "8", "--max-steps", "5", "--eval-every", "5"]
    args = ["train", "--corpus", corpus, "--checkpoint-dir", ck, "--run", "r", *tiny]
    assert invoke(runner, args).exit_code == 0
    r = invoke(runner, ["generate", "--checkpoint-dir", ck, "--prefix", "春夏", "--temperature",
                        "0", "--max-copy", "2", "--length", "40"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "<unk>" not in r.stdout and set(r.stdout) <= set("春夏秋\n")


def test_the_copy_guard_counts_the_prefix_as_part_of_the_copy():
    """A prefix taken from the training text starts a copy: with --max-copy 3 after the
    prefix 分开不, the 了 that would make 分开不了 (4 training characters) is forbidden at
    the very first step, and nothing else is."""
    import torch

    from charlm.data.vocab import Vocab
    from charlm.generation.constraints import CopyGuard
    from charlm.generation.processor import StepContext

    vocab = Vocab.build("分开不了\n我爱你")
    train = [int(i) for i in vocab.encode("分开不了\n")]
    guard = CopyGuard(TrainingIndex(train, len(vocab)), 3)
    start = [int(i) for i in vocab.encode("分开不")]
    ctx = StepContext.start("分开不", start, n=1, max_lines=0, keep=guard.looks_back)
    out = guard(torch.zeros(1, len(vocab)), ctx)[0]
    assert torch.isinf(out).nonzero().flatten().tolist() == [vocab.id_of("了")]


def test_extensions_of_nothing_are_the_characters_the_training_text_has():
    index = TrainingIndex([0, 2, 2, 3], vocab_size=5)
    assert index.extensions([], 0).tolist() == [True, False, True, True, False]
    assert index.extensions([2], 1).tolist() == [False, False, True, True, False]  # 22, 23
    assert not index.extensions([3], 2).any()  # shorter than asked: nothing would copy


def test_the_copy_guard_lets_an_english_word_finish_and_bars_the_next_one():
    """With --max-copy 6 on an English model, 'land of Egypt' is not cut inside a word: the
    word in progress finishes, and the next word may not go on copying."""
    import torch

    from charlm.data.vocab import Vocab
    from charlm.generation.constraints import CopyGuard
    from charlm.generation.processor import StepContext
    from charlm.generation.repeats import word_ids

    text = "the land of Egypt and the sea\n"
    vocab = Vocab.build(text + "xyz")
    guard = CopyGuard(TrainingIndex([int(i) for i in vocab.encode(text)], len(vocab)), 6,
                      word_ids(vocab))  # fmt: skip

    def barred(line: str) -> set[str]:
        ids = [int(i) for i in vocab.encode(line)]
        ctx = StepContext.start(line, ids, n=1, max_lines=0, keep=guard.looks_back)
        out = guard(torch.zeros(1, len(vocab)), ctx)[0]
        return {vocab.tokens[i] for i in torch.isinf(out).nonzero().flatten().tolist()}

    assert barred("land of Eg") == set()  # inside a word: it finishes
    assert barred("land of Egypt") == set()  # and may end as the text does
    assert barred("land of Egypt ") == {"a"}  # the next word may not copy on
    plain = CopyGuard(guard.index, 6)  # without word ids: the bar falls mid-word
    ctx = StepContext.start("land of Eg", [int(i) for i in vocab.encode("land of Eg")], 1, 0, 6)
    out = plain(torch.zeros(1, len(vocab)), ctx)[0]
    assert torch.isinf(out[vocab.id_of("y")])
