"""Models whose parameters are stacked over runs, so one process trains many at once.

A stack of R networks of the same shape holds each weight as an (R, fan_in, fan_out)
tensor and runs every layer as one batched matmul. Each run keeps its own initialization,
dropout rate and batchnorm statistics; nothing is shared between runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp_n_params(in_features: int, width: int, depth: int, num_classes: int,
                 batchnorm: bool = False) -> int:
    """Parameters of one MLP in -> width (x depth) -> classes; batchnorm adds scale and shift."""
    sizes = [in_features] + [width] * depth + [num_classes]
    linear = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return linear + (2 * width * depth if batchnorm else 0)


def _uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h @ w + b per run; per-run batches take one fused baddbmm, shared inputs broadcast."""
    if h.dim() == 3:
        return torch.baddbmm(b, h, w)
    return torch.matmul(h, w) + b


class StackedBatchNorm(nn.Module):
    """BatchNorm1d for R independent runs: statistics over each run's own minibatch."""

    def __init__(self, n_runs: int, width: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_runs, 1, width))
        self.bias = nn.Parameter(torch.zeros(n_runs, 1, width))
        self.register_buffer("running_mean", torch.zeros(n_runs, 1, width))
        self.register_buffer("running_var", torch.ones(n_runs, 1, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        runs, batch, width = h.shape
        # Each (run, unit) pair is one BatchNorm channel, so one call of the fused kernel
        # normalizes every run over its own minibatch, with nn.BatchNorm1d's exact semantics
        # (biased variance to normalize, unbiased to track; in-place running statistics).
        flat = h.transpose(0, 1).reshape(batch, runs * width)
        out = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1),
                           self.weight.view(-1), self.bias.view(-1), self.training,
                           self.momentum, self.eps)
        return out.view(batch, runs, width).transpose(0, 1)


class StackedMLP(nn.Module):
    """R MLPs of one shape: Linear -> [BatchNorm] -> ReLU -> [Dropout], repeated `depth` times.

    With `batchnorm_position="after_activation"` a layer is Linear -> ReLU -> BatchNorm instead.
    """

    def __init__(self, n_runs: int, in_features: int, width: int, depth: int,
                 num_classes: int, batchnorm: bool = False,
                 batchnorm_position: str = "before_activation"):
        super().__init__()
        if batchnorm_position not in ("before_activation", "after_activation"):
            raise ValueError(f"unknown batchnorm_position {batchnorm_position!r}")
        self.norm_after = batchnorm_position == "after_activation"
        sizes = [in_features] + [width] * depth + [num_classes]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_runs, a, b)) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_runs, 1, b)) for b in sizes[1:]
        )
        self.norms = nn.ModuleList(
            StackedBatchNorm(n_runs, width) if batchnorm else nn.Identity() for _ in range(depth)
        )

    @torch.no_grad()
    def init_run(self, run: int, generator: torch.Generator) -> None:
        """Initialize run `run` as nn.Linear does: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for w, b in zip(self.weights, self.biases):
            bound = 1 / math.sqrt(w.shape[1])
            w[run] = _uniform(w.shape[1:], bound, generator)
            b[run] = _uniform(b.shape[1:], bound, generator)

    def decayed_parameters(self) -> list[nn.Parameter]:
        """The parameters L2 applies to: weights, not biases or batchnorm scales and shifts."""
        return list(self.weights)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None] | None = None):
        """x: (R, B, in) per-run batches, or (B, in) shared by all runs -> (R, B, classes)."""
        h = x
        for i, norm in enumerate(self.norms):
            z = _linear(h, self.weights[i], self.biases[i])
            h = norm(torch.relu(z)) if self.norm_after else torch.relu(norm(z))
            if masks is not None and masks[i] is not None:
                h = h * masks[i]
        return _linear(h, self.weights[-1], self.biases[-1])


MODELS = {"mlp": StackedMLP}


def build(spec: dict, n_runs: int, in_features: int, num_classes: int,
          width: int, batchnorm: bool) -> StackedMLP:
    """A stacked model from the config's `model` section."""
    name = spec["name"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](n_runs, in_features, width, spec["depth"], num_classes, batchnorm,
                        spec["batchnorm_position"])


def n_params(spec: dict, in_features: int, num_classes: int, width: int, batchnorm: bool) -> int:
    return mlp_n_params(in_features, width, spec["depth"], num_classes, batchnorm)
