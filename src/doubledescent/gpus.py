"""Which GPU a training job trains on: one card per job, claimed atomically.

Snakemake's `gpu` resource bounds how many GPU jobs run at once, but not which card each
takes: without this, every process would use CUDA's device 0. A job claims the first free
card by an exclusive lock on that card's lock file and exports it as CUDA_VISIBLE_DEVICES
before CUDA starts. The operating system drops the lock when the process ends, however it
ends, so a killed job never leaves a card taken. Torch-free: Snakemake asks while it parses.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")  # one entry per card the driver sees
POLL_SECONDS = 1.0


def visible(env=os.environ, proc: Path = NVIDIA_PROC) -> list[str]:
    """The cards this process may use, as CUDA device indices: CUDA_VISIBLE_DEVICES's entries
    where it is set (a scheduler such as SLURM sets it to the job's cards), else one per card
    the NVIDIA driver lists."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return [str(i) for i in range(len(list(proc.iterdir())))] if proc.is_dir() else []


def lock_dir() -> Path:
    """Per machine and user, not under results/: on a cluster the results folder is shared
    between nodes, and each node's cards are its own."""
    return Path(tempfile.gettempdir()) / f"doubledescent-gpus-{os.getuid()}"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def claim(cards: list[str], folder: Path | None = None, log=print) -> Iterator[str]:
    """Hold one of `cards` until the block ends; wait while all are held by other jobs (more
    GPU jobs were started than there are cards: `--resources gpu=N` prevents that)."""
    folder = folder or lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for card in cards:
            fd = _try_lock(folder / f"{card}.lock")
            if fd is not None:
                try:
                    yield card
                finally:
                    os.close(fd)  # closing the descriptor releases the lock
                return
        if not waiting:
            log(f"all {len(cards)} GPUs are taken by other jobs; waiting for one")
            waiting = True
        time.sleep(POLL_SECONDS)


@contextmanager
def one_card_per_job(device: str, log=print) -> Iterator[None]:
    """For a job on CUDA (`device` cuda, or auto with a card present) with several visible
    cards: claim one and make it the only one CUDA sees. Elsewhere nothing changes."""
    cards = visible()
    if device == "cpu" or len(cards) < 2:
        yield
        return
    with claim(cards, log=log) as card:
        os.environ["CUDA_VISIBLE_DEVICES"] = card  # read by CUDA when it starts, not before
        log(f"training on GPU {card} of {','.join(cards)}")
        yield


def per_job(device: str) -> int:
    """GPUs a training job asks Snakemake (and SLURM) for: one where it trains on CUDA, that is
    with `device: cuda`, or `auto` on a machine with a card."""
    return int(device == "cuda" or (device == "auto" and bool(visible())))


def default_limit(device: str) -> int:
    """How many GPU jobs may run at once where the user gave no `--resources gpu=N`: one per
    visible card (0: no limit to set, no GPU job or no card here)."""
    return len(visible()) if per_job(device) else 0
