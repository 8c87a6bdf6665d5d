"""Dropout, per run: `dropout` (the rate), at each of the models' dropout points.

A model calls its `mask` (doubledescent.models.layers.Mask) for every point; the masks are
drawn from each run's own stream (regularizers.dropout_masks, the torch side).
"""

from __future__ import annotations

from doubledescent.regularizers.base import Context, Hooks, Param, Regularizer


class Dropout(Hooks):
    def __init__(self, runs: list, context: Context):
        from doubledescent.regularizers.dropout_masks import DropoutMasks

        rates = [r.dropout for r in runs]
        self.mask = DropoutMasks(rates, context.mask_gens, context.device, context.dtype)


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
