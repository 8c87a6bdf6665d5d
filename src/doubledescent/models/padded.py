"""MLPs of several widths, with and without batchnorm, in one stack: a pack of groups.

Each run is zero-padded to the pack's widest hidden layer. That is exact, not approximate:
a padded unit starts with zero weights in and out, zero bias and (with batchnorm) zero
scale and shift, so its pre-activation is 0, its output is 0 (ReLU(0) = 0; batchnorm of a
constant 0 is its shift, 0) and every gradient that reaches it is a product with a zero
weight or a zero activation: exactly 0. With zero gradients every update keeps it at 0:
SGD's momentum stays 0; Adam's moments stay 0 and its step 0 / (0 + eps) is 0; L2 adds or
subtracts a multiple of the weight itself (coupled, penalty, decoupled, on weights or on
all parameters); dropout multiplies an output that is already 0. The real units never see
the padding: every sum they take gains terms 0 * w or h * 0. Batchnorm is per (run, unit),
so the padding does not enter a real unit's statistics either.

A run without batchnorm in a pack with some takes the plain pre-activation through
`torch.where` (exactly, gradient included); its unused batchnorm parameters are 0 and stay 0.
Each run is initialized by a one-run model of its own shape (so with its own fan-in and
the same numbers as unpadded) and its dropout masks are drawn at its own width.
"""

from __future__ import annotations

import torch
from torch import nn

from doubledescent.models import mlp
from doubledescent.models.layers import StackedBatchNorm
from doubledescent.models.mlp import StackedMLP


class SwitchedBatchNorm(StackedBatchNorm):
    """Batchnorm for the runs whose `on` is set; the others pass their input through."""

    def __init__(self, on: list[bool], width: int):
        super().__init__(len(on), width)
        self.register_buffer("on", torch.tensor(on).view(-1, 1, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.where(self.on, super().forward(h), h)

    def train_forward(self, h: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        out, saved = super().train_forward(h)
        return torch.where(self.on, out, h), saved

    def train_backward(self, grad: torch.Tensor, saved: tuple) -> torch.Tensor:
        """`torch.where`'s backward, as autograd's: the switched-on runs' gradient through
        batchnorm, the others' straight through (each side 0 on the other's runs)."""
        through = super().train_backward(torch.where(self.on, grad, 0), saved)
        return through + torch.where(self.on, 0, grad)


class PaddedMLP(StackedMLP):
    """R MLPs of `depth` hidden layers of widths `widths[r]`, batchnorm where `batchnorms[r]`."""

    def __init__(
        self,
        in_features: int,
        widths: list[int],
        batchnorms: list[bool],
        depth: int,
        num_classes: int,
        batchnorm_position: str = "before_activation",
        init: str = "torch",
    ):
        width = max(widths)
        super().__init__(
            len(widths),
            in_features,
            width,
            depth,
            num_classes,
            any(batchnorms),
            batchnorm_position,
            init,
        )
        self.widths, self.batchnorms = list(widths), list(batchnorms)
        # What every run shares (all but its width), to build a run alone in init_run.
        self.structure = (in_features, depth, num_classes, batchnorm_position, init)
        if any(batchnorms) and not all(batchnorms):
            self.norms = nn.ModuleList(SwitchedBatchNorm(batchnorms, width) for _ in range(depth))

    @torch.no_grad()
    def init_run(self, run: int, generator: torch.Generator) -> None:
        """Run `run` exactly as an unpadded one-run model of its width initializes it; every
        padded entry (and unused batchnorm parameter) 0."""
        in_features, depth, num_classes, position, init = self.structure
        with torch.device(self.linears[0].weight.device):
            alone = StackedMLP(
                1,
                in_features,
                self.widths[run],
                depth,
                num_classes,
                self.batchnorms[run],
                position,
                init,
            )
        alone.init_run(0, generator)
        mine = dict(self.named_parameters())
        for p in mine.values():
            p[run] = 0
        for name, p in alone.named_parameters():
            mine[name][run][tuple(slice(0, n) for n in p.shape[1:])] = p[0]


def build(*, widths, batchnorms, input_shape, num_classes, spec) -> PaddedMLP:
    return PaddedMLP(
        input_shape[0], widths, batchnorms, num_classes=num_classes, **mlp.options(spec)
    )
