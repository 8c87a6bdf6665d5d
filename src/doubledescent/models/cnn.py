"""Convolutional nets of the double-descent literature, stacked over runs.

`CNN5` is Nakkiran et al.'s (2019) five-layer CNN of width c; `MNIST1DCNN` is Greydanus &
Kobak's (2024) ConvBase for MNIST-1D, `width` its channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from doubledescent import architectures
from doubledescent.models import layers
from doubledescent.models.layers import GroupedConv, Mask, StackedLinear, StackedNetwork


class CNN5(StackedNetwork):
    """conv3x3 (c, 2c, 4c, 8c) each -> [BN] -> ReLU, max-pool 2 after the last three,
    [dropout] after each block; a global max pool (MaxPool 4 on 32x32 inputs, any size here)
    and Linear(8c -> classes)."""

    def __init__(
        self,
        n_runs: int,
        input_shape: tuple[int, ...],
        width: int,
        num_classes: int,
        batchnorm: bool = False,
    ):
        super().__init__()
        self.n_runs = n_runs
        channels = [input_shape[0], width, 2 * width, 4 * width, 8 * width]
        self.convs = nn.ModuleList(
            GroupedConv(n_runs, a, b, 3, padding=1) for a, b in zip(channels[:-1], channels[1:])
        )
        self.norms = nn.ModuleList(
            layers.batchnorm_or_identity(n_runs, c, batchnorm) for c in channels[1:]
        )
        self.head = StackedLinear(n_runs, channels[-1], num_classes)

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, C, H, W) per-run batches or (B, C, H, W) shared -> (R, B, classes)."""
        h = layers.to_groups(x, self.n_runs, 3)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = torch.relu(norm(conv(h)))
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = layers.dropout(h, mask, self.n_runs)
        h = F.adaptive_max_pool2d(h, 1).flatten(1)
        return self.head(layers.from_groups(h, self.n_runs))


class MNIST1DCNN(StackedNetwork):
    """Conv1d(1, c, 5, stride 2, pad 1), then two Conv1d(c, c, 3, stride 2, pad 1), each ->
    [BN] -> ReLU -> [dropout]; flatten, Linear(c * length -> classes)."""

    KERNELS = architectures.MNIST1D_CNN_KERNELS  # the resource model's too

    def __init__(
        self,
        n_runs: int,
        input_shape: tuple[int, ...],
        width: int,
        num_classes: int,
        batchnorm: bool = False,
    ):
        super().__init__()
        self.n_runs = n_runs
        c_in, length = input_shape
        self.convs = nn.ModuleList()
        for k in self.KERNELS:
            self.convs.append(GroupedConv(n_runs, c_in, width, k, stride=2, padding=1, dims=1))
            c_in, length = width, architectures.conv_out(length, k, 2, 1)
        self.norms = nn.ModuleList(
            layers.batchnorm_or_identity(n_runs, width, batchnorm) for _ in self.KERNELS
        )
        self.head = StackedLinear(n_runs, width * length, num_classes)

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, 1, L) per-run batches or (B, 1, L) shared -> (R, B, classes)."""
        h = layers.to_groups(x, self.n_runs, 2)
        for conv, norm in zip(self.convs, self.norms):
            h = layers.dropout(torch.relu(norm(conv(h))), mask, self.n_runs)
        # Run r's features are its channels' (C, L) block, flattened as nn.Flatten does.
        return self.head(layers.from_groups(h.flatten(1), self.n_runs))


# The builders of the registry (doubledescent.architectures); the nets have no options.


def build_cnn5(*, n_runs, input_shape, num_classes, width, batchnorm, spec) -> CNN5:
    return CNN5(n_runs, input_shape, width, num_classes, batchnorm)


def build_mnist1d_cnn(*, n_runs, input_shape, num_classes, width, batchnorm, spec) -> MNIST1DCNN:
    return MNIST1DCNN(n_runs, input_shape, width, num_classes, batchnorm)
