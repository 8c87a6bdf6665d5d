"""Figures, summary and LaTeX table, from synthetic metrics tables with known answers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from doubledescent import cli, data, plots, results, targets

WIDTHS = [2, 4, 8, 16]
EPOCHS = [1, 10, 100]
SEED_OFFSET = {0: -0.01, 1: 0.01}  # test error of seed 0 and 1 around the mean: sd 0.0141
# Final-epoch means per regularizer and width. `none`: peak at 4, first fit (train error
# <= 0.01) at 8. `l2`: peak at 8, first fit at 16 (0.005 fits 0.01 but not 0).
FINAL_TEST = {"none": [0.30, 0.50, 0.35, 0.25], "l2": [0.30, 0.40, 0.45, 0.28]}
FINAL_TRAIN = {"none": [0.30, 0.10, 0.0, 0.0], "l2": [0.30, 0.20, 0.05, 0.005]}
N_TRAIN, N_CLASSES = 400, 10  # n = 400 lies among the n_params below; nK = 4000 does not
SPEC = {
    "x": "n_params",
    "errorbar": "sd",
    "interpolation_tol": 0.01,
    "test_error": "clean",
    "figure_width": "auto",
}
# What the synthetic table's experiment looks like to the figure catalogue: one size, no grid.
TINY_EXPERIMENT = {"dataset": {"n_train": N_TRAIN}, "regularizers": {"none": {"weight_decay": 0.0}}}


@pytest.fixture(autouse=True)
def close_figures():
    """The tests inspect figures they draw without saving them (saving closes them): close
    them after each test, so the worker's later tests don't start with dozens open."""
    yield
    plt.close("all")


def n_params(width: int) -> int:
    """Parameters of the 40 -> h -> h -> 10 MLP."""
    return width * width + 52 * width + 10


def noisy(test_error, label_noise):
    return data.noisy_label_error(test_error, label_noise, N_CLASSES, "wrong_class")


def row(reg: str, i: int, seed: int, epoch: int, label_noise: float) -> dict:
    """One evaluation; before the final epoch, every model is far from fitting."""
    final = epoch == EPOCHS[-1]
    test = FINAL_TEST[reg][i] if final else 0.9 - 0.002 * epoch
    train = FINAL_TRAIN[reg][i] if final else 0.8
    width = WIDTHS[i]
    return {
        "experiment": "synthetic",
        "dataset": "mnist1d",
        "model": "mlp",
        "width": width,
        "n_params": n_params(width),
        "regularizer": reg,
        "seed": seed,
        "epoch": epoch,
        "train_loss": 2 * train,
        "train_error": train,
        "train_error_clean": train,
        "test_loss": 2 * test,
        "test_error": test + SEED_OFFSET[seed],
        "test_error_noisy": noisy(test + SEED_OFFSET[seed], label_noise),
        "noisy_fit": 1 - train,
        "diverged": False,
        "run_id": f"width~{width}_reg~{reg}_seed~{seed}",
        "n_train": N_TRAIN,
        "n_fit": N_TRAIN,
        "num_classes": N_CLASSES,
        "label_noise": label_noise,
    }


def synthetic(label_noise: float = 0.2) -> pd.DataFrame:
    """A tidy metrics table: 2 regularizers x 4 widths x 2 seeds x 3 evaluation epochs."""
    return pd.DataFrame(
        [
            row(reg, i, seed, epoch, label_noise)
            for reg in FINAL_TEST
            for i in range(len(WIDTHS))
            for seed in SEED_OFFSET
            for epoch in EPOCHS
        ]
    )


@pytest.fixture
def table() -> pd.DataFrame:
    return synthetic()


@pytest.fixture
def two_noise_levels() -> pd.DataFrame:
    return pd.concat([synthetic(0.1), synthetic(0.2)], ignore_index=True)


def with_diverged_run(df: pd.DataFrame) -> pd.DataFrame:
    """Add a third `none` seed at width 16 that diverged with a test error of 0.95."""
    extra = df[(df["regularizer"] == "none") & (df["width"] == 16) & (df["seed"] == 0)].copy()
    extra = extra.assign(
        seed=2, run_id="width~16_reg~none_seed~2", diverged=True, test_error=0.95, train_error=0.9
    )
    return pd.concat([df, extra], ignore_index=True)


# Detection of the interpolation threshold and of the peak.


def test_threshold_is_smallest_width_that_fits_at_the_final_epoch(table):
    threshold = results.interpolation_threshold(table, tol=0.01)
    assert threshold.to_dict() == {"none": 8.0, "l2": 16.0}


def test_threshold_is_missing_where_no_width_fits(table):
    threshold = results.interpolation_threshold(table, tol=0.0)
    assert threshold["none"] == 8.0
    assert np.isnan(threshold["l2"])


def test_summary_finds_peak_threshold_and_largest_model(table):
    s = results.summary(table, tol=0.01).set_index("regularizer")
    assert s.loc["none", "peak_width"] == 4 and s.loc["l2", "peak_width"] == 8
    assert s.loc["none", "peak_n_params"] == n_params(4)
    assert s.loc["none", "peak_test_error"] == pytest.approx(0.50)
    assert s.loc["none", "peak_test_error_sd"] == pytest.approx(0.02 / np.sqrt(2))
    assert s.loc["none", "threshold_width"] == 8 and s.loc["l2", "threshold_width"] == 16
    assert s.loc["l2", "largest_test_error"] == pytest.approx(0.28)
    assert s.loc["none", "min_test_error"] == pytest.approx(0.25)
    assert (s["seeds"] == 2).all()


def test_summary_ignores_diverged_runs_for_the_peak(table):
    s = results.summary(with_diverged_run(table), tol=0.01).set_index("regularizer")
    assert s.loc["none", "peak_width"] == 4  # the diverged run's 0.95 would move it to 16
    assert s.loc["none", "largest_test_error"] == pytest.approx(0.25)


def test_summary_leaves_out_a_run_that_diverged_only_at_its_last_evaluation(table):
    """Its earlier, finite evaluations must not stand in for its final result."""
    late = table[
        (table["regularizer"] == "none") & (table["width"] == 16) & (table["seed"] == 0)
    ].assign(seed=2, run_id="late", test_error=0.95)
    late["diverged"] = late["epoch"] == EPOCHS[-1]
    s = results.summary(pd.concat([table, late]), tol=0.01).set_index("regularizer")
    assert s.loc["none", "peak_width"] == 4  # the 0.95 at epoch 10 would move it to 16
    assert s.loc["none", "largest_test_error"] == pytest.approx(0.25)


def test_summary_has_a_row_per_noise_level_and_regularizer(two_noise_levels):
    s = results.summary(two_noise_levels, tol=0.01)
    assert sorted(zip(s["label_noise"], s["regularizer"])) == [
        (0.1, "l2"),
        (0.1, "none"),
        (0.2, "l2"),
        (0.2, "none"),
    ]


# The LaTeX table.


def body_rows(tex: str) -> list[str]:
    """The table's rows between \\midrule and \\bottomrule."""
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0]
    return [line for line in body.strip().splitlines() if line.strip()]


