"""Layers of R networks of one shape, each run with its own parameters, in one kernel call.

Linear layers hold (R, fan_in, fan_out) weights and run as one batched matmul. Convolutions
hold (R, C_out, C_in, *kernel) weights and run as one grouped convolution over activations
laid out as (B, R*C, *spatial): group r sees only run r's channels. Batch normalization
treats each (run, channel) pair as one channel of the fused kernel, which is exactly
nn.BatchNorm's per-run, per-channel statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# A model's dropout points take the trainer's masks (doubledescent.regularizers.dropout):
# mask(shape of one run's activations) -> (R, *shape) inverted-dropout masks, drawn from each
# run's own stream (ones for runs without dropout).
Mask = Callable[[tuple[int, ...]], torch.Tensor]


def uniform(shape, bound: float, generator: torch.Generator) -> torch.Tensor:
    """U(-bound, bound), drawn in float64 so a float64 reference can copy it exactly."""
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


# A layer from >= WIDE_IN features to < NARROW_OUT (a wide MLP's head) takes NarrowLinear:
# measured 8-18% faster steps at widths 104-300, no gain below 64 features.
NARROW_OUT, WIDE_IN = 32, 64


class NarrowLinear(torch.autograd.Function):
    """h @ w + b for a narrow w (R, fan_in, few), such as the classifier head, computed as
    (w^T h^T)^T: with the short side as rows MKL's batched GEMM is ~3x faster, forward and
    for the weight gradient. The input gradient stays contiguous for the layers below.

    Autocast-safe on any device: under autocast the inputs are cast to its dtype (as the
    built-in baddbmm would be) and the backward runs in that dtype, so a bfloat16 gradient
    never meets a float32 weight; autograd casts each gradient back to its input's dtype."""

    @staticmethod
    def forward(ctx, h, w, b):
        device = h.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            h, w, b = h.to(dtype), w.to(dtype), b.to(dtype)
        ctx.save_for_backward(h, w)
        with torch.autocast(device, enabled=False):
            return torch.baddbmm(b.mT, w.mT, h.mT).mT

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.saved_tensors
        return narrow_backward(h, w, grad.to(h.dtype), ctx.needs_input_grad[0])


def narrow_backward(h, w, grad, input_grad: bool):
    """NarrowLinear's gradients (h, w, b); the weight's as (grad^T h)^T, short side first."""
    grad_h = torch.bmm(grad, w.mT) if input_grad else None
    return grad_h, torch.bmm(grad.mT, h).mT, grad.sum(1, keepdim=True)


def is_narrow(w: torch.Tensor) -> bool:
    return w.shape[2] < NARROW_OUT and w.shape[1] >= WIDE_IN


def linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h @ w + b per run; per-run batches take one fused baddbmm, shared inputs broadcast."""
    if h.dim() == 3:
        if is_narrow(w):
            return NarrowLinear.apply(h, w, b)
        return torch.baddbmm(b, h, w)
    return torch.matmul(h, w).add_(b)


def linear_backward(h, w, b, grad, input_grad: bool = True):
    """The gradients (h, w, b) of `linear` on per-run batches h (R, B, fan_in), given the
    gradient of its output: the products autograd's backward of the same call computes
    (so a hand-written backward matches it bit for bit); h's is None without `input_grad`."""
    if is_narrow(w):
        return narrow_backward(h, w, grad, input_grad)
    grad_h = torch.bmm(grad, w.mT) if input_grad else None
    return grad_h, torch.bmm(h.mT, grad), grad.sum_to_size(b.shape)


INITS = ("torch", "glorot_uniform")


