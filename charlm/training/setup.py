"""From `charlm train`'s options to everything a Trainer needs: the corpus read and split, the
vocabulary, the configs, the run folder, and (on --resume) the verified last.pt.

    TrainOptions ─► prepare() ─► TrainSetup (configs, vocab, RunData, run folder, resume payload)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.data.batching import check_enough
from charlm.data.corpus import (
    Corpus,
    CorpusOptions,
    check_val_fraction,
    corpus_record,
    read_corpus,
    read_recorded,
)
from charlm.data.ids_cache import EncodedText, encode_text, n_train_chars
from charlm.data.prepared import RunData
from charlm.data.vocab import Vocab, count_chars
from charlm.errors import CheckpointError, DataError, UsageError
from charlm.scoring.mixture_fit import MAX_KN_CHARS, MIN_TUNE_CHARS, pick_order
from charlm.store import checkpoint
from charlm.system.runtime import auto_precision, bf16_supported, new_seed
from charlm.training import init_from
from charlm.training.init_from import BaseNetwork
from charlm.training.options import (
    NO_BASE,
    TrainOptions,
    model_config_for,
    train_config_for,
)
from charlm.training.resume import (
    check_frozen_on_resume,
    check_resume_compatible,
    resume_batch_size,
)
from charlm.training.sizing import (
    BUDGET_EPOCHS,
    DECAY,
    LIGHT,
    auto_sizes,
    budget_passes,
    fit_batches,
    fit_to_budget,
    for_many_passes,
    lighten,
    with_auto_sizes,
)
from charlm.training.softmax import cutoffs_for, two_levels_pay

Echo = Callable[[str], None]
DEFAULT_CORPUS_NAME = "tang_song_zh.zip"  # corpora/: public domain, bundled


@dataclass(frozen=True)
class TrainSetup:
    run_dir: Path
    model_config: ModelConfig
    train_config: TrainConfig
    data: RunData
    resume: dict[str, Any] | None  # the verified last.pt payload, or None for a new run
    notes: tuple[str, ...] = ()  # decisions the run header should mention
    # --init-from: the base's weights on this run's vocabulary (a new network, and each new
    # member, starts from them) and the record the checkpoints keep of the base
    init_state: dict[str, torch.Tensor] | None = None
    base: dict[str, Any] | None = None


def run_data(text: EncodedText, corpus: dict, cfg: TrainConfig) -> RunData:
    """Split the ids; with a count model, cut the tune slice off the end of the training text
    (the network never trains on it, and the count model that fits the weight never counts
    it). Slices are views: nothing is copied, a memory map stays one."""
    ids = torch.from_numpy(text.ids)  # (N,)
    train, val = ids[: text.n_train], ids[text.n_train :]
    n_tune = int(len(train) * cfg.mix_fraction)
    if not cfg.kn_order or len(train) > MAX_KN_CHARS or n_tune < MIN_TUNE_CHARS:
        return RunData(text.vocab, train, val, corpus)
    fit, tune = train[:-n_tune], train[-n_tune:]
    return RunData(text.vocab, fit, val, corpus, tune)


def mixture_note(train_chars: int, cfg: TrainConfig, data: RunData) -> str | None:
    """Why a run asked for a count model trains the network alone, if it does."""
    if not cfg.kn_order or data.tune_ids is not None:
        return None
    if train_chars > MAX_KN_CHARS:
        return f"network alone: no count model above {MAX_KN_CHARS:,} training characters"
    return (
        f"network alone: --mix-fraction {cfg.mix_fraction:g} of {train_chars:,} training "
        f"characters is under the {MIN_TUNE_CHARS} needed to fit the mixture weight; "
        "raise --mix-fraction or use a longer corpus"
    )


def corpus_options(opts: TrainOptions) -> CorpusOptions:
    return CorpusOptions(
        encoding=opts.encoding,
        newline=opts.newline or "keep",
        max_chars=opts.max_chars or 0,
        **({"max_bytes": opts.max_corpus_bytes} if opts.max_corpus_bytes else {}),
    )


def default_corpus() -> Path:
    """The bundled public-domain corpus (CHARLM_DEFAULT_CORPUS overrides where it is)."""
    env = os.environ.get("CHARLM_DEFAULT_CORPUS")
    path = (
        Path(env) if env else Path(__file__).resolve().parents[2] / "corpora" / DEFAULT_CORPUS_NAME
    )
    if not path.is_file():
        raise DataError(f"{path}: the bundled corpus is missing; pass --corpus FILE")
    return path


def new_run_name(checkpoint_dir: Path) -> str:
    base = time.strftime("%Y%m%d-%H%M%S")
    name, i = base, 1
    while (checkpoint_dir / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def check_run_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--run {name!r}: a run name is one folder name (letters, digits, -_.)")
    return name


def prepare(opts: TrainOptions, ckdir: Path, device: torch.device, echo: Echo) -> TrainSetup:
    """A new run, or the run --resume continues; refuses what cannot work, before any folder
    is made. Big corpora's ids are cached under ckdir (see ids_cache)."""
    if opts.resume and opts.init_from not in (None, NO_BASE):
        raise UsageError(
            "--init-from starts a new run and --resume continues one; to continue a "
            "fine-tuning run, drop --init-from (the run remembers its base)"
        )
    if opts.resume:
        setup = _prepare_resume(opts, ckdir, echo)
        _check_trainable(setup.train_config, len(setup.data.train_ids), device)
        return setup
    return _prepare_new(opts.fill({"precision": auto_precision(device)}), ckdir, device, echo)