def test_latex_table_is_booktabs_with_a_row_per_regularizer(table):
    tex = results.summary_latex(results.summary(table, tol=0.01))
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    rows = body_rows(tex)
    assert len(rows) == 2
    assert "Label noise" not in tex  # a single level goes into the caption, not a column
    none = next(r for r in rows if r.startswith("none"))
    assert "50.0 $\\pm$ 1.4" in none  # peak test error in percent, sd over seeds


def test_latex_table_marks_a_missing_threshold_and_escapes_names(table):
    table = table.replace({"regularizer": {"l2": "weight_decay"}})
    rows = body_rows(results.summary_latex(results.summary(table, tol=0.0)))
    decay = next(r for r in rows if r.startswith("weight\\_decay"))
    assert decay.split(" & ")[1] == "--"


def test_latex_table_has_a_noise_column_with_several_levels(two_noise_levels):
    tex = results.summary_latex(results.summary(two_noise_levels, tol=0.01))
    assert "Label noise (\\%)" in tex
    assert len(body_rows(tex)) == 4
    assert body_rows(tex)[0].startswith("10.0 & ")


# The figures.


def dashed_x(ax) -> list[float]:
    """x positions of the dashed (interpolation threshold) lines of a panel."""
    return sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--")


def test_model_wise_has_a_line_per_regularizer_and_marks(table):
    fig = plots.model_wise(table, size="n_params", tol=0.01)
    assert len(fig.axes) == 2
    assert fig.get_size_inches()[0] == plots.TWO_COLUMN_WIDTH
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "test error (clean labels)",
        "train error (noisy labels)",
    ]
    for ax in fig.axes:
        assert ax.get_xlabel() == "parameters" and ax.get_xscale() == "log"
        # 2 regularizer curves + 2 thresholds + params = n (n x K is out of range)
        assert len(ax.lines) == 5
        assert dashed_x(ax) == [n_params(8), n_params(16)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["none", "l2"]


def test_model_wise_by_width_has_no_sample_size_lines(table):
    fig = plots.model_wise(table, size="width", tol=0.01)
    for ax in fig.axes:
        assert ax.get_xlabel() == "width h"
        assert len(ax.lines) == 4
        assert dashed_x(ax) == [8, 16]


def test_model_wise_curve_is_the_final_epoch_mean(table):
    ax = plots.model_wise(table, size="width").axes[0]
    none = next(line for line in ax.lines if line.get_linestyle() == "-")
    np.testing.assert_allclose(none.get_ydata(), FINAL_TEST["none"])


@pytest.mark.parametrize("setting", ["clean", "noisy"])
def test_plot_setting_chooses_the_test_error_of_size_epoch_and_sample_figures(table, setting):
    spec = {**SPEC, "x": "width", "test_error": setting}
    ax = plots.draw("model_wise", table, spec).axes[0]
    assert ax.get_ylabel() == f"test error ({setting} labels)"
    none = next(line for line in ax.lines if line.get_linestyle() == "-")
    expected = (
        FINAL_TEST["none"] if setting == "clean" else noisy(np.array(FINAL_TEST["none"]), 0.2)
    )
    np.testing.assert_allclose(none.get_ydata(), expected)
    heatmap = plots.draw("epoch_wise", table, spec)
    grid = heatmap.axes[0].collections[0].get_array()
    assert grid[0, -1] == pytest.approx(expected[-1])  # largest width, last epoch
    assert heatmap.axes[-1].get_ylabel() == f"test error ({setting} labels)"  # the colorbar
    curves = plots.draw("epoch_curves", table, spec).axes[0]
    assert curves.get_ylabel() == f"test error ({setting} labels)"
    sizes = pd.concat([table.assign(n_fit=n) for n in (100, 400)], ignore_index=True)
    wise = plots.draw("sample_wise", sizes, spec).axes[0]
    assert wise.get_ylabel() == f"test error ({setting} labels)"
    assert max(line.get_ydata().max() for line in wise.lines) == pytest.approx(max(expected))


def test_model_wise_facets_by_label_noise(two_noise_levels):
    fig = plots.model_wise(two_noise_levels)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[:2]] == ["label noise 10%", "label noise 20%"]
    assert fig.axes[2].get_ylabel() == "train error (noisy labels)"


