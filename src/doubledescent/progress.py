"""A training job's progress at a steady rate, whatever its evaluation schedule.

Training calls `Watch.step()` after every gradient step. It only counts and reads the clock
(no device sync, so a GPU's queue of kernels keeps flowing); every `every` seconds it logs a
line with the epoch, the time spent and an ETA, and writes the same as a small JSON file
beside the group's checkpoint, which `doubledescent status` reads.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from doubledescent.io import write_json
from doubledescent.provenance import now


def path_for(checkpoint: str | Path) -> Path:
    """The progress file of the job whose checkpoint is at `checkpoint`."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".progress.json")


def read(path: str | Path) -> dict | None:
    """A job's last progress record, or None before its first (or after it finished)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def duration(seconds: float) -> str:
    """Seconds as e.g. 45s, 12m05s or 3h07m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Watch:
    """Counts a job's gradient steps and reports every `every` seconds (0: never).

    `epoch` and `elapsed` are where a resumed job starts; the ETA extrapolates the speed
    of this process only, so a resume's startup does not distort it.
    """

    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        every: float,
        log=print,
        path: str | Path | None = None,
        epoch: int = 0,
        elapsed: float = 0.0,
        clock=time.perf_counter,
    ):
        self.epochs, self.steps_per_epoch, self.every = epochs, steps_per_epoch, every
        self.log, self.path, self.clock = log, path, clock
        self.steps = self.first = epoch * steps_per_epoch
        self.elapsed = elapsed
        self.start = clock()
        self.due = self.start + every if every else float("inf")

    def step(self) -> None:
        self.steps += 1
        if self.clock() >= self.due:
            self.report()

    def report(self, log: bool = True) -> None:
        """Write the progress file now and, with `log`, the progress line (unless `every`
        is 0)."""
        if not self.every:
            return
        t = self.clock()
        self.due = t + self.every
        total = self.epochs * self.steps_per_epoch
        done = self.steps - self.first
        eta = (t - self.start) / done * (total - self.steps) if done else None
        record = {
            "epoch": self.steps / self.steps_per_epoch,
            "epochs": self.epochs,
            "elapsed": self.elapsed + t - self.start,
            "eta": eta,
            "updated": now(),
            # Who writes it and how often: `doubledescent status` tells a stopped job by them.
            "host": platform.node(),
            "pid": os.getpid(),
            "every": self.every,
        }
        if log:
            self.log(line(record))
        if self.path:
            write_json(record, self.path)


def line(record: dict) -> str:
    eta = "?" if record["eta"] is None else duration(record["eta"])
    return (
        f"progress: epoch {record['epoch']:.1f}/{record['epochs']:g}"
        f"  elapsed {duration(record['elapsed'])}  eta {eta}"
    )
