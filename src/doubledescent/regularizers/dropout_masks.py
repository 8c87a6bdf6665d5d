"""Dropout's training side (imports torch; regularizers.dropout loads it inside `setup`).

Each dropping run draws its masks from its own stream, in the order the model asks for
them, so a run's masks do not depend on its group. A model takes them in one of two ways,
with the same numbers:

- `masks(shape)`: (R, *shape) inverted-dropout masks to multiply into stacked activations
  (ones for the runs without dropout), for models trained through autograd;
- `masks.apply_(h)` in place on stacked activations (R, B, *S) and `masks.scale_grad_(g)`
  for a hand-written backward (models.mlp); in a group, whose dropping runs are one slice,
  these touch only that slice: with a third of the runs dropping, a third of the passes.
"""

from __future__ import annotations

import torch

from doubledescent.regularizers.base import one_slice


class DropoutMasks:
    def __init__(self, rates: list[float], gens: list, device, dtype):
        self.gens, self.dtype = gens, dtype
        # float32 uniforms whatever the model's dtype, so float64 tests draw the same masks.
        self.rate = torch.tensor(rates, device=device)
        self.scale = 1 / torch.tensor([1 - p for p in rates], dtype=dtype, device=device)
        self.dropping = [i for i, p in enumerate(rates) if p > 0]
        # The dropping runs where they are one slice, with their rates and scales shaped to
        # broadcast over their (runs, B, features) activations.
        self.span = one_slice(rates)
        if self.span is not None:
            self.span_rate = self.rate[self.span].view(-1, 1, 1)
            self.span_scale = self.scale[self.span].view(-1, 1, 1)
        self.device = device
        self.padded: dict[tuple, tuple] = {}  # a padded model's uniforms and run slices

    def __call__(self, shape, widths: list[int] | None = None) -> torch.Tensor:
        """(R, *shape) masks; with `widths`, for runs zero-padded to shape[-1] from them."""
        per_run = (-1, *[1] * len(shape))
        if widths is not None:  # out of place: the buffer keeps its ones for the next call
            u = self.padded_uniforms(shape, widths).ge(self.rate.view(per_run))
            return u.to(self.dtype).mul_(self.scale.view(per_run))
        # Uniforms drawn in place per dropping run, then one comparison for all runs; a run
        # without dropout keeps u = 1 >= 0 and scale 1.
        u = torch.ones(len(self.gens), *shape, device=self.device)
        for i in self.dropping:
            torch.rand(shape, generator=self.gens[i], out=u[i])
        # In place: the comparison writes 1.0/0.0 into u, no boolean tensor to convert.
        return u.ge_(self.rate.view(per_run)).to(self.dtype).mul_(self.scale.view(per_run))

    def padded_uniforms(self, shape, widths: list[int]) -> torch.Tensor:
        """For a padded model (models.padded): each dropping run draws its own `widths[i]`
        of the last dim, as unpadded, into its slice of a buffer kept per shape (one op per
        run and layer, where a pack has many runs); every other entry stays 1."""
        if shape not in self.padded:
            u = torch.ones(len(self.gens), *shape, device=self.device)
            drawn = [(u[i, ..., : widths[i]], self.gens[i]) for i in self.dropping]
            self.padded[shape] = u, drawn
        u, drawn = self.padded[shape]
        for view, g in drawn:
            view.uniform_(generator=g)
        return u

    def apply_(self, h: torch.Tensor, widths: list[int] | None = None) -> None:
        """Multiply `h` (R, B, *S) by the masks in place. The dropping runs as one slice
        (a group's: its runs are sorted by variant) touch only that slice; otherwise (a
        pack's runs, zero-padded to `widths` or not) the whole stack takes `__call__`'s
        masks in one multiply, fewer ops where there are many runs."""
        if widths is not None or self.span is None:
            h.mul_(self(h.shape[1:], widths))
            return
        u = torch.empty(h[self.span].shape, device=self.device)
        for j, g in enumerate(self.gens[self.span]):
            torch.rand(u.shape[1:], generator=g, out=u[j])
        h[self.span].mul_(u.ge_(self.span_rate).to(self.dtype).mul_(self.span_scale))

    def scale_grad_(self, g: torch.Tensor) -> None:
        """The masks' gradient where `g` is already 0 at every dropped unit (a ReLU's
        backward against the dropped output): each dropping run's scale (1 elsewhere)."""
        if self.span is not None:
            g[self.span].mul_(self.span_scale)
        else:
            g.mul_(self.scale.view(-1, *[1] * (g.dim() - 1)))