def test_model_wise_ci_band_is_reproducible(table):
    def band(fig):
        return fig.axes[0].collections[0].get_paths()[0].vertices

    np.testing.assert_array_equal(
        band(plots.model_wise(table, errorbar="ci")), band(plots.model_wise(table, errorbar="ci"))
    )


def test_model_wise_loss_plots_losses(table):
    fig = plots.model_wise_loss(table)
    assert [ax.get_ylabel() for ax in fig.axes] == ["test loss", "train loss (noisy labels)"]
    assert len(fig.axes[0].lines) == 5


def test_memorization_is_one_column_with_a_line_per_regularizer(table):
    fig = plots.memorization(table, size="width")
    assert len(fig.axes) == 1
    assert fig.get_size_inches()[0] == plots.ONE_COLUMN_WIDTH
    ax = fig.axes[0]
    assert ax.get_ylabel() == "noisy labels fitted"
    curves = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0].get_ydata(), [1 - t for t in FINAL_TRAIN["none"]])


def test_epoch_wise_is_a_width_by_epoch_heatmap_per_regularizer(table):
    fig = plots.epoch_wise(table, size="width")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["none", "l2"]
    grid = panels[0].collections[0].get_array()
    assert grid.shape == (len(WIDTHS), len(EPOCHS))
    assert grid[0, -1] == pytest.approx(FINAL_TEST["none"][-1])  # largest width on top
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["1", "10", "100"]


