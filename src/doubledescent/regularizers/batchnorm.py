"""Batch normalization, per run: `batchnorm`, a switch of the network's layer structure.

Runs with and without it are different networks, so they train in different groups (their
ids say `norm~batch` or `norm~none`); the models build it from the run's switch (the
`batchnorm` argument of doubledescent.models.build), before or after each hidden activation
as `model.batchnorm_position` says.
"""

from __future__ import annotations

from doubledescent.regularizers.base import Param, Regularizer


def structure(run) -> str:
    return f"norm~{'batch' if run.batchnorm else 'none'}"


def resolve(values: dict, exp: dict) -> dict:
    """The architecture's batchnorm (`model.batchnorm`) is in every run; a variant can add it."""
    return {"batchnorm": values["batchnorm"] or exp["model"]["batchnorm"]}


SWITCH = Param(
    "batchnorm",
    False,
    {"type": "boolean"},
    "Batch normalization of each hidden layer, before or after its activation as "
    "`model.batchnorm_position` says.",
    frozen=True,
    caption="batch normalization",
)
REGULARIZER = Regularizer("batchnorm", (SWITCH,), structure=structure, resolve=resolve)
