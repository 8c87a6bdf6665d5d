"""Sample-wise double descent: n_train as a list of sizes, nested subsets, ids and groups."""

from __future__ import annotations

import numpy as np
import pytest

from doubledescent import config, data, train
from tests.conftest import SCHEMA, mnist1d_spec

SIZES = [100, 200, 400]


def experiment(n_train, validation: int = 0, name: str = "mnist1d") -> dict:
    """A validated experiment with two widths, a batchnorm variant and two seeds."""
    exp = {"dataset": {"name": name, "n_train": n_train, "validation": validation},
           "model": {"name": "mlp"}, "widths": [8, 4],
           "regularizers": {"none": {}, "bn": {"batchnorm": True}}, "seeds": [0, 1]}
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def test_each_size_has_its_own_runs_and_groups():
    exp = experiment([400, 100, 200])
    assert config.sweeps_sizes(exp) and config.train_sizes(exp) == SIZES
    runs = config.runs(exp)
    assert len({r.run_id for r in runs}) == len(runs) == 3 * 2 * 2 * 2
    assert runs[0].run_id == "n~100_width~4_reg~none_seed~0"
    groups = config.groups(exp)
    assert len(groups) == 3 * 2 * 2 and "n~200_width~8_norm~batch" in groups
    assert {r.n_train for r in groups["n~200_width~8_norm~batch"]} == {200}
    spec = config.group_spec("e", exp, "n~200_width~8_norm~batch")
    # The group trains on 200 samples of the one prepared dataset, that of the largest size.
    assert spec["n_train"] == 200 and spec["dataset"]["n_train"] == 400
    assert {r["n_train"] for r in spec["runs"]} == {200}
    assert config.dataset_spec(exp)["n_train"] == 400


def test_a_single_size_keeps_ids_and_specs_as_before_sweeps():
    exp = experiment(400)
    assert not config.sweeps_sizes(exp)
    assert config.runs(exp)[0].run_id == "width~4_reg~none_seed~0"
    assert list(config.groups(exp)) == ["width~4_norm~none", "width~4_norm~batch",
                                        "width~8_norm~none", "width~8_norm~batch"]
    spec = config.group_spec("e", exp, "width~4_norm~none")
    assert "n_train" not in spec and "n_train" not in spec["runs"][0]
    assert spec["dataset"] == exp["dataset"] == config.dataset_spec(exp)


@pytest.mark.parametrize("kwargs,message", [
    ({"n_train": [100, 60001], "name": "mnist"},
     "config.experiments.e.dataset.n_train: 60001 exceeds the 60000 samples"),
    ({"n_train": [100, 400], "validation": 100},
     "config.experiments.e.dataset.validation: 100 leaves no training samples of n_train = 100"),
    ({"n_train": [400]}, "config.experiments.e.dataset.n_train: [400] is too short"),
])
def test_every_size_is_checked(kwargs, message):
    with pytest.raises(config.ConfigError) as e:
        experiment(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def prepared() -> data.Arrays:
    """The largest size's dataset, with a validation split: 360 + 40 samples, 20% noise."""
    return data.build(mnist1d_spec(n_train=400, validation=40))


def rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in x}


def test_subsets_are_nested_and_share_test_and_validation(prepared):
    small, mid = (data.nested_subset(prepared, n, seed=7) for n in (100, 200))
    assert len(small.y_train) == 60 and len(mid.y_train) == 160  # n less the 40 held out
    assert rows(small.x_train) < rows(mid.x_train) < rows(prepared.x_train)
    for sub in (small, mid):
        np.testing.assert_array_equal(sub.x_test, prepared.x_test)
        np.testing.assert_array_equal(sub.x_val, prepared.x_val)
    full = data.nested_subset(prepared, 400, seed=7)
    np.testing.assert_array_equal(full.x_train, prepared.x_train)
    np.testing.assert_array_equal(full.y_train, prepared.y_train)


def test_every_prefix_keeps_the_noise_rate():
    noisy = np.zeros(1000, bool)
    noisy[np.random.default_rng(0).choice(1000, 170, replace=False)] = True
    order = data.nested_order(noisy, np.random.default_rng(1))
    assert sorted(order) == list(range(1000))
    in_prefix = np.cumsum(noisy[order])
    n = np.arange(1, 1001)
    assert np.abs(in_prefix - 0.17 * n).max() <= 1


def test_subset_keeps_labels_with_their_inputs(prepared):
    sub = data.nested_subset(prepared, 200, seed=7)
    index = {r.tobytes(): i for i, r in enumerate(prepared.x_train)}
    at = [index[r.tobytes()] for r in sub.x_train]
    np.testing.assert_array_equal(sub.y_train, prepared.y_train[at])
    np.testing.assert_array_equal(sub.y_train_clean, prepared.y_train_clean[at])


def test_training_a_size_fits_its_subset(prepared):
    exp = experiment([200, 400], validation=40)
    exp["training"].update(epochs=1, eval_epochs=1)
    spec = config.group_spec("e", exp, "n~200_width~4_norm~none")
    table = train.train_group(spec, prepared, device="cpu", log=lambda _: None)
    assert set(table["n_train"]) == {160}  # the samples fitted: 200 less the validation split
    assert set(table["run_id"]) == {"n~200_width~4_reg~none_seed~0",
                                    "n~200_width~4_reg~none_seed~1"}
