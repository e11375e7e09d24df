"""Where training is and what it trains, as one object that goes into last.pt and comes back.

`TrainState` holds the progress counters, the network in training and its optimizer, the
finished members, the batch and noise generators and the carried state; its ways in (a new
run, last.pt, rank 0's broadcast under torchrun) and out (a checkpoint payload) live here, so
that N steps + resume + N steps equals 2N steps straight, bitwise on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from charlm.config import ModelConfig, TrainConfig
from charlm.data.batching import make_batches
from charlm.data.noise import UnknownNoise
from charlm.data.vocab import Vocab
from charlm.errors import CheckpointError, DivergedError
from charlm.models.charrnn import CharRNN
from charlm.models.ensemble import networks
from charlm.models.state import State
from charlm.store import checkpoint
from charlm.system.distributed import Dist
from charlm.system.runtime import make_generator
from charlm.training.members import Members, new_member_seed
from charlm.training.optim import Plateau, make_optimizer, restore_optimizer

MAX_NONFINITE_STREAK = 8  # consecutive skipped steps before training is called diverged


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

    @classmethod
    def from_payload(cls, d: Any, where: str) -> Progress:
        """The progress last.pt holds, field by field: a missing, unknown or mistyped field
        (a file from another charlm, or made by hand) is a CheckpointError, never a silent
        default (a missing step would restart the data position at zero)."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: progress is not a mapping")
        names = {f.name: f for f in fields(cls)}
        missing, unknown = sorted(set(names) - set(d)), sorted(set(d) - set(names))
        if missing or unknown:
            raise CheckpointError(
                f"{where}: progress does not fit this charlm (missing {missing[:3]}, unknown "
                f"{unknown[:3]}); start a new --run (its best.pt still generates)"
            )
        for name, value in d.items():
            if not _fits(names[name].type, value):
                raise CheckpointError(
                    f"{where}: progress.{name} is {value!r:.40} ({type(value).__name__})"
                )
        rng = d["rng"]
        if not all((isinstance(v, torch.Tensor) and v.dtype == torch.uint8)
                   or (k in ("cuda", "torch_ranks") and isinstance(v, list))
                   for k, v in rng.items()):  # fmt: skip
            raise CheckpointError(
                f"{where}: progress.rng holds something that is no generator state"
            )
        if d["adapt"] is not None and not isinstance(d["adapt"].get("weights"), list):
            raise CheckpointError(f"{where}: progress.adapt has no weights list")
        return cls(**d)


