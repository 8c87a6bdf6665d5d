"""Cluster resource requests for a training group, estimated from its shape.

The runtime estimate (train_seconds) aims at the time a job takes on the measured machine
(docs/benchmarks.md compares the two per width); the requests are deliberately generous on
top of it, since a job killed at its time or memory limit costs far more than an idle
reservation. A cluster profile can override them per rule
(`set-resources: {train_group: {runtime: ...}}`).
"""

from __future__ import annotations

import math

from doubledescent import architectures
from doubledescent.config import train_sizes
from doubledescent.data import SOURCES
from doubledescent.specs import TrainingSettings

# What a request adds to the estimate: cluster cores may be slower than the measured one and
# share their node; a job that still hits its limit is retried with twice as much.
RUNTIME_MARGIN = 3
STARTUP_MIN = 5  # interpreter, torch import, data load, SLURM job-step setup
BASE_MEM_MB = 1200  # measured ~830 MB peak for torch plus MNIST-1D at width 2, ~1 GB at 300
# Host memory of a CUDA context with cuBLAS/cuDNN loaded; a usual figure, not measured here.
CUDA_HOST_MEM_MB = 2000
# Rows per evaluation forward pass, train.predict's default and the memory estimate's: 1024
# keeps a wide MLP's activations in cache (width 300, 9 runs: 290 ms for the 12000 test
# samples against 500 ms in chunks of 4096) and bounds a conv net's memory on a GPU.
EVAL_CHUNK = 1024
# An MLP on the CPU takes fewer rows, so that a chunk's activations (every run and layer)
# stay within this many bytes: on a 2-core AMD EPYC VM (1 MB of L2 per core) the default
# sweep's 9-run groups evaluated 1.1-1.3x faster from width 80 on (width 300: 128 rows,
# 425 ms for 16000 samples against 543 ms in 1024) and no slower below (docs/benchmarks.md).
EVAL_BYTES = 1 << 22
EVAL_MIN_ROWS = 128
# A GPU: grouped convolutions of small widths reach a small fraction of an H100's peak, so
# assume 10 TFLOP/s and 10 ms per step (kernel launches of every layer, forward and backward).
# Not measured: no GPU was lent to the sessions that wrote this.
GPU_FLOP_PER_SECOND = 1e13
GPU_STEP_SECONDS = 0.01


def forward_macs(exp: dict, width: int) -> int:
    """Multiply-adds of one run's forward pass on one sample of the experiment's dataset."""
    source = SOURCES[exp["dataset"]["name"]]
    return architectures.forward_macs(exp["model"], width, source.shape, source.num_classes)


def job_size(runs: list) -> tuple[int, int, int | None]:
    """(width, runs, n_train) a training job's runs are costed at: a group's width, or for a
    pack (doubledescent.packing) its widest, since every run of a pack computes at that width
    (its zero-padding is real arithmetic). A pack pays a GPU's per-step launches once."""
    return max(r.width for r in runs), len(runs), runs[0].n_train


def train_seconds(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> float:
    """The seconds that training `n_runs` runs of one width on `n_train` samples (default:
    the largest size) takes, on one CPU thread like the measured ones or, with `gpu`, one
    GPU: forward+backward = 6 FLOP per multiply-add, evaluations (forward passes over the
    train, test and validation sets) 2, plus a fixed cost per gradient step. Under weight
    reuse or stopping at zero train error, runs may stop early: still the whole budget."""
    tr, ds = TrainingSettings.from_dict(exp["training"]), exp["dataset"]
    n = max(train_sizes(exp)) if n_train is None else n_train
    steps = tr.budget_steps(n)
    # Samples seen: steps x batch under a steps budget (whatever n is), else epochs x n.
    samples = n * tr.epochs if tr.steps is None else tr.steps * tr.batch_size
    evaluated = (n + ds["n_test"]) * len(tr.eval_step_list(n))
    flop = (6 * samples + 2 * evaluated) * forward_macs(exp, width) * n_runs
    if gpu:
        return flop / GPU_FLOP_PER_SECOND + steps * GPU_STEP_SECONDS
    cpu = architectures.family(exp["model"]["name"]).cpu  # measured per family
    return flop / cpu.flop_per_second + steps * cpu.step_seconds


def train_runtime_min(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> int:
    """Minutes to request for training `n_runs` runs of one width."""
    seconds = RUNTIME_MARGIN * train_seconds(exp, width, n_runs, n_train, gpu)
    return STARTUP_MIN + math.ceil(seconds / 60)


def train_priority(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> float:
    """Snakemake priority of a training job: its estimated cost, so the longest jobs start
    first and the short ones fill the gaps at the end, instead of one long job starting
    late and leaving the other cores idle while it finishes."""
    return train_seconds(exp, width, n_runs, n_train, gpu)


def activation_floats(exp: dict, width: int) -> int:
    """Floats of one run's activations alive at once in an evaluation pass, per sample (each
    family's own count: the MLP's layers, a conv net's widest maps)."""
    model = exp["model"]
    return architectures.family(model["name"]).activations(
        model, width, SOURCES[exp["dataset"]["name"]].shape
    )


def eval_rows(model: dict, width: int, n_runs: int, device_type: str) -> int:
    """Rows per evaluation forward pass (train.predict): EVAL_CHUNK, or for an MLP on the
    CPU the largest power of two whose activations fit in EVAL_BYTES, within [EVAL_MIN_ROWS,
    EVAL_CHUNK]. The logits are the same whatever the rows: each row is its own product."""
    family = architectures.family(model["name"])
    if device_type != "cpu" or family.inputs != "vector":
        return EVAL_CHUNK
    per_row = 4 * n_runs * family.activations(model, width, ())
    fitting = 1 << (max(EVAL_BYTES // per_row, 1).bit_length() - 1)
    return min(EVAL_CHUNK, max(EVAL_MIN_ROWS, fitting))


def train_mem_mb(exp: dict, width: int, n_runs: int, gpu: bool = False) -> int:
    """Host megabytes to request: the process (and CUDA's), three copies of the dataset as
    float32 (file, arrays, tensors), plus twice the eval activations on the CPU (on a GPU
    they live in its memory)."""
    ds = exp["dataset"]
    data = 3 * 4 * (max(train_sizes(exp)) + ds["n_test"]) * math.prod(SOURCES[ds["name"]].shape)
    activations = 0 if gpu else n_runs * EVAL_CHUNK * 4 * activation_floats(exp, width)
    base = BASE_MEM_MB + (CUDA_HOST_MEM_MB if gpu else 0)
    return base + math.ceil((data + 2 * activations) / 1e6)
