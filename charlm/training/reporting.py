"""What training shows and logs: running sums between evaluations, the metrics record of an
evaluation, its one-line report with previews, the progress bar, and the end-of-run summary.

`Reporter` is the console side of a run: the bar on a terminal, else plain lines on stderr."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tqdm import tqdm

from charlm.config import SampleConfig
from charlm.generation.sampling import generate
from charlm.models.charrnn import count_parameters
from charlm.scoring.evaluate import perplexity
from charlm.scoring.mixture import Scores
from charlm.store.run_folder import PPL_LABELS, RunFolder

PREVIEW_CHARS = 40


@dataclass
class Window:
    """Running sums between two evaluations, and over the current epoch (as the textbook
    reports training perplexity)."""

    loss_sum: float = 0.0
    steps: int = 0
    chars: int = 0
    seconds: float = 0.0
    grad_norm: float = 0.0
    epoch_loss_sum: float = 0.0
    epoch_steps: int = 0

    def add(self, r: Any, chars: int, seconds: float, new_epoch: bool) -> None:
        if new_epoch:
            self.epoch_loss_sum, self.epoch_steps = 0.0, 0
        self.loss_sum += r.loss
        self.epoch_loss_sum += r.loss
        self.steps += 1
        self.epoch_steps += 1
        self.chars += chars
        self.seconds += seconds
        self.grad_norm = r.grad_norm

    def reset(self) -> None:
        self.loss_sum, self.steps, self.chars, self.seconds = 0.0, 0, 0, 0.0

    def mean_loss(self) -> float:
        """The mean training loss since the last evaluation (nan before any step)."""
        return self.loss_sum / self.steps if self.steps else math.nan


def eval_record(prog: Any, w: Window, scores: Scores | None, train_loss: float, best: bool,
                lr: float, batches_per_epoch: int) -> dict[str, Any]:  # fmt: skip
    """One line of metrics.jsonl: where training is and how it scores."""
    return {
        "step": prog.step,
        "epoch": prog.epoch + prog.batch_in_epoch / max(1, batches_per_epoch),
        "elapsed_s": round(prog.elapsed_s, 3),
        "train_loss": train_loss,
        "train_ppl": perplexity(train_loss),
        "epoch_train_ppl": (
            perplexity(w.epoch_loss_sum / w.epoch_steps) if w.epoch_steps else None
        ),
        "val_loss": scores.shipped.loss if scores else None,
        "val_ppl": scores.shipped.perplexity if scores else None,
        "val_ppl_net": scores.network.perplexity if scores else None,
        "mix_weight": scores.weight if scores else None,
        "lr": lr,
        "grad_norm": w.grad_norm,
        "chars_per_s": w.chars / w.seconds if w.seconds > 0 else 0.0,
        "best": best,
        "member": prog.member,  # which network was training (members.py)
    }


def preview_lines(model: Any, vocab: Any, prefixes: list[str], seed: int, device: Any,
                  mixture: Any) -> list[str]:  # fmt: skip
    """A short sample from each prefix, on one line each (line breaks shown as ⏎)."""
    out = []
    for i, prefix in enumerate(prefixes):
        cfg = SampleConfig(length=PREVIEW_CHARS, temperature=0.8, seed=seed + i)
        pieces = generate(model, vocab, prefix, cfg, device, mixture)
        out.append("".join(p[0] for p in pieces).replace("\n", " ⏎ "))
    return out


def eval_line(rec: dict[str, Any]) -> str:
    """The evaluation as one line for stderr. Like is shown beside like: the training
    perplexity is the network's, so with a count model the network's held-out figure stands
    next to it and the mixture's (what ships, what `*` marks as best) comes apart."""
    val = f"{rec['val_ppl']:.2f}" if rec["val_ppl"] is not None else "n/a"
    train = f"{rec['train_ppl']:.2f}"
    if rec["mix_weight"] is not None:
        ppl = (f"net ppl: train {train} held-out {rec['val_ppl_net']:.2f}  "
               f"mixture (w {rec['mix_weight']:.2f}): held-out {val}")  # fmt: skip
    elif rec["val_ppl"] is None:  # the textbook's per-epoch training perplexity
        ppl = f"train ppl {train} (this epoch {rec['epoch_train_ppl']:.2f})"
    else:
        ppl = f"train ppl {train}  held-out ppl {val}"
    return (
        f"step {rec['step']:>6}  epoch {rec['epoch']:.2f}  {ppl}{' *' if rec['best'] else ''}"
        f"  lr {rec['lr']:.2e}  {rec['chars_per_s']:,.0f} chars/s"
    )


def progress_bar(total: int, initial: int, show: bool, unit: str = "step") -> tqdm:
    """A tqdm bar on stderr, only when it is a terminal (`show`). In seconds of a budget it
    shows no rate (seconds per second says nothing)."""
    fmt = "{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]"
    return tqdm(total=total, initial=initial, file=sys.stderr, unit=unit, disable=not show,
                dynamic_ncols=True, leave=False,
                bar_format=fmt if unit == "s" else None)  # fmt: skip


