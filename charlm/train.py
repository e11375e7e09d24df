"""The training loop: batches -> loss -> clipped step, with evaluation, previews, checkpoints,
exact resume and clean interruption.

All mutable progress lives in one `Progress` object that goes into `last.pt`, so that
N steps + resume + N steps equals 2N steps straight, bitwise on CPU.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from charlm import checkpoint
from charlm.batching import batches_per_epoch, make_batches
from charlm.config import ModelConfig, SampleConfig, TrainConfig
from charlm.errors import DivergedError, ResourceError
from charlm.evaluate import EvalResult, target_logprobs
from charlm.kneser_ney import KneserNey
from charlm.mixture import Mixture, fit_weight, kn_logprobs, mix_logprobs, to_payload
from charlm.model import CharRNN, State, detach_state, state_from_tensors, state_tensors
from charlm.runtime import make_generator
from charlm.sampling import generate
from charlm.vocab import UNK_ID, Vocab

MAX_NONFINITE_STREAK = 8  # consecutive skipped steps before training is called diverged
PREVIEW_CHARS = 40


@dataclass(frozen=True)
class RunData:
    """The encoded corpus a run trains on, and what identifies it."""

    vocab: Vocab
    train_ids: torch.Tensor  # (N_train,) int32
    val_ids: torch.Tensor  # (N_val,) int32; may be empty
    corpus: dict[str, Any]  # source, fingerprint, options, val_fraction: stored in checkpoints
    tune_ids: torch.Tensor | None = None  # (N_tune,) end of the training text, kept from the
    # network, to fit the mixture weight with the count model; None = no mixture


@dataclass
class Progress:
    """Everything about where training is, as primitives and tensors (goes into last.pt)."""

    seed: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    best_val_ppl: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    lr_scale: float = 1.0
    nonfinite_streak: int = 0
    skipped_steps: int = 0
    mix_weight: float = 1.0  # the network's share in the mixture with the count model
    rng: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Window:
    """Running sums between two evaluations."""

    loss_sum: float = 0.0
    steps: int = 0
    chars: int = 0
    seconds: float = 0.0
    grad_norm: float = 0.0
    # the current epoch's running mean, as the textbook reports it (kept across evaluations)
    epoch_loss_sum: float = 0.0
    epoch_steps: int = 0

    def reset(self) -> None:
        self.loss_sum, self.steps, self.chars, self.seconds = 0.0, 0, 0, 0.0


class _SignalGuard:
    """First SIGINT/SIGTERM: remember it, so the loop saves and stops at a step boundary.
    Second one: leave at once (an atomic save in progress cannot be damaged by that)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            os._exit(143 if signum == signal.SIGTERM else 130)
        self.signum = signum

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases: it only shifts them toward zero without regularising.
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        # Adam's weight_decay is L2 in the gradient; keep the user's value as given.
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(cfg: TrainConfig, prog: Progress) -> float:
    """Linear warm-up over cfg.warmup steps, then the base rate times the plateau scale."""
    warm = min(1.0, (prog.step + 1) / cfg.warmup) if cfg.warmup else 1.0
    return cfg.lr * prog.lr_scale * warm


def _rng_snapshot(batch_gen_epoch_start: torch.Tensor, noise_gen: torch.Generator) -> dict:
    snap = {
        "torch": torch.get_rng_state(),
        "batch_epoch_start": batch_gen_epoch_start,
        "noise": noise_gen.get_state(),
    }
    if torch.cuda.is_available():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def _is_oom(e: BaseException) -> bool:
    msg = str(e).lower()
    return "out of memory" in msg or "can't allocate memory" in msg


