"""Pre-activation ResNet18 (He et al. 2016) with widths [k, 2k, 4k, 8k], stacked over runs.

The architecture of kuangliu/pytorch-cifar's PreActResNet18, which Nakkiran et al. (2019)
scale by k (k = 64 is the standard network). Without batchnorm each BN is the identity;
dropout sits between a block's two convolutions, as in wide ResNets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from doubledescent import architectures
from doubledescent.models import layers
from doubledescent.models.layers import GroupedConv, Mask, StackedLinear, StackedNetwork

STAGES = architectures.RESNET18_STAGES  # (width multiple, stride of its first block)
BLOCKS_PER_STAGE = 2


class PreActBlock(nn.Module):
    """BN -> ReLU -> conv3x3 (stride) -> BN -> ReLU -> [dropout] -> conv3x3, plus the input,
    through a 1x1 conv of the pre-activation when the shape changes."""

    def __init__(self, n_runs: int, c_in: int, c_out: int, stride: int, batchnorm: bool):
        super().__init__()
        self.n_runs = n_runs
        self.norm1 = layers.batchnorm_or_identity(n_runs, c_in, batchnorm)
        self.conv1 = GroupedConv(n_runs, c_in, c_out, 3, stride, 1, bias=False)
        self.norm2 = layers.batchnorm_or_identity(n_runs, c_out, batchnorm)
        self.conv2 = GroupedConv(n_runs, c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            GroupedConv(n_runs, c_in, c_out, 1, stride, bias=False)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, h: torch.Tensor, mask: Mask | None) -> torch.Tensor:
        pre = torch.relu(self.norm1(h))
        skip = h if self.shortcut is None else self.shortcut(pre)
        mid = layers.dropout(torch.relu(self.norm2(self.conv1(pre))), mask, self.n_runs)
        return self.conv2(mid) + skip


class PreActResNet18(StackedNetwork):
    """conv3x3 (k, no bias) -> 4 stages of 2 PreActBlocks -> global average pool -> Linear."""

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
        self.stem = GroupedConv(n_runs, input_shape[0], width, 3, 1, 1, bias=False)
        blocks, c_in = [], width
        for multiple, stride in STAGES:
            for b in range(BLOCKS_PER_STAGE):
                c_out = multiple * width
                blocks.append(PreActBlock(n_runs, c_in, c_out, stride if b == 0 else 1, batchnorm))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = StackedLinear(n_runs, c_in, num_classes)

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, C, H, W) per-run batches or (B, C, H, W) shared -> (R, B, classes)."""
        h = self.stem(layers.to_groups(x, self.n_runs, 3))
        for block in self.blocks:
            h = block(h, mask)
        # kuangliu's avg_pool2d(4) on 32x32 inputs is the global average: any size here.
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return self.head(layers.from_groups(h, self.n_runs))


def build(*, n_runs, input_shape, num_classes, width, batchnorm, spec) -> PreActResNet18:
    return PreActResNet18(n_runs, input_shape, width, num_classes, batchnorm)