def show_step(bar: tqdm, w: Window, show: bool, step: int, deadline: float | None) -> None:
    """Advance the bar: by one step, or with a budget to the seconds spent of it (so its total
    and ETA are the budget's, not those of an epoch cap the budget will never reach)."""
    if deadline is None:
        bar.update(1)
    else:
        bar.n = round(min(bar.total, max(0.0, bar.total - (deadline - time.monotonic()))))
    if show and w.steps:
        loss = w.loss_sum / w.steps
        cps = w.chars / max(w.seconds, 1e-9)
        # a dict keeps this order (keyword arguments would be sorted by name)
        bar.set_postfix({"step": f"{step:,}", "loss": f"{loss:.3f}",
                         "train ppl (net)": f"{perplexity(min(loss, 50)):.1f}",
                         "chars/s": f"{cps:,.0f}"})  # fmt: skip


LONG_RUN_S = 3600.0  # without --max-time, a run expected to take longer than this says so
ESTIMATE_AFTER_STEPS = 20  # steps timed before that estimate (the first ones warm up)


def duration_note(step: int, step_limit: int, w: Window) -> str | None:
    """Without a budget: how long the step limit will take at the speed so far, and how to
    bound it, when that is more than an hour (said once, after the first steps)."""
    if step != ESTIMATE_AFTER_STEPS or not w.steps or step_limit <= step:
        return None
    left = (step_limit - step) * w.seconds / w.steps
    if left < LONG_RUN_S:
        return None
    return (
        f"note: at this speed the remaining {step_limit - step:,} steps take about "
        f"{left / 3600:.1f} h (early stopping may end it sooner); bound it with --max-time "
        "SECONDS or --epochs N"
    )


def run_summary(prog: Any, reason: str, last: dict[str, Any] | None, folder: RunFolder,
                batches_per_epoch: int, has_val: bool) -> dict[str, Any]:  # fmt: skip
    """What `charlm train` reports at the end (and prints as JSON with --json)."""
    return {
        "run_dir": str(folder.path),
        "stopped": reason,
        "steps": prog.step,
        "epochs": prog.epoch + prog.batch_in_epoch / max(1, batches_per_epoch),
        "elapsed_s": prog.elapsed_s,
        # None before any evaluation (inf is not JSON)
        "best_val_ppl": prog.best_val_ppl if math.isfinite(prog.best_val_ppl) else None,
        "best_is_train_ppl": not has_val,  # no held-out text to score
        "best_step": prog.best_step,
        "last_val_ppl": last["val_ppl"] if last else None,
        "last_train_ppl": last["train_ppl"] if last else None,
        "chars_per_s": last["chars_per_s"] if last else None,
        "skipped_steps": prog.skipped_steps,
        "best": str(folder.best) if folder.best.is_file() else None,  # none before a score
        "last": str(folder.last),
        "seed": prog.seed,
        "networks": prog.best_networks,  # averaged in best.pt (members.py)
    }


class Reporter:
    """The console side of one run: the progress bar (on a terminal), each evaluation's line
    and previews, and notes; written above the bar so it is not torn."""

    def __init__(
        self,
        echo: Callable[[str], None],
        show_progress: bool,
        previews: list[str],
        seed: int,
        device: Any,
    ) -> None:
        self.echo, self.show_progress, self.previews = echo, show_progress, previews
        self.seed, self.device = seed, device
        self.bar: tqdm | None = None
        self.deadline: float | None = None  # time.monotonic() of --max-time, when given

    @contextlib.contextmanager
    def progress(
        self, total: int, initial: int, deadline: float | None = None, budget_s: float = 0.0
    ) -> Iterator[tqdm]:
        """Steps out of the step limit; with a budget, seconds out of it."""
        self.deadline = deadline
        if deadline is not None:
            total = round(budget_s)
            initial = round(min(total, max(0.0, total - (deadline - time.monotonic()))))
        unit = "step" if deadline is None else "s"
        with progress_bar(total, initial, self.show_progress, unit) as bar:
            self.bar = bar
            try:
                yield bar
            finally:
                self.bar = None

    def step(self, window: Window, step: int = 0, step_limit: int = 0) -> None:
        if self.bar is not None:
            show_step(self.bar, window, self.show_progress, step, self.deadline)
        note = None if self.deadline is not None else duration_note(step, step_limit, window)
        if note:
            self.write(note)

    def write(self, line: str) -> None:
        (self.bar.write if self.show_progress and self.bar is not None else self.echo)(line)

    def evaluation(self, rec: dict[str, Any], model: Any, vocab: Any, mixture: Any) -> None:
        """The evaluation's line, then a short sample from each preview prefix."""
        self.write(eval_line(rec))
        for line in preview_lines(model, vocab, self.previews, self.seed, self.device, mixture):
            self.write(f"    {line}")


