"""Sample-wise double descent: n_train as a list of sizes, nested subsets, ids and groups,
the analyses of a table with several sizes, and the pipeline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from doubledescent import config, data, plots, results, targets, train
from doubledescent.errors import UserError
from tests.conftest import SAMPLEWISE, SCHEMA, mnist1d_spec

SIZES = [100, 200, 400]


def experiment(n_train, validation: int = 0, name: str = "mnist1d") -> dict:
    """A validated experiment with two widths, a batchnorm variant and two seeds."""
    exp = {
        "dataset": {"name": name, "n_train": n_train, "validation": validation},
        "model": {"name": "mlp"},
        "widths": [8, 4],
        "regularizers": {"none": {}, "bn": {"batchnorm": True}},
        "seeds": [0, 1],
    }
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
    assert spec.n_train == 200 and spec.dataset.n_train == 400
    assert {r.n_train for r in spec.runs} == {200}
    assert config.dataset_spec(exp)["n_train"] == 400


def test_a_single_size_keeps_ids_and_specs_as_before_sweeps():
    exp = experiment(400)
    assert not config.sweeps_sizes(exp)
    assert config.runs(exp)[0].run_id == "width~4_reg~none_seed~0"
    assert list(config.groups(exp)) == [
        "width~4_norm~none",
        "width~4_norm~batch",
        "width~8_norm~none",
        "width~8_norm~batch",
    ]
    spec = config.group_spec("e", exp, "width~4_norm~none")
    fields = config.plain_spec(spec)
    assert "n_train" not in fields and "n_train" not in fields["runs"][0]
    assert fields["dataset"] == exp["dataset"] == config.dataset_spec(exp)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"n_train": [100, 60001], "name": "mnist"},
            "config.experiments.e.dataset.n_train: 60001 exceeds the 60000 samples",
        ),
        (
            {"n_train": [100, 400], "validation": 100},
            "config.experiments.e.dataset.validation: 100 leaves no training samples of "
            "n_train = 100",
        ),
        ({"n_train": [400]}, "config.experiments.e.dataset.n_train: [400] is too short"),
    ],
)
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


def test_without_a_sweep_the_size_is_the_configured_one(prepared):
    exp = experiment(400, validation=40)
    exp["training"].update(epochs=1, eval_epochs=1)
    table = train.train_group(
        config.group_spec("e", exp, "width~4_norm~none"), prepared, device="cpu", log=lambda _: None
    )
    assert set(table["n_train"]) == {400} and set(table["n_fit"]) == {360}


def test_training_a_size_fits_its_subset(prepared):
    exp = experiment([200, 400], validation=40)
    exp["training"].update(epochs=1, eval_epochs=1)
    spec = config.group_spec("e", exp, "n~200_width~4_norm~none")
    table = train.train_group(spec, prepared, device="cpu", log=lambda _: None)
    assert set(table["n_train"]) == {200}  # the size, as in the run ids
    assert set(table["n_fit"]) == {160}  # the samples fitted: 200 less the validation split
    assert set(table["run_id"]) == {
        "n~200_width~4_reg~none_seed~0",
        "n~200_width~4_reg~none_seed~1",
    }


# Analyses of a table with several sizes: synthetic final test errors with known answers.

WIDTHS = [2, 4, 8, 16, 32, 64, 128, 256]
N = [100, 200, 400]


def error(width: int, n: int) -> float:
    """Width 4's error peaks at n = 200 (more data hurts there); the others fall with n."""
    return 0.45 if (width, n) == (4, 200) else 0.5 - 0.001 * width - 0.0002 * n


def sweep_table() -> pd.DataFrame:
    """Two regularizers x 8 widths x 3 sizes x 2 seeds, one evaluation; plus a diverged run."""
    rows = [
        {
            "regularizer": reg,
            "width": w,
            "n_params": 10 * w,
            "n_fit": n,
            "seed": s,
            "epoch": 3,
            "test_error": error(w, n) + (0.01 if s else -0.01) + (reg == "l2") * 0.1,
            "train_error": 0.0,
            "diverged": False,
            "label_noise": 0.2,
            "run_id": f"n~{n}_width~{w}_reg~{reg}_seed~{s}",
        }
        for reg in ("none", "l2")
        for w in WIDTHS
        for n in N
        for s in (0, 1)
    ]
    rows.append({**rows[0], "seed": 2, "run_id": "diverged", "diverged": True, "test_error": 0.99})
    return pd.DataFrame(rows)


def test_sample_wise_data_spreads_widths_and_drops_diverged_runs():
    assert results.spread(WIDTHS, 6) == [2, 4, 16, 32, 128, 256]  # ranks 0 1 3 4 6 7
    assert results.spread([3, 1], 6) == [1, 3]
    curves = results.sample_wise(sweep_table())
    assert sorted(curves["width"].unique()) == [2, 4, 16, 32, 128, 256]
    assert not curves["diverged"].any() and set(curves["seed"]) == {0, 1}
    means = curves.groupby(["regularizer", "width", "n_fit"])["test_error"].mean()
    assert means["none", 4].tolist() == pytest.approx([error(4, n) for n in N])
    assert means["l2", 256, 400] == pytest.approx(error(256, 400) + 0.1)
    with pytest.raises(UserError, match="no training-set sizes to sweep"):
        results.sample_wise(sweep_table().query("n_fit == 400"))


