"""What a training job is given: the typed records of a group spec (config.group_spec).

A group spec is built once, from the validated config (config.group_spec) or from the JSON
that the train rule passes (config.spec_from_dict), and read by attribute everywhere else.
Its plain form (config.plain_spec) is Snakemake's rerun key: these records serialize to the
same sections as before they existed, less the entries that config.INERT leaves out, so
finished groups keep their keys. Torch-free: Snakemake reads it while it parses.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from doubledescent.config import Run


@dataclass(frozen=True)
class Augment:
    """`training.augment`: random crops of the zero-padded image and horizontal flips."""

    crop_padding: int = 0
    hflip: bool = False

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.hflip


@dataclass(frozen=True)
class WeightReuse:
    """`training.weight_reuse`: widths below `below_width` start from the next smaller one."""

    below_width: int


def schedule_points(spec, last: int) -> set[int]:
    """`spec` points from 1 to `last` (n log-spaced, or a list), always with the last."""
    if isinstance(spec, list | tuple):
        chosen = set(spec)
    else:  # n points from 1 to the last; a single point is the last
        points = np.geomspace(1, last, spec) if spec > 1 else []
        chosen = set(np.round(points).astype(int).tolist())
    return chosen | {last}


@dataclass(frozen=True)
class TrainingSettings:
    """An experiment's `training` section (the schema documents each setting). None is a
    setting the config left out; the budget is `epochs` or `steps`, never both.

    A new setting gets a default that behaves as before it existed and a line in
    config.INERT with that default (one at None, which a config may leave out, is inert by
    `optional()`), so that the rerun keys of finished groups stay as they were."""

    optimizer: str
    lr: float
    momentum: float
    adam_betas: tuple[float, float]
    adam_eps: float
    l2_mode: str  # how weight decay enters the update: coupled, penalty, decoupled
    decay: str  # what weight decay shrinks: weights, all
    schedule: str
    schedule_steps: int
    augment: Augment
    precision: str
    batch_size: int
    loss: str
    epochs: int | None = None
    eval_epochs: int | tuple[int, ...] | None = None
    steps: int | None = None
    eval_steps: int | tuple[int, ...] | None = None
    schedule_gamma: float | None = None  # None: 0.9
    weight_reuse: WeightReuse | None = None
    stop_at_zero_train_error: bool | None = None

    @classmethod
    def from_dict(cls, section: dict) -> TrainingSettings:
        """The settings of a validated `training` section (or of a spec's)."""
        listed = {k: tuple(v) for k, v in section.items() if isinstance(v, list)}
        reuse = section.get("weight_reuse")
        return cls(
            **{
                **section,
                **listed,
                "augment": Augment(**section["augment"]),
                "weight_reuse": None if reuse is None else WeightReuse(**reuse),
            }
        )

    @classmethod
    def optional(cls) -> list[str]:
        """The settings a config may leave out (None: not given, and no key in a spec)."""
        return [f.name for f in fields(cls) if f.default is None]

    @property
    def gamma(self) -> float:
        """The `step` schedule's factor (0.9 if not given: Belkin et al.'s step size)."""
        return 0.9 if self.schedule_gamma is None else self.schedule_gamma

    def steps_per_epoch(self, n: int) -> int:
        """Gradient steps of one pass over `n` samples (the last batch may be short)."""
        return math.ceil(n / self.batch_size)

    def budget_steps(self, n: int) -> int:
        """The gradient steps a run on `n` samples takes: `steps`, or epochs x steps per
        epoch."""
        if self.steps is not None:
            return self.steps
        return self.epochs * self.steps_per_epoch(n)

    def eval_epoch_list(self) -> list[int]:
        """Epochs after which a run is evaluated (an epochs budget): log-spaced by default,
        always the last one."""
        return sorted(schedule_points(self.eval_epochs, self.epochs))

    def eval_step_list(self, n: int) -> list[int]:
        """The gradient steps after which a run on `n` samples is evaluated: those of
        `eval_steps` under a steps budget, the ends of the `eval_epochs` under an epochs
        budget."""
        if self.steps is not None:
            return sorted(schedule_points(self.eval_steps, self.steps))
        return [e * self.steps_per_epoch(n) for e in self.eval_epoch_list()]


@dataclass(frozen=True)
class DatasetSpec:
    """The prepared dataset a group trains on (the schema's `dataset` section; in a sweep,
    the largest size and, of noise rates, the group's rate)."""

    name: str
    n_train: int
    n_test: int
    validation: int
    label_noise: float
    noise_mode: str
    seed: int
    root: str
    download: bool
    normalize: bool


@dataclass(frozen=True)
class ModelSpec:
    """The model family and the options of the config's `model` section that it reads
    (they vary per family: the MLP's depth, init, ...; config.model_spec); the builders
    read `to_dict()`."""

    name: str
    options: dict

    def to_dict(self) -> dict:
        return {"name": self.name, **copy.deepcopy(self.options)}


@dataclass(frozen=True)
class GroupSpec:
    """Exactly what a training job needs: its runs (one network shape, or in a pack several)
    and the settings they share."""

    experiment: str
    group: str  # the group id, or a pack's name (doubledescent.packing)
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSettings
    width: int  # the runs' width (a pack's widest)
    runs: tuple[Run, ...]
    n_train: int | None = None  # in a sweep of sizes, the subset of the prepared data it fits
    reuse_from: str | None = None  # under weight reuse, the group whose final weights it grows
