"""Regularizers: each is one file in this package and one line in REGISTRY.

A regularizer declares its per-run parameters (`Param`: name, default, schema fragment,
whether a list is a grid of variants) and the hooks it needs, all optional:

- `setup(runs, context)`: the training side, called once per group; returns a `Hooks` (its
  `loss` on the per-run sample losses, its `update` of the gradients or weights between
  backward and the optimizer's step, its `mask` for the models' dropout points) or None
  where no run of the group uses it. Only this hook may import torch, and only inside it.
- `structure(run)`: its part of the network's layer structure, which is part of the group
  id (`norm~batch`): runs of different structures train in different groups.
- `resolve(values, exp)`: a run's values from its variant's and the experiment's (the
  architecture's batchnorm is in every run).
- `check(where, exp, values)`: a config it cannot train, as a one-line ConfigError.
- `describe(values, training)`: its part of a figure caption, or "" where it is off; by
  default its parameters' `caption`s.

This module and the regularizers' module-level code are torch-free: config and Snakemake
read them while they build the DAG. Config (the schema's regularizer section, the variants,
the runs and their rerun keys), training, the tables and the captions read REGISTRY.
Beyond it, only what is about one regularizer by its nature names it: the weight-decay
grid's figure and table (doubledescent.results, plots) and the models' `batchnorm` switch
(the builders' argument, read from the run in train.stacked_model).
"""

from __future__ import annotations

import itertools

from doubledescent.regularizers import batchnorm, dropout, l2, label_smoothing
from doubledescent.regularizers.base import Context, Hooks, Param, Regularizer

__all__ = ["REGISTRY", "Context", "Hooks", "Param", "Regularizer", "params", "schema_properties"]

# The one place to add a regularizer; the order is the runs' columns' and the captions'.
REGISTRY: list[Regularizer] = [
    l2.REGULARIZER,
    dropout.REGULARIZER,
    batchnorm.REGULARIZER,
    label_smoothing.REGULARIZER,
]


def params() -> list[Param]:
    """Every regularizer's per-run parameters, in registry order."""
    return [p for reg in REGISTRY for p in reg.params]


def schema_properties() -> dict[str, dict]:
    """The schema's `regularizer` properties: one per parameter, from its fragment."""
    return {p.name: p.fragment() for p in params()}


def run_values(given: dict) -> dict:
    """A run's value of every parameter (registry order): `given`'s, else the default.
    Unknown names are a bug (the schema refuses them in configs): TypeError, as a function
    refuses an unknown keyword."""
    known = {p.name for p in params()}
    unknown = set(given) - known
    if unknown:
        raise TypeError(f"unknown regularizer parameters {sorted(unknown)}")
    return {p.name: given.get(p.name, p.default) for p in params()}


def resolved(values: dict, exp: dict) -> dict:
    """A variant's values as its runs carry them (each regularizer's `resolve`)."""
    for reg in REGISTRY:
        if reg.resolve is not None:
            values = {**values, **reg.resolve(values, exp)}
    return values


def expand(name: str, variant: dict) -> dict[str, dict]:
    """A variant with its grids (lists of a grid parameter) expanded, one variant per
    combination. One grid keeps its value in the name, `l2@0.001`; several name each value,
    `ls@weight_decay~0.001_label_smoothing~0.1`. The family stays before the `@`."""
    grids = [p.name for p in params() if p.grid and isinstance(variant.get(p.name), list)]
    if not grids:
        return {name: variant}
    out = {}
    for values in itertools.product(*(variant[g] for g in grids)):
        chosen = dict(zip(grids, values))
        if len(grids) == 1:
            suffix = f"{values[0]:g}"
        else:
            suffix = "_".join(f"{g}~{v:g}" for g, v in chosen.items())
        out[f"{name}@{suffix}"] = {**variant, **{g: float(v) for g, v in chosen.items()}}
    return out


def structure(run) -> str:
    """The run's layer structure as the group id names it, e.g. `norm~batch`."""
    return "_".join(reg.structure(run) for reg in REGISTRY if reg.structure is not None)


def check(where: str, exp: dict, values: dict) -> None:
    for reg in REGISTRY:
        if reg.check is not None:
            reg.check(where, exp, values)


def describe(values: dict, training: dict) -> list[str]:
    """The caption's parts of a variant's regularizers that are on."""
    parts = []
    for reg in REGISTRY:
        if reg.describe is not None:
            parts.append(reg.describe(values, training))
            continue
        for p in reg.params:
            value = values.get(p.name, p.default)
            parts.append(p.caption.format(value) if value != p.default else "")
    return [part for part in parts if part]


def setup(runs: list, context) -> list[Hooks]:
    """The training hooks of a group's regularizers that some run of it uses."""
    hooks = (reg.setup(runs, context) for reg in REGISTRY if reg.setup is not None)
    return [h for h in hooks if h is not None]
