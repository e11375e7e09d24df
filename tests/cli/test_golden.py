"""One golden-output test per command: the exact text for a fixed tiny checkpoint and seed.

The checkpoint is an untrained model (weights from torch's seeded initialisation, which is the
same on every CPU), so the expected text does not depend on how a machine rounds training."""

import json

import pytest
import torch

from charlm.config import ModelConfig
from charlm.data.vocab import Vocab
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint

from ..conftest import LINES, invoke

TEXT = "".join(line + "\n" for line in LINES)


@pytest.fixture
def golden_ck(tmp_path):
    vocab = Vocab.build(TEXT)
    cfg = ModelConfig(vocab_size=len(vocab), cell="gru", embed=8, hidden=12, dropout=0.0)
    torch.manual_seed(0)
    model = CharRNN(cfg)
    corpus = tmp_path / "golden.txt"
    corpus.write_text(TEXT * 3, encoding="utf-8")
    extra = {"corpus": {"source": str(corpus), "options": {}, "val_fraction": 0.25}, "kn": None}
    (tmp_path / "ck" / "g").mkdir(parents=True)
    checkpoint.save(checkpoint.build_payload(model, cfg, vocab, extra), tmp_path / "ck/g/best.pt")
    return tmp_path / "ck"


def test_generate_golden(runner, golden_ck):
    r = invoke(runner, ["generate", "--checkpoint-dir", golden_ck, "--prefix", "分开",
                        "--length", "24", "--seed", "1"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == GOLDEN_GENERATE
    r = invoke(runner, ["generate", "--checkpoint-dir", golden_ck, "--prefix", "我",
                        "--length", "6", "--temperature", "0", "--num-samples", "2", "--json",
                        "--seed", "5"])  # fmt: skip
    assert [json.loads(x)["text"] for x in r.stdout.splitlines()] == GOLDEN_GREEDY


def test_evaluate_golden(runner, golden_ck):
    r = invoke(runner, ["evaluate", "--checkpoint-dir", golden_ck])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == GOLDEN_EVALUATE


def test_info_golden(runner):
    r = invoke(runner, ["info", "--cell", "gru", "--embed", "4", "--hidden", "8",
                        "--vocab-size", "20", "--batch-size", "2", "--seq-len", "3"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == GOLDEN_INFO


def test_train_golden(runner, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 40, encoding="utf-8")
    r = invoke(runner, ["train", "--corpus", corpus, "--run", "g", "--checkpoint-dir", tmp_path,
                        "--cell", "gru", "--embed", "8", "--hidden", "12", "--batch-size", "4",
                        "--seq-len", "8", "--max-steps", "3", "--eval-every", "3", "--seed", "2",
                        "--kn-order", "3", "--precision", "fp32", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines()[0] == GOLDEN_TRAIN_HEADER
    s = json.loads(r.stdout)
    assert (s["stopped"], s["steps"], s["seed"], s["best_step"]) == ("max-steps", 3, 2, 3)
    assert sorted(s) == GOLDEN_SUMMARY_KEYS
    assert 50 < s["peak_memory_mb"] < 8000  # the whole command's, in MB (torch alone: ~300)


GOLDEN_GENERATE = "分开开分分的手的天手手够够一有哀开开手分天手窗麻纯电\n"
# greedy loops on an untrained model; the loop guard (generation/constraints.py) stops the
# fourth 手 in a row: with --no-loop-guard this was 我手手手手手的
GOLDEN_GREEDY = ["我手手手的手手", "我手手手的手手"]
GOLDEN_EVALUATE = "67.6102\n"
GOLDEN_INFO = """\
gru x1, hidden 8, embedding 4, vocab 20, tied output, impl torch

weight                       shape                    params
out_bias                     20                           20
embed.weight                 20x4                         80
rnn.weight_ih_l0             24x4                         96
rnn.weight_hh_l0             24x8                        192
rnn.bias_ih_l0               24                           24
rnn.bias_hh_l0               24                           24
proj.weight                  4x8                          32
proj.bias                    4                             4
total                                                    472

tensors for batch 2, seq_len 3 (batch-first):
  input x                (2, 3)
  embedding output       (2, 3, 4)
  rnn output             (2, 3, 8)
  state h_n              (1, 2, 8)
  logits                 (2, 3, 20)
"""
GOLDEN_TRAIN_HEADER = ", ".join(
    [
        "g: 2,463 training + 129 mixture-fit / 288 held-out chars",
        "vocab 50",
        "gru 1x12 (1,346 params)",
        "random sampler",
        "device cpu (fp32)",
        "seed 2",
    ]
)
GOLDEN_SUMMARY_KEYS = [
    "best",
    "best_is_train_ppl",
    "best_step",
    "best_val_ppl",
    "chars_per_s",
    "elapsed_s",
    "epochs",
    "last",
    "last_train_ppl",
    "last_val_ppl",
    "networks",
    "peak_memory_mb",
    "run_dir",
    "seed",
    "signal",
    "skipped_steps",
    "steps",
    "stopped",
]
