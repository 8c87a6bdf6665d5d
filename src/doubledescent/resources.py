"""Cluster resource requests for a training group, estimated from its shape.

The estimates are deliberately generous: a job killed at its time or memory limit costs far
more than an idle reservation. A cluster profile can override them per rule
(`set-resources: {train_group: {runtime: ...}}`).
"""

from __future__ import annotations

import math

from doubledescent.config import budget_steps, train_sizes
from doubledescent.data import SOURCES

# One torch thread sustained ~12 GFLOP/s on these shapes (2-core x86 VM, width 300, 9 runs);
# assume 4, for slower cluster cores, evaluation passes and per-step overhead.
FLOP_PER_SECOND = 4e9
STARTUP_MIN = 5  # interpreter, torch import, data load, SLURM job-step setup
BASE_MEM_MB = 1200  # measured ~830 MB peak for torch plus MNIST-1D at width 2, ~1 GB at 300
# Host memory of a CUDA context with cuBLAS/cuDNN loaded; a usual figure, not measured here.
CUDA_HOST_MEM_MB = 2000
# Rows per evaluation forward pass, train.predict's default and the memory estimate's: 1024
# keeps a wide MLP's activations in cache (width 300, 9 runs: 290 ms for the 12000 test
# samples against 500 ms in chunks of 4096) and bounds a conv net's memory on a GPU.
EVAL_CHUNK = 1024
# A GPU: grouped convolutions of small widths reach a small fraction of an H100's peak, so
# assume 10 TFLOP/s and 10 ms per step (kernel launches of every layer, forward and backward).
GPU_FLOP_PER_SECOND = 1e13
GPU_STEP_SECONDS = 0.01


def approx_params(width: int, depth: int) -> int:
    """Weights of an MLP with `depth` hidden layers; inputs+outputs taken as at most 100."""
    return (depth - 1) * width * width + 100 * width


def forward_macs(exp: dict, width: int) -> int:
    """Multiply-adds of one run's forward pass on one sample: a weight's for the MLP, a
    convolution's weights times its output positions for the conv nets (biases, BN, pooling
    and the linear head left out)."""
    model, shape = exp["model"]["name"], SOURCES[exp["dataset"]["name"]].shape
    if model == "mlp":
        return approx_params(width, exp["model"]["depth"])
    if model == "mnist1d_cnn":  # lengths after convs of kernel 5, 3, 3, stride 2, padding 1
        l1 = (shape[0] - 3) // 2 + 1
        l2 = (l1 - 1) // 2 + 1
        l3 = (l2 - 1) // 2 + 1
        return l1 * 5 * width + (l2 + l3) * 3 * width * width
    channels, pixels = shape[0], math.prod(shape[1:])
    # cnn5: 9 (2c^2 at full size, 8c^2 at 1/4, 32c^2 at 1/16) = 54 c^2 per pixel.
    # ResNet18: stage 1 4 x 9 k^2; stages 2-4 each (9 x 2 + 27 x 4 + 2) k^2 / 4 per doubling
    # of channels and halving of size = 32 k^2; 36 + 3 x 32 = 132 k^2 per pixel.
    per_pixel = {"cnn5": 54, "preact_resnet18": 132}[model]
    return pixels * (9 * channels * width + per_pixel * width * width)


def train_seconds(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> float:
    """A pessimistic estimate of the seconds training `n_runs` runs of one width takes on
    `n_train` samples (default: its largest size), on CPU threads or, with
    `gpu`, one GPU; forward+backward = 6 FLOP per multiply-add. Under weight reuse or
    stopping at zero train error, runs may stop early: still the whole budget."""
    tr = exp["training"]
    n = max(train_sizes(exp)) if n_train is None else n_train
    # Samples seen: steps x batch under a steps budget (whatever n is), else epochs x n.
    samples = tr["steps"] * tr["batch_size"] if "steps" in tr else n * tr["epochs"]
    flop = 6 * forward_macs(exp, width) * samples * n_runs
    if gpu:
        return flop / GPU_FLOP_PER_SECOND + budget_steps(tr, n) * GPU_STEP_SECONDS
    return flop / FLOP_PER_SECOND


def train_runtime_min(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> int:
    """Minutes to request for training `n_runs` runs of one width."""
    return STARTUP_MIN + math.ceil(train_seconds(exp, width, n_runs, n_train, gpu) / 60)


def train_priority(
    exp: dict, width: int, n_runs: int, n_train: int | None = None, gpu: bool = False
) -> float:
    """Snakemake priority of a training job: its estimated cost, so the longest jobs start
    first and the short ones fill the gaps at the end, instead of one long job starting
    late and leaving the other cores idle while it finishes."""
    return train_seconds(exp, width, n_runs, n_train, gpu)


def activation_floats(exp: dict, width: int) -> int:
    """Floats of one run's activations alive at once in an evaluation pass, per sample: the
    MLP's layers; for the conv nets a few maps of the widest layer (2c or k channels at full
    size, input and output of a layer or block)."""
    model = exp["model"]["name"]
    if model == "mlp":
        return width * (exp["model"]["depth"] + 1)
    return 4 * width * math.prod(SOURCES[exp["dataset"]["name"]].shape[1:])


def train_mem_mb(exp: dict, width: int, n_runs: int, gpu: bool = False) -> int:
    """Host megabytes to request: the process (and CUDA's), three copies of the dataset as
    float32 (file, arrays, tensors), plus twice the eval activations on the CPU (on a GPU
    they live in its memory)."""
    ds = exp["dataset"]
    data = 3 * 4 * (max(train_sizes(exp)) + ds["n_test"]) * math.prod(SOURCES[ds["name"]].shape)
    activations = 0 if gpu else n_runs * EVAL_CHUNK * 4 * activation_floats(exp, width)
    base = BASE_MEM_MB + (CUDA_HOST_MEM_MB if gpu else 0)
    return base + math.ceil((data + 2 * activations) / 1e6)
