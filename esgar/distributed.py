"""Data-parallel training across processes: PyTorch's `torchrun` launcher and
DistributedDataParallel, `gloo` on the CPU and `nccl` on CUDA.

    launch("pipeline.train", ["--params", "params.yaml"], processes=2)   # the stage's launcher
    ranks = Ranks.from_env()        # in each process torchrun started (world 1 outside torchrun)
    ranks.start(device)             # joins the process group; CUDA: this rank's GPU
    total = ranks.sum([loss, n])    # every rank gets the sums
    ranks.stop()

Outside torchrun `Ranks.from_env()` is one process of one (`world == 1`) and every method is a
no-op, so the single-process path is today's, unchanged.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from esgar.errors import EsgarError

__all__ = ["Ranks", "RankFailed", "launch", "under_torchrun"]

log = logging.getLogger(__name__)
# how long a rank waits for the others (a collective, the rendezvous) before failing; a rank
# that died is noticed by torchrun at once, this bounds a rank that hangs
TIMEOUT = timedelta(minutes=10)


class RankFailed(EsgarError):
    """A process of a data-parallel run failed; its own error was printed above."""


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets LOCAL_RANK and WORLD_SIZE)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: `rank` of `world`, `local_rank` on its
    machine. Only rank 0 (`main`) writes checkpoints, metrics, model.json and MLflow."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        if not under_torchrun():
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                   int(os.environ["LOCAL_RANK"]))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def start(self, device: torch.device) -> torch.device:
        """Join the process group (`nccl` for CUDA, `gloo` for the CPU); the device this rank
        computes on (CUDA: the GPU numbered by its local rank)."""
        if not self.parallel:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            cuda = device.type == "cuda"
            dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT,
                                    device_id=device if cuda else None)
        return device

    def stop(self) -> None:
        if self.parallel and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def sum(self, values: list[float]) -> list[float]:
        """The element-wise sum of `values` over the ranks (float64; every rank gets it)."""
        if not self.parallel:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.cpu().tolist()

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Every rank's copy of `model`'s buffers (batch-norm statistics) set to rank 0's."""
        if self.parallel:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every rank, in rank order (every rank gets the list)."""
        if not self.parallel:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _threads_per_process(processes: int) -> str:
    return str(max(1, (os.cpu_count() or 1) // processes))


def launch(module: str, argv: list[str], processes: int) -> None:
    """Run `python -m module *argv` as `processes` data-parallel processes on this machine
    (torchrun --standalone, in this process). Each gets an equal share of the CPU's threads
    unless OMP_NUM_THREADS is set. RankFailed names the first rank that failed and how; the
    rank's own error line is already on stderr."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", _threads_per_process(processes))
    args = get_args_parser().parse_args([
        "--standalone", "--nproc-per-node", str(processes), "--max-restarts", "0",
        "--module", module, *argv])
    log.info("%d processes (torchrun, %s threads each)", processes,
             os.environ["OMP_NUM_THREADS"])
    try:
        run(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode < 0:
            how = f"was killed by {signal.Signals(-failure.exitcode).name}"
        else:
            how = f"exited with code {failure.exitcode}"
        raise RankFailed(f"{module}: rank {rank} of {processes} {how} (its error, if it "
                         "printed one, is above); checkpoints are written atomically by rank 0, "
                         "so running the stage again resumes from the last finished epoch"
                         ) from None
