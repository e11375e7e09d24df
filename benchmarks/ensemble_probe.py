#!/usr/bin/env python3
"""What averaging several trained networks would give, before charlm builds it (issue #11).

    .venv/bin/python benchmarks/ensemble_probe.py RUN_A/best.pt RUN_B/best.pt [...]

The checkpoints must come from the same corpus and settings (different --seed). For each
network and for the average of their probabilities: held-out perplexity of the network alone
and of its mixture with the run's count model, the weight fitted on the tune slice exactly
as training fits it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charlm.config import TrainConfig
from charlm.data.corpus import CorpusOptions, read_corpus
from charlm.data.ids_cache import encode_text
from charlm.models.ensemble import mean_probability
from charlm.scoring.adapt import blank_line_ids
from charlm.scoring.evaluate import target_logprobs
from charlm.scoring.lexicon import for_corpus
from charlm.scoring.mixture import kn_logprobs, mix_logprobs
from charlm.scoring.mixture_fit import MixtureFit, fit_weight
from charlm.store import checkpoint
from charlm.training.setup import run_data


def main() -> None:
    paths = sys.argv[1:]
    if len(paths) < 2:
        sys.exit(__doc__)
    cpu = torch.device("cpu")
    payloads = [checkpoint.load(Path(p)) for p in paths]
    models, vocab = [], None
    for p, payload in zip(paths, payloads, strict=True):
        model, vocab, _ = checkpoint.restore_model(payload, p, cpu)
        models.append(model)
    rec, cfg = payloads[0]["corpus"], TrainConfig.from_dict(payloads[0]["train_config"])
    corpus = read_corpus(rec["source"], CorpusOptions(**rec["options"]))
    text = encode_text(corpus.text, corpus.fingerprint, rec["val_fraction"], None, vocab)
    data = run_data(text, rec, cfg)
    lexicon = for_corpus(cfg.lexicon, vocab, data.train_ids)
    fit = MixtureFit(data.train_ids, data.tune_ids, cfg.kn_order, len(vocab),
                     blank_line_ids(vocab), lexicon)  # fmt: skip
    kn_val = kn_logprobs(fit.kn, data.val_ids)
    tune = [target_logprobs(m, fit.tune_ids) for m in models]
    val = [target_logprobs(m, data.val_ids) for m in models]

    def average(xs: list[torch.Tensor]) -> torch.Tensor:
        return mean_probability(torch.stack(xs))

    print("| networks | network alone | with the count model | weight |")
    print("|---|---|---|---|")
    rows = [(Path(p).parent.name, t, v) for p, t, v in zip(paths, tune, val, strict=True)]
    for name, t, v in [*rows, (f"average of {len(models)}", average(tune), average(val))]:
        w = fit_weight(t, fit.tune_kn_logp)
        mixed = mix_logprobs(v, kn_val, w)
        print(f"| {name} | {math.exp(-v.mean()):.2f} | {math.exp(-mixed.mean()):.2f} | {w:.3f} |")


if __name__ == "__main__":
    main()
