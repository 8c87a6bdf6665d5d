"""The tidy metrics table: collecting groups, and the summaries computed from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from doubledescent.config import family
from doubledescent.errors import DataError, UserError

# The columns users can rely on, first and in this order; others follow.
KEY_COLUMNS = [
    "experiment",
    "dataset",
    "model",
    "width",
    "n_params",
    "regularizer",
    "weight_decay",
    "dropout",
    "batchnorm",
    "seed",
    "epoch",
    "step",
    "train_loss",
    "train_error",
    "train_error_clean",
    "test_loss",
    "test_error",
    "noisy_fit",
    "diverged",
]
METRICS = ["train_loss", "train_error", "train_error_clean", "test_loss", "test_error", "noisy_fit"]
# What a table may vary besides the model: the data a run saw. Analyses never average over
# them; each combination gets its own curves (a column or row of panels) and summary rows.
CONDITIONS = ["label_noise", "n_fit"]


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """The parquet table at `path` (`what` it is: a group table, the metrics table), or a
    one-line DataError where it is missing or damaged (a copy cut short, a disk filled)."""
    if not Path(path).is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return pd.read_parquet(path)
    except (OSError, pyarrow.ArrowException) as e:
        raise DataError(
            f"{what} {path} is not a readable parquet table ({e}); delete it and rerun"
        ) from None


def collect(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate group tables into one, sorted, with the key columns first."""
    if not paths:
        raise UserError("no group tables to collect")
    df = pd.concat([read_table(p, "group table") for p in paths], ignore_index=True)
    dupes = df.duplicated(["experiment", "run_id", "epoch"])
    if dupes.any():
        raise UserError(f"{int(dupes.sum())} duplicate (run, epoch) rows across group tables")
    order = KEY_COLUMNS + [c for c in df.columns if c not in KEY_COLUMNS]
    return df[order].sort_values(["width", "regularizer", "seed", "epoch"], ignore_index=True)


def conditions(df: pd.DataFrame, keys: list[str] = CONDITIONS) -> list[tuple]:
    """The combinations of `keys` in a table, sorted."""
    return list(df[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None))


def varying(df: pd.DataFrame, keys: list[str] = CONDITIONS) -> list[str]:
    """Those of `keys` that take more than one value: what titles and tables must name."""
    return [k for k in keys if df[k].nunique() > 1]


def final_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last evaluation."""
    last = df.groupby("run_id")["epoch"].transform("max")
    return df[df["epoch"] == last]


def final_converged(df: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run that had not diverged by then. Final first, then the
    filter: the other order would take a diverged run's last evaluation before divergence
    as its final result."""
    final = final_epoch(df)
    return final[~final["diverged"]]


