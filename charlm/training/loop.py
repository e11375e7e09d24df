"""The training loop: batches -> loss -> clipped step, with evaluation, previews, checkpoints,
exact resume and clean interruption.

    Trainer.run  one flat loop; a comment per phase of an iteration, best.pt and last.pt
                 written in sight. Its parts are objects of their own:
    TrainState   the model, optimizer, members, generators, carried state and progress
                 (progress.py: what last.pt holds, in and out)
    HeldOut      held-out scoring and the decisions it takes (heldout.py)
    Reporter     the progress bar, evaluation lines and previews (reporting.py)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Any

import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.data.batching import batches_per_epoch
from charlm.data.noise import UnknownNoise
from charlm.data.prepared import RunData
from charlm.scoring.evaluate import EvalStopped
from charlm.store.run_folder import RunFolder
from charlm.system.distributed import SINGLE, Dist
from charlm.system.signals import SignalGuard
from charlm.training.adapt_fit import FIT_SHARE, fit_into_best
from charlm.training.heldout import HeldOut, decisions
from charlm.training.members import member_times, room_for_member
from charlm.training.optim import Plateau, RunLength, eval_interval, lr_at
from charlm.training.progress import MAX_NONFINITE_STREAK, TrainState, diverged
from charlm.training.reporting import Reporter, Window, eval_record, run_summary
from charlm.training.step import StepResult, out_of_memory_as_resource_error, train_step


class Trainer:
    """Trains one run folder: its state, held-out decisions and reporting, and the loop."""

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
        init_state: dict[str, torch.Tensor] | None = None,
        base: dict[str, Any] | None = None,
    ) -> None:
        cfg = train_config
        self.train_config, self.data, self.folder, self.dist = cfg, data, folder, dist
        self.device, self.started_at = device, started_at  # time.monotonic() of the command
        self.on_record = on_record  # called with each metrics record (e.g. TensorBoard)
        self.batches_per_epoch = batches_per_epoch(
            len(data.train_ids), cfg.global_batch, cfg.seq_len
        )
        self.noise = UnknownNoise(data.train_ids, len(data.vocab), cfg.unk_prob)
        self.base = base  # --init-from: the record every checkpoint keeps of the base
        self.state = TrainState(model_config, cfg, device, dist, resume, str(folder.last),
                                init_state)  # fmt: skip
        if resume is not None:
            folder.truncate_metrics(self.prog.step)  # the future of a resumed run is rewritten
        self.heldout = HeldOut(data, cfg, device, dist, self.prog)
        self.report = Reporter(echo, show_progress, previews, cfg.seed, device)
        self._stop: Callable[[], bool] | None = None  # set while run() holds the signal guard
        self.signum: int | None = None  # the signal, once any process has one
        self.closing_s = 0.0  # what the last evaluation and save took: a stop's cost
        self.deadline = 0.0  # time.monotonic() when --max-time ends (set by run)
        self.done = 0.0  # how far through the run (RunLength.done, agreed by every process)
        # the budget's share kept for fitting dynamic evaluation after the loop (adapt_fit.py)
        fits = self.heldout.tune_ids is not None
        self.reserve_s = FIT_SHARE * cfg.max_time if fits else 0.0

    # the parts most often asked for, by the command's header and by tests
    model = property(lambda self: self.state.model)
    prog = property(lambda self: self.state.prog)
    opt = property(lambda self: self.state.opt)
    eval_ids = property(lambda self: self.heldout.eval_ids)
    mix_fit = property(lambda self: self.heldout.mix_fit)

    def run(self) -> dict[str, Any]:
        """Train until epochs, --max-steps, --max-time, early stopping or a signal."""
        cfg, prog, state, window = self.train_config, self.prog, self.state, Window()
        # dropout continues this run's stream (each process its own)
        torch.set_rng_state(self.dist.dropout_rng(state.rng, prog.seed, prog.step))
        started, elapsed0, reason, last = time.perf_counter(), prog.elapsed_s, None, None
        # the next scheduled evaluation: the next multiple of --eval-every, then as far as
        # eval_interval says; trained seconds and steps since the last one (what a step costs)
        next_eval, trained = prog.step - prog.step % cfg.eval_every + cfg.eval_every, [0.0, 0]
        # --max-time counts from the command's start (preparation included) when known
        deadline = self.deadline = (self.started_at or time.monotonic()) + cfg.max_time
        # the learning rate's schedule runs from here (or a new network's start) to the deadline
        self.length = RunLength(self._step_limit(), time.monotonic(),
                                deadline if cfg.max_time else None)  # fmt: skip
        with self._session(deadline if cfg.max_time else None):
            for x, y in self._batches():
                # 1. one optimizer step (the state is carried only by the consecutive sampler)
                t0 = time.perf_counter()
                x, y = self._to_device(x), self._to_device(y)
                r = train_step(
                    state.net, state.opt, x, y, state.carry,
                    lr=self._lr(), clip=cfg.clip, bf16=cfg.precision == "bf16",
                )  # fmt: skip
                # 2. under torchrun: the loss over all processes' rows, a signal on any of them,
                # how far the run is (the learning rate's decay)
                done = self.length.done(prog.step + 1, self.closing_s + self.reserve_s)
                loss, self.signum, self.done = self.dist.agree(r.loss, self._guard.signum, done)
                self._account(replace(r, loss=loss), window, x.numel() * self.dist.world, t0)
                trained = [trained[0] + time.perf_counter() - t0, trained[1] + 1]
                prog.elapsed_s = elapsed0 + time.perf_counter() - started
                self.report.step(window, prog.step, self._step_limit())
                # 3. a signal stops at this step boundary (saved below, not evaluated)
                if self.signum is not None:
                    reason = "interrupted"
                    break
                # 4. scheduled evaluation: held-out score, plateau rule, best.pt, last.pt (a
                # signal during it abandons it: no record, and the step is saved below)
                if prog.step >= next_eval:
                    closing = time.monotonic()  # an evaluation and a save: what a stop costs
                    rec = self._evaluate(window, scheduled=True)
                    if rec is None:
                        reason = "interrupted"
                        break
                    last = self._keep(rec)  # best.pt if it improved, metrics, report
                    self._save_last()  # last.pt
                    self.closing_s = time.monotonic() - closing
                    # rank 0's cadence for every process (they evaluate together)
                    gap = eval_interval(cfg, self.closing_s, trained[0] / max(trained[1], 1))
                    next_eval, trained = prog.step + self.dist.broadcast(gap), [0.0, 0]
                    # in the decay the schedule takes the rate down and the deadline ends the
                    # run: a plateau there is the rate settling (it stopped a KJV run at 470 s
                    # of 600), and best.pt keeps the best whatever comes after
                    if Plateau(**prog.plateau).should_stop(cfg) and not self._decaying():
                        # the time a new network would train: the deadline less a stop's
                        # cost and the fits' reserve, as step 5 below stops
                        trains_until = deadline - self.closing_s - self.reserve_s
                        if room_for_member(
                            cfg, prog, state.members, self.dist, trains_until, self.done
                        ):
                            self._start_member()  # another network, averaged in
                            continue
                        reason = "early-stop"
                        break
                # 5. the time budget, with room for the final evaluation and save (every process
                # stops at the same step)
                ends = time.monotonic() + self.closing_s + self.reserve_s
                if cfg.max_time and self.dist.any(ends >= deadline):
                    reason = "max-time"
                    break
            hit_max_steps = cfg.max_steps and prog.step >= cfg.max_steps
            reason = reason or ("max-steps" if hit_max_steps else "finished")
            # 6. a stop between evaluations scores where it stopped (best.pt may move; the
            # plateau rule does not, so a resumed run behaves like a straight one)
            if reason != "interrupted" and (last is None or last["step"] != prog.step):
                rec = self._evaluate(window, scheduled=False)
                last = self._keep(rec) if rec else last
            self._save_last()  # last.pt
        return {**self.summary(reason, last), "signal": self.signum}

    @contextlib.contextmanager
    def _session(self, deadline: float | None) -> Iterator[None]:
        """What a run holds while it trains: the signal guard (a signal also cuts an evaluation
        short, within one chunk), the unknown-symbol noise (the once-seen characters are put
        back on the way out), the progress bar, and out-of-memory as a ResourceError."""
        with (
            SignalGuard() as self._guard,
            self.noise,
            self.report.progress(
                self._step_limit(), self.prog.step, deadline, self.train_config.max_time
            ),  # fmt: skip
            out_of_memory_as_resource_error(self.train_config),
        ):
            self._stop = lambda: self._agreed_signal() is not None
            try:
                yield
            finally:
                self._stop = None

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's batches from the current position to the step limit."""
        return self.state.batches(self.data.train_ids, self.noise, self._step_limit())

    def _account(self, r: StepResult, window: Window, chars: int, t0: float) -> None:
        """Progress after one step: counters, the carried state, the divergence streak."""
        prog, state = self.prog, self.state
        prog.step += 1
        prog.batch_in_epoch += 1
        if not r.finite:
            prog.nonfinite_streak += 1
            prog.skipped_steps += 1
            state.carry = None
            if prog.nonfinite_streak >= MAX_NONFINITE_STREAK:
                raise diverged(prog, self.train_config, self.folder.best)
            return
        prog.nonfinite_streak = 0
        # random windows are unrelated, so each starts from zeros; consecutive ones carry on
        state.carry = r.state if self.train_config.sampler == "consecutive" else None
        window.add(r, chars, time.perf_counter() - t0, new_epoch=prog.batch_in_epoch == 1)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A batch to the device; on CUDA from pinned memory, so the copy overlaps compute."""
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def _decaying(self) -> bool:
        """Whether a --max-time run's rate is in its decay (optim.decay_factor below 1)."""
        cfg = self.train_config
        return cfg.max_time > 0 and cfg.decay > 0 and self.done >= 1 - cfg.decay

    def _lr(self) -> float:
        step = self.prog.step - self.prog.member_start_step  # each member warms up anew
        return lr_at(self.train_config, step, Plateau(**self.prog.plateau).lr_scale, self.done)

    def _step_limit(self) -> int:
        total = self.train_config.epochs * self.batches_per_epoch
        return min(total, self.train_config.max_steps) if self.train_config.max_steps else total

    # ---- evaluation, checkpoints, members ----------------------------------------------------

    def _evaluate(self, window: Window, scheduled: bool) -> dict[str, Any] | None:
        """Score the held-out text and decide (rank 0; the others adopt its decisions): the
        metrics record, or None when a signal stopped the scoring (nothing is recorded)."""
        try:
            scores = self.heldout.scores(self.state, self._stop)
        except EvalStopped:
            return None
        rec = None
        if self.dist.main:
            train_loss = window.mean_loss()
            improved = self.heldout.judge(scores, train_loss, self.state, scheduled)
            rec = eval_record(self.prog, window, scores, train_loss, improved, self._lr(),
                              self.batches_per_epoch)  # fmt: skip
        if self.dist.active:  # rank 0 decided; the others follow its plateau, best and weight
            rec, shared = self.dist.broadcast((rec, decisions(self.prog)))
            vars(self.prog).update(shared)
        if self.prog.best_step == self.prog.step:  # this network's weights as best.pt has them
            self.state.members.remember_best(self.model)
        window.reset()
        return rec

    def _keep(self, rec: dict[str, Any]) -> dict[str, Any]:
        """An evaluation's record kept (rank 0): best.pt when it improved, the metrics line,
        the report with previews."""
        if not self.dist.main:
            return rec
        if rec["best"]:
            self.folder.save_best(self._payload(with_training_state=False))
        self.folder.append_metrics(rec)
        if self.on_record:
            self.on_record(rec)
        self.report.evaluation(rec, self.state.shipped(), self.data.vocab, self.heldout.mixture)
        return rec

    def _save_last(self) -> None:
        payload = self._payload(with_training_state=True)  # every process gives its part
        if self.dist.main:
            self.folder.save_last(payload)

    def _payload(self, with_training_state: bool) -> dict[str, Any]:
        """What a checkpoint holds; best.pt (for generate/evaluate) has no training state."""
        extra = {
            "kn": self.heldout.count_model(self.prog),
            "train_config": asdict(self.train_config),
            "corpus": self.data.corpus,
            **({"base": self.base} if self.base else {}),
        }
        return self.state.payload(self.data.vocab, extra, with_training_state)

    def _start_member(self) -> None:
        to_best, took = member_times(self.prog)
        self.state.start_member()
        # a new network trains at the full rate, and its decay is over the last part of the
        # time left to it: the network training at the deadline is the one that settles
        self.length = replace(self.length, started=time.monotonic())
        self.done = 0.0
        self.report.echo(f"member {self.prog.member + 1}: the last network reached its best "
                         f"after about {to_best:.0f} s and stopped after {took:.0f} s; a new one "
                         f"trains beside it ({self.train_config.members} at most)")  # fmt: skip

    def _agreed_signal(self) -> int | None:
        """A signal on any process (a collective when distributed): asked between chunks of
        an evaluation, so every process abandons it at the same chunk."""
        _, self.signum, _ = self.dist.agree(0.0, self._guard.signum)
        return self.signum

    def fit_adaptation(self) -> None:
        """Rank 0, after a run that was not interrupted: dynamic evaluation fitted on what
        best.pt ships and stored in it, within what is left of --max-time."""
        if not self.dist.main or self.heldout.mix_fit is None:
            return
        cfg = self.train_config
        deadline = self.deadline if cfg.max_time else None
        fit_into_best(self.folder, self.heldout.mix_fit, self.device, deadline, self.report.echo)

    def summary(self, reason: str, last: dict[str, Any] | None) -> dict[str, Any]:
        return run_summary(self.prog, reason, last, self.folder, self.batches_per_epoch,
                           has_val=len(self.data.val_ids) >= 2)  # fmt: skip
