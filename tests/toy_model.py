"""A toy model family that tests/test_registry.py registers, to show that a model is its
network module plus one `Family` record: nothing else in the package names it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from doubledescent.architectures import CpuSpeed, Family
from doubledescent.models.layers import Mask, StackedLinear, StackedNetwork


class PooledTanh(StackedNetwork):
    """The mean of each pair of neighbouring inputs, then `depth` tanh layers of `width`,
    then the head."""

    def __init__(self, n_runs: int, in_features: int, width: int, depth: int, num_classes: int):
        super().__init__()
        sizes = [in_features // 2] + [width] * depth + [num_classes]
        self.linears = nn.ModuleList(
            StackedLinear(n_runs, a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        h = F.avg_pool1d(x, 2)
        for linear in self.linears[:-1]:
            h = torch.tanh(linear(h))
            if mask is not None:
                h = h * mask(h.shape[1:])
        return self.linears[-1](h)


def build(*, n_runs, input_shape, num_classes, width, batchnorm, spec) -> PooledTanh:
    if batchnorm:
        raise ValueError("the toy model has no batchnorm")
    return PooledTanh(n_runs, input_shape[0], width, spec["depth"], num_classes)


def macs(model: dict, width: int, shape: tuple[int, ...], classes: int) -> int:
    return shape[0] // 2 * width + (model["depth"] - 1) * width * width + width * classes


# No cost per step, so that its runtime estimate is its multiply-adds' alone.
FAMILY = Family(
    "pooled_tanh",
    "vector",
    macs,
    "tests.toy_model:build",
    CpuSpeed(1e10, 0.0),
    "h",
    "a toy network of {depth} tanh layers of width h",
    reads=("model.depth",),
)
