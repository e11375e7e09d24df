"""generate says what it changes: --lines is not cut short by the default --length, an
acrostic with too few --lines is refused, --skip-unknown names what it dropped, and a model
that never saw the default prefix says so."""

import pytest
import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint

from ..conftest import LINES, invoke


def untrained(tmp_path, text: str, name: str):
    vocab = Vocab.build(text)
    cfg = ModelConfig(vocab_size=len(vocab), cell="gru", embed=8, hidden=16, dropout=0.0)
    torch.manual_seed(0)
    (tmp_path / name).mkdir(parents=True)
    payload = checkpoint.build_payload(CharRNN(cfg), cfg, vocab, {"corpus": {}, "kn": None})
    checkpoint.save(payload, tmp_path / name / "best.pt")
    return tmp_path


@pytest.fixture
def zh(tmp_path):
    return untrained(tmp_path, "".join(line + "\n" for line in LINES) * 3, "zh")


def gen(runner, ck, *args):
    return invoke(runner, ["generate", "--checkpoint-dir", ck, "--seed", "1", *args])


def test_lines_are_not_cut_by_the_default_length(runner, zh):
    """Bug: --lines 30 returned 14 lines, cut by the default --length 200."""
    r = gen(runner, zh, "--checkpoint", "zh", "--lines", "30")
    assert r.exit_code == 0 and r.stdout.count("\n") == 30, r.stderr
    short = gen(runner, zh, "--checkpoint", "zh", "--lines", "30", "--length", "15")
    assert short.exit_code == 0 and "reached --length 15 before 30 lines" in short.stderr


def test_an_acrostic_with_fewer_lines_is_refused(runner, zh):
    """Bug: --acrostic 我爱你 --lines 2 wrote only 我 and 爱."""
    r = gen(runner, zh, "--checkpoint", "zh", "--acrostic", "我分你", "--lines", "2")
    assert r.exit_code == 2 and r.stdout == "" and "--lines 2" in r.stderr


def test_skip_unknown_names_what_it_dropped(runner, zh):
    r = gen(runner, zh, "--checkpoint", "zh", "--prefix", "春分开", "--skip-unknown",
            "--length", "3")  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("分开")
    assert "dropped '春'" in r.stderr


def test_an_english_model_says_the_default_prefix_is_unknown(runner, tmp_path):
    ck = untrained(tmp_path, "hello world\nthe sky is blue\n" * 3, "en")
    r = gen(runner, ck, "--checkpoint", "en", "--length", "5")
    assert r.exit_code == 0 and "never saw the default prefix" in r.stderr
