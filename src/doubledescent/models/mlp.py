"""The MLP: Linear -> [BatchNorm] -> ReLU -> [Dropout], `depth` hidden layers of width h."""

from __future__ import annotations

import math

import torch
from torch import nn

from doubledescent.models.layers import Mask, StackedBatchNorm, dropout, linear, uniform


class StackedMLP(nn.Module):
    """R MLPs of one shape: Linear -> [BatchNorm] -> ReLU -> [Dropout], repeated `depth` times.

    With `batchnorm_position="after_activation"` a layer is Linear -> ReLU -> BatchNorm instead.
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
        if init not in ("torch", "glorot_uniform"):
            raise ValueError(f"unknown init {init!r}")
        self.init = init
        if batchnorm_position not in ("before_activation", "after_activation"):
            raise ValueError(f"unknown batchnorm_position {batchnorm_position!r}")
        self.norm_after = batchnorm_position == "after_activation"
        sizes = [in_features] + [width] * depth + [num_classes]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_runs, a, b)) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n_runs, 1, b)) for b in sizes[1:])
        self.norms = nn.ModuleList(
            StackedBatchNorm(n_runs, width) if batchnorm else nn.Identity() for _ in range(depth)
        )

    @torch.no_grad()
    def init_run(self, run: int, generator: torch.Generator) -> None:
        """Initialize run `run` as nn.Linear does, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
        weights and biases; or Glorot-uniform, U(+-sqrt(6 / (fan_in + fan_out))) weights and
        zero biases (Glorot & Bengio 2010; Keras' default)."""
        for w, b in zip(self.weights, self.biases):
            fan_in, fan_out = w.shape[1:]
            if self.init == "glorot_uniform":
                w[run] = uniform(w.shape[1:], math.sqrt(6 / (fan_in + fan_out)), generator)
                b[run] = 0
                continue
            bound = 1 / math.sqrt(fan_in)
            w[run] = uniform(w.shape[1:], bound, generator)
            b[run] = uniform(b.shape[1:], bound, generator)

    def decayed_parameters(self) -> list[nn.Parameter]:
        """The parameters L2 applies to: weights, not biases or batchnorm scales and shifts."""
        return list(self.weights)

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, in) per-run batches, or (B, in) shared by all runs -> (R, B, classes)."""
        h = x
        for i, norm in enumerate(self.norms):
            z = linear(h, self.weights[i], self.biases[i])
            h = norm(torch.relu(z)) if self.norm_after else torch.relu(norm(z))
            h = dropout(h, mask)
        return linear(h, self.weights[-1], self.biases[-1])


def build(
    n_runs: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    batchnorm: bool,
    spec: dict,
) -> StackedMLP:
    return StackedMLP(
        n_runs,
        input_shape[0],
        width,
        spec["depth"],
        num_classes,
        batchnorm,
        spec["batchnorm_position"],
        spec.get("init", "torch"),  # absent at the default: older specs stay as they were
    )
