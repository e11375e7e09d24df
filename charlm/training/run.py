"""What `charlm train` does once its options are parsed: join torchrun's process group (one
process gets the identity `Dist`), prepare the run on rank 0 (the others follow its plan), hold
the run folder's lock, build the Trainer, run it, and print the header and the summary.

    TrainOptions ─► run_training ─► setup.prepare ─► Trainer.run ─► summary (dict)
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path

import torch

from charlm.data.vocab import Vocab
from charlm.errors import CharlmError, DivergedError, Interrupted, UsageError
from charlm.generation.sampling import PREVIEW_PREFIXES, check_prefix
from charlm.store.run_folder import RunFolder, check_checkpoint_dir
from charlm.system import distributed
from charlm.system.distributed import Dist
from charlm.system.runtime import choose_device, peak_memory_mb
from charlm.training.loop import Trainer
from charlm.training.options import TrainOptions, apply_preset
from charlm.training.reporting import print_header, print_summary
from charlm.training.setup import TrainSetup, follow, plan_of, prepare
from charlm.training.tensorboard import check_available as check_tensorboard

LOW_NETWORK_SHARE = 0.05  # below this mixture weight the network adds next to nothing
FEW_CHARS = 20_000  # a network alone on fewer training characters than this memorises them


def _default_previews(vocab: Vocab) -> list[str]:
    ok = [p for p in PREVIEW_PREFIXES if not vocab.unknown_chars(p)]
    return ok or [""]


def plan_only(opts: TrainOptions, device_name: str, ckdir: Path, console) -> dict:
    """`train --dry-run`: the run prepared as it would be (the corpus read, the model sized to
    the budget, the base chosen), its plan printed on stderr and returned; nothing trains and
    no run folder is made."""
    from charlm.training.reporting import plan_record, print_plan

    device = choose_device(device_name)
    check_checkpoint_dir(ckdir)
    opts = apply_preset(opts)
    echo = lambda line: console.print(line, markup=False, highlight=False)  # noqa: E731
    with console.status("reading the corpus and sizing the model..."):
        setup = prepare(opts, Path(ckdir), device, echo)
    plan = plan_record(setup, device)
    print_plan(console, plan)
    return plan


def run_training(
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
    check_checkpoint_dir(ckdir)  # before the corpus is read
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
                    # --quiet shows no evaluation lines: no previews to sample either
                    previews=[] if quiet else previews or _default_previews(data.vocab),
                    echo=echo if dist.main else lambda _: None,
                    show_progress=dist.main and sys.stderr.isatty() and not quiet,
                    resume=setup.resume,
                    init_state=setup.init_state,
                    base=setup.base,
                    started_at=started_at,
                    dist=dist,
                    on_record=on_record,
                )  # fmt: skip
            if dist.main:
                print_header(console, setup, trainer, device, dist)
                _lexicon_note(console, trainer)
            summary = trainer.run()
            if summary["stopped"] != "interrupted":
                with console.status("fitting dynamic evaluation for --adapt..."):
                    trainer.fit_adaptation()
    except BaseException:
        if created:
            folder.remove_if_unused()
        raise
    if not dist.main:
        if summary["stopped"] == "interrupted":
            raise Interrupted(summary["signal"])
        return None
    _close(console, summary, trainer, folder.path, ckdir, dist)
    return summary


def _lexicon_note(console, trainer: Trainer) -> None:
    """What the count model leans on (scoring/lexicon.py), where a lexicon was tried."""
    fit = trainer.mix_fit
    if fit is None or fit.lexicon_name is None:
        return
    name = fit.lexicon_name
    console.print(
        f"note: the count model leans on the {name} lexicon (jieba's words) with a share of "
        f"{fit.lexicon_weight:.2f}, fitted on the tune slice (--lexicon none: the corpus's "
        "counts alone)"
        if fit.lexicon_weight > 0
        else f"note: the {name} lexicon did not help the tune slice; the count model is the "
        "corpus's alone",
        markup=False,
    )


def _close(console, summary: dict, trainer: Trainer, run_dir: Path, ckdir: Path, dist: Dist):
    """Rank 0's last words: the summary, then how to resume (interrupted: raises), what the
    network added, and what to do next, in commands a user can paste."""
    summary["peak_memory_mb"] = peak_memory_mb()  # after the fits: the whole command's peak
    print_summary(console, summary)
    if summary["stopped"] == "interrupted":
        launch = f"torchrun --nproc-per-node {dist.world} -m charlm --" if dist.active else "charlm"
        console.print(f"resume with: {launch} train --run {run_dir.name} --resume")
        raise Interrupted(summary["signal"])
    if trainer.mix_fit is not None and trainer.prog.mix_weight < LOW_NETWORK_SHARE:
        console.print(
            f"note: the network's share in the mixture is {trainer.prog.mix_weight:.2f}: on this "
            "text the count model does the work, so generated lines mostly recombine the "
            "corpus's own phrases (see generate --report-novelty); more text helps"
            + (
                ""
                if trainer.base
                else ", and so does a network that already knows the "
                "language: --init-from zh for Chinese text"
            ),
            markup=False,
        )
    n_train = len(trainer.data.train_ids)
    if trainer.mix_fit is None and n_train < FEW_CHARS and not trainer.base:
        console.print(
            f"note: {n_train:,} training characters are few for a network of its own: it "
            "learns them by heart (see generate --report-novelty); more text helps, and for "
            "Chinese text so does --init-from zh (a network that already knows the language)",
            markup=False,
        )
    # the folder flag only when it is not the default
    where = "" if ckdir == Path("checkpoints") else f" --checkpoint-dir {ckdir}"
    console.print(
        f"next: charlm generate --checkpoint {run_dir.name}{where} --prefix ...   "
        f"(train more: charlm train --run {run_dir.name}{where} --resume --epochs N)",
        markup=False,
    )


@contextlib.contextmanager
def _event_log(opts: TrainOptions, setup: TrainSetup, dist: Dist):
    """With --tensorboard (on rank 0): a writer's `write`, closed on the way out; else None."""
    if not (opts.tensorboard and dist.main):
        yield None
        return
    from charlm.training.tensorboard import EventLog  # the optional package, only when asked

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
