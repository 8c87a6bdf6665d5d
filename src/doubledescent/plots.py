"""Publication figures from the tidy metrics table (never from training state)."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display on clusters or CI

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from doubledescent import results
from doubledescent.errors import UserError
from doubledescent.io import atomic_path

ONE_COLUMN_WIDTH = 3.5  # inches: one column of a two-column journal page (89 mm)
TWO_COLUMN_WIDTH = 7.2  # inches: the full text width (183 mm)
# `plot.figure_width`; `auto` is one column for a single column of panels, else two.
FIGURE_WIDTHS = {"single": ONE_COLUMN_WIDTH, "double": TWO_COLUMN_WIDTH}
PANEL_HEIGHT = 2.3  # inches per row of panels
RC = {
    "pdf.fonttype": 42,  # TrueType fonts, which journals' PDF checkers accept
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "doubledescent",  # stable SVG ids: regenerated figures don't show as changed
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
# Without dates, regenerating a figure from the same table gives the same bytes.
METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}
SIZE_LABELS = {"n_params": "parameters", "width": "width h"}
Y_LABELS = {
    "test_error": "test error (clean labels)",
    "test_error_noisy": "test error (noisy labels)",
    "train_error": "train error (noisy labels)",
    "test_loss": "test loss",
    "train_loss": "train loss (noisy labels)",
    "noisy_fit": "noisy labels fitted",
}
WIDTH_ROLES = ["smallest", "threshold", "largest"]
# `plot.test_error` -> the column that the model-, epoch- and sample-wise figures draw: the
# error on the clean test labels, or the expected error on noisy ones (as in Nakkiran et al.
# 2019's Fig. 1: test labels drawn from the training noise model).
TEST_COLUMNS = {"clean": "test_error", "noisy": "test_error_noisy"}
LEGEND_COLUMNS = 4  # at most, in a figure legend above the panels
SINGLE_COLUMN_PANELS = 2  # panels side by side in a one-column figure


@contextmanager
def style():
    """The rc settings and seaborn style that every figure is drawn and saved in."""
    with plt.rc_context(RC), sns.axes_style("ticks"):
        yield


def save(fig: plt.Figure, paths: list[str | Path]) -> None:
    """Write `fig` to each path, in the format its suffix names, atomically."""
    # Inside the style: pdf.fonttype is read when saving, not when drawing.
    with style():
        for path in map(Path, paths):
            fmt = path.suffix.lstrip(".")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=300, bbox_inches="tight", metadata=METADATA[fmt])
    plt.close(fig)


def palette(keys, name: str = "colorblind") -> dict:
    """One color per key, in the given order: the same key gets the same color in every figure."""
    keys = list(dict.fromkeys(keys))
    return dict(zip(keys, sns.color_palette(name, len(keys))))


def _errorbar(kind: str):
    """Seaborn's errorbar for the configured band over seeds."""
    return ("sd", 1) if kind == "sd" else ("ci", 95)


def _subplots(n_rows: int, n_cols: int, figure_width: str = "auto", **kw):
    """A grid of panels `figure_width` wide; `auto`: one journal column for a single column
    of panels, else two."""
    auto = ONE_COLUMN_WIDTH if n_cols == 1 else TWO_COLUMN_WIDTH
    width = FIGURE_WIDTHS.get(figure_width, auto)
    return plt.subplots(
        n_rows,
        n_cols,
        figsize=(width, PANEL_HEIGHT * n_rows),
        squeeze=False,
        layout="constrained",
        **kw,
    )


def _log_x(ax, plain: bool = False) -> None:
    """A log x axis labeled at powers of ten only (as "100" if `plain`, else as 10^2)."""
    ax.set_xscale("log")
    # Below a decade of range matplotlib labels minor ticks too, and their labels collide.
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    if plain:
        ax.xaxis.set_major_formatter(mticker.StrMethodFormatter("{x:g}"))