class StackedLinear(nn.Module):
    """R nn.Linear layers: (R, B, fan_in) -> (R, B, fan_out)."""

    def __init__(self, n_runs: int, fan_in: int, fan_out: int, init: str = "torch"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}")
        self.init = init
        self.weight = nn.Parameter(torch.empty(n_runs, fan_in, fan_out))
        self.bias = nn.Parameter(torch.empty(n_runs, 1, fan_out))

    @torch.no_grad()
    def init_run(self, run: int, generator: torch.Generator) -> None:
        """As nn.Linear (`init="torch"`): weights and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        drawn in that order; or Glorot-uniform, U(+-sqrt(6 / (fan_in + fan_out))) weights and
        zero biases (Glorot & Bengio 2010; Keras' default)."""
        fan_in, fan_out = self.weight.shape[1:]
        if self.init == "glorot_uniform":
            self.weight[run] = uniform(
                (fan_in, fan_out), math.sqrt(6 / (fan_in + fan_out)), generator
            )
            self.bias[run] = 0
            return
        bound = 1 / math.sqrt(fan_in)
        self.weight[run] = uniform((fan_in, fan_out), bound, generator)
        self.bias[run] = uniform(self.bias.shape[1:], bound, generator)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return linear(h, self.weight, self.bias)


class GroupedConv(nn.Module):
    """R nn.Conv1d/Conv2d layers as one grouped convolution on (B, R*C_in, *spatial)."""

    def __init__(
        self,
        n_runs: int,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        dims: int = 2,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_runs, c_out, c_in, *[kernel] * dims))
        self.bias = nn.Parameter(torch.empty(n_runs, c_out)) if bias else None
        self.stride, self.padding, self.n_runs = stride, padding, n_runs
        self.conv = F.conv2d if dims == 2 else F.conv1d

    @torch.no_grad()
    def init_run(self, run: int, generator: torch.Generator) -> None:
        """As nn.Conv: kaiming_uniform(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        and so is the bias."""
        bound = 1 / math.sqrt(self.weight[0, 0].numel())
        self.weight[run] = uniform(self.weight.shape[1:], bound, generator)
        if self.bias is not None:
            self.bias[run] = uniform(self.bias.shape[1:], bound, generator)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.flatten()
        # Always the standard (N, C, *S) layout: a channels-last input propagates through
        # oneDNN's convolutions, and oneDNN 3.12's AVX2 kernel for the weight gradient of a
        # strided 1x1 conv (ResNet's shortcut) with fewer than 8 input channels per group
        # writes past its buffer in that layout: heap corruption, then a crash in backward
        # (uxlfoundation/oneDNN#6035). A no-op for the contiguous inputs the models make.
        return self.conv(
            h.contiguous(),
            self.weight.flatten(0, 1),
            bias,
            self.stride,
            self.padding,
            groups=self.n_runs,
        )


