"""Dropout, per run: `dropout` (the rate), at each of the models' dropout points.

A model calls its `mask` (doubledescent.models.layers.Mask) for every point; the masks are
drawn here from each run's own stream, so a run's masks do not depend on its group.
"""

from __future__ import annotations

from doubledescent.regularizers.base import Context, Hooks, Param, Regularizer


class Dropout(Hooks):
    def __init__(self, runs: list, context: Context):
        self.mask = masks(
            [r.dropout for r in runs], context.mask_gens, context.device, context.dtype
        )


def masks(rates: list[float], gens: list, device, dtype):
    """mask(shape) -> (R, *shape) inverted-dropout masks, one draw per dropping run from its
    own stream (`gens`), in the order the model asks for them; None where no run drops.
    mask(shape, widths): the same for runs zero-padded to shape[-1] from `widths`."""
    import torch

    if not any(rates):
        return None
    # float32 uniforms whatever the model's dtype, so float64 tests draw the same masks.
    rate = torch.tensor(rates, device=device)
    scale = 1 / torch.tensor([1 - p for p in rates], dtype=dtype, device=device)

    padded: dict[tuple, tuple] = {}  # a padded model's uniforms and run slices, per shape

    def mask(shape, widths: list[int] | None = None) -> torch.Tensor:
        per_run = (-1, *[1] * len(shape))
        if widths is not None:  # out of place: the buffer keeps its ones for the next call
            u = padded_uniforms(shape, widths).ge(rate.view(per_run))
            return u.to(dtype).mul_(scale.view(per_run))
        # Uniforms drawn in place per dropping run, then one comparison for all runs; a run
        # without dropout keeps u = 1 >= 0 and scale 1.
        u = torch.ones(len(rates), *shape, device=device)
        for i, (p, g) in enumerate(zip(rates, gens)):
            if p > 0:
                torch.rand(shape, generator=g, out=u[i])
        # In place: the comparison writes 1.0/0.0 into u, no boolean tensor to convert.
        return u.ge_(rate.view(per_run)).to(dtype).mul_(scale.view(per_run))

    def padded_uniforms(shape, widths: list[int]) -> torch.Tensor:
        """For a padded model (models.padded): each dropping run draws its own `widths[i]`
        of the last dim, as unpadded, into its slice of a buffer kept per shape (one op per
        run and layer, where a pack has many runs); every other entry stays 1."""
        if shape not in padded:
            u = torch.ones(len(rates), *shape, device=device)
            drawn = [
                (u[i, ..., :w], g) for i, (p, g, w) in enumerate(zip(rates, gens, widths)) if p
            ]
            padded[shape] = u, drawn
        u, drawn = padded[shape]
        for view, g in drawn:
            view.uniform_(generator=g)
        return u

    return mask


def setup(runs: list, context: Context) -> Dropout | None:
    return Dropout(runs, context) if any(r.dropout for r in runs) else None


RATE = Param(
    "dropout",
    0.0,
    {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "Dropout rate after each hidden activation.",
    frozen=True,
    caption="dropout {:g}",
)
REGULARIZER = Regularizer("dropout", (RATE,), setup=setup)