def _condition_title(keys: list[str], values: tuple, varying: list[str]) -> list[str]:
    """The parts of a panel title that name its label noise and training-set size, for
    those that vary in the figure."""
    named = {
        "label_noise": lambda v: f"label noise {100 * v:.0f}%",
        "n_fit": lambda v: f"n = {int(v)}",
    }
    return [named[k](v) for k, v in zip(keys, values) if k in varying]


def _dotted_lines(ax, data: pd.DataFrame, x: str, y: str, hue: str, colors: dict, errorbar: str):
    """One line per `hue` value with a small marker at each point, a band over seeds and no
    legend of its own (the figure draws one for all panels)."""
    sns.lineplot(
        data=data,
        x=x,
        y=y,
        hue=hue,
        palette=colors,
        errorbar=_errorbar(errorbar),
        seed=0,
        marker="o",
        markersize=3,
        markeredgewidth=0,
        legend=False,
        ax=ax,
    )


def _legend(fig: plt.Figure, colors: dict) -> None:
    """One legend for the figure, above the panels, from a key -> color mapping."""
    handles = [Line2D([], [], color=c, marker="o", markersize=3) for c in colors.values()]
    # As many columns as fit the figure's width: saving with a tight bounding box would
    # otherwise widen the figure beyond the journal's column.
    for ncols in range(min(len(colors), LEGEND_COLUMNS), 0, -1):
        legend = fig.legend(
            handles, list(colors), loc="outside upper center", ncols=ncols, frameon=False
        )
        if ncols == 1 or legend.get_window_extent().width <= fig.bbox.width:
            return
        legend.remove()


# Model-size figures: final values against n_params or width.


def model_wise(
    df: pd.DataFrame,
    size: str = "n_params",
    errorbar: str = "sd",
    tol: float = 0.01,
    test: str = "test_error",
    figure_width: str = "auto",
) -> plt.Figure:
    """Final test error (column `test`) and train error against model size, a line per
    regularizer, band over seeds."""
    return _size_curves(df, [test, "train_error"], size, errorbar, tol, figure_width)


def model_wise_loss(
    df: pd.DataFrame,
    size: str = "n_params",
    errorbar: str = "sd",
    tol: float = 0.01,
    figure_width: str = "auto",
) -> plt.Figure:
    """Final test and train loss against model size, as `model_wise` draws the errors."""
    return _size_curves(df, ["test_loss", "train_loss"], size, errorbar, tol, figure_width)


def memorization(
    df: pd.DataFrame,
    size: str = "n_params",
    errorbar: str = "sd",
    tol: float = 0.01,
    figure_width: str = "auto",
) -> plt.Figure:
    """Final fraction of the noisy training labels fitted, against model size."""
    fig = _size_curves(df, ["noisy_fit"], size, errorbar, tol, figure_width)
    for ax in fig.axes:
        ax.set_ylim(-0.02, 1.02)  # a fraction: the full range shows how far from memorized
        if not any(len(line.get_xydata()) for line in ax.lines if line.get_linestyle() == "-"):
            # A noise level of 0 (in a noise sweep): nothing to fit, and an empty panel says so.
            ax.text(0.5, 0.5, "no noisy labels", ha="center", transform=ax.transAxes, color="0.4")
    return fig


def _size_curves(
    df: pd.DataFrame, metrics: list[str], size: str, errorbar: str, tol: float, figure_width: str
) -> plt.Figure:
    """A panel per metric; with several label-noise levels or training-set sizes, a row per
    metric and a column per combination (never averaged: each has its own threshold)."""
    final = results.final_epoch(df)
    keys, varying = results.CONDITIONS, results.varying(final)
    levels = results.conditions(final)
    colors = palette(final["regularizer"])
    with style():
        shape = (1, len(metrics)) if len(levels) == 1 else (len(metrics), len(levels))
        fig, axes = _subplots(*shape, figure_width, sharex=True)
        axes = axes.reshape(len(metrics), len(levels))
        for column, (level, sub) in zip(axes.T, final.groupby(keys)):
            _size_column(column, sub, metrics, size, errorbar, tol, colors)
            if varying:
                column[0].set_title(", ".join(_condition_title(keys, level, varying)))
        _legend(fig, colors)
        sns.despine(fig)
    return fig


