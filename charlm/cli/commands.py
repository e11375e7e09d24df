"""What each command does once its options are parsed: load, run the library, render.

Data goes to stdout only from here (generate's text); everything else goes to the Rich
console, which writes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from charlm.config import SampleConfig
from charlm.data.corpus import Corpus, CorpusOptions, check_val_fraction, read_corpus
from charlm.data.ids_cache import EncodedText, encode_text
from charlm.data.vocab import Vocab
from charlm.errors import CharlmError, DataError, DivergedError, Interrupted, UsageError
from charlm.generation.novelty import TrainingIndex, render_report
from charlm.generation.sampling import DEFAULT_PREFIX, PREVIEW_PREFIXES, check_prefix, generate
from charlm.models.charrnn import count_parameters
from charlm.scoring.evaluate import EvalResult
from charlm.scoring.kneser_ney import KneserNey
from charlm.scoring.mixture import kn_logprobs, score_text
from charlm.store import checkpoint
from charlm.store.run_folder import RunFolder
from charlm.system import distributed
from charlm.system.distributed import Dist
from charlm.system.runtime import choose_device
from charlm.training.loop import Trainer
from charlm.training.options import TrainOptions, apply_preset
from charlm.training.setup import TrainSetup, follow, plan_of, prepare
from charlm.training.tensorboard import check_available as check_tensorboard

BASELINE_ORDER = 8


def _default_previews(vocab: Vocab) -> list[str]:
    ok = [p for p in PREVIEW_PREFIXES if not vocab.unknown_chars(p)]
    return ok or [""]


def run_train(
    opts: TrainOptions,
    device_name: str,
    ckdir: Path,
    console,
    quiet: bool,
    started_at: float | None = None,
) -> dict | None:
    """Set up (or resume) a run, train it, print the summary; returns the summary dict (None
    on the processes of a torchrun run other than rank 0, which print nothing).
    `started_at` (time.monotonic()): when the command started, for --max-time."""
    dist = distributed.start(device_name)
    try:
        with distributed.peer_failures(dist):
            return _train(dist, opts, device_name, Path(ckdir), console, quiet, started_at)
    except (Interrupted, DivergedError) as e:
        e.quiet = not dist.main  # every process has it; rank 0 says it once
        raise
    finally:
        dist.stop()


def _train(
    dist: Dist,
    opts: TrainOptions,
    device_name: str,
    ckdir: Path,
    console,
    quiet: bool,
    started_at: float | None,
) -> dict | None:
    device = choose_device(device_name)
    if dist.active:
        if opts.corpus == "-":
            raise UsageError("--corpus -: processes cannot share stdin; save it to a file")
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)  # one GPU per process
    opts = replace(apply_preset(opts), processes=dist.world)
    if opts.tensorboard:
        check_tensorboard()  # before anything is read or made
    # Generated text and corpus notes: never let Rich read "[Chorus]" as markup.
    echo = lambda line: console.print(line, markup=False, highlight=False)  # noqa: E731
    setup = _setup(dist, opts, device, ckdir, console, echo)
    data, mcfg, cfg = setup.data, setup.model_config, setup.train_config
    previews = [check_prefix(data.vocab, p, skip_unknown=False) for p in opts.preview or ()]
    folder = RunFolder(setup.run_dir)
    created = dist.main and not folder.path.exists()
    if dist.main:
        folder.path.mkdir(parents=True, exist_ok=True)
    try:
        # one trainer per run folder: rank 0 holds the lock for all the processes
        with (
            folder.lock() if dist.main else contextlib.nullcontext(),
            _event_log(opts, setup, dist) as on_record,
        ):
            with console.status("building the model and the count model..."):
                trainer = Trainer(
                    mcfg, cfg, data, folder, device,
                    previews=previews or _default_previews(data.vocab),
                    echo=echo if dist.main else lambda _: None,
                    show_progress=dist.main and sys.stderr.isatty() and not quiet,
                    resume=setup.resume,
                    started_at=started_at,
                    dist=dist,
                    on_record=on_record,
                )  # fmt: skip
            if dist.main:
                _header(console, setup, trainer, device, dist)
            summary = trainer.run()
    except BaseException:
        if created:
            folder.remove_if_unused()
        raise
    if not dist.main:
        if summary["stopped"] == "interrupted":
            raise Interrupted(summary["signal"])
        return None
    _summary_table(console, summary)
    if summary["stopped"] == "interrupted":
        launch = f"torchrun --nproc-per-node {dist.world} -m charlm --" if dist.active else "charlm"
        console.print(f"resume with: {launch} train --run {folder.path.name} --resume")
        raise Interrupted(summary["signal"])
    return summary


@contextlib.contextmanager
def _event_log(opts: TrainOptions, setup: TrainSetup, dist: Dist):
    """With --tensorboard (on rank 0): a writer's `write`, closed on the way out; else None."""
    if not (opts.tensorboard and dist.main):
        yield None
        return
    from charlm.training.tensorboard import EventLog

    step = setup.resume["progress"]["step"] if setup.resume else 0
    log = EventLog(setup.run_dir, resume_step=step)
    try:
        yield log.write
    finally:
        log.close()


