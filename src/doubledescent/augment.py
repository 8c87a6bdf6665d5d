"""On-device data augmentation of image batches: random crops of the zero-padded image and
horizontal flips, drawn per run (from its own "augment" stream) and per sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from doubledescent.specs import Augment


def draw(generator: torch.Generator, batch: int, spec: Augment, device) -> tuple[torch.Tensor, ...]:
    """One run's random transform of a batch: crop offsets (rows, columns) in [0, 2 padding]
    and flip flags, each (B,)."""
    pad = spec.crop_padding
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=device)
    flip = torch.rand(batch, generator=generator, device=device) < 0.5
    if not spec.hflip:
        flip = torch.zeros_like(flip)  # drawn anyway, so hflip does not shift the crops
    return offsets[0], offsets[1], flip


def augment(x: torch.Tensor, generators: list[torch.Generator], spec: Augment) -> torch.Tensor:
    """Per-run batches (R, B, C, H, W) -> each sample cropped from its image zero-padded by
    `crop_padding` at a random offset, then flipped left-right with probability 1/2 if
    `hflip`; one gather for all runs and samples."""
    runs, batch, _, height, width = x.shape
    dy, dx, flip = (
        torch.stack(d) for d in zip(*(draw(g, batch, spec, x.device) for g in generators))
    )  # (R, B) each
    pad = spec.crop_padding
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[..., None] + torch.arange(height, device=x.device)  # (R, B, H)
    cols = dx[..., None] + torch.arange(width, device=x.device)  # (R, B, W)
    cols = torch.where(flip[..., None], cols.flip(-1), cols)
    r = torch.arange(runs, device=x.device)[:, None, None, None]
    b = torch.arange(batch, device=x.device)[None, :, None, None]
    # Indices on both sides of the channel slice put the indexed axes first: (R, B, H, W, C).
    out = padded[r, b, :, rows[:, :, :, None], cols[:, :, None, :]]
    # Back to (R, B, C, H, W) in memory too, not as a permuted view: with one run, the
    # grouped layout would otherwise be a channels-last view (see layers.GroupedConv).
    return out.permute(0, 1, 4, 2, 3).contiguous()