def _size_column(
    axes,
    final: pd.DataFrame,
    metrics: list[str],
    size: str,
    errorbar: str,
    tol: float,
    colors: dict,
) -> None:
    """The panels of one label-noise level, with threshold and sample-size lines."""
    for ax, metric in zip(axes, metrics):
        _dotted_lines(ax, final[~final["diverged"]], size, metric, "regularizer", colors, errorbar)
        _log_x(ax)
        ax.set(xlabel=SIZE_LABELS[size], ylabel=Y_LABELS[metric])
        _mark_threshold(ax, final, size, tol, colors)
        _mark_diverged(ax, final, size, colors)
    _mark_sample_size(axes, final, size)


def _mark_diverged(ax, final: pd.DataFrame, size: str, colors: dict) -> None:
    """An x at the top of the panel per diverged run, so a missing point is explained."""
    for reg, bad in final[final["diverged"]].groupby("regularizer"):
        ax.scatter(
            bad[size],
            [1.0] * len(bad),
            transform=ax.get_xaxis_transform(),
            marker="x",
            s=14,
            color=colors[reg],
            clip_on=False,
            label="_diverged",
        )


def _mark_threshold(ax, final: pd.DataFrame, size: str, tol: float, colors: dict) -> None:
    """A dashed line, in the regularizer's color, at each detected interpolation threshold."""
    for reg, width in results.interpolation_threshold(final, tol).dropna().items():
        # n_params of a width depends on the regularizer (batchnorm adds parameters).
        at = final[(final["regularizer"] == reg) & (final["width"] == width)]
        ax.axvline(at[size].iloc[0], color=colors[reg], ls="--", lw=0.8, alpha=0.8)


def _mark_sample_size(axes, final: pd.DataFrame, size: str) -> None:
    """On a parameter axis, gray lines at params = n (and n x K, if in range)."""
    if size != "n_params":
        return
    n, k = int(final["n_fit"].iloc[0]), int(final["num_classes"].iloc[0])
    lo, hi = final["n_params"].min(), final["n_params"].max()
    marks = {label: v for v, label in [(n, "n"), (n * k, "nK")] if lo <= v <= hi}
    if not marks:
        return
    for ax in axes:
        for value in marks.values():
            ax.axvline(value, color="0.5", ls=":", lw=0.8)
        # Named on a top axis, outside the panel: a label inside would cover curves that
        # reach the top (memorization's fraction of one).
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(marks.values()), labels=list(marks))
        top.xaxis.set_minor_locator(mticker.NullLocator())
        top.tick_params(length=0, pad=1, labelsize=7, labelcolor="0.4")
        top.spines["top"].set_visible(False)


# Epoch-wise figures (Nakkiran et al. 2019, Fig. 2): a panel per regularizer.


