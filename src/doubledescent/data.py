"""Datasets: a registry of sources, seeded label noise, and the on-disk cache.

A prepared dataset is one `.npz` file holding float32 inputs, the noisy training labels
that models are trained on, the clean ones they replace, and the test set. Label noise is
part of the data, so every run of an experiment sees the same noisy labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doubledescent.io import atomic_path


@dataclass
class Arrays:
    """A dataset in memory: train/test inputs and labels, and the clean train labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_train_clean: np.ndarray
    num_classes: int

    @property
    def noisy_mask(self) -> np.ndarray:
        return self.y_train != self.y_train_clean


@dataclass(frozen=True)
class Source:
    """How to obtain a dataset: a loader and the most samples it can provide."""

    load: Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    num_classes: int
    max_train: int | None = None  # None: generated, any size
    max_test: int | None = None


def _load_mnist1d(spec: dict):
    # make_dataset generates offline from the package's templates; get_dataset would
    # try to download the frozen pickle with no timeout.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    total = spec["n_train"] + spec["n_test"]
    args.num_samples = total
    args.train_split = spec["n_train"] / total
    args.seed = spec["seed"]
    d = make_dataset(args)
    return d["x"], d["y"], d["x_test"], d["y_test"]


SOURCES: dict[str, Source] = {
    "mnist1d": Source(load=_load_mnist1d, num_classes=10),
}


def dataset_size_limits(name: str) -> dict:
    source = SOURCES[name]
    return {"n_train": source.max_train, "n_test": source.max_test}


def add_label_noise(y: np.ndarray, rate: float, num_classes: int, mode: str, rng) -> np.ndarray:
    """Replace a `rate` fraction of labels (exactly round(rate * n) of them) by noise.

    `random_class` draws uniformly from all classes, so about 1/K of the picked labels keep
    their value (MNIST-1D's convention); `wrong_class` always changes the label (Nakkiran's).
    """
    y_noisy = y.copy()
    n_flip = int(round(rate * len(y)))
    picked = rng.choice(len(y), size=n_flip, replace=False)
    if mode == "random_class":
        y_noisy[picked] = rng.integers(0, num_classes, size=n_flip)
    elif mode == "wrong_class":
        shift = rng.integers(1, num_classes, size=n_flip)
        y_noisy[picked] = (y[picked] + shift) % num_classes
    else:
        raise ValueError(f"unknown label-noise mode {mode!r}")
    return y_noisy


def build(spec: dict) -> Arrays:
    """Generate or load a dataset as `spec` says, then apply its label noise."""
    try:
        source = SOURCES[spec["name"]]
    except KeyError:
        raise ValueError(f"unknown dataset {spec['name']!r}; known: {sorted(SOURCES)}") from None
    x_train, y_train, x_test, y_test = source.load(spec)
    # Noise gets its own stream, so changing the rate never changes the data itself.
    rng = np.random.default_rng([spec["seed"], 1])
    y_noisy = add_label_noise(
        y_train, spec["label_noise"], source.num_classes, spec["noise_mode"], rng
    )
    return Arrays(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_noisy.astype(np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=np.asarray(y_test, dtype=np.int64),
        y_train_clean=np.asarray(y_train, dtype=np.int64),
        num_classes=source.num_classes,
    )


def save(arrays: Arrays, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: v for k, v in vars(arrays).items()})


def load(path: str | Path) -> Arrays:
    """Read a prepared dataset, with a clear error if it is missing or damaged."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"prepared dataset not found: {path}")
    try:
        with np.load(path) as f:
            fields = {k: f[k] for k in f.files}
        fields["num_classes"] = int(fields["num_classes"])
        return Arrays(**fields)
    except Exception as e:  # zip/pickle/key errors all mean the same thing to a user
        raise ValueError(f"prepared dataset {path} is corrupt ({e}); delete it and rerun") from None
