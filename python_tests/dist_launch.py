"""Spawning a multi-process `train` run for the distributed tests: each rank is a fresh process
with torchrun's environment variables (gloo on CPU, one thread), running `train` on a tiny config
with the deterministic LetterRewards; a rank's exception text is written to rank<N>.err."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import traceback
from pathlib import Path

import torch
from trainer_fakes import LetterRewards, tiny_config

from harmo_fast.trainer.run import train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, data_dir: str, out: str, overrides: list[str], resume: bool, die_at: int):
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)

    def maybe_die(step: int, metrics: dict) -> None:
        if rank == world - 1 and step == die_at:
            os._exit(3)  # a crash: no cleanup, no goodbye to the other ranks

    try:
        train(tiny_config(Path(data_dir), *overrides), out, resume=resume, rewards=LetterRewards(), on_step=maybe_die)
    except BaseException:
        Path(out, f"rank{rank}.err").write_text(traceback.format_exc())
        raise


def launch(
    world: int,
    data_dir: Path,
    out: Path,
    *overrides: str,
    resume: bool = False,
    die_at: int = 0,
    timeout: float = 300.0,
) -> list[int | None]:
    """Run `world` ranks to the end (or `timeout` seconds); their exit codes (None = still running, killed)."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [
        ctx.Process(target=_rank, args=(r, world, port, str(data_dir), str(out), list(overrides), resume, die_at))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    codes = []
    for p in procs:
        p.join(timeout)
        codes.append(p.exitcode)
        if p.exitcode is None:
            p.kill()
            p.join()
    return codes