def _check_trainable(cfg: TrainConfig, n_train: int, device: torch.device) -> int:
    """Batches per epoch; refuses a text too short for one batch, or bf16 where not native."""
    n_batches = check_enough(n_train, cfg.global_batch, cfg.seq_len)
    if cfg.precision == "bf16" and not bf16_supported(device):
        raise UsageError(
            f"--precision bf16: this {device.type} has no native bf16 (emulated it would be "
            "slower, and torch's CPU LSTM refuses it); pass --precision fp32"
        )
    return n_batches


def _read(source: str, options: CorpusOptions, echo: Echo) -> Corpus:
    corpus = read_corpus(source, options)
    for note in corpus.notes:
        echo(f"note: {note}")
    return corpus


def _read_recorded(record: dict[str, Any], opts: TrainOptions, echo: Echo) -> tuple[str, Corpus]:
    """The corpus a checkpoint's record names, read as it was (--corpus and --encoding win)."""
    source, corpus = read_recorded(record, opts.corpus, opts.encoding)
    for note in corpus.notes:
        echo(f"note: {note}")
    return source, corpus


def _prepare_new(opts: TrainOptions, ckdir: Path, device: torch.device, echo: Echo) -> TrainSetup:
    given_base = opts.init_from not in (None, NO_BASE)
    base = init_from.load_base(opts.init_from, ckdir) if given_base else None
    if base is not None:  # before the corpus is read: a wrong option costs nothing
        init_from.check_architecture(opts, base.model_config, opts.init_from)
        opts = opts.fill(init_from.FINE_TUNE)
    asked = opts  # before the rules below fill in what was left out
    source = opts.corpus or str(default_corpus())
    corpus_opts = corpus_options(opts)
    corpus = _read(source, corpus_opts, echo)
    # the user's: kept (the budget rules below set the others)
    given = {k for k in (*LIGHT, "decay", "members") if getattr(opts, k) is not None}
    opts = opts.fill({"seed": new_seed(), "val_fraction": TrainConfig().val_fraction,
                      "decay": DECAY if opts.max_time else 0.0,
                      "epochs": BUDGET_EPOCHS if opts.max_time else None})  # fmt: skip
    check_val_fraction(opts.val_fraction)
    n_train = n_train_chars(len(corpus.text), opts.val_fraction)
    # sizes follow the time budget too, unless given (or the base's: sizing is skipped)
    fit_size = base is None and opts.hidden is None and opts.layers is None
    embed_given = opts.embed is not None
    if base is None:
        opts = with_auto_sizes(opts, n_train)  # sizes follow the training text
    else:  # the base's architecture; regularisation still follows the text's length
        opts = opts.fill({"dropout": auto_sizes(n_train)["dropout"]})
    cfg = train_config_for(opts)
    run_dir = _new_run_dir(opts, ckdir)
    text, mcfg, notes = _text_and_model(base, corpus, n_train, cfg, ckdir, opts)
    record = corpus_record(source, corpus.fingerprint, corpus_opts, cfg.val_fraction)
    data = run_data(text, record, cfg)
    cfg, small = _fit_batches(cfg, data, opts, device)
    cfg, order = _kn_order(cfg, data, opts)
    counts = np.bincount(data.train_ids.numpy(), minlength=len(data.vocab))  # (V,)
    cuts, two_level = (), None
    if base is None:  # a base keeps its own output layer (init_from.check_architecture)
        cuts, two_level = cutoffs_for(opts.softmax, counts)
    if opts.softmax == "adaptive":
        mcfg = replace(mcfg, cutoffs=cuts)
    notes += [small, mixture_note(n_train, cfg, data), text.cache and f"ids cache: {text.cache}",
              order]  # fmt: skip
    if fit_size:
        sample = _speed_sample(data.train_ids, cfg)
        sized, note, passes = fit_to_budget(mcfg, cfg, len(data.train_ids), device, embed_given,
                                            text=sample)  # fmt: skip
        if two_levels_pay(opts.softmax, cuts, passes):  # sized again, with the faster layer
            mcfg = replace(mcfg, cutoffs=cuts)
            sized, note, passes = fit_to_budget(mcfg, cfg, len(data.train_ids), device,
                                                embed_given, text=sample)  # fmt: skip
            notes.append(two_level)
        base, base_passes = _auto_base(asked, passes, data, counts, cfg, device, sample, ckdir)
        if base is not None:  # the base's network instead of the one sized here
            sized = init_from.model_config_for(base, data.vocab, opts)
            note, passes = base.notes[-1], base_passes
            cfg = replace(cfg, **{k: v for k, v in init_from.FINE_TUNE.items()
                                  if getattr(asked, k) is None})  # fmt: skip
        mcfg, light_cfg, light = lighten(sized, cfg, passes, given)
        if light_cfg.seq_len != cfg.seq_len:  # a longer window: the batches are fitted again
            light_cfg, _ = _fit_batches(light_cfg, data, opts, device)
        cfg, many = for_many_passes(light_cfg, passes, given)
        notes += [note, light, many]
    init_state = init_from.fit_state(base, data.vocab, mcfg) if base else None
    return TrainSetup(run_dir, mcfg, cfg, data, None, tuple(n for n in notes if n),
                      init_state, base.record if base else None)  # fmt: skip


