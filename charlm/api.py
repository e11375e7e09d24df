"""A small Python API for notebooks and scripts; `charlm generate` and `charlm evaluate` use
the same calls.

    import charlm
    lm = charlm.load("jay")                      # a run name, a run folder or a .pt file
    for piece in lm.generate("分开", seed=1):     # the text as it is written
        print(piece, end="")
    song = lm.generate_text("分开", lines=4, seed=1)
    lm.generate_text(form="七言绝句", rhyme_with="光", seed=3)   # every `charlm generate` option
    for rec in lm.samples("分开", num_samples=3, lines=4, report_novelty=True, seed=1):
        print(rec["seed"], rec["text"], rec["novelty"])   # the records of `generate --json`
    lm.evaluate("窗外的麻雀在电线杆上多嘴")         # {"perplexity": ..., "bits_per_char": ...}
    lm.evaluate(corpus="other.txt", split="all")  # as `charlm evaluate --corpus ... --split all`
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charlm.config import SampleConfig
from charlm.data.corpus import check_val_fraction, read_recorded
from charlm.data.ids_cache import encode_text
from charlm.errors import DataError, UsageError
from charlm.generation.novelty import TrainingIndex
from charlm.generation.prepared import Generation, prepare
from charlm.generation.request import DEFAULT_PREFIX, GenerationRequest
from charlm.generation.sampling import check_prefix, generate
from charlm.scoring import dynamic
from charlm.scoring.evaluate import EvalResult
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.lexicon import LexiconCounts
from charlm.scoring.mixture import kn_logprobs, score_text
from charlm.store import checkpoint
from charlm.store.caches import cache_root_for
from charlm.system.runtime import choose_device

BASELINE_ORDER = 8  # the Kneser-Ney order `evaluate --baseline kn` compares with
SPLITS = ("val", "train", "all")


def load(
    run_or_path: str | Path | None = None,
    *,
    checkpoint_dir: str | Path = "checkpoints",
    device: str = "auto",
) -> LanguageModel:
    """A trained model, ready to generate and score: `run_or_path` is a run name (under
    `checkpoint_dir`), a run folder or a .pt file; None takes the newest run's best.pt.
    Raises CharlmError subclasses (with the message the CLI prints) on a bad checkpoint."""
    dev = choose_device(device)
    spec = None if run_or_path is None else str(run_or_path)
    path = checkpoint.resolve(spec, Path(checkpoint_dir), "best")
    payload = checkpoint.load(path)
    model, vocab, _ = checkpoint.restore_model(payload, str(path), dev)
    mixture = checkpoint.restore_mixture(payload, len(vocab), str(path), model,
                                         cache_root_for(path))  # fmt: skip
    lm = LanguageModel(path, payload, model, vocab, mixture, dev, Path(checkpoint_dir))
    shadowed = checkpoint.shadow_note(spec, Path(checkpoint_dir))
    lm.notes = [shadowed] if shadowed else []
    return lm


def _checked(text: Any, adapt: Any, split: str = "val") -> bool:
    """evaluate()'s own arguments, checked before anything is read: a wrong type or an unknown
    split is a UsageError, not a failure from inside torch or a KeyError."""
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if text is not None and not isinstance(text, str):
        raise UsageError(f"evaluate: text must be a str, not {type(text).__name__}")
    if not isinstance(adapt, bool):
        raise UsageError(f"evaluate: adapt must be true or false, not {adapt!r}")
    return adapt


@dataclass(frozen=True)
class CorpusSplit:
    """A split of a corpus file encoded with a model's vocabulary (see corpus_split)."""

    source: str
    ids: torch.Tensor  # (N,) the split
    train_ids: torch.Tensor  # (N_train,) the training part of the same text
    notes: tuple[str, ...]  # what reading the file noticed (encoding guesses, ...)
    changed: bool  # the file is not the text the checkpoint fingerprinted
    split: str = "val"

    @property
    def preceding(self) -> torch.Tensor | None:
        """The text just before the split, which it continues (the training part, for the
        held-out split; nothing precedes the others): dynamic evaluation reads its end first."""
        return self.train_ids if self.split == "val" else None


