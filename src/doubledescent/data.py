"""Datasets: a registry of sources, seeded subsampling and label noise, the on-disk cache.

A prepared dataset is one `.npz` file holding float32 inputs, the noisy training labels
that models are trained on, the clean ones they replace, and the test set. Label noise is
part of the data, so every run of an experiment sees the same noisy labels. Image datasets
keep their (N, C, H, W) shape; models that want vectors flatten them.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from doubledescent.errors import DataError
from doubledescent.io import atomic_path
from doubledescent.streams import numpy_rng


@dataclass
class Arrays:
    """A dataset in memory: train/test inputs and labels, and the clean train labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_train_clean: np.ndarray
    num_classes: int
    # The held-out validation split (empty without one), labels noised like the train set's.
    x_val: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    y_val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def noisy_mask(self) -> np.ndarray:
        return self.y_train != self.y_train_clean


@dataclass(frozen=True)
class Source:
    """How to obtain a dataset: a loader, its classes, and the most samples it provides."""

    load: Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    num_classes: int
    shape: tuple[int, ...]  # of one sample: (C, H, W) for images
    max_train: int | None = None  # None: generated, any size
    max_test: int | None = None
    max_total: int | None = None  # one pool that n_train + n_test share (digits)

    @property
    def images(self) -> bool:
        """Inputs (N, C, H, W), standardized per channel if `normalize`."""
        return len(self.shape) == 3


def _rng(spec: dict, purpose: str) -> np.random.Generator:
    """The dataset seed's generator for one purpose (see doubledescent.streams)."""
    return numpy_rng(spec["seed"], purpose)


def _subsample(x: np.ndarray, y: np.ndarray, n: int, rng, what: str):
    """`n` samples without replacement: a prefix of one permutation, so smaller sets nest."""
    if n > len(y):
        raise DataError(f"{what}: {n} samples requested but only {len(y)} are available")
    idx = rng.permutation(len(y))[:n]
    return x[idx], y[idx]


def _pixels(x: np.ndarray, scale: float) -> np.ndarray:
    """Integer gray levels as float32 in [0, 1], as torchvision's ToTensor gives them."""
    return x.astype(np.float32) / np.float32(scale)


def _from_pools(spec: dict, train, test, scale: float):
    """Subsample fixed train and test pools to n_train / n_test; pixels to [0, 1]."""
    name = spec["name"]
    x_tr, y_tr = _subsample(*train, spec["n_train"], _rng(spec, "train"), f"{name} n_train")
    x_te, y_te = _subsample(*test, spec["n_test"], _rng(spec, "test"), f"{name} n_test")
    return _pixels(x_tr, scale), y_tr, _pixels(x_te, scale), y_te


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


def _load_digits(spec: dict):
    """scikit-learn's bundled 8x8 digits: one pool, split into train and test by the seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n_train = spec["n_train"]
    x, y = _subsample(
        d.images[:, None],
        d.target,
        n_train + spec["n_test"],
        _rng(spec, "train"),
        "digits n_train + n_test",
    )
    return _pixels(x[:n_train], 16), y[:n_train], _pixels(x[n_train:], 16), y[n_train:]


def _root(spec: dict) -> Path:
    """The directory of downloaded datasets, `~` expanded as torchvision does."""
    return Path(spec["root"]).expanduser()


def _ensure_files(
    spec: dict, folder: Path, names: list[str], fetch: Callable[[], object], how: Callable[[], str]
) -> None:
    """Download missing files if allowed; if still missing, one line that says what to do
    (`how()`, called only then: it may import torchvision)."""

    def missing():
        return [n for n in names if not (folder / n).is_file()]

    if missing() and spec["download"]:
        try:
            fetch()
        except (OSError, RuntimeError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__  # torchvision's spans lines
            raise DataError(
                f"{spec['name']}: download into {folder} failed ({reason}); {how()}"
            ) from None
    if absent := missing():
        raise DataError(
            f"{spec['name']}: expected {', '.join(absent)} in {folder}; set dataset.download: "
            f"true on a machine with internet, or {how()}"
        )


def _torchvision_class(class_name: str):
    """torchvision's dataset class: its downloads and mirrors. Imported only to download or
    to say where from: reading files already on disk needs no torch (a second's import)."""
    from torchvision import datasets

    return getattr(datasets, class_name)


# The files torchvision lays out and our readers read: its MNIST-like classes' `resources`
# (gunzipped), its CIFAR classes' `base_folder`, `train_list` and `test_list`
# (tests/test_datasets.py checks that they agree).
MNIST_FILES = {
    split: [f"{prefix}-{kind}-idx{dims}-ubyte" for kind, dims in (("images", 3), ("labels", 1))]
    for split, prefix in (("train", "train"), ("test", "t10k"))
}
CIFAR_FILES = {
    "CIFAR10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "CIFAR100": ("cifar-100-python", ["train"], ["test"]),
}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format, type 0x08): a 4-byte magic number whose
    last byte is the number of dimensions, the sizes as big-endian int32, then the data."""
    raw = path.read_bytes()
    if raw[:3] != b"\x00\x00\x08":
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = np.frombuffer(raw, ">i4", ndim, offset=4)
    values = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if values.size != np.prod(shape):
        raise DataError(f"{path}: {values.size} bytes of data where its header says {shape}")
    return values.reshape(shape)


def _load_mnist_like(class_name: str, spec: dict):
    """MNIST-format datasets from raw IDX files under root/<class>/raw, where torchvision
    downloads them."""
    root = _root(spec)
    folder = root / class_name / "raw"
    _ensure_files(
        spec,
        folder,
        [name for split in MNIST_FILES.values() for name in split],
        lambda: _torchvision_class(class_name)(root, download=True),
        lambda: f"place the gunzipped files from {_torchvision_class(class_name).mirrors[0]} there",
    )
    train, test = (
        (_read_idx(folder / images)[:, None], _read_idx(folder / labels).astype(np.int64))
        for images, labels in MNIST_FILES.values()
    )
    return _from_pools(spec, train, test, 255)


def _read_cifar(folder: Path, names: list[str]):
    """Images (N, 3, 32, 32) uint8 and labels from CIFAR's documented python pickles."""
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            # CIFAR ships as pickles (Python 2's, hence latin1); like torchvision, trust them.
            batch = pickle.load(f, encoding="latin1")
        xs.append(batch["data"])
        ys.extend(batch["labels"] if "labels" in batch else batch["fine_labels"])
    return np.concatenate(xs).reshape(-1, 3, 32, 32), np.asarray(ys, dtype=np.int64)