def _facets(
    df: pd.DataFrame, rows: list[str] = results.CONDITIONS, figure_width: str = "auto", **kw
):
    """A panel per regularizer (a row per combination of `rows`), and each panel's rows of
    `df`. One journal column holds two panels side by side: more wrap into further rows."""
    levels, regs = results.conditions(df, rows), list(df["regularizer"].unique())
    varying = results.varying(df, rows)
    per_row = SINGLE_COLUMN_PANELS if figure_width == "single" else len(regs)
    wrap = -(-len(regs) // per_row)
    fig, axes = _subplots(len(levels) * wrap, min(per_row, len(regs)), figure_width, **kw)
    panels = []
    for (*level, reg), sub in df.groupby([*rows, "regularizer"], sort=False):
        i = regs.index(reg)
        ax = axes[levels.index(tuple(level)) * wrap + i // per_row, i % per_row]
        ax.set_title(", ".join([reg, *_condition_title(rows, level, varying)]))
        panels.append((ax, sub))
    used = {id(ax) for ax, _ in panels}
    for ax in axes.flat:  # the empty end of a wrapped row
        if id(ax) not in used:
            ax.remove()
    return fig, panels


def _time(df: pd.DataFrame) -> str:
    """The training-time axis: the epoch where every evaluation ends an epoch (epochs
    budgets), else the gradient step (steps budgets, whose evaluations fall mid-epoch)."""
    return "epoch" if (df["epoch"] % 1 == 0).all() else "step"


def epoch_wise(
    df: pd.DataFrame, size: str = "n_params", test: str = "test_error", figure_width: str = "auto"
) -> plt.Figure:
    """Heatmaps of test error (column `test`, mean over seeds) over model size x evaluation
    epoch (or step)."""
    time = _time(df)
    keys = [*results.CONDITIONS, "regularizer", size, time]
    means = results.seed_stats(df[~df["diverged"]], test, keys)
    with style():
        fig, panels = _facets(means, figure_width=figure_width)
        for ax, sub in panels:
            # Largest model on top, as in Nakkiran et al.; columns are the evaluated epochs.
            grid = sub.pivot(index=size, columns=time, values="mean").sort_index(ascending=False)
            sns.heatmap(
                grid,
                ax=ax,
                vmin=means["mean"].min(),
                vmax=means["mean"].max(),
                cmap="viridis",
                cbar=False,
                # Narrow one-column panels fit fewer epoch labels side by side.
                xticklabels=_sparse(grid.columns, 3 if figure_width == "single" else 7),
                yticklabels=_sparse(grid.index),
            )
            ax.set(xlabel=time, ylabel=SIZE_LABELS[size])
            # Vertical epoch labels in every panel: seaborn rotates them only where it sees
            # them overlap, which it misjudged in the first panel (labels ran together).
            ax.tick_params(axis="x", labelrotation=90)
            ax.tick_params(axis="y", labelrotation=0)
        fig.colorbar(panels[0][0].collections[0], ax=fig.axes, label=Y_LABELS[test], shrink=0.9)
    return fig


def optimal_regularization(
    df: pd.DataFrame, size: str = "n_params", figure_width: str = "auto"
) -> plt.Figure:
    """Each weight decay's test-error curve, the curve of the lambda chosen on the validation
    split (solid, where there is one) and the oracle lower envelope (dashed), per grid."""
    grids = results.with_grids(df)
    if grids.empty:
        raise UserError("no weight-decay grid in this table (give a weight_decay list)")
    chosen = {
        "validation-chosen": results.envelope(df, size, "val_error"),
        "oracle (test-chosen)": results.envelope(df, size, "test_error"),
    }
    with style():
        grid_panels = grids.assign(regularizer=grids["family"])
        fig, panels = _facets(grid_panels, sharey=True, figure_width=figure_width)
        for ax, sub in panels:
            # Categorical hue in numeric order: a grid may hold 0, which no log scale takes.
            order = [f"{v:g}" for v in sorted(sub["weight_decay"].unique())]
            lam = sub["weight_decay"].map("{:g}".format)
            sns.lineplot(
                data=sub,
                x=size,
                y="test_error",
                hue=lam,
                hue_order=order,
                palette="crest",
                errorbar=None,
                lw=0.8,
                ax=ax,
            )
            panel = sub[["family", *results.CONDITIONS]].iloc[0]
            # The oracle as a wide grey line under the validation choice (black), so both show
            # where validation picks the oracle's lambda, which is common.
            for (label, env), line in zip(
                chosen.items(),
                [dict(color="k", lw=1.4, zorder=4), dict(color="0.6", lw=4, zorder=3, alpha=0.6)],
            ):
                best = env[(env[panel.index] == panel).all(axis=1)]
                if len(best):
                    ax.plot(best[size], best["test_error"], label=label, **line)
            _log_x(ax)
            ax.set(xlabel=SIZE_LABELS[size], ylabel=Y_LABELS["test_error"])
            ax.get_legend().remove()
        # One legend, right of the last panel, clear of the curves.
        ax.legend(
            frameon=False,
            fontsize=7,
            title="weight decay",
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
        )
        sns.despine(fig)
    return fig


def _sparse(labels, most: int = 7) -> list[str]:
    """At most about `most` evenly spaced tick labels, so log-spaced epochs don't overlap."""
    step = max(1, -(-len(labels) // most))
    return [str(v) if i % step == 0 else "" for i, v in enumerate(labels)]


def epoch_curves(
    df: pd.DataFrame,
    errorbar: str = "sd",
    tol: float = 0.01,
    test: str = "test_error",
    figure_width: str = "auto",
) -> plt.Figure:
    """Test error (column `test`) against epoch (or step) for the smallest, threshold and
    largest width, band over seeds."""
    colors = palette(WIDTH_ROLES, "crest")  # sequential: light for small, dark for large
    time = _time(df)
    with style():
        fig, panels = _facets(df, sharey=True, figure_width=figure_width)
        for ax, sub in panels:
            for role, width in _epoch_widths(sub, tol).items():
                run = sub[(sub["width"] == width) & ~sub["diverged"]]
                sns.lineplot(
                    data=run,
                    x=time,
                    y=test,
                    color=colors[role],
                    errorbar=_errorbar(errorbar),
                    seed=0,
                    label=f"h = {width} ({role})",
                    ax=ax,
                )
            _log_x(ax, plain=True)
            ax.set(xlabel=time, ylabel=Y_LABELS[test])
            # Above the panel, titled with it: the widths differ between panels, and inside
            # it the legend would cover curves.
            ax.legend(
                frameon=False,
                fontsize=7,
                title=ax.get_title(),
                title_fontsize=9,
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
            )
            ax.set_title("")
        sns.despine(fig)
    return fig


def _epoch_widths(df: pd.DataFrame, tol: float) -> dict[str, int]:
    """Role -> width in one panel; the threshold role wins a tie, a missing one is left out."""
    candidates = [
        ("threshold", results.interpolation_threshold(df, tol).iloc[0]),
        ("smallest", df["width"].min()),
        ("largest", df["width"].max()),
    ]
    chosen: dict[str, int] = {}
    for role, width in candidates:
        if pd.notna(width) and int(width) not in chosen.values():
            chosen[role] = int(width)
    return dict(sorted(chosen.items(), key=lambda item: item[1]))


# Sample-wise double descent (Nakkiran et al. 2019, Fig. 11): more data can hurt.


def sample_wise(
    df: pd.DataFrame, errorbar: str = "sd", test: str = "test_error", figure_width: str = "auto"
) -> plt.Figure:
    """Final test error (column `test`) against the training-set size, a line per width (at
    most six, spread over the sweep), a panel per regularizer, band over seeds."""
    final = results.sample_wise(df)
    colors = palette(sorted(final["width"].unique()), "crest")  # light: narrow, dark: wide
    with style():
        fig, panels = _facets(final, rows=["label_noise"], sharey=True, figure_width=figure_width)
        for ax, sub in panels:
            _dotted_lines(ax, sub, "n_fit", test, "width", colors, errorbar)
            _log_x(ax)
            # Ticks at the swept sizes: a sweep may span less than a decade of the log axis.
            sizes = sorted(sub["n_fit"].unique())
            ax.set_xticks(sizes, labels=_sparse(sizes))
            ax.set(xlabel="training samples n", ylabel=Y_LABELS[test])
        _legend(fig, {f"h = {w}": c for w, c in colors.items()})
        sns.despine(fig)
    return fig


FIGURES = {
    "model_wise": model_wise,
    "model_wise_loss": model_wise_loss,
    "memorization": memorization,
    "epoch_wise": epoch_wise,
    "epoch_curves": epoch_curves,
    "optimal_regularization": optimal_regularization,
    "sample_wise": sample_wise,
}


def draw(name: str, df: pd.DataFrame, spec: dict) -> plt.Figure:
    """The figure `name` (a key of FIGURES), given those plot settings that it takes."""
    settings = {
        "size": spec["x"],
        "errorbar": spec["errorbar"],
        "tol": spec["interpolation_tol"],
        "test": TEST_COLUMNS[spec["test_error"]],
        "figure_width": spec["figure_width"],
    }
    takes = inspect.signature(FIGURES[name]).parameters
    return FIGURES[name](df, **{k: v for k, v in settings.items() if k in takes})