class LanguageModel:
    """A loaded checkpoint: the network (or averaged networks), its vocabulary, and the count
    model and song cache it ships with."""

    def __init__(self, path, payload, model, vocab, mixture, device, checkpoint_dir) -> None:
        self.path, self.payload, self.model, self.vocab = path, payload, model, vocab
        self.mixture, self.device, self.checkpoint_dir = mixture, device, checkpoint_dir
        self.notes: list[str] = []  # what loading it noticed (a run hiding a shipped base)

    @property
    def has_adaptation(self) -> bool:
        """Whether the checkpoint ships a fitted song cache (`adapt`)."""
        return self.mixture is not None and self.mixture.adaptation is not None

    def check_adapt(self, adapt: bool | None) -> bool:
        """`adapt` as asked (None: on when the checkpoint has it); asked without: UsageError."""
        if adapt and not self.has_adaptation:
            raise UsageError(
                f"{self.path}: has no fitted song cache (trained without a count model, i.e. "
                "--kn-order 0 or a corpus over 5M characters, or by an older charlm); drop "
                "--adapt or train again"
            )
        return self.has_adaptation if adapt is None else adapt

    def prefix_for(
        self,
        prefix: str | None,
        acrostic: str = "",
        skip_unknown: bool = False,
        notes: list[str] | None = None,
    ) -> str:
        """The prefix generation starts from: the default (分开) when none is given and the
        model knows it, none for an acrostic (it writes every line start itself). `notes`
        gets what a user should hear: characters dropped, a default the model cannot use."""
        notes = [] if notes is None else notes
        if acrostic:
            if prefix is not None:
                raise UsageError("--acrostic writes the start of every line itself; drop --prefix")
            unknown = self.vocab.unknown_chars(acrostic)
            if unknown:
                shown = " ".join(repr(c) for c in unknown[:20])
                raise DataError(
                    f"--acrostic has {len(unknown)} character(s) the model never saw: {shown}; "
                    "choose others"
                )
            prefix = ""
        if prefix is None:
            prefix = DEFAULT_PREFIX if not self.vocab.unknown_chars(DEFAULT_PREFIX) else ""
            if not prefix:
                notes.append(f"the model never saw the default prefix {DEFAULT_PREFIX}; starting "
                             "as after a line break (pass --prefix to choose)")  # fmt: skip
        kept = check_prefix(self.vocab, prefix, skip_unknown)
        if kept != prefix:
            dropped = "".join(dict.fromkeys(c for c in prefix if c not in kept))
            notes.append(f"--skip-unknown dropped {dropped!r} from the prefix (never seen): "
                         f"{kept!r}")  # fmt: skip
        return kept

    def training_index(self, max_chars: int | None = None) -> TrainingIndex | None:
        """The checkpoint's training text, read again from its corpus, as an n-gram index
        (for the copy guard and novelty reports); None when it is longer than `max_chars`."""
        stored = self.payload.get("corpus") or {}
        source = stored.get("source")
        if not source or source == "-":
            raise UsageError(
                f"{self.path}: records no corpus file to compare with (trained from stdin?); "
                "--max-copy and --report-novelty need the training text"
            )
        split = self.corpus_split(None, "train")
        if split.changed:
            raise DataError(
                f"{source}: changed since {self.path} was trained; --max-copy and "
                "--report-novelty need the training text as it was"
            )
        if max_chars is not None and len(split.train_ids) > max_chars:
            return None
        return TrainingIndex(split.train_ids.numpy(), len(self.vocab))

    def stream(
        self,
        prefix: str,
        cfg: SampleConfig,
        adapt: bool = False,
        index: TrainingIndex | None = None,
    ) -> Iterator[list[str]]:
        """One text piece per sample at each step: first the prefix (already checked, see
        prefix_for), then a character each. What the CLI writes to stdout as it comes. With
        `adapt` and a fitted dynamic evaluation, a prefix of at least one segment is learned
        first (dynamic.learned)."""
        return generate(self.network_for(prefix, adapt), self.vocab, prefix, cfg, self.device,
                        self.mixture, adapt, index)  # fmt: skip

    def network_for(self, prefix: str, adapt: bool) -> torch.nn.Module:
        """The network that writes after `prefix`: the shipped one, or with `adapt` and a
        fitted rate, a copy that has read the prefix (at least dynamic.SEGMENT characters)."""
        dyn = self.mixture.dynamic if self.mixture is not None else None
        if not adapt or dyn is None or dyn.lr <= 0 or len(prefix) <= dynamic.SEGMENT:
            return self.model
        ids = torch.from_numpy(self.vocab.encode(prefix).astype("int64"))  # (N,)
        return dynamic.learned(self.model, ids, dyn.lr, self.device, dyn.rms)

    def prepare(self, request: GenerationRequest | None = None, **options: Any) -> Generation:
        """A request (or `charlm generate`'s options by their long names with underscores)
        resolved against this model: the seed, the prefix, the copy guard's default (on at
        16 when the training text is at hand, as the CLI), adaptation. Errors are CharlmError
        with the CLI's message."""
        if request is not None and options:
            raise UsageError("prepare() takes a request or options, not both")
        return prepare(self, request or GenerationRequest.from_fields(options))

    def generate(self, prefix: str | None = None, **options: Any) -> Iterator[str]:
        """The text of one sample as it is written: the prefix, then one character at a time.
        `options`: GenerationRequest's fields (length, temperature, top_k, top_p, seed, lines,
        acrostic, max_copy, form, rhyme, rhyme_with, template, adapt, ...), as `charlm
        generate` takes them; seed None draws a fresh one. Same options, same text as the CLI."""
        run = self.prepare(prefix=prefix, **options)
        if run.cfg.num_samples != 1:
            raise UsageError("generate() writes one sample; call samples() for several")
        for pieces in run.stream():
            if pieces[0]:
                yield pieces[0]

    def generate_text(self, prefix: str | None = None, **options: Any) -> str:
        """generate(...) joined into one string."""
        return "".join(self.generate(prefix, **options))

    def samples(self, prefix: str | None = None, **options: Any) -> list[dict[str, Any]]:
        """Every sample at once (num_samples of them), as `generate --json` writes them: text,
        prefix, seed, sample, checkpoint, and novelty / form where asked."""
        run = self.prepare(prefix=prefix, **options)
        texts = [""] * run.cfg.num_samples
        for pieces in run.stream():
            texts = [t + p for t, p in zip(texts, pieces, strict=True)]
        return run.records(texts)

    def corpus_split(
        self, corpus: str | None, split: str = "val", encoding: str | None = None
    ) -> CorpusSplit:
        """A split (val, train or all) of `corpus` (default: the file the model trained on),
        read with the recorded options and encoded with this model's vocabulary."""
        _checked(None, False, split)
        stored = self.payload.get("corpus") or {}
        if not (corpus or stored.get("source")) or (stored.get("source") == "-" and not corpus):
            raise UsageError(
                f"{self.path}: was trained from stdin or records no corpus; pass --corpus"
            )
        source, read = read_recorded(stored, corpus, encoding)
        val_fraction = stored.get("val_fraction", 0.1)
        check_val_fraction(val_fraction)
        changed = bool(stored.get("fingerprint")) and read.fingerprint != stored["fingerprint"]
        text = encode_text(read.text, read.fingerprint, val_fraction, self.checkpoint_dir,
                           self.vocab)  # fmt: skip
        all_ids = torch.from_numpy(text.ids)  # (N,) the whole corpus; splits are views of it
        train_ids = all_ids[: text.n_train]
        ids = {"val": all_ids[text.n_train :], "train": train_ids, "all": all_ids}[split]
        return CorpusSplit(source, ids, train_ids, tuple(read.notes), changed, split)

    def score(
        self,
        ids: torch.Tensor,
        adapt: bool = False,
        baseline: torch.Tensor | None = None,
        preceding: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Scores of ids[1:] given what precedes (ids (N,), N >= 2): what ships (network and
        count model), the network alone, with `adapt` the song cache too, and with
        `baseline` (training ids) a Kneser-Ney model of that text for comparison. `preceding`
        (training ids that `ids` continues, CorpusSplit.preceding): dynamic evaluation first
        reads as many of its last characters as the fit recorded (Dynamic.warm)."""
        dyn = self.mixture.dynamic if self.mixture is not None else None
        n_warm = dyn.warm if dyn is not None and preceding is not None else 0
        warm = preceding[max(0, len(preceding) - n_warm) :] if n_warm else None
        scores = score_text(self.model, ids, self.device, self.mixture, adapt=adapt, warm=warm)
        result: dict[str, Any] = scores.shipped.as_dict()
        if scores.weight is not None:
            result["mix_weight"] = scores.weight
        if self.mixture is not None and isinstance(self.mixture.kn, LexiconCounts):
            result["lexicon"] = self.mixture.kn.to_payload()  # what the count model leans on
        result["network"] = scores.network.as_dict()
        if scores.adapted is not None:
            dyn = self.mixture.dynamic if scores.dynamic_only is not None else None
            cache = self.mixture.adaptation.to_payload()
            result["adapted"] = {**scores.adapted.as_dict(), **cache,
                                 "cache_only": scores.cache_only.as_dict()}  # fmt: skip
            if dyn is not None:
                result["adapted"]["dynamic_only"] = scores.dynamic_only.as_dict()
                result["adapted"]["dynamic_lr"] = dyn.lr
                result["adapted"]["dynamic_rule"] = "rms" if dyn.rms else "sgd"
                result["adapted"]["dynamic_warm_chars"] = 0 if warm is None else len(warm)
                if dyn.cache is not None:  # the cache's weights refitted over it (mixture.py)
                    result["adapted"]["dynamic_cache_weights"] = list(dyn.cache.weights)
        if baseline is not None:
            kn = KneserNey(baseline, len(self.vocab), BASELINE_ORDER)
            logp = kn_logprobs(kn, ids)
            result["baseline_kn"] = EvalResult.from_logprobs(logp, ids[1:]).as_dict()
        return result

    def evaluate(
        self,
        text: str | None = None,
        *,
        corpus: str | None = None,
        split: str = "val",
        adapt: bool = False,
        encoding: str | None = None,
    ) -> dict[str, Any]:
        """Loss, perplexity and bits per character of `text` (characters the model never saw
        count as its unknown symbol), or of a split of `corpus` (default: the training file's
        held-out part) as `charlm evaluate` reports them."""
        adapt = self.check_adapt(_checked(text, adapt))
        if text is not None:
            ids = torch.from_numpy(self.vocab.encode(text).astype("int64"))  # (N,)
            if len(ids) < 2:
                raise UsageError("evaluate needs a text of at least 2 characters")
            return self.score(ids, adapt)
        data = self.corpus_split(corpus, split, encoding)
        if len(data.ids) < 2:
            raise UsageError(
                f"--split {split} of {data.source} has fewer than 2 characters; try --split all"
            )
        result = self.score(data.ids, adapt, preceding=data.preceding)
        return {**result, "split": split, "corpus": data.source}
