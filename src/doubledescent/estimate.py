"""`doubledescent estimate`: what a config will cost, before running it.

Per experiment, the training jobs and runs, their summed compute from the resource model
(`doubledescent.resources`, the estimate that sizes cluster jobs, so generous), and the wall
time on a number of cores when the longest jobs start first, as the workflow's priorities
make Snakemake do.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from doubledescent import config, gpus, resources
from doubledescent.progress import duration


@dataclass
class Cost:
    experiment: str
    jobs: int
    runs: int
    gpu: bool
    hours: float  # core-hours (one torch thread per job) or GPU-hours, summed over jobs
    wall_hours: float


def makespan(durations: list[float], slots: int) -> float:
    """The finishing time of `durations` on `slots` parallel workers, longest first."""
    free = [0.0] * max(slots, 1)
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def experiment_cost(
    name: str, exp: dict, cores: int, threads: int, gpu: bool, cards: int = 1
) -> Cost:
    """On GPUs, each job holds one of `cards` cards, and the others wait for a free one."""
    groups = config.groups(exp).values()
    seconds = [
        resources.train_seconds(exp, runs[0].width, len(runs), runs[0].n_train, gpu=gpu)
        for runs in groups
    ]
    slots = cards if gpu else cores // threads
    per_job = 1 if gpu else threads
    return Cost(
        experiment=name,
        jobs=len(seconds),
        runs=sum(len(runs) for runs in groups),
        gpu=gpu,
        hours=per_job * sum(seconds) / 3600,
        wall_hours=makespan(seconds, slots) / 3600,
    )


def costs(cfg: dict, cores: int) -> list[Cost]:
    """The cost of each experiment of a validated config, on the GPUs here where the config
    trains on CUDA (`device: cuda`, or `auto` on a machine with cards)."""
    gpu = bool(gpus.per_job(cfg["device"]))
    cards = max(1, len(gpus.visible()))
    return [
        experiment_cost(name, exp, cores, cfg["threads"], gpu, cards)
        for name, exp in cfg["experiments"].items()
    ]


def report(cfg: dict, cores: int) -> str:
    lines = []
    for c in costs(cfg, cores):
        unit, where = ("GPU-hours", "the GPUs here") if c.gpu else ("core-hours", f"{cores} cores")
        lines.append(
            f"{c.experiment}: {c.jobs} training jobs, {c.runs} runs, {c.hours:.3g} {unit},"
            f" about {duration(3600 * c.wall_hours)} on {where}"
        )
    lines.append(
        "(doubledescent.resources' estimate, which sizes cluster jobs: generous, an upper bound)"
    )
    return "\n".join(lines)
