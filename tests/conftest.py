"""Shared fixtures: the repository's paths and a small MNIST-1D dataset."""

from pathlib import Path

import pytest

from doubledescent import data

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def mnist1d_spec(**overrides) -> dict:
    spec = {"name": "mnist1d", "n_train": 300, "n_test": 200, "label_noise": 0.2,
            "noise_mode": "random_class", "seed": 7}
    return {**spec, **overrides}


@pytest.fixture(scope="session")
def small_data() -> data.Arrays:
    return data.build(mnist1d_spec())
