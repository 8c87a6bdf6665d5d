"""Datasets through the user's path: config validation, files in the real formats, build()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from doubledescent import cli, config, data, train
from doubledescent.errors import DataError
from tests.dataset_files import N_TEST_FILE, N_TRAIN_FILE, write_cifar, write_mnist_like

SCHEMA = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def experiment(dataset: dict) -> dict:
    """A minimal experiment around a dataset section, as a config file would hold it."""
    return {
        "dataset": dataset,
        "model": {"name": "mlp", "depth": 1},
        "widths": [8],
        "regularizers": {"none": {}},
        "seeds": [0],
        "training": {"lr": 0.05, "batch_size": 20, "epochs": 3, "eval_epochs": [3]},
    }


def validated(**dataset) -> dict:
    """The experiment with schema defaults filled in, as the pipeline sees it."""
    return config.validate({"experiments": {"e": experiment(dataset)}}, SCHEMA)["experiments"]["e"]


def spec(**dataset) -> dict:
    return validated(**dataset)["dataset"]


FILE_DATASETS = {
    "mnist": lambda root: write_mnist_like(root, "MNIST"),
    "fashion_mnist": lambda root: write_mnist_like(root, "FashionMNIST"),
    "cifar10": lambda root: write_cifar(root, "cifar10"),
    "cifar100": lambda root: write_cifar(root, "cifar100"),
}
SHAPES = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
}


def source_rows(x: np.ndarray, originals: np.ndarray) -> np.ndarray:
    """Which row of the written file each loaded image (pixels in [0, 1]) came from."""
    flat = np.rint(x.reshape(len(x), -1) * 255).astype(np.uint8)
    rows = [np.flatnonzero((originals == img).all(axis=1)) for img in flat]
    assert all(len(r) == 1 for r in rows), "a loaded image matches no written one"
    return np.array([r[0] for r in rows])


def test_schema_fills_dataset_defaults():
    ds = spec(name="mnist", n_test=100)
    assert (ds["root"], ds["download"], ds["normalize"]) == ("data", False, True)


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_files_in_real_formats_load_with_their_labels(name, tmp_path):
    (x_pool, y_pool), (x_pool_test, y_pool_test) = FILE_DATASETS[name](tmp_path)
    arrays = data.build(spec(name=name, root=str(tmp_path), n_train=12, n_test=5, normalize=False))
    assert arrays.x_train.shape == (12, *SHAPES[name]) == (12, *data.SOURCES[name].shape)
    assert arrays.x_test.shape == (5, *SHAPES[name])
    assert arrays.x_train.dtype == np.float32 and arrays.y_train.dtype == np.int64
    assert arrays.num_classes == (100 if name == "cifar100" else 10)
    rows = source_rows(arrays.x_train, x_pool)
    assert len(set(rows)) == 12  # without replacement
    np.testing.assert_array_equal(arrays.y_train, y_pool[rows])
    np.testing.assert_array_equal(
        arrays.y_test, y_pool_test[source_rows(arrays.x_test, x_pool_test)]
    )
    assert 0 <= arrays.x_train.min() and arrays.x_train.max() <= 1


@pytest.mark.parametrize("class_name", ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"])
def test_file_names_are_torchvisions(class_name):
    from torchvision import datasets

    cls = getattr(datasets, class_name)
    if class_name in data.CIFAR_FILES:
        folder, train_names, test_names = data.CIFAR_FILES[class_name]
        assert folder == cls.base_folder
        assert train_names == [name for name, _ in cls.train_list]
        assert test_names == [name for name, _ in cls.test_list]
    else:
        names = [name.removesuffix(".gz") for name, _ in cls.resources]
        assert sorted(names) == sorted(n for split in data.MNIST_FILES.values() for n in split)


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_preparing_files_on_disk_imports_no_torch(name, tmp_path):
    FILE_DATASETS[name](tmp_path)
    ds = spec(name=name, root=str(tmp_path), n_train=12, n_test=5)
    code = (
        "import sys; from doubledescent import cli; "
        f"cli.main(['data', '--spec', {json.dumps(ds)!r}, '--out', {str(tmp_path / 'd.npz')!r}]); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert data.load(tmp_path / "d.npz").x_train.shape == (12, *SHAPES[name])


def test_a_file_that_is_not_idx_is_a_clear_error(tmp_path):
    write_mnist_like(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"<html>not found")
    with pytest.raises(DataError, match="train-images-idx3-ubyte: not an IDX file"):
        data.build(spec(name="mnist", root=str(tmp_path), n_train=12, n_test=5))


def test_a_truncated_idx_file_is_a_clear_error(tmp_path):
    write_mnist_like(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(
        DataError, match="t10k-labels-idx1-ubyte: .* bytes of data where its header"
    ):
        data.build(spec(name="mnist", root=str(tmp_path), n_train=12, n_test=5))


@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_subsampling_is_seeded(name, tmp_path):
    if name in FILE_DATASETS:
        FILE_DATASETS[name](tmp_path)

    def build(seed):
        return data.build(spec(name=name, root=str(tmp_path), n_train=10, n_test=5, seed=seed))

    a, b, c = build(0), build(0), build(1)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.x_train, c.x_train)


def test_smaller_training_sets_nest(tmp_path):
    write_cifar(tmp_path, "cifar10")
    small, large = (
        data.build(spec(name="cifar10", root=str(tmp_path), n_train=n, n_test=5, normalize=False))
        for n in (6, 15)
    )
    np.testing.assert_array_equal(small.x_train, large.x_train[:6])
    np.testing.assert_array_equal(small.x_test, large.x_test)  # test set ignores n_train


def test_normalize_standardizes_per_channel_with_train_statistics(tmp_path):
    write_cifar(tmp_path, "cifar10")
    raw, norm = (
        data.build(
            spec(
                name="cifar10",
                root=str(tmp_path),
                n_train=N_TRAIN_FILE,
                n_test=N_TEST_FILE,
                normalize=flag,
            )
        )
        for flag in (False, True)
    )
    np.testing.assert_allclose(norm.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(norm.x_train.std(axis=(0, 2, 3)), 1, atol=1e-5)
    mean = raw.x_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = raw.x_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    np.testing.assert_allclose(norm.x_test, (raw.x_test - mean) / std, atol=1e-5)


def test_mnist1d_stays_as_generated():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 200, 0.5, 3
    arrays = data.build(spec(name="mnist1d", n_train=100, n_test=100, seed=3))
    np.testing.assert_allclose(arrays.x_train, make_dataset(args)["x"], rtol=1e-6)
    assert arrays.x_train.shape[1:] == data.SOURCES["mnist1d"].shape


def test_digits_split_is_disjoint_and_complete():
    from sklearn.datasets import load_digits

    arrays = data.build(spec(name="digits", n_train=1500, n_test=297, normalize=False))
    assert arrays.x_train.shape == (1500, 1, 8, 8) and arrays.x_test.shape == (297, 1, 8, 8)
    assert data.SOURCES["digits"].shape == (1, 8, 8)
    assert set(np.unique(arrays.y_train)) == set(range(10))
    loaded = np.concatenate([arrays.x_train, arrays.x_test]).reshape(1797, 64) * 16
    expected = load_digits().data
    # Every original sample appears exactly once across the two sets.
    np.testing.assert_allclose(np.sort(loaded, axis=0), np.sort(expected, axis=0), atol=1e-5)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([arrays.y_train, arrays.y_test])), np.sort(load_digits().target)
    )


@pytest.mark.parametrize(
    "dataset, message",
    [
        ({"name": "mnist", "n_train": 60001, "n_test": 100}, "60000"),
        ({"name": "cifar100", "n_train": 100, "n_test": 10001}, "10000"),
        ({"name": "digits", "n_train": 1000, "n_test": 900}, "1797"),
    ],
)
def test_config_rejects_more_samples_than_the_source_has(dataset, message):
    with pytest.raises(config.ConfigError, match=message):
        validated(**dataset)


def test_files_smaller_than_requested_are_a_clear_error(tmp_path):
    write_mnist_like(tmp_path, "MNIST")
    with pytest.raises(DataError, match=f"only {N_TRAIN_FILE}"):
        data.build(spec(name="mnist", root=str(tmp_path), n_train=30, n_test=5))


@pytest.mark.parametrize(
    "name, folder, file",
    [
        ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_1"),
        ("cifar100", "cifar-100-python", "train"),
    ],
)
def test_missing_files_name_what_goes_where(name, folder, file, tmp_path, capsys):
    ds = spec(name=name, root=str(tmp_path), n_train=10, n_test=5)
    status = cli.main(["data", "--spec", json.dumps(ds), "--out", str(tmp_path / "d.npz")])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1, "the error is one line, without a traceback"
    assert str(tmp_path / folder) in err and file in err and "download: true" in err
    assert not (tmp_path / "d.npz").exists()


@pytest.fixture
def offline_download(monkeypatch):
    """Stand-in for torchvision's CIFAR download: `fetch(root)` plays the network."""

    def use(fetch):
        monkeypatch.setattr(
            "torchvision.datasets.utils.download_and_extract_archive",
            lambda url, root, **kw: fetch(Path(root)),
        )

    return use