def _setup(dist: Dist, opts: TrainOptions, device: torch.device, ckdir: Path, console, echo):
    """prepare() on rank 0; under torchrun the others follow its plan (seed, run, sizes,
    vocabulary), reading the corpus themselves once rank 0 has cached its ids. A failure on
    any process stops them all with that failure's exit code."""
    setup, error = None, None
    if dist.main:
        try:
            # A status line while nothing else moves (Rich shows it on a terminal only).
            with console.status("reading the corpus and building the vocabulary..."):
                setup = prepare(opts, ckdir, device, echo)
        except CharlmError as e:
            error = e
    dist.agree_errors(error)
    if not dist.active:
        return setup
    plan = dist.broadcast(plan_of(setup) if dist.main else None)
    if not dist.main:
        try:
            setup = follow(plan, opts, ckdir)
        except CharlmError as e:
            error = e
    dist.agree_errors(error)
    return setup


def _header(console, setup: TrainSetup, trainer: Trainer, device: torch.device, dist: Dist) -> None:
    data, mcfg, cfg = setup.data, setup.model_config, setup.train_config
    tune = f" + {len(data.tune_ids):,} mixture-fit" if data.tune_ids is not None else ""
    capped = ""
    if len(data.val_ids) > len(trainer.eval_ids):  # training scores a fixed first part
        capped = f" (first {len(trainer.eval_ids) - 1:,} scored at each evaluation)"
    console.print(
        f"[bold]{setup.run_dir.name}[/]: {len(data.train_ids):,} training{tune} / "
        f"{len(data.val_ids):,} held-out chars{capped}, vocab {len(data.vocab):,}, "
        f"{mcfg.cell} {mcfg.layers}x{mcfg.hidden} "
        f"({count_parameters(trainer.model):,} params), {cfg.sampler} sampler, "
        f"device {device.type} ({cfg.precision}), seed {cfg.seed}"
    )
    if dist.active:
        console.print(
            f"[yellow]note:[/] {dist.world} processes ({dist.backend}), --batch-size "
            f"{cfg.batch_size} each: {cfg.global_batch} windows a step"
        )
    for note in setup.notes:
        console.print(f"[yellow]note:[/] {note}")


def _summary_table(console, s: dict) -> None:
    from rich.table import Table

    t = Table(title="training summary", show_header=False, title_justify="left")
    best = f"{s['best_val_ppl']:.3f} (step {s['best_step']})"
    rows = [
        ("stopped", s["stopped"]),
        ("steps / epochs", f"{s['steps']:,} / {s['epochs']:.2f}"),
        ("networks", f"{s['networks']} (averaged)" if s["networks"] > 1 else "1"),
        (
            "best train ppl (no held-out)" if s.get("best_is_train_ppl") else "best held-out ppl",
            best,
        ),
        ("last train ppl", f"{s['last_train_ppl']:.3f}" if s["last_train_ppl"] else "n/a"),
        ("time", f"{s['elapsed_s']:.1f} s"),
        ("chars/s", f"{s['chars_per_s']:,.0f}" if s["chars_per_s"] else "n/a"),
        ("best checkpoint", s["best"]),
        ("last checkpoint", s["last"]),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)


