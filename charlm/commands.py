"""What each command does once its options are parsed: load, run the library, render.

Data goes to stdout only from here (generate's text); everything else goes to the Rich
console, which writes to stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from charlm import checkpoint
from charlm.batching import check_enough
from charlm.config import SampleConfig, TrainConfig
from charlm.corpus import CorpusOptions, read_corpus, split_text
from charlm.errors import CheckpointError, Interrupted, UsageError
from charlm.evaluate import EvalResult, target_logprobs
from charlm.kneser_ney import KneserNey
from charlm.lock import RunLock
from charlm.mixture import MAX_KN_CHARS, kn_logprobs
from charlm.model import count_parameters
from charlm.runs import (
    apply_preset,
    check_resume_compatible,
    check_run_name,
    corpus_options,
    corpus_record,
    default_corpus,
    model_config_for,
    new_run_name,
    train_config_for,
    with_auto_sizes,
)
from charlm.runtime import auto_precision, choose_device, new_seed
from charlm.sampling import check_prefix, generate
from charlm.train import RunData, Trainer
from charlm.vocab import Vocab

DEFAULT_PREFIXES = ("分开", "不分开")
BASELINE_ORDER = 8
# Changing these mid-run would change what the saved data position or optimizer state means.
FROZEN_ON_RESUME = (
    "sampler", "batch_size", "seq_len", "val_fraction", "optimizer", "seed", "kn_order",
    "mix_fraction",
)  # fmt: skip


def _ids(vocab: Vocab, text: str) -> torch.Tensor:
    return torch.from_numpy(vocab.encode(text))  # (N,) int32: 4 bytes a character


def _default_previews(vocab: Vocab) -> list[str]:
    ok = [p for p in DEFAULT_PREFIXES if not vocab.unknown_chars(p)]
    return ok or [""]


def _notes(console, corpus) -> None:
    for note in corpus.notes:
        console.print(f"[yellow]note:[/] {note}")


def _prepare_resume(given: dict[str, Any], ckdir: Path, console, device: torch.device):
    if given["run"]:
        run_dir = ckdir / check_run_name(given["run"])
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
    stored = payload.get("corpus", {})
    copts = CorpusOptions(**stored.get("options", {}))
    if given.get("encoding"):
        copts = CorpusOptions(**{**stored.get("options", {}), "encoding": given["encoding"]})
    source = given["corpus"] or stored.get("source")
    corpus = read_corpus(source, copts)
    _notes(console, corpus)
    check_resume_compatible(payload, given, corpus.fingerprint, str(last))
    base = TrainConfig.from_dict(payload["train_config"])
    cfg = train_config_for(given, base)
    for k in FROZEN_ON_RESUME:
        if getattr(cfg, k) != getattr(base, k):
            raise CheckpointError(
                f"{last}: --{k.replace('_', '-')} {getattr(cfg, k)} differs from the run's "
                f"{getattr(base, k)}; it cannot change on --resume (start a new --run)"
            )
    for k, v in vars(cfg).items():
        if v != getattr(base, k):
            console.print(f"resume: {k} {getattr(base, k)} -> {v}")
    vocab = Vocab(payload["vocab"])
    mcfg = model_config_for(len(vocab), payload["model_config"])
    train_text, val_text = split_text(corpus.text, cfg.val_fraction)
    rec = payload["corpus"]
    return run_dir, payload, cfg, mcfg, vocab, train_text, val_text, rec


def _prepare_new(given: dict[str, Any], ckdir: Path, console, device: torch.device):
    source = given["corpus"] or str(default_corpus())
    copts = corpus_options(given)
    corpus = read_corpus(source, copts)
    _notes(console, corpus)
    if given.get("seed") is None:
        given = {**given, "seed": new_seed()}
    if given.get("val_fraction") is None:
        given = {**given, "val_fraction": TrainConfig().val_fraction}
    train_text, val_text = split_text(corpus.text, given["val_fraction"])
    given = with_auto_sizes(given, len(train_text))  # sizes follow the training text
    if given.get("precision") is None:
        given = {**given, "precision": auto_precision(device)}
    cfg = train_config_for(given)
    vocab = Vocab.build(train_text)
    mcfg = model_config_for(len(vocab), given)
    name = check_run_name(given["run"]) if given["run"] else new_run_name(ckdir)
    run_dir = ckdir / name
    if (run_dir / "last.pt").exists() or (run_dir / "best.pt").exists():
        raise UsageError(
            f"{run_dir}: this run already has checkpoints; pass --resume to continue it, "
            "or pick another --run"
        )
    rec = corpus_record(source, corpus.fingerprint, copts, cfg.val_fraction)
    return run_dir, None, cfg, mcfg, vocab, train_text, val_text, rec


def _run_data(vocab: Vocab, train_text: str, val_text: str, rec: dict, cfg: TrainConfig) -> RunData:
    """Encode the splits; with a count model, cut the tune slice off the training text."""
    if not cfg.kn_order or len(train_text) > MAX_KN_CHARS:
        return RunData(vocab, _ids(vocab, train_text), _ids(vocab, val_text), rec)
    n_tune = int(len(train_text) * cfg.mix_fraction)
    fit, tune = train_text[:-n_tune], train_text[-n_tune:]
    return RunData(vocab, _ids(vocab, fit), _ids(vocab, val_text), rec, _ids(vocab, tune))


def run_train(given: dict[str, Any], device_name: str, ckdir: Path, console, quiet: bool) -> dict:
    """Set up (or resume) a run, train it, print the summary; returns the summary dict."""
    device = choose_device(device_name)
    ckdir = Path(ckdir)
    given = apply_preset(given)
    prep = _prepare_resume if given["resume"] else _prepare_new
    run_dir, payload, cfg, mcfg, vocab, train_text, val_text, rec = prep(
        given, ckdir, console, device
    )
    data = _run_data(vocab, train_text, val_text, rec, cfg)
    nb = check_enough(len(data.train_ids), cfg.batch_size, cfg.seq_len)
    if given.get("eval_epochs") and given.get("eval_every") is None and not given["resume"]:
        cfg = replace(cfg, eval_every=given["eval_epochs"] * nb)  # the book reports every 50 epochs
    previews = given.get("preview") or _default_previews(vocab)
    previews = [check_prefix(vocab, p, skip_unknown=False) for p in previews]

    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(run_dir):
            trainer = Trainer(
                mcfg,
                cfg,
                data,
                run_dir,
                device,
                previews,
                # Previews are generated text: never let Rich read "[Chorus]" as markup.
                echo=lambda line: console.print(line, markup=False, highlight=False),
                show_progress=sys.stderr.isatty() and not quiet,
                resume=payload,
            )
            console.print(
                f"[bold]{run_dir.name}[/]: {len(data.train_ids):,} training"
                + (f" + {len(data.tune_ids):,} mixture-fit" if data.tune_ids is not None else "")
                + f" / {len(val_text):,} held-out chars, vocab {len(vocab):,}, "
                f"{mcfg.cell} {mcfg.layers}x{mcfg.hidden} "
                f"({count_parameters(trainer.model):,} params), {cfg.sampler} sampler, "
                f"device {device.type} ({cfg.precision}), seed {cfg.seed}"
            )
            summary = trainer.run()
    except BaseException:
        # A fresh run that never wrote a checkpoint leaves no folder behind.
        if created and not any((run_dir / n).exists() for n in ("best.pt", "last.pt")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    _summary_table(console, summary)
    if summary["stopped"] == "interrupted":
        console.print(f"resume with: charlm train --run {run_dir.name} --resume")
        raise Interrupted(summary["signal"])
    return summary


def _summary_table(console, s: dict) -> None:
    from rich.table import Table

    t = Table(title="training summary", show_header=False, title_justify="left")
    best = f"{s['best_val_ppl']:.3f} (step {s['best_step']})"
    rows = [
        ("stopped", s["stopped"]),
        ("steps / epochs", f"{s['steps']:,} / {s['epochs']:.2f}"),
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
    model, vocab, _ = checkpoint.restore_model(payload, str(path))
    mixture = checkpoint.restore_mixture(payload, len(vocab), str(path))
    return path, payload, model.to(device), vocab, mixture


def run_generate(
    cfg: SampleConfig,
    spec: str | None,
    prefix: str | None,
    skip_unknown: bool,
    device_name: str,
    ckdir: Path,
    json_out: bool,
    seed_given: bool,
    console,
) -> None:
    """Stream generated text to stdout (or JSON lines with json_out)."""
    device = choose_device(device_name)
    path, _, model, vocab, mixture = _load_for_use(spec, ckdir, device)
    if prefix is None:
        prefix = "分开" if not vocab.unknown_chars("分开") else ""
    prefix = check_prefix(vocab, prefix, skip_unknown)
    if not seed_given:
        console.print(f"[dim]seed {cfg.seed}[/]")
    out = sys.stdout
    if cfg.num_samples == 1 and not json_out:
        text_end = ""
        for i, pieces in enumerate(generate(model, vocab, prefix, cfg, device, mixture)):
            out.write(pieces[0])
            text_end = (text_end + pieces[0])[-1:]
            if "\n" in pieces[0] or i % 32 == 0:
                out.flush()
        if text_end != "\n":
            out.write("\n")
        out.flush()
        return
    texts = [""] * cfg.num_samples
    for pieces in generate(model, vocab, prefix, cfg, device, mixture):
        for b, p in enumerate(pieces):
            texts[b] += p
    for b, text in enumerate(texts):
        if json_out:
            rec = {
                "text": text,
                "prefix": prefix,
                "seed": cfg.seed,
                "sample": b,
                "checkpoint": str(path),
            }
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            out.write(("\n" if b else "") + text + ("" if text.endswith("\n") else "\n"))
        out.flush()


def run_evaluate(
    spec: str | None,
    corpus_src: str | None,
    which: str,
    baseline: bool,
    encoding: str | None,
    device_name: str,
    ckdir: Path,
    console,
) -> dict:
    """Score the checkpoint on a split of its own corpus, or of --corpus."""
    device = choose_device(device_name)
    path, payload, model, vocab, mixture = _load_for_use(spec, ckdir, device)
    stored = payload.get("corpus") or {}
    opts = dict(stored.get("options") or {})
    if encoding:
        opts["encoding"] = encoding
    source = corpus_src or stored.get("source")
    if not source or (source == "-" and not corpus_src):
        raise UsageError(f"{path}: was trained from stdin or records no corpus; pass --corpus")
    corpus = read_corpus(source, CorpusOptions(**opts))
    _notes(console, corpus)
    if not corpus_src and stored.get("fingerprint") and corpus.fingerprint != stored["fingerprint"]:
        console.print(
            f"[yellow]warning:[/] {source} changed since training; scores may not compare"
        )
    train_text, val_text = split_text(corpus.text, stored.get("val_fraction", 0.1))
    text = {"val": val_text, "train": train_text, "all": corpus.text}[which]
    if len(text) < 2:
        raise UsageError(
            f"--split {which} of {source} has fewer than 2 characters; try --split all"
        )
    ids = _ids(vocab, text)
    net_lp = target_logprobs(model, ids, device)
    net = EvalResult.from_logprobs(net_lp, ids[1:])
    shipped = net
    result: dict[str, Any] = {}
    if mixture is not None:
        mixed = mixture.mix(net_lp, kn_logprobs(mixture.kn, ids))
        shipped = EvalResult.from_logprobs(mixed, ids[1:])
        result["mix_weight"] = mixture.weight
    result = {**shipped.as_dict(), **result, "network": net.as_dict()}
    if baseline:
        kn = KneserNey(_ids(vocab, train_text).tolist(), len(vocab), BASELINE_ORDER)
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
    if "mix_weight" in r:
        rows.append(("network alone", r["network"]))
    if "baseline_kn" in r:
        rows.append((f"Kneser-Ney {BASELINE_ORDER}-gram baseline", r["baseline_kn"]))
    for name, m in rows:
        t.add_row(name, f"{m['perplexity']:.3f}", f"{m['bits_per_char']:.4f}", f"{m['loss']:.4f}")
    console.print(t)