def _load_cifar_like(class_name: str, spec: dict):
    """CIFAR-format datasets from the python pickles under root/<base folder>."""
    root = _root(spec)
    base_folder, train_names, test_names = CIFAR_FILES[class_name]
    folder = root / base_folder

    # torchvision's archive, but our reader: its CIFAR classes accept only files with the
    # official md5 sums, which would reject users' subsets or re-packs.
    def fetch():
        from torchvision.datasets.utils import download_and_extract_archive

        cls = _torchvision_class(class_name)
        download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)

    def how():
        return f"extract {_torchvision_class(class_name).url} into {root}"

    _ensure_files(spec, folder, train_names + test_names, fetch, how)
    return _from_pools(spec, _read_cifar(folder, train_names), _read_cifar(folder, test_names), 255)


# The one place to add a dataset (and its name to the schema's `dataset.name` enum).
SOURCES: dict[str, Source] = {
    "mnist1d": Source(load=_load_mnist1d, num_classes=10, shape=(40,)),
    "digits": Source(load=_load_digits, num_classes=10, shape=(1, 8, 8), max_total=1797),
    "mnist": Source(
        load=partial(_load_mnist_like, "MNIST"),
        num_classes=10,
        shape=(1, 28, 28),
        max_train=60000,
        max_test=10000,
    ),
    "fashion_mnist": Source(
        load=partial(_load_mnist_like, "FashionMNIST"),
        num_classes=10,
        shape=(1, 28, 28),
        max_train=60000,
        max_test=10000,
    ),
    "cifar10": Source(
        load=partial(_load_cifar_like, "CIFAR10"),
        num_classes=10,
        shape=(3, 32, 32),
        max_train=50000,
        max_test=10000,
    ),
    "cifar100": Source(
        load=partial(_load_cifar_like, "CIFAR100"),
        num_classes=100,
        shape=(3, 32, 32),
        max_train=50000,
        max_test=10000,
    ),
}