def test_sample_wise_figure_has_a_panel_per_regularizer_and_a_line_per_width():
    fig = plots.sample_wise(sweep_table())
    assert [ax.get_title() for ax in fig.axes] == ["none", "l2"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training samples n" and ax.get_xscale() == "log"
    assert len(ax.lines) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200", "400"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [error(4, n) for n in N])
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["h = 2", "h = 4"]


def test_model_wise_analyses_keep_sizes_apart():
    df = sweep_table().assign(
        n_params=lambda d: 10 * d["width"],
        noisy_fit=0.0,
        num_classes=10,
        train_loss=0.1,
        test_loss=1.0,
    )
    s = results.summary(df, tol=0.01)
    assert sorted(set(zip(s["n_fit"], s["regularizer"]))) == [
        (n, reg) for n in N for reg in ("l2", "none")
    ]
    at_200 = s[(s["n_fit"] == 200) & (s["regularizer"] == "none")].iloc[0]
    assert at_200["min_test_error"] == pytest.approx(error(256, 200))
    tex = results.summary_latex(s)
    assert "Training samples" in tex and "Label noise" not in tex
    fig = plots.model_wise(df, size="width")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["n = 100", "n = 200", "n = 400"]
    curve = next(line for line in fig.axes[1].lines if line.get_linestyle() == "-")
    np.testing.assert_allclose(curve.get_ydata(), [error(w, 200) for w in WIDTHS])
    titles = [ax.get_title() for ax in plots.epoch_wise(df, size="width").axes if ax.get_title()]
    assert titles[:2] == ["none, n = 100", "l2, n = 100"] and len(titles) == 6


def test_pipeline_trains_every_size_and_draws_the_sample_wise_figure(samplewise_run):
    pipeline = samplewise_run
    df = pd.read_parquet(pipeline / "metrics.parquet")
    assert set(df["n_fit"]) == {100, 250}  # the samples fitted: 150 and 300 less 50 held out
    assert df.groupby("n_train")["run_id"].nunique().tolist() == [2 * 5, 2 * 5]
    assert (df["n_train"] - df["n_fit"] == 50).all()
    assert all(r.startswith(f"n~{n}_") for r, n in zip(df["run_id"], df["n_train"]))
    assert df["val_error"].between(0, 1).all()
    assert (pipeline / "figures" / "sample_wise.pdf").read_bytes().startswith(b"%PDF")
    assert (pipeline / "figures" / "optimal_regularization.pdf").exists()
    assert sorted(p.stem for p in (pipeline / "groups").iterdir()) == [
        f"n~{n}_width~{w}_norm~none" for n in (150, 300) for w in (32, 4)
    ]
    summary = pd.read_csv(pipeline / "summary.csv")
    assert sorted(set(summary["n_fit"])) == [100, 250]
    best = pd.read_csv(pipeline / "optimal_regularization.csv")
    assert sorted(zip(best["n_fit"], best["width"])) == [(100, 4), (100, 32), (250, 4), (250, 32)]


def test_every_other_figure_draws_from_the_pipelines_table(samplewise_run):
    """The figures the fixture leaves undrawn, drawn here from the pipeline's table with the
    experiment's plot settings, as the plot job would (test_figures.py saves each format)."""
    exp = config.load(SAMPLEWISE, SCHEMA)["experiments"]["tiny_samplewise"]
    df = pd.read_parquet(samplewise_run / "metrics.parquet")
    on_disk = {p.stem for p in (samplewise_run / "figures").glob("*.pdf")}
    assert on_disk == {"sample_wise", "optimal_regularization"}
    others = [f for f in targets.figures_of(exp) if f not in on_disk]
    assert len(others) == len(targets.FIGURES) - 2
    for name in others:
        fig = plots.draw(name, df, exp["plot"])
        assert any(ax.lines or ax.collections for ax in fig.axes), name
        plt.close(fig)


def test_adding_a_smaller_size_leaves_the_other_groups_untouched():
    exp, more = experiment([200, 400]), experiment([100, 200, 400])
    for gid in config.groups(exp):
        assert config.group_spec("e", more, gid) == config.group_spec("e", exp, gid)
    assert config.dataset_spec(more) == config.dataset_spec(exp)


def test_grid_experiment_runs_end_to_end(samplewise_run):
    """The sample-wise test config sweeps a grid too; its run, shared with the sample-wise
    tests, has the grid's outputs."""
    out = samplewise_run
    assert (out / "figures" / "optimal_regularization.pdf").read_bytes().startswith(b"%PDF")
    df = pd.read_parquet(out / "metrics.parquet")
    assert set(df.regularizer) == {"none", "l2@0", "l2@0.01", "ls@0.05", "ls@0.2"}
    assert sorted(df.weight_decay.unique()) == [0.0, 0.01]
    assert df.val_error.between(0, 1).all()  # the config holds out a validation split
    assert df.groupby("run_id").size().eq(2).all()
    best = pd.read_csv(out / "optimal_regularization.csv")
    assert sorted(best.width) == [4, 4, 32, 32] and best.chosen_weight_decay.notna().all()
    assert "\\bottomrule" in (out / "optimal_regularization.tex").read_text()


def test_the_pipeline_trains_a_smoothing_grid_beside_a_weight_decay_grid(samplewise_run):
    """tiny_samplewise holds a smoothing grid: its runs are in the table with their values,
    and the optimal-regularization table takes only the weight-decay grid."""
    df = pd.read_parquet(samplewise_run / "metrics.parquet")
    final = df[df.epoch == df.epoch.max()]
    by_variant = final.groupby("regularizer").label_smoothing.unique().map(list).to_dict()
    assert by_variant == {
        "none": [0.0],
        "l2@0": [0.0],
        "l2@0.01": [0.0],
        "ls@0.05": [0.05],
        "ls@0.2": [0.2],
    }
    best = pd.read_csv(samplewise_run / "optimal_regularization.csv")
    assert set(best.family) == {"l2"}
