"""Publication figures from the tidy metrics table (never from training state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no display on clusters or CI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from doubledescent import results  # noqa: E402
from doubledescent.io import atomic_path  # noqa: E402

TWO_COLUMN_WIDTH = 7.0  # inches: a two-column figure in most journals
RC = {
    "pdf.fonttype": 42,  # TrueType fonts, which journals' PDF checkers accept
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
X_LABELS = {"n_params": "parameters", "width": "width h"}


def save(fig: plt.Figure, paths: list[str | Path]) -> None:
    """Write `fig` to each path, in the format its suffix names, atomically."""
    for path in map(Path, paths):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=200, bbox_inches="tight")
    plt.close(fig)


def _errorbar(kind: str):
    return ("sd", 1) if kind == "sd" else ("ci", 95)


def model_wise(df: pd.DataFrame, x: str = "n_params", errorbar: str = "sd",
               tol: float = 0.01) -> plt.Figure:
    """Final test and train error against model size, a line per regularizer, band over seeds."""
    final = results.final_epoch(df[~df["diverged"]])
    palette = dict(zip(final["regularizer"].unique(), sns.color_palette("colorblind")))
    with plt.rc_context(RC), sns.axes_style("ticks"):
        fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN_WIDTH, 2.8), sharex=True)
        for ax, metric, title in zip(axes, ["test_error", "train_error"],
                                     ["test error", "train error (noisy labels)"]):
            sns.lineplot(data=final, x=x, y=metric, hue="regularizer", palette=palette,
                         errorbar=_errorbar(errorbar), seed=0, marker="o", markersize=3,
                         ax=ax, legend=ax is axes[0])
            ax.set(xscale="log", xlabel=X_LABELS[x], ylabel=title)
            _mark_threshold(ax, final, x, tol, palette)
        _mark_sample_size(axes, final, x)
        sns.move_legend(axes[0], "upper right", frameon=False, title=None)
        sns.despine(fig)
        fig.tight_layout()
    return fig


def _mark_threshold(ax, final: pd.DataFrame, x: str, tol: float, palette: dict) -> None:
    """A dashed line, in the regularizer's color, at each detected interpolation threshold."""
    for reg, width in results.interpolation_threshold(final, tol).dropna().items():
        xpos = final.loc[final["width"] == width, x].iloc[0]
        ax.axvline(xpos, color=palette[reg], ls="--", lw=0.8, alpha=0.8)


def _mark_sample_size(axes, final: pd.DataFrame, x: str) -> None:
    """On a parameter axis, gray lines at params = n (and n x K, if in range)."""
    if x != "n_params":
        return
    n, k = int(final["n_train"].iloc[0]), int(final["num_classes"].iloc[0])
    lo, hi = final["n_params"].min(), final["n_params"].max()
    for ax in axes:
        for value, label in [(n, "n"), (n * k, "nK")]:
            if lo <= value <= hi:
                ax.axvline(value, color="0.5", ls=":", lw=0.8)
                ax.text(value, 1.0, f" {label}", transform=ax.get_xaxis_transform(),
                        va="top", color="0.4", fontsize=7)