def dataset_size_limits(name: str) -> dict:
    """The most n_train, n_test and n_train + n_test a dataset provides (None: unlimited)."""
    source = SOURCES[name]
    return {"n_train": source.max_train, "n_test": source.max_test, "n_total": source.max_total}


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (axis 1) standardization of both sets with the train set's statistics."""
    axes = (0, *range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std[std == 0] = 1  # a constant channel carries nothing to scale: only centre it
    return tuple(((x - mean) / std).astype(np.float32) for x in (x_train, x_test))


def add_label_noise(y: np.ndarray, rate: float, num_classes: int, mode: str, rng) -> np.ndarray:
    """Replace a `rate` fraction of labels (exactly round(rate * n) of them) by noise.

    `random_class` draws uniformly from all classes, so about 1/K of the picked labels keep
    their value (MNIST-1D's convention); `wrong_class` always changes the label (Nakkiran's).
    """
    y_noisy = y.copy()
    n_flip = round(rate * len(y))
    picked = rng.choice(len(y), size=n_flip, replace=False)
    if mode == "random_class":
        y_noisy[picked] = rng.integers(0, num_classes, size=n_flip)
    elif mode == "wrong_class":
        shift = rng.integers(1, num_classes, size=n_flip)
        y_noisy[picked] = (y[picked] + shift) % num_classes
    else:
        raise ValueError(f"unknown label-noise mode {mode!r}")
    return y_noisy


def noisy_label_error(clean_error, rate: float, num_classes: int, mode: str):
    """The expected error against labels drawn from the noise model, given the error e on
    the clean labels (Nakkiran et al. 2019's Fig. 1 plots it): exact, no draw.

    A label is kept with probability 1 - rate; otherwise `wrong_class` replaces it by one of
    the K - 1 other classes and `random_class` by any of the K, uniformly. A correct
    prediction is then wrong with probability rate (resp. rate (K - 1) / K); a wrong one is
    right only if the noise lands on it, probability rate / (K - 1) (resp. rate / K). The
    expectation is linear in e: (1 - e) a + e (1 - q) with a, q those two probabilities.
    """
    k = num_classes
    if mode == "wrong_class":
        flipped, hit = rate, rate / (k - 1)
    elif mode == "random_class":
        flipped, hit = rate * (k - 1) / k, rate / k
    else:
        raise ValueError(f"unknown label-noise mode {mode!r}")
    return (1 - clean_error) * flipped + clean_error * (1 - hit)


def build(spec: dict) -> Arrays:
    """Generate or load a dataset as `spec` says, normalize it, then apply its label noise."""
    try:
        source = SOURCES[spec["name"]]
    except KeyError:
        raise ValueError(f"unknown dataset {spec['name']!r}; known: {sorted(SOURCES)}") from None
    x_train, y_train, x_test, y_test = source.load(spec)
    if source.images and spec["normalize"]:
        x_train, x_test = standardize(x_train, x_test)
    # Noise gets its own stream, so changing the rate never changes the data itself.
    y_noisy = add_label_noise(
        y_train, spec["label_noise"], source.num_classes, spec["noise_mode"], _rng(spec, "noise")
    )
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    # Held out after the noise, so the choice made on it sees what training data looks like.
    n_val = spec.get("validation", 0)
    val = _rng(spec, "validation").choice(len(y_noisy), n_val, replace=False)
    fit = np.setdiff1d(np.arange(len(y_noisy)), val)  # sorted: the original order stays
    return Arrays(
        x_train=x_train[fit],
        y_train=y_noisy[fit].astype(np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=np.asarray(y_test, dtype=np.int64),
        y_train_clean=np.asarray(y_train, dtype=np.int64)[fit],
        num_classes=source.num_classes,
        x_val=x_train[val],
        y_val=y_noisy[val].astype(np.int64),
    )


def nested_order(noisy: np.ndarray, rng) -> np.ndarray:
    """A random order of the training samples in which every prefix holds noisy and clean
    samples in the overall proportion (to within one sample).

    A plain permutation's prefixes would carry a binomially varying noise rate (20% +- 4% of
    100 samples at 20% noise), which would blur a sample-wise curve; here each kind's samples
    take evenly spaced ranks in a random order, and merging the two keeps the proportion.
    """
    keys = np.empty(len(noisy))
    for kind in (noisy, ~noisy):
        k = int(kind.sum())
        keys[kind] = (rng.permutation(k) + 0.5) / max(k, 1)
    return np.argsort(keys, kind="stable")


def nested_subset(arrays: Arrays, n_train: int, seed: int) -> Arrays:
    """The first `n_train` samples (validation split included) of the training set's nested
    order: smaller sizes are subsets of larger ones, and test and validation sets are shared.
    """
    n_fit = n_train - len(arrays.y_val)
    if not 0 < n_fit <= len(arrays.y_train):
        raise DataError(
            f"n_train {n_train} does not fit the prepared {len(arrays.y_train)} "
            f"training and {len(arrays.y_val)} validation samples"
        )
    rng = numpy_rng(seed, "subset")
    # Sorted, so that the samples keep the prepared order and a full-size subset is the set.
    keep = np.sort(nested_order(arrays.noisy_mask, rng)[:n_fit])
    return replace(
        arrays,
        x_train=arrays.x_train[keep],
        y_train=arrays.y_train[keep],
        y_train_clean=arrays.y_train_clean[keep],
    )


def save(arrays: Arrays, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: v for k, v in vars(arrays).items()})


def load(path: str | Path) -> Arrays:
    """Read a prepared dataset, with a clear error if it is missing or damaged."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"prepared dataset not found: {path}")
    try:
        with np.load(path) as f:
            fields = {k: f[k] for k in f.files}
        fields["num_classes"] = int(fields["num_classes"])
        return Arrays(**fields)
    except Exception as e:  # noqa: BLE001 (zip/pickle/key errors mean the same to a user)
        raise DataError(f"prepared dataset {path} is corrupt ({e}); delete it and rerun") from None
