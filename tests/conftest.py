"""Shared fixtures: the repository's paths, a small MNIST-1D dataset, a Snakemake runner."""

import subprocess
from pathlib import Path

import pytest

from doubledescent import data

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake_cmd(workdir, *args, configfile=TINY) -> list[str]:
    """The repository's workflow, run in `workdir` so results land there, not in the repo."""
    return ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile), "--cores", "2", *args]


def snakemake(workdir, *args, configfile=TINY) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args, configfile=configfile),
                          capture_output=True, text=True, timeout=300)


def mnist1d_spec(**overrides) -> dict:
    spec = {"name": "mnist1d", "n_train": 300, "n_test": 200, "label_noise": 0.2,
            "noise_mode": "random_class", "seed": 7}
    return {**spec, **overrides}


@pytest.fixture(scope="session")
def small_data() -> data.Arrays:
    return data.build(mnist1d_spec())
