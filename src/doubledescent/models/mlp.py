"""The MLP: Linear -> [BatchNorm] -> ReLU -> [Dropout], `depth` hidden layers of width h."""

from __future__ import annotations

import functools

import torch
from torch import nn

from doubledescent.models.layers import (
    Mask,
    StackedBatchNorm,
    StackedLinear,
    StackedNetwork,
    dropout,
    linear_backward,
)

# ReLU's backward against its output, into a given tensor (autograd's kernel for it).
RELU_BACKWARD = torch.ops.aten.threshold_backward.grad_input


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

    # A padded stack's per-run hidden widths (models.padded): its masks are drawn at each
    # run's own width. None: every run has the stack's width.
    widths: list[int] | None = None

    def forward(self, x: torch.Tensor, mask: Mask | None = None) -> torch.Tensor:
        """x: (R, B, in) per-run batches, or (B, in) shared by all runs -> (R, B, classes)."""
        if mask is not None and self.widths is not None:
            mask = functools.partial(mask, widths=self.widths)
        # Without a graph (evaluation), ReLU in place: the same numbers, no new tensor.
        relu = torch.relu if torch.is_grad_enabled() else torch.relu_
        h = x
        for linear, norm in zip(self.linears, self.norms):
            z = linear(h)
            h = norm(relu(z)) if self.norm_after else relu(norm(z))
            h = dropout(h, mask)
        return self.linears[-1](h)

    # A hand-written training step (train.train_step takes it where it applies): autograd's
    # graph and its temporaries cost more than the arithmetic below h ~ 50, and at large
    # widths the activations take in-place ReLU and dropout on the dropping runs only.

    def has_hand_backward(self) -> bool:
        """Whether `train_forward`/`train_backward` apply: plain layers, or batchnorm (with
        a hand-written step of its own) before each ReLU. After it, a dropped unit is no
        longer known from its output alone."""
        if all(isinstance(norm, nn.Identity) for norm in self.norms):
            return True
        return not self.norm_after and all(hasattr(norm, "train_forward") for norm in self.norms)

    @torch.no_grad()
    def train_forward(self, x: torch.Tensor, mask) -> tuple[torch.Tensor, list]:
        """forward(x, mask) on per-run batches without a graph: the logits and what
        `train_backward` needs (per hidden layer its input, and batchnorm's saved
        statistics). `mask` is None or regularizers.dropout_masks'."""
        h, tape = x, []
        for linear, norm in zip(self.linears, self.norms):
            z, stats = linear(h), None
            if not isinstance(norm, nn.Identity):
                z, stats = norm.train_forward(z)
            tape.append((h, stats))
            h = z.clamp_min_(0)  # ReLU in place: torch.relu's numbers
            if mask is not None:
                mask.apply_(h, self.widths)
        tape.append((h, None))
        return self.linears[-1](h), tape

    @torch.no_grad()
    def train_backward(self, tape: list, grad: torch.Tensor, mask) -> None:
        """Set every parameter's .grad from the logits' gradient `grad`, as autograd would
        through `forward`: each ReLU's backward against its (dropped) output zeroes the
        dropped units too, and the kept ones take their run's dropout scale."""
        for i in reversed(range(len(self.linears))):
            layer, (h, _) = self.linears[i], tape[i]
            if i < len(self.linears) - 1:
                # In place: the gradient is this step's own tensor (as autograd's, out of it).
                grad = RELU_BACKWARD(grad, tape[i + 1][0], 0, grad_input=grad)
                if mask is not None:
                    mask.scale_grad_(grad)
                stats = tape[i][1]
                if stats is not None:
                    grad = self.norms[i].train_backward(grad, stats)
            grad, grad_w, layer.bias.grad = linear_backward(
                h, layer.weight, layer.bias, grad, input_grad=i > 0
            )
            # In the weight's own layout, as autograd stores a transposed gradient.
            layer.weight.grad = grad_w.contiguous()


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