def test_epoch_labels_stand_apart_in_every_panel():
    """With the default config's 19 evaluations (epochs 1 to 500, log-spaced) in four
    panels, no panel's epoch labels run into each other (seaborn rotated them in all but
    the first panel, whose horizontal labels did)."""
    epochs = [1, 2, 3, 4, 5, 7, 10, 14, 19, 26, 37, 51, 70, 97, 135, 187, 260, 361, 500]
    df = pd.DataFrame(
        [
            row(reg, i, seed, epoch, 0.2)
            for reg in FINAL_TEST
            for i in range(len(WIDTHS))
            for seed in SEED_OFFSET
            for epoch in epochs
        ]
    )
    df = pd.concat([df, df.assign(regularizer=df.regularizer + "_2")])
    fig = plots.epoch_wise(df, size="n_params")
    fig.draw_without_rendering()  # the layout and text extents, no pixels
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4
    for ax in panels:
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        assert len(boxes) > 3
        assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), ax.get_title()


def test_epoch_curves_show_smallest_threshold_and_largest_width(table):
    fig = plots.epoch_curves(table, tol=0.01)
    none, l2 = fig.axes
    assert [t.get_text() for t in none.get_legend().get_texts()] == [
        "h = 2 (smallest)",
        "h = 8 (threshold)",
        "h = 16 (largest)",
    ]
    # l2 first fits at the largest width: one curve for both roles, named the threshold.
    assert [t.get_text() for t in l2.get_legend().get_texts()] == [
        "h = 2 (smallest)",
        "h = 16 (threshold)",
    ]
    assert len(none.lines) == 3 and none.get_xscale() == "log"


# The command line: every figure's files, and the LaTeX table.


def test_the_catalogue_is_the_plot_functions():
    assert targets.FIGURES == list(plots.FIGURES)


@pytest.mark.parametrize("figure", targets.figures_of(TINY_EXPERIMENT))
def test_cli_writes_pdf_png_svg(tmp_path, table, figure):
    metrics = tmp_path / "metrics.parquet"
    table.to_parquet(metrics)
    out = [tmp_path / f"{figure}.{ext}" for ext in ("pdf", "png", "svg")]
    argv = [
        "plot",
        "--figure",
        figure,
        "--metrics",
        str(metrics),
        "--spec",
        json.dumps(SPEC),
        "--out",
        *map(str, out),
    ]
    assert cli.main(argv) == 0
    pdf, png, svg = (path.read_bytes() for path in out)
    assert pdf.startswith(b"%PDF")
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType (Type 42), not Type 3
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert ET.fromstring(svg).tag.endswith("svg")


def test_cli_summarize_writes_csv_and_latex(tmp_path, table):
    metrics = tmp_path / "metrics.parquet"
    table.to_parquet(metrics)
    csv, tex = tmp_path / "summary.csv", tmp_path / "summary.tex"
    argv = [
        "summarize",
        "--metrics",
        str(metrics),
        "--tol",
        "0.01",
        "--out",
        str(csv),
        "--tex",
        str(tex),
    ]
    assert cli.main(argv) == 0
    assert len(pd.read_csv(csv)) == 2
    assert "\\bottomrule" in tex.read_text()


