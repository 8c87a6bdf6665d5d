"""Config validation and the expansion of experiments into runs and training groups."""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from doubledescent.data import SOURCES, dataset_size_limits


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the offending key."""


# The input each model family takes (the registry itself is doubledescent.models, which
# needs torch; this stays importable where Snakemake parses the config): `vector` flattens
# any dataset, `image` needs (C, H, W) images, `sequence` MNIST-1D's 1-D signals.
MODEL_INPUTS = {"mlp": "vector", "cnn5": "image", "preact_resnet18": "image",
                "mnist1d_cnn": "sequence"}


def _with_defaults(validator_class):
    """A validator that fills `default:` values in as it validates, like Snakemake's."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


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
    config = copy.deepcopy(config)
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_one_line(best))
    for name, exp in config["experiments"].items():
        _check_experiment(name, exp)
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
    for key in ("n_train", "n_test"):
        if limits.get(key) is not None and ds[key] > limits[key]:
            raise ConfigError(
                f"{where}.dataset.{key}: {ds[key]} exceeds the {limits[key]} samples "
                f"that {ds['name']} provides"
            )
    if ds["validation"] >= ds["n_train"]:
        raise ConfigError(f"{where}.dataset.validation: {ds['validation']} leaves no training "
                          f"samples of n_train = {ds['n_train']}")
    total = limits.get("n_total")
    if total is not None and ds["n_train"] + ds["n_test"] > total:
        raise ConfigError(
            f"{where}.dataset: n_train + n_test = {ds['n_train'] + ds['n_test']} exceeds the "
            f"{total} samples that {ds['name']} provides"
        )
    _check_model_fits_data(where, exp["model"]["name"], ds["name"])
    aug = exp["training"]["augment"]
    if (aug["crop_padding"] or aug["hflip"]) and MODEL_INPUTS[exp["model"]["name"]] != "image":
        image_models = ", ".join(m for m, kind in MODEL_INPUTS.items() if kind == "image")
        raise ConfigError(f"{where}.training.augment: crops and flips need an image model "
                          f"({image_models}), not {exp['model']['name']}")
    epochs = exp["training"]["epochs"]
    evals = exp["training"]["eval_epochs"]
    if isinstance(evals, list) and max(evals) > epochs:
        raise ConfigError(
            f"{where}.training.eval_epochs: epoch {max(evals)} is past the last epoch ({epochs})"
        )


def _check_model_fits_data(where: str, model: str, dataset: str) -> None:
    """Conv nets need the layout they convolve over: images, or MNIST-1D's signals."""
    layout, images = MODEL_INPUTS[model], SOURCES[dataset].images
    if layout == "image" and not images:
        raise ConfigError(f"{where}.model.name: {model} needs image data, and {dataset} "
                          "is not an image dataset")
    if layout == "sequence" and images:
        raise ConfigError(f"{where}.model.name: {model} takes 1-D signals (mnist1d), not "
                          f"{dataset}'s images")


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


def check_results_dir(results: str | Path, experiments) -> None:
    """Fail before any job if an experiment's results folder could not be written."""
    for folder in [Path(results), *(Path(results) / name for name in experiments)]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"results folder {folder} exists but is not a directory")
    existing = next(p for p in [Path(results).absolute(), *Path(results).absolute().parents]
                    if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"results folder {results} is not writable: {existing} is read-only")


@dataclass(frozen=True)
class Run:
    """One point of an experiment's product: a width, a regularizer variant, a seed."""

    width: int
    regularizer: str
    seed: int
    weight_decay: float = 0.0
    dropout: float = 0.0
    batchnorm: bool = False

    @property
    def run_id(self) -> str:
        return f"width~{self.width}_reg~{self.regularizer}_seed~{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


def variants(exp: dict) -> dict[str, dict]:
    """Regularizer variants, with each weight-decay grid expanded into one variant per value.

    `l2: {weight_decay: [1e-4, 1e-3]}` gives `l2@0.0001` and `l2@0.001`: the name keeps the
    grid's family before the `@`, which is how figures find the grid again.
    """
    out = {}
    for name, reg in exp["regularizers"].items():
        grid = reg["weight_decay"]
        if not isinstance(grid, list):
            out[name] = reg
            continue
        for wd in grid:
            out[f"{name}@{wd:g}"] = {**reg, "weight_decay": float(wd)}
    return out


def family(regularizer: str) -> str:
    """The config's name of a variant: `l2@0.001` -> `l2`."""
    return regularizer.split("@")[0]


def runs(exp: dict) -> list[Run]:
    """All runs of an experiment, in a stable order (width, regularizer as listed, seed)."""
    return [
        Run(width=w, regularizer=name, seed=s, **reg)
        for w in sorted(exp["widths"])
        for name, reg in variants(exp).items()
        for s in exp["seeds"]
    ]


def has_grid(exp: dict) -> bool:
    return any(isinstance(r["weight_decay"], list) for r in exp["regularizers"].values())


def group_id(run: Run) -> str:
    """Runs that share a network shape (width, layer structure) train together."""
    return f"width~{run.width}_norm~{'batch' if run.batchnorm else 'none'}"


def groups(exp: dict) -> dict[str, list[Run]]:
    """The training groups of an experiment: group id -> its runs."""
    out: dict[str, list[Run]] = {}
    for run in runs(exp):
        out.setdefault(group_id(run), []).append(run)
    return out


def group_spec(name: str, exp: dict, gid: str) -> dict:
    """Exactly what a training job needs, so that unrelated config edits don't retrain it."""
    # Sorted, so that reordering regularizers or seeds in the YAML retrains nothing.
    members = sorted(groups(exp)[gid], key=lambda r: (r.regularizer, r.seed))
    return {
        "experiment": name,
        "group": gid,
        "dataset": exp["dataset"],
        "model": exp["model"],
        "training": exp["training"],
        "width": members[0].width,
        "runs": [r.to_dict() for r in members],
    }


def eval_epochs(training: dict) -> list[int]:
    """Epochs after which a run is evaluated: log-spaced by default, always the last one."""
    epochs, spec = training["epochs"], training["eval_epochs"]
    if isinstance(spec, list):
        chosen = set(spec)
    else:  # n points from epoch 1 to the last; a single point is the last epoch
        points = np.geomspace(1, epochs, spec) if spec > 1 else []
        chosen = set(np.round(points).astype(int).tolist())
    return sorted(chosen | {epochs})