def _load_for_use(spec: str | None, ckdir: Path, device: torch.device):
    path = checkpoint.resolve(spec, Path(ckdir), "best")
    payload = checkpoint.load(path)
    model, vocab, _ = checkpoint.restore_model(payload, str(path), device)
    mixture = checkpoint.restore_mixture(payload, len(vocab), str(path))
    return path, payload, model, vocab, mixture


def run_generate(
    *,
    cfg: SampleConfig,
    spec: str | None,
    prefix: str | None,
    skip_unknown: bool,
    device_name: str,
    ckdir: Path,
    json_out: bool,
    seed_given: bool,
    console,
    adapt: bool | None = None,
    report_novelty: bool = False,
) -> None:
    """Stream generated text to stdout (or JSON lines with json_out)."""
    device = choose_device(device_name)
    path, payload, model, vocab, mixture = _load_for_use(spec, ckdir, device)
    has_adapt = mixture is not None and mixture.adaptation is not None
    if adapt and not has_adapt:
        raise UsageError(_no_adaptation(path))
    adapt = has_adapt if adapt is None else adapt
    if cfg.acrostic:
        prefix = _acrostic_prefix(cfg.acrostic, prefix, vocab)
    if prefix is None:
        prefix = DEFAULT_PREFIX if not vocab.unknown_chars(DEFAULT_PREFIX) else ""
    prefix = check_prefix(vocab, prefix, skip_unknown)
    index = None
    if cfg.max_copy or report_novelty:
        index = _training_index(payload, vocab, Path(ckdir), path)
    if not seed_given:
        console.print(f"[dim]seed {cfg.seed}[/]")
    out = sys.stdout
    texts = [""] * cfg.num_samples
    stream = cfg.num_samples == 1 and not json_out  # one sample: write it as it comes
    for i, pieces in enumerate(generate(model, vocab, prefix, cfg, device, mixture, adapt, index)):
        for b, p in enumerate(pieces):
            texts[b] += p
        if stream:
            out.write(pieces[0])
            if "\n" in pieces[0] or i % 32 == 0:
                out.flush()
    reports = [index.report(vocab.encode(t)) for t in texts] if report_novelty else []
    for b, text in enumerate(texts):
        if json_out:
            rec = {
                "text": text,
                "prefix": prefix,
                "seed": cfg.seed,
                "sample": b,
                "checkpoint": str(path),
            }
            if reports:
                rec["novelty"] = reports[b]
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif stream:
            out.write("" if text.endswith("\n") else "\n")
        else:
            out.write(("\n" if b else "") + text + ("" if text.endswith("\n") else "\n"))
        out.flush()
    if reports and not json_out:
        for b, r in enumerate(reports):
            console.print(render_report(b, r), markup=False)


def _training_index(payload: dict, vocab: Vocab, ckdir: Path, path: Path) -> TrainingIndex:
    """The checkpoint's training text, read again from its corpus, as an n-gram index."""
    stored = payload.get("corpus") or {}
    source = stored.get("source")
    if not source or source == "-":
        raise UsageError(
            f"{path}: records no corpus file to compare with (trained from stdin?); "
            "--max-copy and --report-novelty need the training text"
        )
    _, same, text = _encode_corpus(source, stored.get("options") or {}, stored, vocab, ckdir)
    if not same:
        raise DataError(
            f"{source}: changed since {path} was trained; --max-copy and --report-novelty "
            "need the training text as it was"
        )
    return TrainingIndex(text.ids[: text.n_train], len(vocab))


def _encode_corpus(
    source: str, options: dict, stored: dict, vocab: Vocab, ckdir: Path
) -> tuple[Corpus, bool, EncodedText]:
    """Read `source`, encode it with a checkpoint's vocabulary and split it as the checkpoint's
    corpus record says; and whether it is still the text that record fingerprinted."""
    corpus = read_corpus(source, CorpusOptions(**options))
    val_fraction = stored.get("val_fraction", 0.1)
    check_val_fraction(val_fraction)
    same = not stored.get("fingerprint") or corpus.fingerprint == stored["fingerprint"]
    text = encode_text(corpus.text, corpus.fingerprint, val_fraction, Path(ckdir), vocab)
    return corpus, same, text