def print_header(console: Any, setup: Any, trainer: Any, device: Any, dist: Any) -> None:
    """The run's header line on the console: data, vocabulary, model, sampler, device, seed."""
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


def plan_record(setup: Any, device: Any) -> dict[str, Any]:
    """What `train --dry-run` shows: the run as prepared, and the notes that say why."""
    from charlm.models.charrnn import CharRNN

    data, mcfg, cfg = setup.data, setup.model_config, setup.train_config
    return {
        "run": str(setup.run_dir), "resume": setup.resume is not None,
        "corpus": (data.corpus or {}).get("source"), "train_chars": len(data.train_ids),
        "heldout_chars": len(data.val_ids),
        "tune_chars": len(data.tune_ids) if data.tune_ids is not None else 0,
        "vocab": len(data.vocab), "model": asdict(mcfg),
        "params": count_parameters(CharRNN(mcfg)),
        "base": (setup.base or {}).get("name"),
        "train": {k: getattr(cfg, k) for k in (
            "max_time", "max_steps", "epochs", "members", "batch_size", "seq_len", "sampler",
            "optimizer", "lr", "decay", "weight_decay", "warmup", "kn_order", "lexicon",
            "precision", "seed")},
        "device": device.type, "why": list(setup.notes),
    }  # fmt: skip


def print_plan(console: Any, plan: dict[str, Any]) -> None:
    """The plan as a table on the console, then why (the sizing and base rules' notes)."""
    from rich.table import Table

    m, t = plan["model"], plan["train"]
    two = f", two-level softmax at {m['cutoffs'][0]}" if m["cutoffs"] else ""
    budget = [f"--max-time {t['max_time']:g} s" if t["max_time"] else "",
              f"--max-steps {t['max_steps']}" if t["max_steps"] else "",
              "" if t["max_time"] else f"up to {t['epochs']} epochs"]  # fmt: skip
    rows = [
        ("run", plan["run"] + (" (resumed)" if plan["resume"] else "")),
        ("corpus", f"{plan['corpus']}: {plan['train_chars']:,} training + "
                   f"{plan['tune_chars']:,} mixture-fit / {plan['heldout_chars']:,} held-out "
                   f"chars, vocab {plan['vocab']:,}"),
        ("model", f"{m['cell']} {m['layers']}x{m['hidden']}, embed {m['embed']}"
                  f"{', tied' if m['tie'] else ''}{two} ({plan['params']:,} params)"),
        ("starts from", plan["base"] or "scratch"),
        ("regularisation", f"dropout {m['dropout']:g}, weight decay {t['weight_decay']:g}"),
        ("budget", ", ".join(b for b in budget if b)),
        ("networks", f"up to {t['members']}, averaged" if t["members"] > 1 else "1"),
        ("optimiser", f"{t['optimizer']}, lr {t['lr']:g}, decay over the last "
                      f"{t['decay']:.0%}, warm-up {t['warmup']} steps"),
        ("batches", f"{t['batch_size']} x {t['seq_len']} chars, {t['sampler']} sampler"),
        ("count model", f"order {t['kn_order']}, lexicon {t['lexicon']}" if t["kn_order"]
                        else "none"),
        ("device", f"{plan['device']} ({t['precision']}), seed {t['seed']}"),
    ]  # fmt: skip
    table = Table(title="plan (--dry-run: nothing trained)", show_header=False,
                  title_justify="left")  # fmt: skip
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)
    for note in plan["why"]:
        console.print(f"[yellow]why:[/] {note}", highlight=False)


def print_summary(console: Any, s: dict) -> None:
    """The end-of-run summary as a table on the console."""
    from rich.table import Table

    t = Table(title="training summary", show_header=False, title_justify="left")
    best = "n/a (no evaluation yet)"
    if s["best_val_ppl"] is not None:
        best = f"{s['best_val_ppl']:.3f} (step {s['best_step']})"
    rows = [
        ("stopped", s["stopped"]),
        ("steps / epochs", f"{s['steps']:,} / {s['epochs']:.2f}"),
        ("networks", f"{s['networks']} (averaged)" if s["networks"] > 1 else "1"),
        (
            f"best {PPL_LABELS['train_ppl']} ppl (no held-out)"
            if s.get("best_is_train_ppl")
            else f"best {PPL_LABELS['val_ppl']} ppl",
            best,
        ),
        ("last train ppl (network)", f"{s['last_train_ppl']:.3f}" if s["last_train_ppl"] else "-"),
        ("time", f"{s['elapsed_s']:.1f} s"),
        ("chars/s", f"{s['chars_per_s']:,.0f}" if s["chars_per_s"] else "n/a"),
        ("peak memory", f"{s['peak_memory_mb']:,.0f} MB" if s.get("peak_memory_mb") else "n/a"),
        ("best checkpoint", s["best"] or "none yet: stopped before the first evaluation"),
        ("last checkpoint", s["last"]),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
