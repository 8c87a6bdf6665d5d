"""Random streams: one registry of purposes across data and training, so that no two
purposes ever draw from one stream.

A stream is numpy's SeedSequence of (seed, key): the dataset's seed for the data's purposes,
a run's seed for training's. Both kinds share the key space, so a dataset seed equal to a
run seed (as in the ResNet preset) still gives label noise and minibatch order streams of
their own. Torch-free: data preparation and config code use it too.
"""

from __future__ import annotations

import numpy as np

STREAMS = {
    # Training, per run seed: the keys runs have always used, so finished runs reproduce.
    "init": 0,
    "order": 1,
    "dropout": 2,
    "augment": 3,
    # Weight reuse's initialization of a grown network's new units (introduced 2026-12-01
    # with key 4, the validation split's: moved to its own the same day).
    "reuse": 9,
    # Data, per dataset seed. The validation split and a sweep's subsets keep their keys;
    # label noise and the train/test subsampling of fixed pools drew from training's keys
    # until 2026-12 and moved to their own.
    "validation": 4,
    "subset": 5,
    "noise": 6,
    "train": 7,
    "test": 8,
}


def seed_sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    """The stream of `purpose` (a key of STREAMS) for `seed`."""
    return np.random.SeedSequence([seed, STREAMS[purpose]])


def numpy_rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, purpose))