def _acrostic_prefix(acrostic: str, prefix: str | None, vocab: Vocab) -> str:
    """An acrostic writes its own line starts: no prefix, and every head character known."""
    if prefix is not None:
        raise UsageError("--acrostic writes the start of every line itself; drop --prefix")
    unknown = vocab.unknown_chars(acrostic)
    if unknown:
        shown = " ".join(repr(c) for c in unknown[:20])
        raise DataError(
            f"--acrostic has {len(unknown)} character(s) the model never saw: {shown}; "
            "choose others"
        )
    return ""


def _no_adaptation(path: Path) -> str:
    return (
        f"{path}: has no fitted song cache (trained without a count model, i.e. --kn-order 0 or "
        "a corpus over 5M characters, or by an older charlm); drop --adapt or train again"
    )


def run_evaluate(
    *,
    spec: str | None,
    corpus_src: str | None,
    which: str,
    baseline: bool,
    encoding: str | None,
    adapt: bool = False,
    device_name: str,
    ckdir: Path,
    console,
) -> dict:
    """Score the checkpoint on a split of its own corpus, or of --corpus."""
    device = choose_device(device_name)
    path, payload, model, vocab, mixture = _load_for_use(spec, ckdir, device)
    if adapt and (mixture is None or mixture.adaptation is None):
        raise UsageError(_no_adaptation(path))
    stored = payload.get("corpus") or {}
    opts = dict(stored.get("options") or {})
    if encoding:
        opts["encoding"] = encoding
    source = corpus_src or stored.get("source")
    if not source or (source == "-" and not corpus_src):
        raise UsageError(f"{path}: was trained from stdin or records no corpus; pass --corpus")
    corpus, same, text = _encode_corpus(source, opts, stored, vocab, ckdir)
    for note in corpus.notes:
        console.print(f"[yellow]note:[/] {note}", markup=True)
    if not corpus_src and not same:
        console.print(
            f"[yellow]warning:[/] {source} changed since training; scores may not compare"
        )
    all_ids = torch.from_numpy(text.ids)  # (N,) the whole corpus; splits are views of it
    train_ids = all_ids[: text.n_train]
    ids = {"val": all_ids[text.n_train :], "train": train_ids, "all": all_ids}[which]
    if len(ids) < 2:
        raise UsageError(
            f"--split {which} of {source} has fewer than 2 characters; try --split all"
        )
    scores = score_text(model, ids, device, mixture, adapt=adapt)
    result: dict[str, Any] = scores.shipped.as_dict()
    if scores.weight is not None:
        result["mix_weight"] = scores.weight
    result["network"] = scores.network.as_dict()
    if scores.adapted is not None:
        result["adapted"] = {**scores.adapted.as_dict(), **mixture.adaptation.to_payload()}
    if baseline:
        kn = KneserNey(train_ids, len(vocab), BASELINE_ORDER)
        result["baseline_kn"] = EvalResult.from_logprobs(kn_logprobs(kn, ids), ids[1:]).as_dict()
    result.update({"split": which, "corpus": source, "checkpoint": str(path)})
    _eval_table(console, result)
    return result


def _eval_table(console, r: dict) -> None:
    from rich.table import Table

    t = Table(title=f"{r['checkpoint']} on {r['split']} ({r['chars']:,} chars, "
              f"{r['unknown_chars']:,} unknown)", title_justify="left")  # fmt: skip
    t.add_column("model")
    for k in ("perplexity", "bits/char", "loss"):
        t.add_column(k, justify="right")
    rows = [("charlm" + (f" (mixture, w={r['mix_weight']:.2f})" if "mix_weight" in r else ""), r)]
    if "adapted" in r:
        rows.append(("charlm + song cache (adapted as it reads)", r["adapted"]))
    if "mix_weight" in r:
        rows.append(("network alone", r["network"]))
    if "baseline_kn" in r:
        rows.append((f"Kneser-Ney {BASELINE_ORDER}-gram baseline", r["baseline_kn"]))
    for name, m in rows:
        t.add_row(name, f"{m['perplexity']:.3f}", f"{m['bits_per_char']:.4f}", f"{m['loss']:.4f}")
    console.print(t)
