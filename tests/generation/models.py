"""Untrained models for the generation tests (the rules must hold whatever a model says), and
the songs they write."""

from pathlib import Path

import torch

import charlm
from charlm.config import ModelConfig, SampleConfig
from charlm.data.vocab import Vocab
from charlm.models.charrnn import CharRNN
from charlm.store import checkpoint


def untrained(folder: Path, name: str, text: str, extra: dict | None = None):
    """A tiny untrained GRU over `text`'s characters, saved as run `name` under `folder`."""
    vocab = Vocab.build(text)
    cfg = ModelConfig(vocab_size=len(vocab), cell="gru", embed=8, hidden=16, dropout=0.0)
    torch.manual_seed(0)
    (folder / name).mkdir(parents=True, exist_ok=True)
    payload = checkpoint.build_payload(
        CharRNN(cfg), cfg, vocab, extra or {"corpus": {}, "kn": None}
    )
    checkpoint.save(payload, folder / name / "best.pt")
    return charlm.load(name, checkpoint_dir=folder, device="cpu")


def songs(lm, n_seeds: int = 6, samples: int = 4, prefix: str = "", **kw) -> list[str]:
    """The texts of `samples` samples for each of seeds 0 .. n_seeds-1."""
    out = []
    for seed in range(n_seeds):
        cfg = SampleConfig(seed=seed, num_samples=samples, **kw)
        texts = [""] * samples
        for pieces in lm.stream(prefix, cfg):
            texts = [t + p for t, p in zip(texts, pieces, strict=True)]
        out += texts
    return out
