import os

import numpy as np
import pytest

from doubledescent import data
from doubledescent.errors import DataError
from tests.conftest import mnist1d_spec


def test_mnist1d_shapes_and_labels(small_data):
    assert small_data.x_train.shape == (300, 40)
    assert small_data.x_test.shape == (200, 40)
    assert small_data.x_train.dtype == np.float32
    assert set(np.unique(small_data.y_test)) <= set(range(10))
    assert small_data.num_classes == 10


@pytest.mark.parametrize("mode", ["random_class", "wrong_class"])
def test_label_noise_rate(mode):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=10_000)
    noisy = data.add_label_noise(y, 0.15, 10, mode, np.random.default_rng(1))
    changed = (noisy != y).mean()
    if mode == "wrong_class":
        assert changed == pytest.approx(0.15, abs=1e-12)  # every picked label changes
    else:
        # A uniformly random class keeps the true one with probability 1/K.
        assert changed == pytest.approx(0.15 * 0.9, abs=0.01)
    assert noisy.min() >= 0 and noisy.max() <= 9


def test_noise_kept_beside_clean_labels(small_data):
    changed = small_data.y_train != small_data.y_train_clean
    assert 0.1 < changed.mean() < 0.25
    np.testing.assert_array_equal(small_data.noisy_mask, changed)
    # Test labels never get noise.
    clean = data.build(mnist1d_spec(label_noise=0.0))
    np.testing.assert_array_equal(clean.y_test, small_data.y_test)
    np.testing.assert_array_equal(clean.y_train, small_data.y_train_clean)


def test_build_is_deterministic_and_seeded(small_data):
    again = data.build(mnist1d_spec())
    for field in ("x_train", "y_train", "x_test", "y_test", "y_train_clean"):
        np.testing.assert_array_equal(getattr(again, field), getattr(small_data, field))
    other = data.build(mnist1d_spec(seed=8))
    assert not np.array_equal(other.x_train, small_data.x_train)


def test_save_load_roundtrip(tmp_path, small_data):
    path = tmp_path / "d.npz"
    data.save(small_data, path)
    back = data.load(path)
    np.testing.assert_array_equal(back.y_train, small_data.y_train)
    assert back.num_classes == 10
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temp file left behind


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="prepared dataset not found"):
        data.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="corrupt") as e:
        data.load(bad)
    assert "\n" not in str(e.value)


def test_outputs_get_the_usual_permissions(tmp_path, small_data):
    mask = os.umask(0o022)
    try:
        data.save(small_data, tmp_path / "d.npz")
    finally:
        os.umask(mask)
    assert (tmp_path / "d.npz").stat().st_mode & 0o777 == 0o644