def _auto_base(
    asked: TrainOptions,
    passes: float | None,
    data: RunData,
    counts: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
    sample: torch.Tensor,
    ckdir: Path,
) -> tuple[BaseNetwork | None, float]:
    """The shipped base and the passes it makes in the budget (what the rules after sizing
    read), when a run without --init-from should start from it: init_from.auto_base says the
    network sized here would read the text MANY_PASSES times (short of text, not compute),
    and the base knows BASE_COVERAGE of its characters (counts (V,): the training text's);
    the base may read it fewer times and still starts knowing the language (docs/base.md)."""
    if not init_from.auto_base(asked, passes):
        return None, 0.0
    base = init_from.load_base(checkpoint.BUILTIN_PREFIX + init_from.AUTO_BASE, ckdir)
    share = init_from.covers(base.vocab, data.vocab, torch.from_numpy(counts))
    if share < init_from.BASE_COVERAGE:
        return None, 0.0
    mcfg = init_from.model_config_for(base, data.vocab, asked)
    reads = budget_passes(mcfg, cfg, len(data.train_ids), device, sample)
    known = sum(1 for c in data.vocab.tokens[1:] if c in base.vocab)
    note = (
        f"starts from the shipped Chinese base ({mcfg.cell} {mcfg.layers}x{mcfg.hidden}): it "
        f"reads this text {reads:.0f} times over in the budget, and knows {share:.0%} of it "
        f"({known:,} of its {len(data.vocab) - 1:,} characters); --init-from none trains "
        "from scratch"
    )
    return replace(base, notes=(note,)), reads


