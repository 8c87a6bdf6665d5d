"""Models whose parameters are stacked over runs, so one process trains many at once.

A stack of R networks of the same shape holds each weight with a leading run axis and runs
every layer as one batched matmul or grouped convolution (see `layers`). Each run keeps its
own initialization, dropout masks and batchnorm statistics; nothing is shared between runs.

Every model takes `forward(x, mask=None)` with per-run batches (R, B, *input_shape) or a batch
shared by all runs (B, *input_shape), returns logits (R, B, classes), and has
`init_run(run, generator)` and `decayed_parameters()`. Each family's builder is named by its
record in doubledescent.architectures.FAMILIES, the one place that registers a model.
"""

from __future__ import annotations

import torch
from torch import nn

from doubledescent import architectures

input_shape = architectures.input_shape  # torch-free, for config and resources too


def build(
    spec: dict,
    n_runs: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    batchnorm: bool,
) -> nn.Module:
    """A stacked model from the config's `model` section."""
    builder = architectures.load(architectures.family(spec["name"]).builder)
    return builder(
        n_runs=n_runs,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        width=width,
        batchnorm=batchnorm,
        spec=spec,
    )


def build_padded(
    spec: dict,
    widths: list[int],
    batchnorms: list[bool],
    input_shape: tuple[int, ...],
    num_classes: int,
) -> nn.Module:
    """One stacked model of runs of several widths and layer structures (run r: `widths[r]`,
    batchnorm where `batchnorms[r]`), each zero-padded to the widest."""
    path = architectures.family(spec["name"]).padded_builder
    if path is None:
        packed = sorted(f.name for f in architectures.FAMILIES.values() if f.padded_builder)
        raise ValueError(f"runs of several shapes stack only for {packed}, not {spec['name']!r}")
    return architectures.load(path)(
        widths=widths,
        batchnorms=batchnorms,
        input_shape=tuple(input_shape),
        num_classes=num_classes,
        spec=spec,
    )


def n_params(
    spec: dict, input_shape: tuple[int, ...], num_classes: int, width: int, batchnorm: bool
) -> int:
    """Parameters of one run, counted on a one-run model on the meta device (no memory)."""
    with torch.device("meta"):
        model = build(spec, 1, input_shape, num_classes, width, batchnorm)
    return sum(p.numel() for p in model.parameters())
