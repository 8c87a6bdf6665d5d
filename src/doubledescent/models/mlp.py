"""The MLP: Linear -> [BatchNorm] -> ReLU -> [Dropout], `depth` hidden layers of width h."""

from __future__ import annotations

import torch
from torch import nn

from doubledescent.models.layers import Mask, StackedBatchNorm, StackedLinear, StackedNetwork


class StackedMLP(StackedNetwork):
    """R MLPs of one shape: Linear -> [BatchNorm] -> ReLU -> [Dropout], repeated `depth` times.

    With `batchnorm_position="after_activation"` a layer is Linear -> ReLU -> BatchNorm instead.
    A run's init draws layer by layer, each layer's weights and then its biases
    (layers.StackedLinear, `init` "torch" or "glorot_uniform"); L2 decays the weights.
    """

    def __init__(
        self,
        n_runs: int,
        in_features: int,
        width: int,
        depth: int,
        num_classes: int,
        batchnorm: bool = False,
        batchnorm_position: str = "before_activation",
        init: str = "torch",
    ):
        super().__init__()
        if batchnorm_position not in ("before_activation", "after_activation"):
            raise ValueError(f"unknown batchnorm_position {batchnorm_position!r}")
        self.norm_after = batchnorm_position == "after_activation"
        sizes = [in_features] + [width] * depth + [num_classes]
        self.linears = nn.ModuleList(
            StackedLinear(n_runs, a, b, init) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.norms = nn.ModuleList(
            StackedBatchNorm(n_runs, width) if batchnorm else nn.Identity() for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, in) per-run batches, or (B, in) shared by all runs -> (R, B, classes)."""
        h = x
        for linear, norm in zip(self.linears, self.norms):
            z = linear(h)
            h = norm(torch.relu(z)) if self.norm_after else torch.relu(norm(z))
            if mask is not None:
                h = h * mask(h.shape[1:])
        return self.linears[-1](h)


def options(spec: dict) -> dict:
    """The MLP's options in the config's model section, as both builders read them."""
    return {
        "depth": spec["depth"],
        "batchnorm_position": spec["batchnorm_position"],
        "init": spec.get("init", "torch"),  # absent at the default: older specs stay as they were
    }


def build(*, n_runs, input_shape, num_classes, width, batchnorm, spec) -> StackedMLP:
    return StackedMLP(
        n_runs, input_shape[0], width, num_classes=num_classes, batchnorm=batchnorm, **options(spec)
    )
