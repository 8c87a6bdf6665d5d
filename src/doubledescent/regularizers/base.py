"""The seam's types: a regularizer's parameters, its hooks, and what training gives them.
Torch-free (see doubledescent.regularizers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """A per-run parameter, set in a config's regularizer variant."""

    name: str
    default: Any  # the value that behaves as without the regularizer
    schema: dict  # JSON schema of one value
    description: str  # the schema's description (the README's config table says it too)
    grid: bool = False  # a list of values is a grid: one variant per value (`l2@0.001`)
    # In every run of the group specs (rerun keys) since they were frozen in 2026-12, so
    # written even at its default. Any later parameter is left out of a spec at its default
    # (config.INERT), so that adding it retrains no finished group.
    frozen: bool = False
    caption: str = ""  # its part of a figure caption where it is not its default: "dropout {:g}"

    def fragment(self) -> dict:
        """The schema's entry for the parameter in a regularizer variant."""
        one = dict(self.schema)
        if self.grid:
            grid = {"type": "array", "minItems": 1, "uniqueItems": True, "items": one}
            one = {"oneOf": [one, grid]}
        return {"description": self.description, **one, "default": self.default}


@dataclass
class Context:
    """What a regularizer's training side may use: the group's runs share these."""

    training: Any  # the group spec's training settings (specs.TrainingSettings)
    model: Any  # the stacked model (doubledescent.models)
    device: Any
    dtype: Any
    mask_gens: list  # each run's stream for masks (the checkpointed `dropout` stream)


class Hooks:
    """A regularizer's training side for one group; the defaults change nothing."""

    mask = None  # the models' dropout masks (doubledescent.models.layers.Mask) or None

    def loss(self, losses, logits, y):
        """The training objective's per-run, per-sample losses (R, N) from the plain
        losses, the logits (R, N, classes) and the labels; reported losses stay plain."""
        return losses

    def update(self, lr: float) -> None:
        """Between backward and the optimizer's step at learning rate `lr`: change the
        gradients, or the weights themselves."""


@dataclass(frozen=True)
class Regularizer:
    """One regularizer: its parameters and hooks (see doubledescent.regularizers)."""

    name: str
    params: tuple[Param, ...]
    setup: Callable[[list, Context], Hooks | None] | None = None
    structure: Callable[[Any], str] | None = None
    resolve: Callable[[dict, dict], dict] | None = None
    check: Callable[[str, dict, dict], None] | None = None
    # Its caption part; by default its parameters' captions (Param.caption).
    describe: Callable[[dict, dict], str] | None = None


def spans(values: list) -> list[slice]:
    """The runs (indices into `values`) where a parameter is on, as slices of consecutive
    runs: runs are stacked along dim 0, so each slice is one view of every stacked tensor,
    and a group's runs are sorted by variant, so each variant is one slice."""
    out: list[slice] = []
    for i, v in enumerate(values):
        if not v:
            continue
        if out and out[-1].stop == i:
            out[-1] = slice(out[-1].start, i + 1)
        else:
            out.append(slice(i, i + 1))
    return out


def one_slice(values: list) -> slice | None:
    """The runs where a parameter is on, where they are one slice of consecutive runs (as
    in a group: a third of the default groups' runs); None where they are not (a pack's
    runs, scattered) or there are none."""
    found = spans(values)
    return found[0] if len(found) == 1 else None