class TrainState:
    """The model, optimizer, members, generators, carried state and progress of one run."""

    def __init__(
        self,
        model_config: ModelConfig,
        cfg: TrainConfig,
        device: torch.device,
        dist: Dist,
        resume: dict[str, Any] | None = None,
        where: str = "last.pt",
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model_config, self.cfg, self.device, self.dist = model_config, cfg, device, dist
        self.init_state = init_state  # --init-from: what a new network starts from
        self.members = Members(model_config, device)
        self.carry: State | None = None
        if resume is None:
            self.prog = Progress(seed=cfg.seed)
            torch.manual_seed(cfg.seed)  # weights, then dropout masks, come from this stream
            self.model = self._new_network()
            self.opt = make_optimizer(self.model, cfg)
            self.batch_gen, self.noise_gen, self.rng = fresh_generators(cfg.seed)
        else:
            self._restore(resume, where)
        if dist.active:  # every process starts from rank 0's weights, optimizer and position
            carry = resume["carry"] if resume else []  # all processes' rows, as saved
            self._adopt(dist.broadcast(self._shared(carry) if dist.main else None))
        self.net = dist.wrap(self.model)  # what trains: DDP averages gradients across processes

    def _new_network(self) -> CharRNN:
        """A network to train: fresh weights from the current seed, or the base's."""
        net = CharRNN(self.model_config, self.device)
        if self.init_state is not None:
            net.load_state_dict(self.init_state)
        return net

    def _restore(self, payload: dict[str, Any], where: str) -> None:
        model, _, _ = checkpoint.restore_model(payload, where, self.device)
        *frozen, self.model = networks(model)  # the last network is the one in training
        for net in frozen:
            self.members.add(net.state_dict())
        if payload.get("member_best"):
            self.members.best = payload["member_best"]
        self.opt = restore_optimizer(self.model, self.cfg, payload["optimizer_state"])
        self.prog = Progress.from_payload(payload["progress"], where)
        carry = payload["carry"]
        if not isinstance(carry, list) or not all(isinstance(t, torch.Tensor) for t in carry):
            raise CheckpointError(f"{where}: carry is not a list of state tensors")
        self.rng = self.prog.rng
        if "cuda" in self.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.rng["cuda"])
        self.batch_gen, self.noise_gen = torch.Generator(), torch.Generator()
        self.carry = self._my_rows(payload["carry"])

    # ---- torchrun: rows of the carried state, and the start-up broadcast ---------------------

    def _my_rows(self, carry: list[torch.Tensor]) -> State | None:
        """This process's rows of a saved carry ((L, global_batch, H) tensors), on the device."""
        mine = self.dist.my_rows(carry, self.cfg.batch_size)
        return tuple(t.to(self.device) for t in mine) or None

    def _all_rows(self) -> list[torch.Tensor]:
        """Every process's carried rows (a collective); [] when nothing is carried."""
        if self.carry is None:
            return []
        return self.dist.all_rows(list(self.carry), self.cfg.batch_size)

    def _shared(self, carry: list[torch.Tensor]) -> dict[str, Any]:
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

    # ---- the data position ---------------------------------------------------------------

    def batches(
        self, train_ids: torch.Tensor, noise: UnknownNoise, step_limit: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's rows of each batch (x, y (B, T)) from the current position to
        `step_limit`, epoch by epoch. Each epoch starts from the generator states saved at its
        start, so a resume mid-epoch replays the same batches and the same unknown-symbol
        noise; the consecutive sampler's carried state starts anew with each epoch."""
        prog, cfg = self.prog, self.cfg
        while prog.epoch < cfg.epochs:
            self.batch_gen.set_state(self.rng["batch_epoch_start"])
            self.noise_gen.set_state(self.rng["noise_epoch_start"])
            noise.draw_epoch(self.noise_gen)
            if prog.batch_in_epoch == 0:
                self.carry = None  # a new epoch starts new streams
            rows = self.dist.rows(cfg.batch_size)  # this process's rows of the global batch
            for x, y in make_batches(cfg.sampler, train_ids, cfg.global_batch, cfg.seq_len,
                                     self.batch_gen, start=prog.batch_in_epoch):  # fmt: skip
                if prog.step >= step_limit:
                    return
                yield x[rows], y[rows]
            prog.epoch, prog.batch_in_epoch = prog.epoch + 1, 0
            self.rng["batch_epoch_start"] = self.batch_gen.get_state()
            self.rng["noise_epoch_start"] = self.noise_gen.get_state()

    # ---- what ships, and a new member --------------------------------------------------------

    def shipped(self) -> torch.nn.Module:
        """What best.pt holds and previews sample: the finished members and the network in
        training, averaged (or that network alone)."""
        return self.members.shipped(self.model)

    def start_member(self) -> None:
        """Freeze this network's best weights as a member; a fresh network from the member's
        own seed trains from here, with a new optimizer, warm-up and plateau rule."""
        prog = self.prog
        self.members.freeze_best()
        prog.member, prog.member_start_step, prog.member_start_s = (
            prog.member + 1, prog.step, prog.elapsed_s
        )  # fmt: skip
        prog.plateau = asdict(Plateau())
        with torch.random.fork_rng(devices=[]):  # the dropout stream goes on undisturbed
            torch.manual_seed(new_member_seed(prog.seed, prog.member))
            self.model = self._new_network()
        self.opt = make_optimizer(self.model, self.cfg)
        self.net, self.carry = self.dist.wrap(self.model), None

    def payload(
        self, vocab: Vocab, extra: dict[str, Any], with_training_state: bool
    ) -> dict[str, Any]:
        """A checkpoint: the shipped weights, vocabulary and configs, `extra` (count model,
        corpus record, ...), and with the training state everything an exact resume needs.
        A collective under torchrun; {} on every process but rank 0 (only it writes)."""
        extra = {
            **extra,
            "metrics": {k: getattr(self.prog, k)
                        for k in ("step", "epoch", "best_val_ppl", "best_step")},
        }  # fmt: skip
        if with_training_state:
            # collectives first: every process's dropout stream and carried rows
            torch_ranks, carry = self.dist.gather(torch.get_rng_state()), self._all_rows()
            self.prog.rng = {**self.rng, "torch": torch.get_rng_state()}
            if self.dist.active:
                self.prog.rng["torch_ranks"] = torch_ranks
            if torch.cuda.is_available():
                self.prog.rng["cuda"] = torch.cuda.get_rng_state_all()
            extra["progress"] = asdict(self.prog)
            extra["optimizer_state"] = self.opt.state_dict()
            extra["carry"] = carry
        if not self.dist.main:
            return {}
        if with_training_state and self.members.best is not None:
            extra["member_best"] = self.members.best  # to freeze if the run resumes and stops
        return checkpoint.build_payload(self.shipped(), self.model_config, vocab, extra)


# what each annotation of Progress accepts (the file's values are plain Python: ints may be
# stored where floats are expected, never the other way round, and bool is not an int here)
_ACCEPTS = {"int": (int,), "float": (int, float), "dict[str, float]": (dict,),
            "dict[str, Any] | None": (dict, type(None)), "dict[str, Any]": (dict,)}  # fmt: skip


def _fits(annotation: Any, value: Any) -> bool:
    kinds = _ACCEPTS.get(str(annotation), (object,))
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def diverged(prog: Progress, cfg: TrainConfig, best: Path) -> DivergedError:
    return DivergedError(
        f"training diverged: {MAX_NONFINITE_STREAK} steps in a row had a non-finite loss or "
        f"gradient (step {prog.step}); lower --lr (now {cfg.lr:g}) or set --clip (now "
        f"{cfg.clip:g}); {best} is untouched"
    )


def fresh_generators(seed: int) -> tuple[torch.Generator, torch.Generator, dict[str, Any]]:
    """A new run's batch and noise generators, and the states that go into last.pt."""
    batch_gen, noise_gen = make_generator(seed + 1), make_generator(seed + 2)
    rng = {
        "torch": torch.get_rng_state(),
        "batch_epoch_start": batch_gen.get_state(),
        "noise_epoch_start": noise_gen.get_state(),
    }
    return batch_gen, noise_gen, rng
