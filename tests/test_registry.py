"""A model registered by one `Family` record (tests/toy_model.py) goes through config
validation, the resource estimates, captions and training with no other edit."""

from __future__ import annotations

import numpy as np
import pytest

from doubledescent import architectures, captions, config, models, packing, resources, train
from tests import toy_model
from tests.conftest import SCHEMA
from tests.test_resources import counted_macs

TOY = toy_model.FAMILY.name
GROUP = "width~16_norm~none"


def toy_config(**model) -> dict:
    exp = {
        "dataset": {"name": "mnist1d", "n_train": 300, "n_test": 200, "seed": 7},
        "model": {"name": TOY, "depth": 2, **model},
        "widths": [8, 16],
        "regularizers": {"none": {}, "dropout": {"dropout": 0.1}},
        "seeds": [0, 1],
        "training": {"lr": 0.05, "batch_size": 32, "epochs": 40, "eval_epochs": [1, 40]},
    }
    return {"experiments": {"e": exp}}


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(architectures.FAMILIES, TOY, toy_model.FAMILY)


def toy_experiment() -> dict:
    return config.validate(toy_config(), SCHEMA)["experiments"]["e"]


def test_an_unregistered_model_is_one_line_naming_the_known_ones():
    with pytest.raises(config.ConfigError) as e:
        config.validate(toy_config(), SCHEMA)
    known = sorted(architectures.FAMILIES)
    assert str(e.value) == f"config.experiments.e.model.name: {TOY!r} is not one of {known}"


def test_the_config_reads_what_the_record_says(registered):
    spec = config.group_spec("e", toy_experiment(), GROUP)
    # It reads model.depth (kept in its rerun key), not the MLP's batchnorm_position.
    assert spec.model.to_dict() == {"name": TOY, "depth": 2}
    with pytest.raises(config.ConfigError, match=r"^config\.experiments\.e\.model\.init: only "):
        config.validate(toy_config(init="glorot_uniform"), SCHEMA)
    assert not packing.packs(toy_experiment())  # no zero-padded builder in its record


def test_the_estimates_use_its_multiply_adds(registered):
    exp = toy_experiment()
    net = models.build(exp["model"], 1, (40,), 10, 16, False)
    assert (
        resources.forward_macs(exp, 16) == 20 * 16 + 16 * 16 + 16 * 10 == counted_macs(net, (40,))
    )
    # No cost per step: the runtime is its multiply-adds at its own CPU speed.
    ratio = resources.train_seconds(exp, 16, 2) / resources.train_seconds(exp, 8, 2)
    assert ratio == pytest.approx((20 * 16 + 16 * 16 + 16 * 10) / (20 * 8 + 8 * 8 + 8 * 10))
    assert "a toy network of 2 tanh layers of width h, h in" in captions.settings(exp)


def test_it_trains_and_learns(registered, small_data):
    table = train.train_group(
        config.group_spec("e", toy_experiment(), GROUP), small_data, device="cpu", log=print
    )
    metrics = ["train_loss", "train_error", "test_loss", "test_error"]
    assert np.isfinite(table[metrics].to_numpy()).all()
    assert (table.n_params == 20 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10).all()
    first, last = (table[table.epoch == e].set_index("run_id") for e in (1, 40))
    assert len(last) == 4  # two variants x two seeds
    # Every run fits much of its noisy training set, from near chance (0.9) after one epoch,
    # and generalizes better than it did then. (In 40 epochs the dropout runs reach 0.34-0.41,
    # the others 0.18-0.20.)
    assert (first.train_error > 0.8).all() and (last.train_error < 0.5).all()
    assert (last.test_error < first.test_error).all()
    assert last.test_error.mean() < first.test_error.mean() - 0.05