def test_model_wise_marks_diverged_runs_instead_of_crashing(table):
    fig = plots.model_wise(with_diverged_run(table))
    marks = [c for c in fig.axes[0].collections if c.get_label() == "_diverged"]
    assert len(marks) == 1 and len(marks[0].get_offsets()) == 1
    assert not [
        c for c in plots.model_wise(table).axes[0].collections if c.get_label() == "_diverged"
    ]


def test_peak_is_after_the_classical_dip_not_the_underfit_smallest_model():
    widths = [2, 4, 8, 16, 32, 64]
    test = [0.70, 0.50, 0.45, 0.55, 0.48, 0.44]
    train = [0.70, 0.40, 0.20, 0.00, 0.00, 0.00]
    df = pd.DataFrame(
        {
            "regularizer": "none",
            "width": widths,
            "n_params": [w * 10 for w in widths],
            "seed": 0,
            "epoch": 9,
            "run_id": [f"w{w}" for w in widths],
            "test_error": test,
            "train_error": train,
            "diverged": False,
            "label_noise": 0.15,
            "n_fit": 400,
        }
    )
    s = results.summary(df, tol=0.01).iloc[0]
    assert s["threshold_width"] == 16
    assert (s["dip_width"], s["dip_test_error"]) == (8, 0.45)
    assert (s["peak_width"], s["peak_test_error"]) == (16, 0.55)
    assert s["largest_test_error"] == 0.44


# Layout: nothing that labels the data covers it, at either journal width.


def _labels(fig):
    """The legends, texts and top-axis tick labels (the n / nK marks) of a drawn figure."""
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    texts = [t for ax in fig.axes for t in ax.texts if t.get_text()]
    tops = [t for ax in fig.axes for child in ax.child_axes for t in child.get_xticklabels()]
    return legends + texts + tops


def _all_figures():
    from tests.test_optimal_regularization import grid_table
    from tests.test_sample_wise import sweep_table

    more = synthetic().assign(
        regularizer=lambda d: d.regularizer + "_2", run_id=lambda d: d.run_id + "_2"
    )
    tables = {
        "table": synthetic(),
        "two noise levels": pd.concat([synthetic(0.1), synthetic()]),
        "four regularizers": pd.concat([synthetic(), more]),
    }
    for name in plots.FIGURES:
        special = {"optimal_regularization": grid_table, "sample_wise": sweep_table}
        if name in special:
            yield name, name, special[name]()
        else:
            for label, df in tables.items():
                yield f"{name}, {label}", name, df


CASES = list(_all_figures())


@pytest.mark.parametrize("width", ["auto", "single", "double"])
@pytest.mark.parametrize("label,figure,df", CASES, ids=[c[0] for c in CASES])
def test_no_label_covers_a_panel_and_all_fit_the_width(label, figure, df, width):
    fig = plots.draw(figure, df, {**SPEC, "figure_width": width})
    if width != "auto":
        assert fig.get_figwidth() == plots.FIGURE_WIDTHS[width]
    fig.draw_without_rendering()  # the layout and text extents, no pixels
    renderer = fig.canvas.get_renderer()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes]
    labels = _labels(fig)
    assert labels or figure == "epoch_wise", "every other figure names its curves"
    boxes = [artist.get_window_extent(renderer) for artist in labels]
    for artist, box in zip(labels, boxes):
        assert not any(box.overlaps(p) for p in panels), (label, artist)
        assert sum(box.overlaps(b) for b in boxes if b is not box) == 0, (label, artist)
        # Inside the figure's width: saving with a tight box must not widen the figure.
        assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 + 0.5, (label, artist, box, fig.bbox)
    plt.close(fig)
