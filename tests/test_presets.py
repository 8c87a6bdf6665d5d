"""Every paper preset is a valid config whose DAG Snakemake can build (a dry run), and every
preset file trains: all of them at once, shrunk to a few samples, two widths and two epochs
on the CPU, through one Snakemake run, with their own architectures, schedules,
augmentation, label noise and test-error metric."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from doubledescent import config, data, models, plots
from tests.conftest import REPO, SCHEMA, snakemake
from tests.dataset_files import write_cifar, write_mnist_like

PRESETS = sorted((REPO / "workflow" / "presets").glob("*.yaml"))
# Samples per dataset at tiny scale: within what tests/dataset_files.py writes for MNIST.
TINY_SIZES = {"mnist1d": (120, 60), "mnist": (20, 10), "cifar10": (40, 20)}
SAMPLE_SHAPES = {"mnist1d": (40,), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def test_there_are_presets():
    assert len(PRESETS) >= 2


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_is_a_valid_config(preset):
    cfg = config.validate(yaml.safe_load(preset.read_text()), SCHEMA)
    assert cfg["experiments"]  # validate raised on anything the schema refuses


def test_every_presets_dag_builds_at_full_scale(tmp_path):
    """All presets' experiments in one dry run (a Snakemake start, not one per preset): each
    experiment has its training jobs."""
    path = tmp_path / "presets.yaml"
    experiments = preset_experiments()
    path.write_text(yaml.safe_dump({"experiments": experiments}))
    proc = snakemake(tmp_path, "-n", configfile=path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = set(re.findall(r"^Job \d+: Training (\S+) ", proc.stdout, re.M))
    assert trained == set(experiments)


def preset_experiments() -> dict:
    """Every preset's experiments, by name (no name in two presets)."""
    experiments = {}
    for path in PRESETS:
        for name, exp in yaml.safe_load(path.read_text())["experiments"].items():
            assert name not in experiments, f"{path.name}: experiment {name} is in two presets"
            experiments[name] = exp
    return experiments


def shrink(exp: dict) -> dict:
    """The preset's experiment at tiny scale: fewer samples, its two smallest widths (weight
    reuse passes weights from one to the next; a model-wise figure needs a range of sizes), one
    seed, two epochs (or six steps), a sweep's first two sizes or noise levels; model,
    regularizers, schedule, augmentation, weight reuse and plot settings kept."""
    ds = exp["dataset"]
    n_train, n_test = TINY_SIZES[ds["name"]]
    tiny_ds = {**ds, "n_test": n_test, "n_train": n_train}
    if isinstance(ds["n_train"], list):  # a sample-wise sweep keeps two sizes
        tiny_ds["n_train"] = [n_train // 2, n_train]
    if isinstance(ds["label_noise"], list):  # a noise sweep two levels: a dataset each
        tiny_ds["label_noise"] = ds["label_noise"][:2]
    if ds.get("validation"):
        tiny_ds["validation"] = n_train // 4
    training = dict(exp.get("training", {}))
    if "steps" in training:  # a step budget stays one: a few steps, evaluated twice
        training.update(steps=6, eval_steps=[3, 6])
    else:
        training.update(epochs=2, eval_epochs=[1, 2])
    training["batch_size"] = min(training.get("batch_size", 100), 16)
    return {
        **exp,
        "dataset": tiny_ds,
        "widths": sorted(exp["widths"])[:2],
        "seeds": exp["seeds"][:1],
        "training": training,
    }


def tiny_presets() -> dict:
    """One config holding every preset's experiments, shrunk, on the CPU."""
    experiments = {name: shrink(exp) for name, exp in preset_experiments().items()}
    return {"device": "cpu", "experiments": experiments}


def test_every_preset_trains_at_tiny_scale(tmp_path):
    cfg = tiny_presets()
    write_cifar(tmp_path / "data", "cifar10", *TINY_SIZES["cifar10"])
    write_mnist_like(tmp_path / "data", "MNIST")
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump(cfg))
    full = config.validate(cfg, SCHEMA)["experiments"]
    targets = [
        f"results/{name}/{out}"
        for name, exp in full.items()
        for out in ["metrics.parquet", "summary.csv"]
        + (["optimal_regularization.csv"] if config.has_grid(exp) else [])
    ]
    # An option between --configfile (which takes several values) and the targets ends its list.
    proc = snakemake(tmp_path, "--nolock", *targets, configfile=path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, exp in full.items():
        check_tiny_preset(tmp_path / "results" / name, exp)


def check_tiny_preset(out, exp: dict) -> None:
    df = pd.read_parquet(out / "metrics.parquet")
    runs = config.runs(exp)
    assert df.run_id.nunique() == len(runs) and sorted(df.epoch.unique()) == [1, 2]
    assert (df.model == exp["model"]["name"]).all()
    assert np.isfinite(df[["train_loss", "test_loss"]].to_numpy()).all()
    assert not df.diverged.any()
    ds = exp["dataset"]
    k = int(df.num_classes.iloc[0])
    # Each row's own rate: a noise sweep's levels are a list in the experiment.
    noisy = data.noisy_label_error(df.test_error, df.label_noise, k, ds["noise_mode"])
    np.testing.assert_allclose(df.test_error_noisy, noisy)
    # The preset's architecture: its batchnorm, its parameter count.
    if exp["model"]["batchnorm"]:
        assert df.batchnorm.all()
    for width, group in df.groupby("width"):
        shape = models.input_shape(exp["model"]["name"], SAMPLE_SHAPES[ds["name"]])
        bn = bool(group.batchnorm.iloc[0])
        assert group.n_params.iloc[0] == models.n_params(exp["model"], shape, k, width, bn)
    # Its model-wise figure with its plot settings, drawn here as the plot job would: a job
    # per preset would import seaborn and matplotlib again (the tiny pipelines run the rule).
    figure = out / "figures" / "model_wise.pdf"
    plots.save(plots.draw("model_wise", df, exp["plot"]), [figure])
    assert figure.read_bytes().startswith(b"%PDF")
    if config.has_grid(exp):
        table = pd.read_csv(out / "optimal_regularization.csv")
        assert sorted(table.width) == sorted(exp["widths"])