def test_download_fetches_missing_files(tmp_path, offline_download):
    offline_download(lambda root: write_cifar(root, "cifar10"))
    arrays = data.build(
        spec(name="cifar10", root=str(tmp_path), n_train=10, n_test=5, download=True)
    )
    assert arrays.x_train.shape == (10, 3, 32, 32)


def test_failed_download_is_one_line(tmp_path, offline_download):
    def unreachable(root):
        raise RuntimeError("Error downloading:\n  name or service not known")

    offline_download(unreachable)
    with pytest.raises(DataError) as info:
        data.build(spec(name="cifar10", root=str(tmp_path), n_train=10, n_test=5, download=True))
    message = str(info.value)
    assert "\n" not in message and "download into" in message
    assert "name or service not known" in message and "cifar-10-python.tar.gz" in message


def test_label_noise_random_class_picks_exactly_the_rate():
    rng = np.random.default_rng(0)
    # Labels outside the class range show which were picked: every pick gets a real class.
    noisy = data.add_label_noise(np.full(1000, -1), 0.3, 10, "random_class", rng)
    assert (noisy != -1).sum() == 300
    assert set(np.unique(noisy[noisy != -1])) == set(range(10))


def test_label_noise_random_class_keeps_about_one_in_k():
    y = np.arange(1000) % 10
    noisy = data.add_label_noise(y, 0.5, 10, "random_class", np.random.default_rng(0))
    assert 400 <= (noisy != y).sum() < 500  # 500 picked, ~1/10 of them keep their class


