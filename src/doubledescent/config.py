"""Config validation and the expansion of experiments into runs and training groups."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from doubledescent.data import dataset_size_limits


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the offending key."""


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
    return config


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
    total = limits.get("n_total")
    if total is not None and ds["n_train"] + ds["n_test"] > total:
        raise ConfigError(
            f"{where}.dataset: n_train + n_test = {ds['n_train'] + ds['n_test']} exceeds the "
            f"{total} samples that {ds['name']} provides"
        )
    epochs = exp["training"]["epochs"]
    evals = exp["training"]["eval_epochs"]
    if isinstance(evals, list) and max(evals) > epochs:
        raise ConfigError(
            f"{where}.training.eval_epochs: epoch {max(evals)} is past the last epoch ({epochs})"
        )


def load(path: str | Path, schema_path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return validate(config or {}, schema_path)


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


def runs(exp: dict) -> list[Run]:
    """All runs of an experiment, in a stable order (width, regularizer as listed, seed)."""
    return [
        Run(width=w, regularizer=name, seed=s, **reg)
        for w in sorted(exp["widths"])
        for name, reg in exp["regularizers"].items()
        for s in exp["seeds"]
    ]


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