def seed_stats(df: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """Mean, sd and count over seeds of `metric`, one row per combination of `keys`."""
    return df.groupby(keys, sort=False)[metric].agg(["mean", "std", "count"]).reset_index()


def final_stats(df: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """`seed_stats` of each run's final evaluation: the points of a model-wise curve."""
    return seed_stats(final_epoch(df), metric, keys)


def with_grids(df: pd.DataFrame) -> pd.DataFrame:
    """The final, non-diverged rows of weight-decay grids, with their `family` column."""
    final = final_converged(df)
    grid = final[final["regularizer"].str.contains("@", regex=False)]
    return grid.assign(family=grid["regularizer"].map(family))


def envelope(
    df: pd.DataFrame, size: str = "n_params", choose_by: str = "test_error"
) -> pd.DataFrame:
    """Per grid, noise level and size: the weight decay minimizing mean `choose_by`, and its
    mean test error.

    `test_error` gives the oracle of Nakkiran et al. (2020), the lower envelope of the
    grid's curves; `val_error` chooses on the held-out split, without looking at the test set.
    Empty where `choose_by` was not measured (no validation split).
    """
    keys = list(dict.fromkeys([*CONDITIONS, "family", "width", size]))
    grid = with_grids(df)
    stats = (
        grid.groupby(keys + ["weight_decay"])[list({choose_by, "test_error"})]
        .mean()
        .reset_index()
        .dropna(subset=[choose_by])
        .sort_values(keys + ["weight_decay"])
    )
    # idxmin takes the first of tied minima, here the smallest weight decay: the least
    # regularization that achieves the best error. Ties are common on a small validation
    # split, whose error moves in steps of 1 / its size.
    best = stats.loc[stats.groupby(keys)[choose_by].idxmin()] if len(stats) else stats
    return best.rename(columns={"weight_decay": "best_weight_decay"})[
        keys + ["best_weight_decay", "test_error"]
    ].reset_index(drop=True)


def spread(values, most: int) -> list:
    """At most `most` of the distinct values, evenly spaced by rank, smallest and largest
    included: sweeps space widths geometrically, so this spreads them over the range."""
    values = sorted(set(values))
    ranks = np.linspace(0, len(values) - 1, min(most, len(values))).round().astype(int)
    return [values[i] for i in ranks]


def sample_wise(df: pd.DataFrame, most_widths: int = 6) -> pd.DataFrame:
    """The final evaluations of sample-wise curves: runs that did not diverge, of at most
    `most_widths` widths spread over the sweep (a line per width stays readable)."""
    final = final_converged(df)
    if final["n_fit"].nunique() < 2:
        raise UserError("no training-set sizes to sweep in this table (give n_train a list)")
    return final[final["width"].isin(spread(final["width"], most_widths))]


def optimal_regularization(df: pd.DataFrame) -> pd.DataFrame:
    """Per label noise, training-set size, grid and width: the weight decay chosen on the
    validation split with its test error, beside the oracle's (chosen on the test set, the
    best any choice could do). Ties go to the smaller weight decay (see `envelope`); the
    chosen columns are NaN without a validation split."""
    keys = [*CONDITIONS, "family", "width", "n_params"]
    chosen, oracle = (
        envelope(df, "n_params", by).rename(
            columns={
                "best_weight_decay": f"{name}_weight_decay",
                "test_error": f"{name}_test_error",
            }
        )
        for by, name in [("val_error", "chosen"), ("test_error", "oracle")]
    )
    return oracle.merge(chosen, on=keys, how="left")[
        keys
        + ["chosen_weight_decay", "chosen_test_error", "oracle_weight_decay", "oracle_test_error"]
    ]


def interpolation_threshold(df: pd.DataFrame, tol: float) -> pd.Series:
    """Per regularizer: the smallest width whose mean final train error is <= tol (NaN: none)."""
    means = final_stats(df, "train_error", ["regularizer", "width"])
    fits = means[means["mean"] <= tol]
    return (
        fits.groupby("regularizer")["width"]
        .min()
        .reindex(means["regularizer"].unique())
        .astype(float)
    )


def summary(df: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per label-noise level, training-set size and regularizer: the test-error peak and
    interpolation threshold."""
    return pd.concat(
        [_summary_at(sub, tol) for _, sub in df.groupby(CONDITIONS)], ignore_index=True
    )


def _summary_at(df: pd.DataFrame, tol: float) -> pd.DataFrame:
    """`summary` of a table with a single label-noise level and training-set size."""
    curve = seed_stats(final_converged(df), "test_error", ["regularizer", "width", "n_params"])
    threshold = interpolation_threshold(df, tol)
    rows = []
    for reg, c in curve.groupby("regularizer", sort=False):
        c = c.sort_values("width")
        dip, peak = dip_and_peak(c, threshold.get(reg, np.nan))
        largest = c.iloc[-1]
        rows.append(
            {
                **df[CONDITIONS].iloc[0].to_dict(),
                "regularizer": reg,
                "dip_width": int(dip["width"]),
                "dip_test_error": dip["mean"],
                "peak_width": int(peak["width"]),
                "peak_n_params": int(peak["n_params"]),
                "peak_test_error": peak["mean"],
                "peak_test_error_sd": peak["std"],
                "threshold_width": threshold.get(reg, np.nan),
                "largest_width": int(largest["width"]),
                "largest_test_error": largest["mean"],
                "min_test_error": c["mean"].min(),
                "seeds": int(c["count"].max()),
            }
        )
    return pd.DataFrame(rows)


def dip_and_peak(curve: pd.DataFrame, threshold: float) -> tuple[pd.Series, pd.Series]:
    """The classical regime's best width (the dip) and the worst width from there on (the peak).

    The plain maximum would usually be the smallest, underfitting model; the double-descent
    peak is the maximum after the U-shaped classical curve's minimum, which lies below the
    interpolation threshold (anywhere, where no width interpolates).
    """
    classical = curve[curve["width"] < threshold] if threshold == threshold else curve
    dip = (classical if len(classical) else curve.iloc[:1])["mean"].idxmin()
    after = curve[curve["width"] >= curve.loc[dip, "width"]]
    return curve.loc[dip], curve.loc[after["mean"].idxmax()]


def _percent(value: float, sd: float | None = None) -> str:
    """A fraction as a LaTeX percentage, `mean $\\pm$ sd` when an sd is given."""
    if pd.isna(value):
        return "--"
    if sd is None or pd.isna(sd):
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} $\\pm$ {100 * sd:.1f}"


def _count(value: float) -> str:
    """An integer table cell, or a dash where none was detected."""
    return "--" if pd.isna(value) else f"{int(value):,}"


# The headers of the CONDITIONS columns in LaTeX tables.
CONDITION_HEADERS = ["Label noise (\\%)", "Training samples"]


def _condition_cells(df: pd.DataFrame) -> dict[str, pd.Series]:
    """The CONDITIONS columns of a LaTeX table, formatted."""
    return dict(zip(CONDITION_HEADERS, [df["label_noise"].map(_percent), df["n_fit"].map(_count)]))


def _booktabs(table: pd.DataFrame, text: list[str]) -> str:
    """`table` (cells formatted) as booktabs LaTeX: `text` columns escaped and left-aligned,
    the others right-aligned. A condition column holding one value says nothing; the
    caption says it, so it is dropped."""
    table = table.drop(columns=[c for c in CONDITION_HEADERS if table[c].nunique() == 1])
    styler = table.style.hide(axis="index").format(escape="latex", subset=text)
    return styler.to_latex(
        hrules=True, column_format="".join("l" if name in text else "r" for name in table.columns)
    )


def _decay(value: float) -> str:
    """A weight decay as a table cell, or a dash where none was chosen."""
    return "--" if pd.isna(value) else f"{value:g}"


def optimal_regularization_latex(best: pd.DataFrame) -> str:
    """The optimal-regularization table as booktabs LaTeX, errors in percent."""
    table = pd.DataFrame(
        {
            **_condition_cells(best),
            "Regularizer": best["family"],
            "$h$": best["width"].map(_count),
            "Params": best["n_params"].map(_count),
            "$\\lambda$, validation": best["chosen_weight_decay"].map(_decay),
            "Its test error (\\%)": best["chosen_test_error"].map(_percent),
            "$\\lambda$, oracle": best["oracle_weight_decay"].map(_decay),
            "Oracle test error (\\%)": best["oracle_test_error"].map(_percent),
        }
    )
    return _booktabs(table, text=["Regularizer"])


def summary_latex(summary: pd.DataFrame) -> str:
    """The summary as a booktabs LaTeX table, errors in percent, ready for a paper."""
    table = pd.DataFrame(
        {
            **_condition_cells(summary),
            "Regularizer": summary["regularizer"],
            "Threshold $h$": summary["threshold_width"].map(_count),
            "Peak $h$": summary["peak_width"].map(_count),
            "Peak params": summary["peak_n_params"].map(_count),
            "Test error at peak (\\%)": [
                _percent(m, s)
                for m, s in zip(summary["peak_test_error"], summary["peak_test_error_sd"])
            ],
            "Test error, largest (\\%)": summary["largest_test_error"].map(_percent),
            "Best test error (\\%)": summary["min_test_error"].map(_percent),
            "Seeds": summary["seeds"].map(_count),
        }
    )
    return _booktabs(table, text=["Regularizer"])
