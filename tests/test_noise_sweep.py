"""A sweep of label-noise levels inside one experiment: its runs and groups, one prepared
dataset per level, the DAG, the pipeline and the analyses per level."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from doubledescent import config, data, plots, results
from tests.conftest import REPO, SCHEMA, snakemake

CONFIG = REPO / "tests" / "configs" / "tiny_noise.yaml"


def experiment(label_noise, n_train=400) -> dict:
    exp = {
        "dataset": {"name": "mnist1d", "n_train": n_train, "label_noise": label_noise},
        "model": {"name": "mlp"},
        "widths": [8, 4],
        "regularizers": {"none": {}, "bn": {"batchnorm": True}},
        "seeds": [0],
    }
    return config.validate({"experiments": {"e": exp}}, SCHEMA)["experiments"]["e"]


def test_each_level_has_its_own_data_runs_and_groups():
    exp = experiment([0.2, 0.0, 0.1])
    assert config.sweeps_noise(exp) and config.noise_levels(exp) == [0.0, 0.1, 0.2]
    runs = config.runs(exp)
    assert len({r.run_id for r in runs}) == len(runs) == 3 * 2 * 2
    assert runs[0].run_id == "noise~0_width~4_reg~none_seed~0"
    groups = config.groups(exp)
    assert len(groups) == 3 * 2 * 2 and "noise~0.1_width~8_norm~batch" in groups
    spec = config.group_spec("e", exp, "noise~0.1_width~8_norm~batch")
    assert spec.dataset.label_noise == 0.1
    assert {r.label_noise for r in spec.runs} == {0.1}
    assert [config.data_name(q) for q in (0.0, 0.1)] == ["data/noise~0", "data/noise~0.1"]
    with pytest.raises(ValueError, match="name the rate"):
        config.dataset_spec(exp)


def test_noise_and_size_sweeps_combine():
    exp = experiment([0.0, 0.1], n_train=[100, 400])
    spec = config.group_spec("e", exp, "noise~0.1_n~100_width~4_norm~none")
    assert spec.n_train == 100 and config.plain_spec(spec)["dataset"] == {
        **exp["dataset"],
        "n_train": 400,
        "label_noise": 0.1,
    }
    assert len(config.groups(exp)) == 2 * 2 * 2 * 2


def test_a_single_level_keeps_ids_data_and_specs_as_before_sweeps():
    exp = experiment(0.15)
    assert not config.sweeps_noise(exp) and config.data_name() == "data"
    assert config.runs(exp)[0].run_id == "width~4_reg~none_seed~0"
    spec = config.group_spec("e", exp, "width~4_norm~none")
    fields = config.plain_spec(spec)
    assert "label_noise" not in fields["runs"][0] and fields["dataset"] == exp["dataset"]


@pytest.mark.parametrize(
    "noise,message",
    [
        ([0.1], "dataset.label_noise: [0.1] is too short"),
        ([0.1, 1.5], "dataset.label_noise[1]: 1.5 is greater than the maximum of 1"),
    ],
)
def test_bad_levels_are_config_errors(noise, message):
    with pytest.raises(config.ConfigError) as e:
        experiment(noise)
    assert message in str(e.value)


def test_dry_run_prepares_one_dataset_per_level(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = set(re.findall(r"results/tiny_noise/data\S*\.npz", proc.stdout))
    assert outputs == {
        "results/tiny_noise/data/noise~0.npz",
        "results/tiny_noise/data/noise~0.2.npz",
    }
    jobs = re.search(r"^prepare_data\s+(\d+)", proc.stdout, re.M)
    assert jobs and int(jobs.group(1)) == 2


# The figures test_pipeline_trains_each_level_on_its_own_labels reads (each a job of its own).
FIGURES = ("model_wise", "model_wise_loss", "memorization", "epoch_wise")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The sweep's table, summary and the figures read below, as Snakemake makes them."""
    workdir = tmp_path_factory.mktemp("noise")
    out = "results/tiny_noise"
    files = [f"{out}/summary.csv"] + [f"{out}/figures/{f}.png" for f in FIGURES]
    proc = snakemake(workdir, *files, configfile=CONFIG)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "results" / "tiny_noise"


def test_pipeline_trains_each_level_on_its_own_labels(pipeline):
    clean, noisy = (data.load(pipeline / "data" / f"noise~{q}.npz") for q in ("0", "0.2"))
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)  # the same samples
    assert not clean.noisy_mask.any() and noisy.noisy_mask.mean() > 0.1  # random_class: ~18%
    df = pd.read_parquet(pipeline / "metrics.parquet")
    assert sorted(set(df["label_noise"])) == [0.0, 0.2]
    assert df.groupby("label_noise")["run_id"].nunique().tolist() == [4, 4]
    assert df[df.label_noise == 0.0]["noisy_fit"].isna().all()
    assert df[df.label_noise == 0.2]["noisy_fit"].between(0, 1).all()
    assert {p.stem for p in (pipeline / "groups").iterdir()} == {
        f"noise~{q}_width~{w}_norm~none" for q in ("0", "0.2") for w in (32, 4)
    }
    summary = pd.read_csv(pipeline / "summary.csv")
    assert sorted(zip(summary["label_noise"], summary["regularizer"])) == [
        (q, reg) for q in (0.0, 0.2) for reg in ("l2", "none")
    ]
    assert "Label noise" in (pipeline / "summary.tex").read_text()
    for figure in FIGURES:
        assert (pipeline / "figures" / f"{figure}.png").stat().st_size > 0


def test_figures_and_summary_keep_levels_apart(pipeline):
    df = pd.read_parquet(pipeline / "metrics.parquet")
    for draw in (plots.model_wise, plots.model_wise_loss, plots.memorization):
        titles = [ax.get_title() for ax in draw(df).axes if ax.get_title()]
        assert titles == ["label noise 0%", "label noise 20%"]
    notes = [[t.get_text() for t in ax.texts] for ax in plots.memorization(df).axes]
    assert "no noisy labels" in notes[0] and "no noisy labels" not in notes[1]
    fig = plots.model_wise(df, size="width")
    for ax, q in zip(fig.axes[:2], (0.0, 0.2)):  # the top row: test error per level
        final = results.final_epoch(df[df.label_noise == q])
        want = final.groupby(["regularizer", "width"])["test_error"].mean()
        curves = [line.get_ydata().tolist() for line in ax.lines if line.get_linestyle() == "-"]
        assert sorted(curves) == sorted(want[reg].tolist() for reg in ("none", "l2"))
    rows = [ax.get_title() for ax in plots.epoch_wise(df, size="width").axes if ax.get_title()]
    assert sorted(rows) == [
        "l2, label noise 0%",
        "l2, label noise 20%",
        "none, label noise 0%",
        "none, label noise 20%",
    ]
    s = results.summary(df, tol=0.01)
    for q in (0.0, 0.2):
        final = results.final_epoch(df[(df.label_noise == q) & (df.regularizer == "none")])
        row = s[(s.label_noise == q) & (s.regularizer == "none")].iloc[0]
        assert row["min_test_error"] == pytest.approx(
            final.groupby("width").test_error.mean().min()
        )
