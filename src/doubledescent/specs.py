"""What a training job is given: typed records of a group spec, and its rerun key.

A group spec (`config.group_spec`) is built once from the validated config, or parsed once
from the JSON that the train rule passes (`GroupSpec.from_dict`), and read by attribute
everywhere else. Its canonical JSON (`GroupSpec.rerun_key`) is Snakemake's rerun key: the
typed records serialize to the same plain sections as before they existed, less the entries
that INERT leaves out, so finished groups keep their keys. Torch-free: Snakemake reads it
while it parses.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Run:
    """One point of an experiment's product: a width, a regularizer variant, a seed."""

    width: int
    regularizer: str
    seed: int
    weight_decay: float = 0.0
    dropout: float = 0.0
    batchnorm: bool = False
    n_train: int | None = None  # a size of a sample-wise sweep; None: the single n_train
    label_noise: float | None = None  # a rate of a label-noise sweep; None: the single rate

    @property
    def run_id(self) -> str:
        return f"{data_prefix(self)}width~{self.width}_reg~{self.regularizer}_seed~{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


def data_prefix(run: Run) -> str:
    """What run and group ids start with in a label-noise or sample-wise sweep (`noise~0.1_`,
    `n~1000_`); nothing otherwise."""
    noise = "" if run.label_noise is None else f"{noise_name(run.label_noise)}_"
    return noise + ("" if run.n_train is None else f"n~{run.n_train}_")


def noise_name(rate: float) -> str:
    """A swept noise rate in file and group names: `noise~0.1`."""
    return f"noise~{rate:g}"


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

    A new setting gets a default that behaves as before it existed and a line in INERT with
    that default, so that the rerun keys of finished groups stay as they were."""

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
    (they vary per family: the MLP's depth, init, ...); the builders read `to_dict()`."""

    name: str
    options: dict

    @classmethod
    def of(cls, section: dict) -> ModelSpec:
        """The model of a `model` section, less the options its family does not read."""
        kept = without_inert({"model": section})["model"]
        return cls(kept["name"], {k: v for k, v in kept.items() if k != "name"})

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

    @classmethod
    def from_dict(cls, spec: dict) -> GroupSpec:
        """The spec of its plain form (`to_dict`, as the train rule's JSON carries it)."""
        return cls(
            **{
                **spec,
                "dataset": DatasetSpec(**spec["dataset"]),
                "model": ModelSpec.of(spec["model"]),
                "training": TrainingSettings.from_dict(spec["training"]),
                "runs": tuple(Run(**r) for r in spec["runs"]),
            }
        )

    def to_dict(self) -> dict:
        """The plain sections, less their inert entries (INERT)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        plain.update(
            dataset=asdict(self.dataset),
            model=self.model.to_dict(),
            training=asdict(self.training),
            runs=[r.to_dict() for r in self.runs],
        )
        return without_inert(plain)

    def rerun_key(self) -> str:
        """The train rule's params: only a real change to the spec retrains its group."""
        return canonical_json(self.to_dict())


@dataclass(frozen=True)
class Inert:
    """A group-spec entry that cannot change what the job computes in some specs, and is
    left out of them: where its value is `default` (a key added after rerun keys were frozen
    in 2026-12, at the value that behaves as before it existed; or None, a setting the config
    leaves out), or where the model family is not one of `read_by`."""

    path: tuple[str, ...]  # keys from the spec's top; "runs" applies to each run
    default: object = None
    read_by: tuple[str, ...] | None = None  # None: every family reads it

    def applies(self, spec: dict, value) -> bool:
        if self.read_by is not None:
            return spec["model"]["name"] not in self.read_by
        return value == self.default


# The rerun key's one rule: a group spec (and the data rule's params) holds every entry but
# the inert ones. A new spec key (an option of training, model, dataset or a run) gets a
# line here with its default, and its field in the typed record (TrainingSettings, Run, ...)
# that default, so that adding it retrains no finished group; tests/test_config.py pins the
# default config's keys. Sweeps of sizes and of label noise and weight reuse came after the
# freeze; the conv nets' layers are fixed; the training settings at None were not given.
INERT = (
    Inert(("n_train",)),
    Inert(("runs", "n_train")),
    Inert(("runs", "label_noise")),
    Inert(("reuse_from",)),
    Inert(("model", "depth"), read_by=("mlp",)),
    Inert(("model", "batchnorm_position"), read_by=("mlp",)),
    # Each run carries its own batchnorm switch (runs); the model's is the config's default.
    Inert(("model", "batchnorm"), read_by=()),
    *(
        Inert(("training", name))
        for name in (
            "epochs",
            "eval_epochs",
            "steps",
            "eval_steps",
            "schedule_gamma",
            "weight_reuse",
            "stop_at_zero_train_error",
        )
    ),
)


def canonical_json(obj) -> str:
    """A spec as the workflow's params carry it (a typed one as its `to_dict()`): only a real
    change to it triggers a rerun."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=lambda o: o.to_dict())


def without_inert(spec: dict) -> dict:
    """A copy of `spec` (a group spec, or a part of one) without its inert entries (see
    INERT)."""
    out = copy.deepcopy(spec)
    for inert in INERT:
        *parents, key = inert.path
        holders = [out]
        for p in parents:
            nodes = [node[p] for node in holders if p in node]
            holders = [h for node in nodes for h in (node if p == "runs" else [node])]
        for holder in holders:
            if key in holder and inert.applies(out, holder[key]):
                del holder[key]
    return out
