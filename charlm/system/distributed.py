"""Several processes training one run: torch.distributed, started by `torchrun`.

torchrun gives each process RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
`start()` reads them and joins the process group (NCCL on CUDA, gloo on the CPU). Without
them charlm is one process, and every method here is a no-op on `Dist()`, so the trainer has
one code path. How the work is split among N processes with --batch-size B each:

    data        every rank draws the same global batch (N*B rows) from the shared batch
                generator and keeps rows [rank*B, (rank+1)*B): disjoint consecutive streams
                (each rank carries the state of its own rows) or disjoint random windows
    gradients   DistributedDataParallel averages them, so a step is one process's step on
                the N*B-row batch, up to the order of the float reductions
    evaluation  the held-out text's parallel streams are split by rows and gathered: the
                same log-probabilities one process computes
    decisions   rank 0 fits the mixture weight, keeps best/plateau and writes every file;
                stop conditions (a signal on any rank, the time budget) are agreed each step
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from charlm.errors import CharlmError, PeerFailed, UsageError

# A collective waits this long for a peer that is alive but silent (rank 0 fitting the count
# model on a big corpus); a peer that died is noticed at once, by its closed connection.
TIMEOUT = datetime.timedelta(minutes=15)
_PEER_GONE = ("connection closed by peer", "connection reset", "broken pipe", "timed out")


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank (0 = the writer) of `world` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def _device(self) -> torch.device:
        nccl = self.backend == "nccl"  # NCCL's collectives take CUDA tensors only
        return torch.device("cuda", self.local_rank) if nccl else torch.device("cpu")

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of world * batch_size rows."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        torch.distributed.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled: small things only)."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, device=self._device())
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather_rows(self, block: torch.Tensor, rows: int) -> torch.Tensor:
        """Every rank's block of `per_rank` rows -> the first `rows` rows of them all, in rank
        order. block (k, ...) with k <= per_rank rows; shorter blocks are padded."""
        if not self.active:
            return block
        per = -(-rows // self.world)
        padded = block.new_zeros((per, *block.shape[1:]))
        padded[: len(block)] = block
        padded = padded.to(self._device())
        out = [torch.empty_like(padded) for _ in range(self.world)]
        torch.distributed.all_gather(out, padded)
        return torch.cat([o.cpu() for o in out])[:rows]

    def stream_rows(self, rows: int) -> slice:
        """This rank's share of `rows` independent evaluation streams (may be empty)."""
        per = -(-rows // self.world)
        return slice(min(rows, self.rank * per), min(rows, (self.rank + 1) * per))

    def agree(
        self, loss: float, signum: int | None, done: float = 0.0
    ) -> tuple[float, int | None, float]:
        """One collective after each step: the mean of every process's loss, the signal any
        of them has (SIGTERM, the launcher stopping us, wins over SIGINT), and the mean of
        how far each thinks the run is (clocks differ a little; the learning rate must not)."""
        if not self.active:
            return loss, signum, done
        total, sigint, sigterm, dones = self.sum(
            [loss, float(signum == signal.SIGINT), float(signum == signal.SIGTERM), done]
        )
        agreed = signal.SIGTERM if sigterm else (signal.SIGINT if sigint else None)
        return total / self.world, agreed, dones / self.world

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one."""
        return self.sum([float(flag)])[0] > 0

    def my_rows(self, carry: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
        """This process's rows of a carried state saved whole: (L, world*B, H) -> (L, B, H);
        [] when none was saved or its rows are not world * batch_size."""
        if not carry or carry[0].shape[1] != batch_size * self.world:
            return []
        return [t[:, self.rows(batch_size)] for t in carry]

    def all_rows(self, carry: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
        """Every process's carried rows, in rank order, on the CPU: (L, B, H) tensors ->
        (L, world*B, H). A collective: every process calls it."""
        rows = batch_size * self.world
        out = [t.detach().transpose(0, 1).cpu() for t in carry]  # (B, L, H): rows first
        return [self.gather_rows(t, rows).transpose(0, 1) for t in out]

    def dropout_rng(self, rng: dict[str, Any], seed: int, step: int) -> torch.Tensor:
        """This process's torch generator state (dropout): its own saved one when the number
        of processes is unchanged; rank 0's single stream for one process; otherwise a fresh
        one from the seed, rank and step."""
        ranks = rng.get("torch_ranks")
        if ranks and len(ranks) == self.world:
            return ranks[self.rank]
        if self.main:
            return rng["torch"]
        g = torch.Generator()
        g.manual_seed((seed * 1_000_003 + self.rank * 7919 + step) % 2**63)
        return g.get_state()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module that trains: DistributedDataParallel over `model` when distributed
        (it broadcasts rank 0's weights now, and averages gradients in backward)."""
        if not self.active:
            return model
        ids = [self.local_rank] if self.backend == "nccl" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def agree_errors(self, error: CharlmError | None) -> None:
        """Called by every rank after a phase that may fail on some ranks: if any failed, each
        raises (its own error, or PeerFailed with the first failure's exit code and message)."""
        if not self.active:
            if error is not None:
                raise error
            return
        found = self.gather(None if error is None else (type(error).__name__, str(error),
                                                         error.exit_code))  # fmt: skip
        if error is not None:
            raise error
        for rank, f in enumerate(found):
            if f is not None:
                raise PeerFailed(rank, f[1], f[2])

    def stop(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


SINGLE = Dist()  # one process: every collective is the identity


def start(device_name: str) -> Dist:
    """Join the process group torchrun describes in the environment; Dist() without one."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    nccl = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if nccl:
        torch.cuda.set_device(local)
    try:
        torch.distributed.init_process_group("nccl" if nccl else "gloo", timeout=TIMEOUT)
    except (RuntimeError, ValueError) as e:
        raise UsageError(
            f"torchrun: could not join the process group ({str(e).splitlines()[0][:160]}); "
            "check --master-addr/--master-port and that every node runs the same command"
        ) from None
    return Dist(rank, world, local, "nccl" if nccl else "gloo")


@contextlib.contextmanager
def peer_failures(dist: Dist) -> Iterator[None]:
    """A collective that fails because another process died becomes PeerFailed (its own
    message, printed by that process, says why)."""
    try:
        yield
    except RuntimeError as e:
        text = str(e).lower()
        if not dist.active or not any(s in text for s in _PEER_GONE):
            raise
        raise PeerFailed(None, "it stopped or vanished (its own message says why)") from None