class Trainer:
    """Owns the model, optimizer and progress of one run folder."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        data: RunData,
        run_dir: Path,
        device: torch.device,
        previews: list[str],
        echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        show_progress: bool = False,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.model_cfg, self.cfg, self.data = model_cfg, cfg, data
        self.run_dir, self.device = Path(run_dir), device
        self.previews, self.echo, self.show_progress = previews, echo, show_progress
        self.nb = batches_per_epoch(len(data.train_ids), cfg.batch_size, cfg.seq_len)
        self.metrics_path = self.run_dir / "metrics.jsonl"

        if resume is None:
            self.prog = Progress(seed=cfg.seed)
            torch.manual_seed(cfg.seed)  # weights, then dropout masks, come from this stream
            self.model = CharRNN(model_cfg).to(device)
            self.opt = make_optimizer(self.model, cfg)
            self.batch_gen = make_generator(cfg.seed + 1)
            self.noise_gen = make_generator(cfg.seed + 2)
            self.epoch_start_state = self.batch_gen.get_state()
            self.carry: State | None = None
            self.torch_rng = torch.get_rng_state()
        else:
            self._restore(resume)
        self.rare = self._rare_mask()
        self._setup_mixture()

    def _setup_mixture(self) -> None:
        """Count models: one without the tune slice (to fit the weight on it honestly), one
        with the whole training text (the one that ships)."""
        self.kn_ids: torch.Tensor | None = None
        self.mixture: Mixture | None = None
        d = self.data
        if d.tune_ids is None or not self.cfg.kn_order:
            return
        v, order = len(d.vocab), self.cfg.kn_order
        self.kn_ids = torch.cat([d.train_ids, d.tune_ids])
        kn_fit = KneserNey(d.train_ids.tolist(), v, order)
        kn_full = KneserNey(self.kn_ids.tolist(), v, order)
        self.tune_kn = kn_logprobs(kn_fit, d.tune_ids)
        self.val_kn = kn_logprobs(kn_full, d.val_ids) if len(d.val_ids) > 1 else None
        self.mixture = Mixture(kn_full, self.prog.mix_weight)

    # ---- state in and out -------------------------------------------------------------------

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model, _, _ = checkpoint.restore_model(payload, str(self.run_dir / "last.pt"))
        self.model.to(self.device)
        self.opt = make_optimizer(self.model, self.cfg)
        self.opt.load_state_dict(payload["optimizer_state"])
        self.prog = Progress(**payload["progress"])
        rng = self.prog.rng
        self.torch_rng = rng["torch"]
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.batch_gen, self.noise_gen = torch.Generator(), torch.Generator()
        self.noise_gen.set_state(rng["noise"])
        self.epoch_start_state = rng["batch_epoch_start"]
        carry = [t.to(self.device) for t in payload.get("carry", [])]
        self.carry = state_from_tensors(carry, self.model_cfg.cell)
        # Metrics written after this checkpoint belong to a future that did not happen.
        self._truncate_metrics(self.prog.step)

    def _truncate_metrics(self, step: int) -> None:
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        keep = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
        if len(keep) != len(lines):
            tmp = self.metrics_path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")
            os.replace(tmp, self.metrics_path)

    def _payload(self, with_training_state: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "kn": to_payload(self.kn_ids, self.cfg.kn_order, self.prog.mix_weight)
            if self.kn_ids is not None
            else None,
            "train_config": asdict(self.cfg),
            "corpus": self.data.corpus,
            "metrics": {
                "step": self.prog.step,
                "epoch": self.prog.epoch,
                "best_val_ppl": self.prog.best_val_ppl,
                "best_step": self.prog.best_step,
            },
        }
        if with_training_state:
            self.prog.rng = _rng_snapshot(self.epoch_start_state, self.noise_gen)
            extra["progress"] = asdict(self.prog)
            extra["optimizer_state"] = self.opt.state_dict()
            extra["carry"] = [t.detach().cpu() for t in state_tensors(self.carry)]
        return checkpoint.build_payload(self.model, self.model_cfg, self.data.vocab, extra)

    def save_last(self) -> Path:
        path = self.run_dir / "last.pt"
        checkpoint.save(self._payload(with_training_state=True), path)
        return path

    def _save_best(self) -> Path:
        path = self.run_dir / "best.pt"
        # best.pt is for generate/evaluate: weights, vocab and configs, no optimizer state.
        checkpoint.save(self._payload(with_training_state=False), path)
        return path

    # ---- pieces of a step -------------------------------------------------------------------

    def _rare_mask(self) -> torch.Tensor:
        """(V,) bool: characters seen once in training; they stand in for unseen ones."""
        counts = torch.bincount(self.data.train_ids.long(), minlength=len(self.data.vocab))
        return counts == 1

    def _noise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Show once-seen characters as <unk> with probability unk_prob, so that <unk> gets an
        honest, learned probability for characters the model will meet only at test time."""
        if self.cfg.unk_prob == 0:
            return x, y
        u = torch.rand(x.shape, generator=self.noise_gen)  # (B, T) drawn on CPU: same on any device
        v = torch.rand(y.shape, generator=self.noise_gen)
        x = torch.where(self.rare[x] & (u < self.cfg.unk_prob), UNK_ID, x)
        y = torch.where(self.rare[y] & (v < self.cfg.unk_prob), UNK_ID, y)
        return x, y

    def _step(self, x: torch.Tensor, y: torch.Tensor, window: _Window) -> None:
        x, y = self._noise(x, y)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # Random windows are unrelated, so each starts from zeros; consecutive ones carry on.
        state = None if self.cfg.sampler == "random" else detach_state(self.carry)
        self.model.train()
        lr = lr_at(self.cfg, self.prog)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # bf16 autocast: matmuls in bfloat16, the loss and the weights stay float32.
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            logits, state = self.model(x, state)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in self.model.parameters() if p.grad is not None])
            )
        loss_v, norm_v = loss.item(), norm.item()
        self.prog.step += 1
        self.prog.batch_in_epoch += 1
        if not (math.isfinite(loss_v) and math.isfinite(norm_v)):
            # Never let a non-finite value reach the weights: skip, and count the streak.
            self.opt.zero_grad(set_to_none=True)
            self.prog.nonfinite_streak += 1
            self.prog.skipped_steps += 1
            self.carry = None
            if self.prog.nonfinite_streak >= MAX_NONFINITE_STREAK:
                raise DivergedError(
                    f"training diverged: {MAX_NONFINITE_STREAK} steps in a row had a non-finite "
                    f"loss or gradient (step {self.prog.step}); lower --lr (now {self.cfg.lr:g}) "
                    f"or set --clip (now {self.cfg.clip:g}); {self.run_dir}/best.pt is untouched"
                )
            return
        self.opt.step()
        self.prog.nonfinite_streak = 0
        if self.cfg.sampler == "consecutive":
            self.carry = detach_state(state)
        if self.prog.batch_in_epoch == 1:
            window.epoch_loss_sum, window.epoch_steps = 0.0, 0
        window.epoch_loss_sum += loss_v
        window.epoch_steps += 1
        window.loss_sum += loss_v
        window.steps += 1
        window.chars += x.numel()
        window.grad_norm = norm_v

    # ---- evaluation and previews ------------------------------------------------------------

    def _evaluate(self, window: _Window, scheduled: bool) -> dict[str, Any]:
        val, net = self._val_scores()
        train_loss = window.loss_sum / window.steps if window.steps else math.nan
        rec = {
            "step": self.prog.step,
            "epoch": self.prog.epoch + self.prog.batch_in_epoch / max(1, self.nb),
            "elapsed_s": round(self.prog.elapsed_s, 3),
            "train_loss": train_loss,
            "train_ppl": math.exp(train_loss) if train_loss < 700 else math.inf,
            "epoch_train_ppl": _ppl(window.epoch_loss_sum / window.epoch_steps)
            if window.epoch_steps
            else None,
            "val_loss": val.loss if val else None,
            "val_ppl": val.perplexity if val else None,
            "val_ppl_net": net.perplexity if net else None,
            "mix_weight": self.prog.mix_weight if self.mixture else None,
            "lr": lr_at(self.cfg, self.prog),
            "grad_norm": window.grad_norm,
            "chars_per_s": window.chars / window.seconds if window.seconds > 0 else 0.0,
        }
        # Without held-out text, "best" falls back to training perplexity.
        score = rec["val_ppl"] if val else rec["train_ppl"]
        finite = math.isfinite(score) and all(
            bool(torch.isfinite(p).all()) for p in self.model.parameters()
        )
        improved = finite and score < self.prog.best_val_ppl
        if improved:
            self.prog.best_val_ppl, self.prog.best_step = score, self.prog.step
            self._save_best()
        # The LR plateau and early stopping only look at scheduled evaluations, so the
        # dynamics do not depend on where a run happened to be stopped and resumed.
        if scheduled:
            self.prog.bad_evals = 0 if improved else self.prog.bad_evals + 1
            if self.prog.bad_evals and self.prog.bad_evals % self.cfg.lr_patience == 0:
                self.prog.lr_scale *= 0.5
        rec["best"] = improved
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return rec

    def _val_scores(self) -> tuple[EvalResult | None, EvalResult | None]:
        """Held-out scores of what ships (the mixture, when there is one) and of the network."""
        ids = self.data.val_ids
        if len(ids) < 2:
            return None, None
        net_lp = target_logprobs(self.model, ids, self.device)
        net = EvalResult.from_logprobs(net_lp, ids[1:])
        if self.mixture is None:
            return net, net
        tune_lp = target_logprobs(self.model, self.data.tune_ids, self.device)
        self.prog.mix_weight = fit_weight(tune_lp, self.tune_kn)
        self.mixture = Mixture(self.mixture.kn, self.prog.mix_weight)
        mixed = EvalResult.from_logprobs(
            mix_logprobs(net_lp, self.val_kn, self.prog.mix_weight), ids[1:]
        )
        return mixed, net

    def preview_lines(self) -> list[str]:
        out = []
        for i, prefix in enumerate(self.previews):
            cfg = SampleConfig(length=PREVIEW_CHARS, temperature=0.8, seed=self.cfg.seed + i)
            text = "".join(
                p[0]
                for p in generate(
                    self.model, self.data.vocab, prefix, cfg, self.device, self.mixture
                )
            )
            out.append(text.replace("\n", " ⏎ "))
        return out

    # ---- the loop ---------------------------------------------------------------------------

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches from the current position to the end of training, epoch by epoch."""
        while self.prog.epoch < self.cfg.epochs:
            self.batch_gen.set_state(self.epoch_start_state)
            if self.prog.batch_in_epoch == 0 and self.cfg.sampler == "consecutive":
                self.carry = None  # a new epoch starts new streams
            yield from make_batches(
                self.cfg.sampler,
                self.data.train_ids,
                self.cfg.batch_size,
                self.cfg.seq_len,
                self.batch_gen,
                start=self.prog.batch_in_epoch,
            )
            self.prog.epoch += 1
            self.prog.batch_in_epoch = 0
            self.epoch_start_state = self.batch_gen.get_state()

    def total_steps(self) -> int:
        total = self.cfg.epochs * self.nb
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    def run(self) -> dict[str, Any]:
        """Train until epochs, --max-steps, --max-time, early stopping or a signal."""
        cfg, prog = self.cfg, self.prog
        window = _Window()
        # Dropout draws on torch's global generator: make it this run's, whatever ran before.
        torch.set_rng_state(self.torch_rng)
        started = time.perf_counter()
        elapsed0 = prog.elapsed_s
        reason, last_rec = "finished", None
        bar = tqdm(
            total=self.total_steps(),
            initial=prog.step,
            file=sys.stderr,
            unit="step",
            disable=not self.show_progress,
            dynamic_ncols=True,
            leave=False,
        )
        with _SignalGuard() as guard:
            try:
                batches = self._batches()
                while True:
                    if cfg.max_steps and prog.step >= cfg.max_steps:
                        reason = "max-steps"
                        break
                    t0 = time.perf_counter()
                    try:
                        x, y = next(batches)
                    except StopIteration:
                        break
                    self._step(x, y, window)
                    window.seconds += time.perf_counter() - t0
                    prog.elapsed_s = elapsed0 + time.perf_counter() - started
                    bar.update(1)
                    if window.steps:
                        loss = window.loss_sum / window.steps
                        bar.set_postfix(
                            loss=f"{loss:.3f}",
                            ppl=f"{math.exp(min(loss, 50)):.1f}",
                            cps=f"{window.chars / max(window.seconds, 1e-9):,.0f}",
                        )
                    if guard.signum is not None:
                        reason = "interrupted"
                        break
                    if prog.step % cfg.eval_every == 0:
                        last_rec = self._evaluate(window, scheduled=True)
                        self._report(last_rec, bar)
                        window.reset()
                        self.save_last()
                        if cfg.early_stop and prog.bad_evals >= cfg.early_stop:
                            reason = "early-stop"
                            break
                    if cfg.max_time and time.perf_counter() - started >= cfg.max_time:
                        reason = "max-time"
                        break
                if reason != "interrupted" and (last_rec is None or last_rec["step"] != prog.step):
                    last_rec = self._evaluate(window, scheduled=False)
                    self._report(last_rec, bar)
                self.save_last()
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
                # CPU allocation failures arrive as plain RuntimeErrors from the allocator.
                if not isinstance(e, (torch.OutOfMemoryError, MemoryError)) and not _is_oom(e):
                    raise
                raise ResourceError(
                    f"out of memory with --batch-size {cfg.batch_size} and --seq-len "
                    f"{cfg.seq_len}; lower them or --hidden"
                ) from None
            finally:
                bar.close()
            summary = self.summary(reason, last_rec)
            if reason == "interrupted":
                summary["signal"] = guard.signum
        return summary

    def _report(self, rec: dict[str, Any], bar: tqdm) -> None:
        val = f"{rec['val_ppl']:.2f}" if rec["val_ppl"] is not None else "n/a"
        if rec.get("mix_weight") is not None:
            val += f" (net {rec['val_ppl_net']:.2f}, w {rec['mix_weight']:.2f})"
        mark = " *" if rec["best"] else ""
        write = bar.write if self.show_progress else self.echo
        write(
            f"step {rec['step']:>6}  epoch {rec['epoch']:.2f}  train ppl {rec['train_ppl']:.2f}"
            + (f" (this epoch {rec['epoch_train_ppl']:.2f})" if rec["val_ppl"] is None else "")
            + "  "
            + f"val ppl {val}{mark}  lr {rec['lr']:.2e}  {rec['chars_per_s']:,.0f} chars/s"
        )
        for line in self.preview_lines():
            write(f"    {line}")

    def summary(self, reason: str, last: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "stopped": reason,
            "steps": self.prog.step,
            "epochs": self.prog.epoch + self.prog.batch_in_epoch / max(1, self.nb),
            "elapsed_s": self.prog.elapsed_s,
            "best_val_ppl": self.prog.best_val_ppl,
            "best_is_train_ppl": len(self.data.val_ids) < 2,  # no held-out text to score
            "best_step": self.prog.best_step,
            "last_val_ppl": last["val_ppl"] if last else None,
            "last_train_ppl": last["train_ppl"] if last else None,
            "chars_per_s": last["chars_per_s"] if last else None,
            "skipped_steps": self.prog.skipped_steps,
            "best": str(self.run_dir / "best.pt"),
            "last": str(self.run_dir / "last.pt"),
            "seed": self.prog.seed,
        }