class ChannelBatchNorm(nn.Module):
    """Batch normalization whose channels are all (run, unit) pairs of a parameter shape."""

    def __init__(self, shape: tuple[int, ...], momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def normalize(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, R*C, ...) -> the same, with nn.BatchNorm's exact semantics per channel (biased
        variance to normalize, unbiased to track; in-place running statistics)."""
        weight, bias, running_mean, running_var = self.channels()
        return F.batch_norm(
            flat, running_mean, running_var, weight, bias, self.training, *self.rates()
        )

    def channels(self) -> tuple[torch.Tensor, ...]:
        """Scale, shift, running mean and variance, one entry per channel."""
        return tuple(
            t.view(-1) for t in (self.weight, self.bias, self.running_mean, self.running_var)
        )

    def rates(self) -> tuple[float, float]:
        return self.momentum, self.eps


class StackedBatchNorm(ChannelBatchNorm):
    """BatchNorm1d for R runs of (R, B, width) activations: statistics over each run's batch."""

    def __init__(self, n_runs: int, width: int):
        super().__init__((n_runs, 1, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.unflat(self.normalize(self.flat(h)), h.shape)

    @staticmethod
    def flat(h: torch.Tensor) -> torch.Tensor:
        """(R, B, width) -> (B, R*width): each (run, unit) one channel."""
        runs, batch, width = h.shape
        return h.transpose(0, 1).reshape(batch, runs * width)

    @staticmethod
    def unflat(flat: torch.Tensor, shape) -> torch.Tensor:
        runs, batch, width = shape
        return flat.view(batch, runs, width).transpose(0, 1)

    def train_forward(self, h: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """forward(h) in training without a graph, by the kernel F.batch_norm runs: the
        output and what `train_backward` needs."""
        flat = self.flat(h)
        out, mean, invstd = torch.native_batch_norm(flat, *self.channels(), True, *self.rates())
        return self.unflat(out, h.shape), (flat, mean, invstd)

    def train_backward(self, grad: torch.Tensor, saved: tuple) -> torch.Tensor:
        """The input's gradient from the output's; sets the scale's and shift's .grad, by
        the kernel autograd's backward of F.batch_norm runs."""
        flat, mean, invstd = saved
        weight, _, running_mean, running_var = self.channels()
        grad_in, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            self.flat(grad),
            flat,
            weight,
            running_mean,
            running_var,
            mean,
            invstd,
            True,
            self.eps,
            [True, True, True],
        )
        self.weight.grad, self.bias.grad = grad_w.view_as(self.weight), grad_b.view_as(self.bias)
        return self.unflat(grad_in, grad.shape)


class GroupedBatchNorm(ChannelBatchNorm):
    """BatchNorm1d/2d for R runs of (B, R*C, *spatial) activations."""

    def __init__(self, n_runs: int, channels: int):
        super().__init__((n_runs, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.normalize(h)


def batchnorm_or_identity(n_runs: int, channels: int, batchnorm: bool) -> nn.Module:
    return GroupedBatchNorm(n_runs, channels) if batchnorm else nn.Identity()


def to_groups(x: torch.Tensor, n_runs: int, sample_dims: int) -> torch.Tensor:
    """Per-run batches (R, B, C, *S), or one batch (B, C, *S) shared by all runs,
    -> (B, R*C, *S), the grouped layout."""
    if x.dim() == sample_dims + 2:
        x = x.transpose(0, 1)
    else:
        x = x.unsqueeze(1).expand(x.shape[0], n_runs, *x.shape[1:])
    return x.reshape(x.shape[0], -1, *x.shape[3:])


def from_groups(h: torch.Tensor, n_runs: int) -> torch.Tensor:
    """(B, R*F) features -> (R, B, F), the layout of the stacked linear head."""
    return h.view(h.shape[0], n_runs, -1).transpose(0, 1)


def dropout(h: torch.Tensor, mask: Mask | None, n_runs: int | None = None) -> torch.Tensor:
    """A dropout point: the trainer's masks on stacked activations (R, B, *S), or with
    `n_runs` on grouped ones (B, R*C, *S)."""
    if mask is None:
        return h
    if n_runs is None:
        return h * mask(h.shape[1:])
    batch, _, *spatial = h.shape
    m = mask((batch, h.shape[1] // n_runs, *spatial))  # (R, B, C, *S)
    return h * m.transpose(0, 1).reshape(h.shape)


def init_runs(module: nn.Module, run: int, generator: torch.Generator) -> None:
    """Initialize run `run` of every stacked layer below `module`, in definition order."""
    for layer in module.modules():
        if isinstance(layer, (StackedLinear, GroupedConv)):
            layer.init_run(run, generator)


def weights_of(module: nn.Module) -> list[nn.Parameter]:
    """What L2 decays: conv and linear weights, not biases or batchnorm parameters."""
    return [
        layer.weight
        for layer in module.modules()
        if isinstance(layer, (StackedLinear, GroupedConv))
    ]


class StackedNetwork(nn.Module):
    """A model built of stacked layers: each run initialized layer by layer, in definition
    order, and L2 on its linear and conv weights."""

    def init_run(self, run: int, generator: torch.Generator) -> None:
        init_runs(self, run, generator)

    def decayed_parameters(self) -> list[nn.Parameter]:
        return weights_of(self)
