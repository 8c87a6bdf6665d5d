"""Config validation and the expansion of experiments into runs and training groups."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from doubledescent import architectures, regularizers
from doubledescent.data import SOURCES, dataset_size_limits
from doubledescent.errors import ConfigError  # raised here; callers catch config.ConfigError
from doubledescent.specs import DatasetSpec, GroupSpec, ModelSpec, TrainingSettings

if TYPE_CHECKING:
    import jsonschema


@cache
def _validator_class():
    """A validator that fills `default:` values in as it validates, like Snakemake's. Imported
    when a config is validated: the pipeline's jobs import this module but validate nothing."""
    import jsonschema

    validate_properties = jsonschema.Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(
        jsonschema.Draft202012Validator, {"properties": set_defaults}
    )


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = ["config"]
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts)


def _one_line(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{_key_path(error)}: {error.message.split('(')[-1].rstrip(')')}"
    if error.validator == "enum":
        return f"{_key_path(error)}: {error.instance!r} is not one of {error.validator_value}"
    return f"{_key_path(error)}: {error.message}"


def validate(config: dict, schema_path: str | Path) -> dict:
    """Validate `config` against the schema, fill in defaults, check what a schema can't."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    # The model and dataset names come from their registries, so that registering one needs
    # no schema edit.
    schema["$defs"]["model"]["properties"]["name"]["enum"] = sorted(architectures.FAMILIES)
    schema["$defs"]["dataset"]["properties"]["name"]["enum"] = list(SOURCES)
    # A regularizer variant's keys are the regularizers' parameters (their own files').
    schema["$defs"]["regularizer"]["properties"] = regularizers.schema_properties()
    given = copy.deepcopy(config)
    config = copy.deepcopy(config)
    validator = _validator_class()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        from jsonschema.exceptions import best_match

        best = best_match(errors)
        raise ConfigError(_one_line(best))
    for name, exp in config["experiments"].items():
        _resolve_budget(f"config.experiments.{name}.training", given["experiments"][name], exp)
        _check_experiment(name, exp)
        _check_family_options(f"config.experiments.{name}", exp, schema)
    _check_distinct_folders(config["experiments"])
    return config


def _check_distinct_folders(experiments: dict) -> None:
    """Refuse names that differ only in case: on macOS/Windows they share one results folder."""
    seen: dict[str, str] = {}
    for name in experiments:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise ConfigError(
                f"config.experiments: {other!r} and {name!r} differ only in case, so their "
                "results would overwrite each other on a case-insensitive file system"
            )


def _check_experiment(name: str, exp: dict) -> None:
    where = f"config.experiments.{name}"
    ds = exp["dataset"]
    limits = dataset_size_limits(ds["name"])
    # The source must provide the largest size (the others are its subsets); the validation
    # split must leave training samples in the smallest.
    sizes = {"n_train": max(train_sizes(exp)), "n_test": ds["n_test"]}
    for key, n in sizes.items():
        if limits.get(key) is not None and n > limits[key]:
            raise ConfigError(
                f"{where}.dataset.{key}: {n} exceeds the {limits[key]} samples "
                f"that {ds['name']} provides"
            )
    if ds["validation"] >= min(train_sizes(exp)):
        raise ConfigError(
            f"{where}.dataset.validation: {ds['validation']} leaves no training "
            f"samples of n_train = {min(train_sizes(exp))}"
        )
    total = limits.get("n_total")
    if total is not None and sizes["n_train"] + ds["n_test"] > total:
        raise ConfigError(
            f"{where}.dataset: n_train + n_test = {sizes['n_train'] + ds['n_test']} exceeds "
            f"the {total} samples that {ds['name']} provides"
        )
    _check_model_fits_data(where, exp["model"]["name"], ds["name"])
    for reg_name, reg in exp["regularizers"].items():
        regularizers.check(f"{where}.regularizers.{reg_name}", exp, reg)
    aug = exp["training"]["augment"]
    if (aug["crop_padding"] or aug["hflip"]) and _layout(exp) != "image":
        image_models = ", ".join(
            f.name for f in architectures.FAMILIES.values() if f.inputs == "image"
        )
        raise ConfigError(
            f"{where}.training.augment: crops and flips need an image model "
            f"({image_models}), not {exp['model']['name']}"
        )
    tr = exp["training"]
    unit = "steps" if "steps" in tr else "epochs"
    last, evals = tr[unit], tr[f"eval_{unit}"]
    if isinstance(evals, list) and max(evals) > last:
        raise ConfigError(
            f"{where}.training.eval_{unit}: {unit[:-1]} {max(evals)} is past the last "
            f"{unit[:-1]} ({last})"
        )


def _layout(exp: dict) -> str:
    return architectures.family(exp["model"]["name"]).inputs


def family_options() -> list[str]:
    """The config keys ("section.key") that only some model families read (Family.reads)."""
    return sorted({key for f in architectures.FAMILIES.values() for key in f.reads})


def _check_family_options(where: str, exp: dict, schema: dict) -> None:
    """Refuse an option that only other model families read (Family.reads) where it has no
    schema default, so it is there only because it was given; one with a default fills every
    config and is left out of the specs of the families that don't read it (INERT)."""
    name, families = exp["model"]["name"], architectures.FAMILIES.values()
    for key in sorted(set(family_options()) - set(architectures.family(name).reads)):
        section, option = key.split(".")
        if (
            option in exp[section]
            and "default" not in schema["$defs"][section]["properties"][option]
        ):
            readers = ", ".join(f.name for f in families if key in f.reads)
            raise ConfigError(f"{where}.{key}: only the {readers} supports it, not {name}")


def _resolve_budget(where: str, given: dict, exp: dict) -> None:
    """Exactly one budget: `epochs` (the default, 500) or `steps`, each with its own evaluation
    points. A steps budget drops the epoch keys that the schema filled in, so its spec holds
    no unused epoch count; an epochs budget is left exactly as before steps existed."""
    tr, asked = exp["training"], given.get("training", {})
    if "steps" not in tr:
        if "eval_steps" in asked:
            raise ConfigError(f"{where}.eval_steps: needs a steps budget (training.steps)")
        return
    for key in ("epochs", "eval_epochs"):
        if key in asked:
            other = "steps" if key == "epochs" else "eval_steps"
            raise ConfigError(
                f"{where}: give either {key} or steps, not both (with steps, use {other})"
            )
        del tr[key]
    tr.setdefault("eval_steps", 20)


def _check_model_fits_data(where: str, model: str, dataset: str) -> None:
    """Conv nets need the layout they convolve over: images, or MNIST-1D's signals."""
    layout, images = architectures.family(model).inputs, SOURCES[dataset].images
    if layout == "image" and not images:
        raise ConfigError(
            f"{where}.model.name: {model} needs image data, and {dataset} is not an image dataset"
        )
    if layout == "sequence" and images:
        raise ConfigError(
            f"{where}.model.name: {model} takes 1-D signals (mnist1d), not {dataset}'s images"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys, which plain loaders silently drop."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                mark = key_node.start_mark
                raise ConfigError(f"{mark.name}: line {mark.line + 1}: duplicate key {key!r}")
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path):
    """Parse a YAML config file, with one-line errors for missing, invalid or duplicate keys."""
    try:
        # An open file, not its text, so that the loader's marks carry the file's name.
        with open(path) as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def load(path: str | Path, schema_path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    return validate(read_yaml(path) or {}, schema_path)


def _merged(base: dict, update: dict) -> dict:
    """`update` over `base`, nested mappings merged key by key, as Snakemake merges the
    config files it is given."""
    out = dict(base)
    for key, value in update.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both_dicts else value
    return out


def load_files(paths: list[str | Path], schema_path: str | Path) -> dict:
    """Read config files, later ones overriding earlier ones, and validate the result."""
    merged: dict = {}
    for path in paths:
        merged = _merged(merged, read_yaml(path) or {})
    return validate(merged, schema_path)


def check_results_dir(results: str | Path, experiments) -> None:
    """Fail before any job if an experiment's results folder could not be written."""
    for folder in [Path(results), *(Path(results) / name for name in experiments)]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"results folder {folder} exists but is not a directory")
    existing = next(
        p for p in [Path(results).absolute(), *Path(results).absolute().parents] if p.exists()
    )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results folder {results} is not writable: {existing} is read-only")


@dataclass(frozen=True, init=False)
class Run:
    """One point of an experiment's product: a width, a regularizer variant, a seed. Its
    regularizers' parameters (doubledescent.regularizers) read as attributes:
    `run.weight_decay`."""

    width: int
    regularizer: str
    seed: int
    n_train: int | None = None  # a size of a sample-wise sweep; None: the single n_train
    label_noise: float | None = None  # a rate of a label-noise sweep; None: the single rate
    settings: tuple = ()  # every regularizer parameter's (name, value), in registry order

    def __init__(self, width, regularizer, seed, n_train=None, label_noise=None, **params):
        given = (width, regularizer, seed, n_train, label_noise)
        for key, value in zip(("width", "regularizer", "seed", "n_train", "label_noise"), given):
            object.__setattr__(self, key, value)
        settings = tuple(regularizers.run_values(params).items())
        object.__setattr__(self, "settings", settings)

    def __getattr__(self, name: str):
        # Only reached for names that are not fields (so never for `settings` once set).
        for key, value in self.__dict__.get("settings", ()):
            if key == name:
                return value
        raise AttributeError(f"Run has no attribute {name!r}")

    @property
    def run_id(self) -> str:
        return f"{data_prefix(self)}width~{self.width}_reg~{self.regularizer}_seed~{self.seed}"

    def to_dict(self) -> dict:
        """The run as a flat dict (`Run(**run.to_dict())` is the run again)."""
        fields = ("width", "regularizer", "seed")
        tail = ("n_train", "label_noise")
        return {
            **{k: getattr(self, k) for k in fields},
            **dict(self.settings),
            **{k: getattr(self, k) for k in tail},
        }


SWEPT = ("n_train", "label_noise")  # the data conditions an experiment may sweep


def data_prefix(run: Run) -> str:
    """What run and group ids start with in a label-noise or sample-wise sweep (`noise~0.1_`,
    `n~1000_`); nothing otherwise."""
    noise = "" if run.label_noise is None else f"{noise_name(run.label_noise)}_"
    return noise + ("" if run.n_train is None else f"n~{run.n_train}_")


def noise_name(rate: float) -> str:
    """A swept noise rate in file and group names: `noise~0.1`."""
    return f"noise~{rate:g}"


def sweeps(exp: dict, key: str) -> bool:
    """Whether the dataset's `key` (n_train, label_noise) is a list of values to sweep."""
    return isinstance(exp["dataset"][key], list)


def swept_values(exp: dict, key: str) -> list:
    """The dataset's values of `key`, ascending (one, where it is a number)."""
    value = exp["dataset"][key]
    return sorted(value) if isinstance(value, list) else [value]


def sweeps_noise(exp: dict) -> bool:
    """Whether `dataset.label_noise` is a list of rates."""
    return sweeps(exp, "label_noise")


def noise_levels(exp: dict) -> list[float]:
    """The label-noise rates, ascending."""
    return swept_values(exp, "label_noise")


def sweeps_sizes(exp: dict) -> bool:
    """Whether `dataset.n_train` is a list of training-set sizes (sample-wise double descent)."""
    return sweeps(exp, "n_train")


def train_sizes(exp: dict) -> list[int]:
    """The training-set sizes, ascending."""
    return swept_values(exp, "n_train")


def data_name(label_noise: float | None = None) -> str:
    """The prepared dataset's file under the experiment's folder, without `.npz`: `data`,
    or in a noise sweep one per rate, `data/noise~0.1`."""
    return "data" if label_noise is None else f"data/{noise_name(label_noise)}"


def dataset_spec(exp: dict, label_noise: float | None = None) -> dict:
    """What the prepared dataset is built from: in a sweep of sizes, the largest size; in a
    sweep of noise rates, the rate `label_noise` (one dataset per rate).

    One dataset per experiment, not one per size: the sizes are nested subsets of its
    training samples (data.nested_subset, taken by each training job), so every size shares
    the test set, the validation split and the noisy labels, and differs only in how many
    training samples it fits. Separately built datasets would each draw their own test set
    (MNIST-1D and digits split one generated pool by n_train) and their own noise.
    """
    if sweeps_noise(exp) != (label_noise is not None):
        raise ValueError("a label-noise sweep prepares one dataset per rate: name the rate")
    spec = {**exp["dataset"], "n_train": max(train_sizes(exp))}
    return spec if label_noise is None else {**spec, "label_noise": label_noise}


def variants(exp: dict) -> dict[str, dict]:
    """Regularizer variants, with each grid (a list of a grid parameter's values, such as
    weight_decay's) expanded into one variant per value.

    `l2: {weight_decay: [1e-4, 1e-3]}` gives `l2@0.0001` and `l2@0.001`: the name keeps the
    grid's family before the `@`, which is how figures find the grid again
    (regularizers.expand).
    """
    return {
        name: variant
        for family_name, reg in exp["regularizers"].items()
        for name, variant in regularizers.expand(family_name, reg).items()
    }


def family(regularizer: str) -> str:
    """The config's name of a variant: `l2@0.001` -> `l2`."""
    return regularizer.split("@")[0]


def runs(exp: dict) -> list[Run]:
    """All runs of an experiment, in a stable order (noise rate, n_train, width, regularizer
    as listed, seed)."""
    sizes = train_sizes(exp) if sweeps_sizes(exp) else [None]
    rates = noise_levels(exp) if sweeps_noise(exp) else [None]
    values = {name: regularizers.resolved(reg, exp) for name, reg in variants(exp).items()}
    return [
        Run(width=w, regularizer=name, seed=s, n_train=n, label_noise=q, **values[name])
        for q in rates
        for n in sizes
        for w in sorted(exp["widths"])
        for name in values
        for s in exp["seeds"]
    ]


def has_grid(exp: dict, param: str = "weight_decay") -> bool:
    """Whether a variant gives a list of `param`'s values (a grid)."""
    return any(isinstance(r[param], list) for r in exp["regularizers"].values())


def group_id(run: Run) -> str:
    """Runs that share a training set and a network shape (width, layer structure) train
    together; without a sweep the id names the shape only, as it did before sweeps. The
    layer structure is the regularizers' (regularizers.structure: `norm~batch`)."""
    return f"{data_prefix(run)}width~{run.width}_{regularizers.structure(run)}"


def groups(exp: dict) -> dict[str, list[Run]]:
    """The training groups of an experiment: group id -> its runs."""
    out: dict[str, list[Run]] = {}
    for run in runs(exp):
        out.setdefault(group_id(run), []).append(run)
    return out


def group_spec(name: str, exp: dict, gid: str) -> GroupSpec:
    """Exactly what a training job needs, so that unrelated config edits don't retrain it.

    Its plain form is Snakemake's rerun key too (the train rule's params, rerun_key): see
    INERT for what it leaves out."""
    # Sorted, so that reordering regularizers or seeds in the YAML retrains nothing.
    members = sorted(groups(exp)[gid], key=lambda r: (r.regularizer, r.seed))
    return GroupSpec(
        experiment=name,
        group=gid,
        dataset=DatasetSpec(**dataset_spec(exp, members[0].label_noise)),
        model=model_spec(exp["model"]),
        training=TrainingSettings.from_dict(exp["training"]),
        width=members[0].width,
        runs=tuple(members),
        n_train=members[0].n_train,
        reuse_from=reuse_source(exp, gid),
    )


def model_spec(section: dict) -> ModelSpec:
    """The model of a `model` section, less the options its family does not read (INERT)."""
    kept = without_inert({"model": section})["model"]
    return ModelSpec(kept["name"], {k: v for k, v in kept.items() if k != "name"})


def plain_spec(spec: GroupSpec) -> dict:
    """A group spec as the train rule's JSON carries it: its sections as plain mappings, less
    their inert entries (INERT)."""
    plain = {f.name: getattr(spec, f.name) for f in fields(spec)}
    plain.update(
        dataset=asdict(spec.dataset),
        model=spec.model.to_dict(),
        training=asdict(spec.training),
        runs=[r.to_dict() for r in spec.runs],
    )
    return without_inert(plain)


def spec_from_dict(plain: dict) -> GroupSpec:
    """The group spec of its plain form (plain_spec): how a training job reads its JSON."""
    return GroupSpec(
        **{
            **plain,
            "dataset": DatasetSpec(**plain["dataset"]),
            "model": model_spec(plain["model"]),
            "training": TrainingSettings.from_dict(plain["training"]),
            "runs": tuple(Run(**r) for r in plain["runs"]),
        }
    )


def rerun_key(spec: GroupSpec) -> str:
    """The train rule's params: only a real change to the spec retrains its group."""
    return canonical_json(plain_spec(spec))


@dataclass(frozen=True)
class Inert:
    """A group-spec entry that cannot change what the job computes in some specs, and is
    left out of them: where its value is `default` (a key added after rerun keys were frozen
    in 2026-12, at the value that behaves as before it existed; or None, a training setting
    the config leaves out), or, for a `family_option`, where the spec's model family does
    not read it (architectures.Family.reads)."""

    path: tuple[str, ...]  # keys from the spec's top; "runs" applies to each run
    default: object = None
    family_option: bool = False

    def applies(self, spec: dict, value) -> bool:
        if self.family_option:
            return ".".join(self.path) not in architectures.family(spec["model"]["name"]).reads
        return value == self.default


# The rerun key's one rule: a group spec (and the data rule's params) holds every entry but
# the inert ones. A new spec key (an option of training, model, dataset or a run) gets a
# line here with its default, and its field in the typed spec (doubledescent.specs) that
# default, so that adding it retrains no finished group; tests/test_config.py pins the
# default config's keys. Sweeps of sizes and of label noise and weight reuse came after the
# freeze; the conv nets' layers are fixed; the training settings at None were not given. A
# regularizer's parameter needs no line: those not in the frozen specs
# (regularizers.Param.frozen) are inert at their defaults (see _inert()).
INERT = (
    Inert(("n_train",)),
    Inert(("runs", "n_train")),
    Inert(("runs", "label_noise")),
    Inert(("reuse_from",)),
    # Each run carries its own batchnorm switch (runs); the model's is the config's default,
    # which no family reads.
    Inert(("model", "batchnorm"), family_option=True),
    *(Inert(("training", key)) for key in TrainingSettings.optional()),
)


def _inert() -> tuple[Inert, ...]:
    """INERT, every option that only some model families read (model.depth,
    model.batchnorm_position...), which the other families' specs leave out, and each
    regularizer parameter of the runs that came after the freeze, at its default."""
    options = (Inert(tuple(key.split(".")), family_option=True) for key in family_options())
    late = (Inert(("runs", p.name), p.default) for p in regularizers.params() if not p.frozen)
    return (*INERT, *options, *late)


def canonical_json(obj) -> str:
    """Plain data as the workflow's params carry it: only a real change to it triggers a
    rerun (a group spec's is rerun_key)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def data_params(exp: dict, label_noise: float | None = None) -> dict:
    """The prepare_data rule's params (its rerun key): the dataset spec (of the rate
    `label_noise`, in a noise sweep) less its inert entries, by the group specs' rule, so
    that a new dataset option at its default neither rebuilds the data nor, through it,
    retrains the groups."""
    return without_inert({"dataset": dataset_spec(exp, label_noise)})["dataset"]


def without_inert(spec: dict) -> dict:
    """A copy of `spec` (a group spec, or a part of one) without its inert entries (see
    INERT)."""
    out = copy.deepcopy(spec)
    for inert in _inert():
        *parents, key = inert.path
        holders = [out]
        for p in parents:
            nodes = [node[p] for node in holders if p in node]
            holders = [h for node in nodes for h in (node if p == "runs" else [node])]
        for holder in holders:
            if key in holder and inert.applies(out, holder[key]):
                del holder[key]
    return out


def reuse_source(exp: dict, gid: str) -> str | None:
    """Under `training.weight_reuse`, the group that group `gid` starts from: the same data and
    layer structure at the next smaller width, where `gid`'s width is below `below_width`
    and not the smallest; else None (a fresh initialization)."""
    reuse = exp["training"].get("weight_reuse")
    run = groups(exp)[gid][0]
    smaller = [w for w in exp["widths"] if w < run.width]
    if reuse is None or run.width >= reuse["below_width"] or not smaller:
        return None
    return group_id(Run(**{**run.to_dict(), "width": max(smaller)}))
