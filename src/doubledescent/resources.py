"""Cluster resource requests for a training group, estimated from its shape.

The estimates are deliberately generous: a job killed at its time or memory limit costs far
more than an idle reservation. A cluster profile can override them per rule
(`set-resources: {train_group: {runtime: ...}}`).
"""

from __future__ import annotations

import math

# One torch thread sustained ~12 GFLOP/s on these shapes (2-core x86 VM, width 300, 9 runs);
# assume 4, for slower cluster cores, evaluation passes and per-step overhead.
FLOP_PER_SECOND = 4e9
STARTUP_MIN = 5  # interpreter, torch import, data load, SLURM job-step setup
BASE_MEM_MB = 1000  # measured ~830 MB peak for torch plus MNIST-1D at width 2
# Host memory of a CUDA context with cuBLAS/cuDNN loaded; a usual figure, not measured here.
CUDA_HOST_MEM_MB = 2000
EVAL_CHUNK = 4096  # rows per evaluation forward pass (train.predict's default)


def approx_params(width: int, depth: int) -> int:
    """Weights of an MLP with `depth` hidden layers; inputs+outputs taken as at most 100."""
    return (depth - 1) * width * width + 100 * width


def train_seconds(exp: dict, width: int, n_runs: int, n_train: int | None = None) -> float:
    """A pessimistic estimate of the seconds training `n_runs` runs of one width takes on
    `n_train` samples (default: the experiment's single size); forward+backward = 6 FLOP
    per weight and sample."""
    n_train = exp["dataset"]["n_train"] if n_train is None else n_train
    flop = 6 * approx_params(width, exp["model"]["depth"]) * n_train
    return flop * exp["training"]["epochs"] * n_runs / FLOP_PER_SECOND


def train_runtime_min(exp: dict, width: int, n_runs: int, n_train: int | None = None) -> int:
    """Minutes to request for training `n_runs` runs of one width."""
    return STARTUP_MIN + math.ceil(train_seconds(exp, width, n_runs, n_train) / 60)


def train_priority(exp: dict, width: int, n_runs: int, n_train: int | None = None) -> float:
    """Snakemake priority of a training job: its estimated cost, so the longest jobs start
    first and the short ones fill the gaps at the end, instead of one long job starting
    late and leaving the other cores idle while it finishes."""
    return train_seconds(exp, width, n_runs, n_train)


def train_mem_mb(exp: dict, width: int, n_runs: int, gpu: bool = False) -> int:
    """Host megabytes to request: the process (and CUDA's), plus twice the eval activations."""
    activations = n_runs * EVAL_CHUNK * width * 4 * (exp["model"]["depth"] + 1)
    base = BASE_MEM_MB + (CUDA_HOST_MEM_MB if gpu else 0)
    return base + math.ceil(2 * activations / 1e6)