def test_label_noise_wrong_class_changes_every_pick():
    y = np.arange(1000) % 10
    noisy = data.add_label_noise(y, 0.5, 10, "wrong_class", np.random.default_rng(0))
    assert (noisy != y).sum() == 500
    assert ((0 <= noisy) & (noisy < 10)).all()


def test_label_noise_wrong_class_through_build(tmp_path):
    write_cifar(tmp_path, "cifar100")
    arrays = data.build(
        spec(
            name="cifar100",
            root=str(tmp_path),
            n_train=N_TRAIN_FILE,
            n_test=5,
            label_noise=0.25,
            noise_mode="wrong_class",
        )
    )
    assert arrays.noisy_mask.sum() == round(0.25 * N_TRAIN_FILE)
    assert ((0 <= arrays.y_train) & (arrays.y_train < 100)).all()


def test_label_noise_leaves_inputs_and_clean_labels_alone():
    clean, noisy = (
        data.build(spec(name="digits", n_train=300, n_test=100, label_noise=rate))
        for rate in (0.0, 0.4)
    )
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    np.testing.assert_array_equal(clean.y_train, noisy.y_train_clean)
    assert noisy.noisy_mask.sum() > 0.3 * 300


def test_prepared_images_keep_their_shape_on_disk(tmp_path):
    arrays = data.build(spec(name="digits", n_train=50, n_test=20))
    data.save(arrays, tmp_path / "d.npz")
    loaded = data.load(tmp_path / "d.npz")
    assert loaded.x_train.shape == (50, 1, 8, 8) and loaded.x_train.dtype == np.float32
    np.testing.assert_array_equal(loaded.x_test, arrays.x_test)


def test_mlp_trains_on_images():
    exp = validated(name="digits", n_train=200, n_test=100, label_noise=0.1)
    exp["training"]["epochs"], exp["training"]["eval_epochs"] = 5, [1, 5]
    (gid,) = config.groups(exp)
    arrays = data.build(exp["dataset"])
    spec = config.group_spec("e", exp, gid)
    table = train.train_group(spec, arrays, device="cpu", log=lambda _: None)
    assert train.input_shape(spec, arrays) == (64,)
    assert (table.n_params == 64 * 8 + 8 + 8 * 10 + 10).all()
    first, last = (table[table.epoch == e].iloc[0] for e in (1, 5))
    assert np.isfinite(last.train_loss) and last.train_loss < first.train_loss
    assert last.test_error < 0.5  # far better than chance (0.9): images reached the model
