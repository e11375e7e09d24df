"""The training loop: batches -> loss -> clipped step, with evaluation, previews, checkpoints,
exact resume and clean interruption.

    train_step   pure: forward, loss, backward, clip, optimizer step (or none, if not finite)
    Trainer.run  one flat loop; a comment per phase of an iteration

All mutable progress lives in one `Progress` object that goes into `last.pt`, so that
N steps + resume + N steps equals 2N steps straight, bitwise on CPU.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from charlm.config import ModelConfig, TrainConfig
from charlm.data.batching import batches_per_epoch, make_batches
from charlm.data.noise import UnknownNoise
from charlm.errors import DivergedError, ResourceError
from charlm.models.charrnn import CharRNN, State, detach_state
from charlm.models.ensemble import networks
from charlm.scoring.adapt import Adaptation, blank_line_ids
from charlm.scoring.evaluate import EvalStopped, perplexity, target_logprobs
from charlm.scoring.mixture import MixtureFit, Scores, fit_slice, kn_logprobs, score_text
from charlm.store import checkpoint
from charlm.store.run_folder import RunFolder
from charlm.system.distributed import SINGLE, Dist
from charlm.system.runtime import make_generator
from charlm.system.signals import SignalGuard
from charlm.training.members import TIME_MARGIN, Members, may_grow, new_member_seed
from charlm.training.optim import Plateau, lr_at, make_optimizer, restore_optimizer
from charlm.training.reporting import (
    Window,
    eval_line,
    eval_record,
    preview_lines,
    progress_bar,
    run_summary,
    show_step,
)
from charlm.training.setup import RunData

MAX_NONFINITE_STREAK = 8  # consecutive skipped steps before training is called diverged
# Held-out characters scored at each training evaluation: the first ones of the split, the same
# every time, so a long held-out text does not eat the time budget (`charlm evaluate` scores the
# whole split). 50k characters put the perplexity's sampling noise well under 1 %.
EVAL_CHARS = 50_000


@dataclass
class Progress:
    """Everything about where training is, as primitives and tensors (goes into last.pt)."""

    seed: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    best_val_ppl: float = math.inf  # best score of any evaluation: what best.pt holds
    best_step: int = 0
    plateau: dict[str, float] = field(default_factory=lambda: asdict(Plateau()))
    nonfinite_streak: int = 0
    skipped_steps: int = 0
    mix_weight: float = 1.0  # the network's share in the mixture with the count model
    adapt: dict[str, Any] | None = None  # the song cache's fitted weights (Adaptation payload)
    member: int = 0  # which network is training: 0, then 1, ... (members.py)
    member_start_step: int = 0  # the step it started at (its warm-up counts from there)
    member_start_s: float = 0.0  # and the training time then
    best_networks: int = 1  # networks averaged in best.pt
    rng: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    loss: float
    grad_norm: float
    state: State | None  # the state after the batch, detached; None when not finite
    finite: bool  # False: nothing was applied to the weights


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    state: State | None,
    *,
    lr: float,
    clip: float,
    bf16: bool,
) -> StepResult:
    """One optimizer step on a batch: x, y (B, T) ids, `state` the carried state or None.
    `model` is the CharRNN, or DistributedDataParallel over it (gradients averaged in backward).

    A non-finite loss or gradient never reaches the weights: the gradients are dropped and no
    step is taken (StepResult.finite is False)."""
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    # bf16 autocast: matmuls in bfloat16, the loss and the weights stay float32.
    with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
        logits, state = model(x, state)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # clip 0 = off: an infinite bound still measures the norm, and scales nothing
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf)
    loss_v, norm_v = loss.item(), norm.item()
    if not (math.isfinite(loss_v) and math.isfinite(norm_v)):
        opt.zero_grad(set_to_none=True)
        return StepResult(loss_v, norm_v, None, False)
    opt.step()
    return StepResult(loss_v, norm_v, detach_state(state), True)


@contextlib.contextmanager
def _out_of_memory_as_resource_error(cfg: TrainConfig) -> Iterator[None]:
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        # CPU allocation failures arrive as plain RuntimeErrors from the allocator.
        msg = str(e).lower()
        allocator = "out of memory" in msg or "can't allocate memory" in msg
        if not isinstance(e, (torch.OutOfMemoryError, MemoryError)) and not allocator:
            raise
        raise ResourceError(
            f"out of memory with --batch-size {cfg.batch_size} and --seq-len "
            f"{cfg.seq_len}; lower them or --hidden"
        ) from None


class Trainer:
    """Owns the model, optimizer, generators and progress of one run folder."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data: RunData,
        folder: RunFolder,
        device: torch.device,
        *,
        previews: list[str],
        echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        show_progress: bool = False,
        resume: dict[str, Any] | None = None,
        started_at: float | None = None,
        dist: Dist = SINGLE,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        cfg = train_config
        self.model_config, self.train_config = model_config, train_config
        self.data, self.folder, self.dist = data, folder, dist
        self.device, self.previews, self.echo = device, previews, echo
        self.show_progress, self.started_at = show_progress, started_at  # time.monotonic()
        self.on_record = on_record  # called with each metrics record (e.g. TensorBoard)
        self.batches_per_epoch = batches_per_epoch(
            len(data.train_ids), cfg.global_batch, cfg.seq_len
        )
        self.noise = UnknownNoise(data.train_ids, len(data.vocab), cfg.unk_prob)
        self.eval_ids = data.val_ids[: EVAL_CHARS + 1]  # (<= EVAL_CHARS + 1,)
        self.mix_fit = None  # the count model: rank 0 fits and ships it, the others score
        mixed = data.tune_ids is not None and cfg.kn_order
        self.tune_ids = fit_slice(data.tune_ids) if mixed else None  # what each fit scores
        self._stop: Callable[[], bool] | None = None  # set while run() holds the signal guard
        if self.tune_ids is not None and dist.main:
            self.mix_fit = MixtureFit(data.train_ids, data.tune_ids, cfg.kn_order,
                                      len(data.vocab), blank_line_ids(data.vocab))  # fmt: skip
            self.val_kn_logp = kn_logprobs(self.mix_fit.kn, self.eval_ids)
        self.members = Members(model_config, device)
        if resume is None:
            self.prog = Progress(seed=cfg.seed)
            torch.manual_seed(cfg.seed)  # weights, then dropout masks, come from this stream
            self.model = CharRNN(model_config, device)
            self.opt = make_optimizer(self.model, cfg)
            self.batch_gen, self.noise_gen, self.rng = _fresh_generators(cfg.seed)
            self.carry: State | None = None
        else:
            self._restore(resume)
        if dist.active:  # every process starts from rank 0's weights, optimizer and position
            carry = resume["carry"] if resume else []  # all processes' rows, as saved
            self._adopt(dist.broadcast(self._shared_state(carry) if dist.main else None))
        self.net = dist.wrap(self.model)  # what trains: DDP averages gradients across processes
        self.mixture = None
        if self.mix_fit:
            adapt = self.prog.adapt and Adaptation.from_payload(self.prog.adapt)
            self.mixture = self.mix_fit.fit(weight=self.prog.mix_weight, adaptation=adapt)

    # ---- state in and out -------------------------------------------------------------------

    def _restore(self, payload: dict[str, Any]) -> None:
        model, _, _ = checkpoint.restore_model(payload, str(self.folder.last), self.device)
        *frozen, self.model = networks(model)  # the last network is the one in training
        for net in frozen:
            self.members.add(net.state_dict())
        if payload.get("member_best"):
            self.members.best = payload["member_best"]
        self.opt = restore_optimizer(self.model, self.train_config, payload["optimizer_state"])
        self.prog = Progress(**payload["progress"])
        self.rng = self.prog.rng
        if "cuda" in self.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.rng["cuda"])
        self.batch_gen, self.noise_gen = torch.Generator(), torch.Generator()
        self.carry = self._my_rows(payload["carry"])
        self.folder.truncate_metrics(self.prog.step)

    def _my_rows(self, carry: list[torch.Tensor]) -> State | None:
        """This process's rows of a saved carry ((L, global_batch, H) tensors), on the device."""
        mine = self.dist.my_rows(carry, self.train_config.batch_size)
        return tuple(t.to(self.device) for t in mine) or None

    def _all_rows(self) -> list[torch.Tensor]:
        """Every process's carried rows (a collective); [] when nothing is carried."""
        if self.carry is None:
            return []
        return self.dist.all_rows(list(self.carry), self.train_config.batch_size)

    def _shared_state(self, carry: list[torch.Tensor]) -> dict[str, Any]:
        """What rank 0 sends the other processes at the start (a resumed run's state, with
        the carried rows of all processes as last.pt saved them)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "progress": asdict(self.prog),
            "rng": self.rng,
            "carry": carry,
            "frozen": self.members.states(),
            "member_best": self.members.best,
        }

    def _adopt(self, shared: dict[str, Any]) -> None:
        if self.dist.main:
            return
        self.model.load_state_dict(shared["model"])
        for state in shared["frozen"]:
            self.members.add(state)
        self.members.best = shared["member_best"]
        self.opt.load_state_dict(shared["optimizer"])
        self.prog, self.rng = Progress(**shared["progress"]), shared["rng"]
        self.carry = self._my_rows(shared["carry"])

    def payload(self, with_training_state: bool) -> dict[str, Any]:
        """What a checkpoint holds; best.pt (for generate/evaluate) has no training state."""
        return checkpoint_payload(self, with_training_state)

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train until epochs, --max-steps, --max-time, early stopping or a signal."""
        cfg, prog, window = self.train_config, self.prog, Window()
        # dropout continues this run's stream (each process its own)
        torch.set_rng_state(self.dist.dropout_rng(self.rng, prog.seed, prog.step))
        started, elapsed0, reason, last = time.perf_counter(), prog.elapsed_s, None, None
        self.signum: int | None = None  # the signal, once any process has one
        # --max-time counts from the command's start (preparation included) when known
        deadline = (self.started_at or time.monotonic()) + cfg.max_time
        with (
            SignalGuard() as guard,
            self._stop_on(guard),
            self.noise,  # the once-seen characters are put back on the way out
            progress_bar(self._step_limit(), prog.step, self.show_progress) as bar,
            _out_of_memory_as_resource_error(cfg),
        ):
            for x, y in self._batches():
                # 1. one optimizer step (the state is carried only by the consecutive sampler)
                t0 = time.perf_counter()
                x, y = self._to_device(x), self._to_device(y)
                r = train_step(
                    self.net, self.opt, x, y, self.carry,
                    lr=self._lr(), clip=cfg.clip, bf16=cfg.precision == "bf16",
                )  # fmt: skip
                # 2. under torchrun: the loss over all processes' rows, a signal on any of them
                loss, self.signum = self.dist.agree(r.loss, guard.signum)
                r = replace(r, loss=loss)
                chars = x.numel() * self.dist.world
                self._account(r, window, chars, time.perf_counter() - t0)
                prog.elapsed_s = elapsed0 + time.perf_counter() - started
                show_step(bar, window, self.show_progress)
                # 3. a signal stops at this step boundary (saved below, not evaluated)
                if self.signum is not None:
                    reason = "interrupted"
                    break
                # 4. scheduled evaluation: held-out score, plateau rule, best.pt, last.pt (a
                # signal during it abandons it: no record, and the step is saved below)
                if prog.step % cfg.eval_every == 0:
                    last = self._evaluate(window, bar, scheduled=True) or last
                    if self.signum is not None:
                        reason = "interrupted"
                        break
                    if Plateau(**prog.plateau).should_stop(cfg):
                        if self._next_member(deadline):  # the budget has room for another
                            continue
                        reason = "early-stop"
                        break
                # 5. the time budget (every process stops at the same step)
                if cfg.max_time and self.dist.any(time.monotonic() >= deadline):
                    reason = "max-time"
                    break
            hit_max_steps = cfg.max_steps and prog.step >= cfg.max_steps
            reason = reason or ("max-steps" if hit_max_steps else "finished")
            # 6. a stop between evaluations scores where it stopped (best.pt may move; the
            # plateau rule does not, so a resumed run behaves like a straight one)
            if reason != "interrupted" and (last is None or last["step"] != prog.step):
                last = self._evaluate(window, bar, scheduled=False) or last
            self._save_last()
        return {**self.summary(reason, last), "signal": self.signum}

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches from the current position to the step limit, epoch by epoch. Each epoch
        starts from the generator states saved at its start, so a resume mid-epoch replays
        the same batches and the same unknown-symbol noise."""
        while self.prog.epoch < self.train_config.epochs:
            self.batch_gen.set_state(self.rng["batch_epoch_start"])
            self.noise_gen.set_state(self.rng["noise_epoch_start"])
            self.noise.draw_epoch(self.noise_gen)
            if self.prog.batch_in_epoch == 0:
                self.carry = None  # a new epoch starts new streams
            cfg, start = self.train_config, self.prog.batch_in_epoch
            ids = self.data.train_ids
            rows = self.dist.rows(cfg.batch_size)  # this process's rows of the global batch
            for x, y in make_batches(
                cfg.sampler, ids, cfg.global_batch, cfg.seq_len, self.batch_gen, start=start
            ):
                if self.prog.step >= self._step_limit():
                    return
                yield x[rows], y[rows]
            self.prog.epoch, self.prog.batch_in_epoch = self.prog.epoch + 1, 0
            self.rng["batch_epoch_start"] = self.batch_gen.get_state()
            self.rng["noise_epoch_start"] = self.noise_gen.get_state()

    def _account(self, r: StepResult, window: Window, chars: int, seconds: float) -> None:
        """Progress after one step: counters, the carried state, the divergence streak."""
        prog = self.prog
        prog.step += 1
        prog.batch_in_epoch += 1
        if not r.finite:
            prog.nonfinite_streak += 1
            prog.skipped_steps += 1
            self.carry = None
            if prog.nonfinite_streak >= MAX_NONFINITE_STREAK:
                raise _diverged(prog.step, self.train_config, self.folder)
            return
        prog.nonfinite_streak = 0
        # random windows are unrelated, so each starts from zeros; consecutive ones carry on
        self.carry = r.state if self.train_config.sampler == "consecutive" else None
        window.add(r, chars, seconds, new_epoch=prog.batch_in_epoch == 1)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A batch to the device; on CUDA from pinned memory, so the copy overlaps compute."""
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def _lr(self) -> float:
        step = self.prog.step - self.prog.member_start_step  # each member warms up anew
        return lr_at(self.train_config, step, Plateau(**self.prog.plateau).lr_scale)

    def _step_limit(self) -> int:
        total = self.train_config.epochs * self.batches_per_epoch
        return min(total, self.train_config.max_steps) if self.train_config.max_steps else total

    # ---- evaluation, previews, progress -----------------------------------------------------

    def _evaluate(self, window: Window, bar: tqdm, scheduled: bool) -> dict[str, Any] | None:
        """Score, move best.pt and (if scheduled) the plateau rule, log, save last.pt; None
        when a signal stopped the scoring (nothing is recorded then)."""
        try:
            scores = self.held_out_scores()
        except EvalStopped:
            return None
        rec = self._record(scores, window, bar, scheduled) if self.dist.main else None
        if self.dist.active:  # rank 0 decided; the others follow its plateau, best and weight
            rec, shared = self.dist.broadcast((rec, self._decisions()))
            vars(self.prog).update(shared)
        if self.prog.best_step == self.prog.step:  # this network's weights as best.pt has them
            self.members.remember_best(self.model)
        window.reset()
        if scheduled:
            self._save_last()
        return rec

    def _decisions(self) -> dict[str, Any]:
        keys = ("best_val_ppl", "best_step", "best_networks", "plateau", "mix_weight", "adapt")
        return {k: getattr(self.prog, k) for k in keys}

    def _record(
        self, scores: Scores | None, window: Window, bar: tqdm, scheduled: bool
    ) -> dict[str, Any]:
        """Rank 0's part of an evaluation: best.pt, the plateau rule, the metrics line."""
        prog, cfg = self.prog, self.train_config
        train_loss = window.loss_sum / window.steps if window.steps else math.nan
        # without held-out text, "best" falls back to training perplexity
        score = scores.shipped.perplexity if scores else perplexity(train_loss)
        finite = math.isfinite(score) and all(
            bool(p.isfinite().all()) for p in self.model.parameters()
        )
        improved = finite and score < prog.best_val_ppl
        if improved:
            prog.best_val_ppl, prog.best_step = score, prog.step
            prog.best_networks = prog.member + 1
            self.folder.save_best(self.payload(with_training_state=False))
        if scheduled:
            prog.plateau = asdict(Plateau(**prog.plateau).after(score, finite, cfg))
        rec = eval_record(self.prog, window, scores, train_loss, improved, self._lr(),
                          self.batches_per_epoch)  # fmt: skip
        self.folder.append_metrics(rec)
        if self.on_record:
            self.on_record(rec)
        self._report(rec, bar)
        return rec

    def _save_last(self) -> None:
        payload = self.payload(with_training_state=True)  # every process gives its part
        if self.dist.main:
            self.folder.save_last(payload)

    def held_out_scores(self) -> Scores | None:
        """The held-out text under what ships (refitting the mixture weight on the tune slice
        first) and under the network alone; None without held-out text, and on every process
        but rank 0 (they only help score the network)."""
        if len(self.eval_ids) < 2:
            return None
        if self.tune_ids is not None:
            tune_logp = self._network_logprobs(self.tune_ids, "tune")
            if self.mix_fit:
                self.mixture = self.mix_fit.fit(tune_logp)
                self.prog.mix_weight = self.mixture.weight
                adaptation = self.mixture.adaptation
                self.prog.adapt = adaptation.to_payload() if adaptation else None
        net_logp = self._network_logprobs(self.eval_ids, "held-out")
        if not self.dist.main:
            return None
        kn_logp = self.val_kn_logp if self.mix_fit else None
        return score_text(self.shipped(), self.eval_ids, self.device, self.mixture, kn_logp,
                          net_logp=net_logp)  # fmt: skip

    def _network_logprobs(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        """The shipped networks' log-probs of ids[1:] (N-1,) (the training one averaged with
        the finished members), scored by all processes together."""

        def score(net: torch.nn.Module, text: torch.Tensor) -> torch.Tensor:
            return target_logprobs(net, text, self.device, stop=self._stop, dist=self.dist)

        return self.members.average(name, ids, score(self.model, ids), score)

    def _next_member(self, deadline: float) -> bool:
        """Freeze this network's best weights and start a fresh one from another seed when
        members.may_grow says so (agreed by every process). False: the run stops."""
        cfg, prog = self.train_config, self.prog
        took = prog.elapsed_s - prog.member_start_s
        wanted = may_grow(cfg, prog, self.members.best is not None)
        if not wanted or self.dist.any(deadline - time.monotonic() < TIME_MARGIN * took):
            return False
        self.members.freeze_best()
        prog.member, prog.member_start_step, prog.member_start_s = (
            prog.member + 1, prog.step, prog.elapsed_s
        )  # fmt: skip
        prog.plateau = asdict(Plateau())
        with torch.random.fork_rng(devices=[]):  # the dropout stream goes on undisturbed
            torch.manual_seed(new_member_seed(prog.seed, prog.member))
            self.model = CharRNN(self.model_config, self.device)
        self.opt = make_optimizer(self.model, cfg)
        self.net, self.carry = self.dist.wrap(self.model), None
        self.echo(f"member {prog.member + 1}: the last network stopped improving after "
                  f"{took:.0f} s; a new one trains beside it ({cfg.members} at most)")  # fmt: skip
        return True

    def _agreed_signal(self, guard: SignalGuard) -> int | None:
        """A signal on any process (a collective when distributed): asked between chunks of
        an evaluation, so every process abandons it at the same chunk."""
        _, self.signum = self.dist.agree(0.0, guard.signum)
        return self.signum

    @contextlib.contextmanager
    def _stop_on(self, guard: SignalGuard) -> Iterator[None]:
        """While training, a signal also cuts an evaluation short (within one chunk)."""
        self._stop = lambda: self._agreed_signal(guard) is not None
        try:
            yield
        finally:
            self._stop = None

    def preview_lines(self) -> list[str]:
        return preview_lines(self.shipped(), self.data.vocab, self.previews,
                             self.train_config.seed, self.device, self.mixture)  # fmt: skip

    def shipped(self) -> torch.nn.Module:
        """What best.pt holds and previews sample: the finished members and the network in
        training, averaged (or that network alone)."""
        return self.members.shipped(self.model)

    def _report(self, rec: dict[str, Any], bar: tqdm) -> None:
        write = bar.write if self.show_progress else self.echo
        write(eval_line(rec))
        for line in self.preview_lines():
            write(f"    {line}")

    def summary(self, reason: str, last: dict[str, Any] | None) -> dict[str, Any]:
        return run_summary(self.prog, reason, last, self.folder, self.batches_per_epoch,
                           has_val=len(self.data.val_ids) >= 2)  # fmt: skip


def _fresh_generators(seed: int) -> tuple[torch.Generator, torch.Generator, dict[str, Any]]:
    """A new run's batch and noise generators, and the states that go into last.pt."""
    batch_gen, noise_gen = make_generator(seed + 1), make_generator(seed + 2)
    rng = {
        "torch": torch.get_rng_state(),
        "batch_epoch_start": batch_gen.get_state(),
        "noise_epoch_start": noise_gen.get_state(),
    }
    return batch_gen, noise_gen, rng


def _diverged(step: int, cfg: TrainConfig, folder: RunFolder) -> DivergedError:
    return DivergedError(
        f"training diverged: {MAX_NONFINITE_STREAK} steps in a row had a non-finite loss or "
        f"gradient (step {step}); lower --lr (now {cfg.lr:g}) or set --clip (now "
        f"{cfg.clip:g}); {folder.best} is untouched"
    )


def checkpoint_payload(t: Trainer, with_training_state: bool) -> dict[str, Any]:
    """A trainer's checkpoint: weights, vocabulary, configs, count model, corpus record, and
    with the training state, everything an exact resume needs."""
    extra: dict[str, Any] = {
        "kn": t.mix_fit.payload(t.prog.mix_weight, t.mixture.adaptation) if t.mix_fit else None,
        "train_config": asdict(t.train_config),
        "corpus": t.data.corpus,
        "metrics": {k: getattr(t.prog, k) for k in ("step", "epoch", "best_val_ppl", "best_step")},
    }
    if with_training_state:
        # collectives first: every process's dropout stream and carried rows
        torch_ranks, carry = t.dist.gather(torch.get_rng_state()), t._all_rows()
        t.prog.rng = {**t.rng, "torch": torch.get_rng_state()}
        if t.dist.active:
            t.prog.rng["torch_ranks"] = torch_ranks
        if torch.cuda.is_available():
            t.prog.rng["cuda"] = torch.cuda.get_rng_state_all()
        extra["progress"] = asdict(t.prog)
        extra["optimizer_state"] = t.opt.state_dict()
        extra["carry"] = carry
    if not t.dist.main:
        return {}  # only rank 0 writes checkpoints
    if with_training_state and t.members.best is not None:
        extra["member_best"] = t.members.best  # to freeze if the run resumes and stops here
    return checkpoint.build_payload(t.shipped(), t.model_config, t.data.vocab, extra)
