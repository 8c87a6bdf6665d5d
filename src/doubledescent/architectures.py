"""The model registry: one torch-free `Family` record per model family, which config, the
schema check, the resource estimates, packing, captions and training all read. Snakemake
imports it while it builds the DAG, so it never imports torch; the networks themselves are in
doubledescent.models, and a record names its builder as "module:function", imported only to
train. Adding a model is a network module plus one record in FAMILIES.

tests/test_resources.py counts the networks' multiply-adds against the records' formulas.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

# Input layouts: `vector` flattens any dataset, `image` needs (C, H, W) images, `sequence`
# MNIST-1D's 1-D signals (as one channel).
LAYOUTS = ("vector", "image", "sequence")


@dataclass(frozen=True)
class CpuSpeed:
    """One torch thread's throughput on a model family: FLOP/s of its weights' multiply-adds
    and a fixed cost per gradient step (kernel dispatch, optimizer, masks, Python)."""

    flop_per_second: float
    step_seconds: float


def feature_maps(model: dict, width: int, sample_shape: tuple[int, ...]) -> int:
    """Floats of one run's activations alive at once in an evaluation pass, per sample, for a
    conv net: a few maps of the widest layer (2c or k channels at full size, input and output
    of a layer or block)."""
    return 4 * width * math.prod(sample_shape[1:])


@dataclass(frozen=True)
class Family:
    """What the pipeline knows about a model family besides its network."""

    name: str  # the config's model.name
    inputs: str  # one of LAYOUTS
    # Multiply-adds of the weights (convolutions and linear layers; biases, batchnorm,
    # pooling and activations left out) of one run's forward pass on one sample:
    # (model section, width, the model's input shape, classes) -> count.
    macs: Callable[[dict, int, tuple[int, ...], int], int]
    # "module:function" of build(*, n_runs, input_shape, num_classes, width, batchnorm, spec),
    # which returns the stacked network (doubledescent.models says what it provides).
    builder: str
    cpu: CpuSpeed  # measured speed on the reference CPU (doubledescent.resources)
    symbol: str  # the width's symbol in captions
    description: str  # the network in a caption, formatted with the model section
    # The config keys ("section.key") that only some families read and this one does; in
    # other families' specs they are left out or refused (doubledescent.config).
    reads: tuple[str, ...] = ()
    # "module:function" of build(*, widths, batchnorms, input_shape, num_classes, spec), one
    # zero-padded stack of runs of several widths (doubledescent.packing); None: no packing.
    padded_builder: str | None = None
    # (model section, width, dataset sample shape) -> activation floats per sample and run.
    activations: Callable[[dict, int, tuple[int, ...]], int] = feature_maps

    def input_shape(self, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one sample as this family takes it, from the dataset's sample shape."""
        if self.inputs == "vector":  # images (C, H, W) flatten to C*H*W
            return (math.prod(sample_shape),)
        if self.inputs == "sequence":  # MNIST-1D's (L,) signals become one channel
            return (1, math.prod(sample_shape))
        return tuple(sample_shape)


def load(path: str) -> Callable:
    """The function that a "module:function" path names (this imports its module)."""
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """A convolution's output length along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _mlp(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """`depth` hidden layers of `width` on the flattened input, then the head."""
    return shape[0] * width + (model["depth"] - 1) * width * width + width * classes


def _mlp_activations(model: dict, width: int, sample_shape: tuple[int, ...]) -> int:
    return width * (model["depth"] + 1)


def _cnn5(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """conv3x3 (padding 1) to c, 2c, 4c, 8c channels, a max-pool 2 after each of the last
    three (so the third and fourth run on maps of 1/4 and 1/16 the pixels), head 8c."""
    channels = [shape[0], width, 2 * width, 4 * width, 8 * width]
    (h, w), macs = shape[1:], 0
    for i in range(4):
        macs += 9 * channels[i] * channels[i + 1] * h * w
        if i > 0:
            h, w = h // 2, w // 2
    return macs + channels[-1] * classes


RESNET18_STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))  # (width multiple, first block's stride)


def _preact_resnet18(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """Stem conv3x3 to k, then per stage two blocks of two conv3x3 (the first of a stage
    strided, with a 1x1 shortcut where the shape changes), head 8k."""
    (h, w), c_in = shape[1:], width
    macs = 9 * shape[0] * width * h * w
    for multiple, stride in RESNET18_STAGES:
        for s in (stride, 1):
            c_out = multiple * width
            h, w = conv_out(h, 3, s, 1), conv_out(w, 3, s, 1)
            macs += 9 * (c_in + c_out) * c_out * h * w
            if s != 1 or c_in != c_out:
                macs += c_in * c_out * h * w
            c_in = c_out
    return macs + c_in * classes


MNIST1D_CNN_KERNELS = (5, 3, 3)  # each with stride 2 and padding 1


def _mnist1d_cnn(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    """Three Conv1d of `width` channels, then the head on the flattened maps."""
    (c_in, length), macs = shape, 0
    for k in MNIST1D_CNN_KERNELS:
        length = conv_out(length, k, 2, 1)
        macs += c_in * width * k * length
        c_in = width
    return macs + width * length * classes


# CPU speeds, measured on the 2-core AVX-512 VM of docs/benchmarks.md, one thread per job. The
# MLP: the default experiment's 14 measured widths fit 73 GFLOP/s + 0.33 ms a step to within
# 20%; rounded down/up here. The conv nets: 3 runs on MNIST-1D (widths 8, 64) and digits
# (4, 32), 2026-12-01, on the VM shared with other jobs (load ~2 per core, so these err long);
# the ResNet, unmeasured, has 4x cnn5's layers per step.
FAMILIES = {
    family.name: family
    for family in (
        Family(
            "mlp",
            "vector",
            _mlp,
            "doubledescent.models.mlp:build",
            CpuSpeed(6e10, 3.5e-4),
            "h",
            "an MLP with {depth} hidden layers of width h",
            reads=(
                "model.depth",
                "model.batchnorm_position",
                "model.init",
                "training.weight_reuse",
            ),
            padded_builder="doubledescent.models.padded:build",
            activations=_mlp_activations,
        ),
        Family(
            "cnn5",
            "image",
            _cnn5,
            "doubledescent.models.cnn:build_cnn5",
            CpuSpeed(3.5e10, 1.5e-2),
            "c",
            "Nakkiran et al.'s 5-layer CNN with c, 2c, 4c, 8c channels",
        ),
        Family(
            "preact_resnet18",
            "image",
            _preact_resnet18,
            "doubledescent.models.resnet:build",
            CpuSpeed(3.5e10, 6e-2),
            "k",
            "a pre-activation ResNet18 with k, 2k, 4k, 8k channels",
        ),
        Family(
            "mnist1d_cnn",
            "sequence",
            _mnist1d_cnn,
            "doubledescent.models.cnn:build_mnist1d_cnn",
            CpuSpeed(3.5e10, 4e-3),
            "c",
            "Greydanus & Kobak's MNIST-1D CNN with c channels per layer",
        ),
    )
}


def family(name: str) -> Family:
    """The registered family `name`."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def input_shape(name: str, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one sample as model `name` takes it, from the dataset's sample shape."""
    return family(name).input_shape(sample_shape)


def forward_macs(model: dict, width: int, sample_shape: tuple[int, ...], classes: int) -> int:
    """Multiply-adds of one run's forward pass on one sample of the dataset's shape."""
    fam = family(model["name"])
    return fam.macs(model, width, fam.input_shape(sample_shape), classes)