def _speed_sample(train_ids: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """One batch of training text from its middle, where a corpus's front matter is behind
    (the sizing rule's speed measurement reads it: sizing.measure_speed)."""
    need = cfg.batch_size * cfg.seq_len + 1
    start = max(0, len(train_ids) // 2 - need // 2)
    return train_ids[start : start + need].long()


def _kn_order(
    cfg: TrainConfig, data: RunData, opts: TrainOptions
) -> tuple[TrainConfig, str | None]:
    """The count model's order, unless given: of KN_ORDERS, the one that scores the tune
    slice best (and a note when that is not the default)."""
    if opts.kn_order is not None or data.tune_ids is None or not cfg.kn_order:
        return cfg, None
    order, nats = pick_order(data.train_ids, data.tune_ids, len(data.vocab))
    if order == cfg.kn_order:
        return cfg, None
    return replace(cfg, kn_order=order), (
        f"count model of order {order}: it scored the tune slice at {nats[order]:.4f} "
        f"nats/char against {nats[cfg.kn_order]:.4f} at {cfg.kn_order} (--kn-order to choose)"
    )


def _fit_batches(
    cfg: TrainConfig, data: RunData, opts: TrainOptions, device: torch.device
) -> tuple[TrainConfig, str | None]:
    """The batch and window fitted to the text (fit_batches), and --eval-epochs in steps."""
    cfg, small = fit_batches(cfg, len(data.train_ids), opts.batch_size is not None,
                             opts.seq_len is not None)  # fmt: skip
    n_batches = _check_trainable(cfg, len(data.train_ids), device)
    if opts.eval_epochs and opts.eval_every is None:  # the textbook reports every N epochs
        cfg = replace(cfg, eval_every=opts.eval_epochs * n_batches)
    return cfg, small


def _new_run_dir(opts: TrainOptions, ckdir: Path) -> Path:
    run_dir = ckdir / (check_run_name(opts.run) if opts.run else new_run_name(ckdir))
    if (run_dir / "last.pt").exists() or (run_dir / "best.pt").exists():
        raise UsageError(
            f"{run_dir}: this run already has checkpoints; pass --resume to continue it, "
            "or pick another --run"
        )
    return run_dir


def _text_and_model(
    base: BaseNetwork | None,
    corpus: Corpus,
    n_train: int,
    cfg: TrainConfig,
    ckdir: Path,
    opts: TrainOptions,
) -> tuple[EncodedText, ModelConfig, list[str]]:
    """The ids and the model config (and what the header should say with them): the text's
    own vocabulary, or with --keep-base-chars (and from a two-level base, whose clusters are
    ranges of its ids) the base's, extended by the text's new characters."""
    if base is None:
        text = encode_text(corpus.text, corpus.fingerprint, cfg.val_fraction, ckdir)
        return text, model_config_for(len(text.vocab), opts), []
    union = opts.keep_base_chars or bool(base.model_config.cutoffs)
    if union:
        own = Vocab.from_counts(count_chars(corpus.text, n_train))
        vocab = init_from.union_vocab(base.vocab, own)
        text = encode_text(corpus.text, corpus.fingerprint, cfg.val_fraction, ckdir, vocab)
    else:  # the text's own vocabulary, as a run from scratch has
        text = encode_text(corpus.text, corpus.fingerprint, cfg.val_fraction, ckdir)
        vocab = text.vocab
    mcfg = init_from.model_config_for(base, vocab, opts)
    known = sum(1 for c in vocab.tokens[1:] if c in base.vocab)
    unused = len(base.vocab) - 1 - known
    kept = (
        f"{unused:,} of the base's that this text never uses are kept"
        if union
        else f"{known:,} of them the base's (--keep-base-chars keeps its other {unused:,})"
    )
    note = (
        f"starts from {opts.init_from} ({mcfg.cell} {mcfg.layers}x{mcfg.hidden}, the base's "
        f"architecture: sizing skipped); vocabulary {len(vocab) - 1:,} characters, {kept}"
    )  # fmt: skip
    return text, mcfg, [*base.notes, note]


def _prepare_resume(opts: TrainOptions, ckdir: Path, echo: Echo) -> TrainSetup:
    if opts.run:
        run_dir = ckdir / check_run_name(opts.run)
    else:
        run_dir = checkpoint.resolve(None, ckdir, "last").parent
    last = run_dir / "last.pt"
    if not last.is_file():
        raise CheckpointError(
            f"{last}: nothing to resume (no last.pt); drop --resume to start a new run"
        )
    payload = checkpoint.load(last)
    if "progress" not in payload or "optimizer_state" not in payload:
        raise CheckpointError(f"{last}: holds no training state (progress, optimizer_state)")
    if payload["format_version"] < checkpoint.FORMAT_VERSION:
        raise CheckpointError(
            f"{last}: format {payload['format_version']} training state (an older charlm) cannot "
            "be resumed exactly by this one; start a new --run (its best.pt still generates)"
        )
    _, corpus = _read_recorded(payload.get("corpus", {}), opts, echo)
    check_resume_compatible(payload, opts, corpus.fingerprint, str(last))
    base = TrainConfig.from_dict(payload["train_config"])
    batch_size = resume_batch_size(opts, base, str(last))
    if batch_size is not None:
        opts = replace(opts, batch_size=batch_size)
    cfg = train_config_for(opts, base)
    check_frozen_on_resume(cfg, base, str(last))
    for k, v in vars(cfg).items():
        if v != getattr(base, k):
            echo(f"resume: {k} {getattr(base, k)} -> {v}")
    vocab = Vocab(payload["vocab"])
    mcfg = ModelConfig.from_dict(payload["model_config"])
    text = encode_text(corpus.text, corpus.fingerprint, cfg.val_fraction, ckdir, vocab)
    data = run_data(text, payload["corpus"], cfg)
    notes = (f"ids cache: {text.cache}",) if text.cache else ()
    base_record = payload.get("base")
    last_member = (payload.get("progress") or {}).get("member", 0) + 1 >= cfg.members
    init_state = None if last_member else _base_again(base_record, vocab, mcfg, cfg, ckdir)
    return TrainSetup(run_dir, mcfg, cfg, data, payload, notes, init_state, base_record)


def _base_again(
    record: dict[str, Any] | None, vocab: Vocab, mcfg: ModelConfig, cfg: TrainConfig, ckdir: Path
) -> dict[str, torch.Tensor] | None:
    """A fine-tuning run resumed, or followed under torchrun, with room for a new member:
    the base it starts from, read again (it must be the same file: its digest is checked).
    One that can add no network (members.may_grow) needs no base: a deleted one is no error."""
    if not record or cfg.members <= 1 or cfg.max_time <= 0:
        return None
    if not isinstance(record, dict) or not all(
        isinstance(record.get(k), str) for k in ("path", "digest")
    ):
        raise CheckpointError(f"the run's base record is damaged ({record!r:.80}); "
                              "resume with --members 1, or start a new --run")  # fmt: skip
    spec, name = record["path"], record.get("name")
    if not Path(spec).is_file() and isinstance(name, str):
        # a shipped base moves with the package (a new environment): found by its name
        shipped = checkpoint.builtin_name(name, ckdir)
        spec = checkpoint.BUILTIN_PREFIX + shipped if shipped else spec
    base = init_from.load_base(spec, ckdir)
    if base.record["digest"] != record["digest"]:
        raise CheckpointError(
            f"{record['path']}: the base this run started from has changed (digest "
            f"{base.record['digest'][:12]} vs {record['digest'][:12]}); a new member would "
            "start from another network: resume with --members 1, or start a new --run"
        )
    return init_from.fit_state(base, vocab, mcfg)


def plan_of(setup: TrainSetup) -> dict[str, Any]:
    """What rank 0 decided that the other processes of a torchrun run must share: the run,
    the configs (seed and sizes included), the vocabulary, the corpus record. Primitives only."""
    return {
        "run_dir": str(setup.run_dir),
        "model_config": asdict(setup.model_config),
        "train_config": asdict(setup.train_config),
        "vocab": list(setup.data.vocab.tokens),
        "corpus": setup.data.corpus,
        "base": setup.base,
    }


def follow(plan: dict[str, Any], opts: TrainOptions, ckdir: Path) -> TrainSetup:
    """A process other than rank 0: rank 0's plan, and its own read of the same corpus (its
    fingerprint must match: every node needs the same file at the same path)."""
    record = plan["corpus"]
    source, corpus = _read_recorded(record, opts, lambda _: None)  # rank 0 said the notes
    if corpus.fingerprint != record["fingerprint"]:
        raise DataError(
            f"{source}: this process read a different corpus from process 0's (fingerprint "
            f"{corpus.fingerprint[:12]} vs {record['fingerprint'][:12]}); every node needs the "
            "same file at the same path"
        )
    cfg = TrainConfig.from_dict(plan["train_config"])
    vocab = Vocab(plan["vocab"])
    text = encode_text(corpus.text, corpus.fingerprint, cfg.val_fraction, ckdir, vocab)
    data = run_data(text, record, cfg)
    mcfg = ModelConfig.from_dict(plan["model_config"])
    init_state = _base_again(plan["base"], vocab, mcfg, cfg, ckdir)
    return TrainSetup(Path(plan["run_dir"]), mcfg, cfg, data, None, (), init_state, plan["base"])
