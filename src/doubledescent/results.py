"""The tidy metrics table: collecting groups, and the summaries computed from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# The columns users can rely on, first and in this order; others follow.
KEY_COLUMNS = [
    "experiment", "dataset", "model", "width", "n_params", "regularizer", "weight_decay",
    "dropout", "batchnorm", "seed", "epoch", "train_loss", "train_error", "train_error_clean",
    "test_loss", "test_error", "noisy_fit", "diverged",
]
METRICS = ["train_loss", "train_error", "train_error_clean", "test_loss", "test_error",
           "noisy_fit"]


def collect(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate group tables into one, sorted, with the key columns first."""
    if not paths:
        raise ValueError("no group tables to collect")
    df = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    dupes = df.duplicated(["experiment", "run_id", "epoch"])
    if dupes.any():
        raise ValueError(f"{int(dupes.sum())} duplicate (run, epoch) rows across group tables")
    order = KEY_COLUMNS + [c for c in df.columns if c not in KEY_COLUMNS]
    return df[order].sort_values(["width", "regularizer", "seed", "epoch"], ignore_index=True)


def final_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last evaluation."""
    last = df.groupby("run_id")["epoch"].transform("max")
    return df[df["epoch"] == last]


def interpolation_threshold(df: pd.DataFrame, tol: float) -> pd.Series:
    """Per regularizer: the smallest width whose mean final train error is <= tol (NaN: none)."""
    final = final_epoch(df)
    means = final.groupby(["regularizer", "width"])["train_error"].mean().reset_index()
    fits = means[means["train_error"] <= tol]
    return fits.groupby("regularizer")["width"].min().reindex(
        means["regularizer"].unique()).astype(float)


def summary(df: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per regularizer: the test-error peak and the interpolation threshold."""
    final = final_epoch(df[~df["diverged"]])
    curve = (final.groupby(["regularizer", "width", "n_params"])["test_error"]
             .agg(["mean", "std", "count"]).reset_index())
    threshold = interpolation_threshold(df, tol)
    rows = []
    for reg, c in curve.groupby("regularizer", sort=False):
        peak = c.loc[c["mean"].idxmax()]
        largest = c.loc[c["width"].idxmax()]
        rows.append({
            "regularizer": reg,
            "peak_width": int(peak["width"]), "peak_n_params": int(peak["n_params"]),
            "peak_test_error": peak["mean"], "peak_test_error_sd": peak["std"],
            "threshold_width": threshold.get(reg, np.nan),
            "largest_width": int(largest["width"]), "largest_test_error": largest["mean"],
            "min_test_error": c["mean"].min(),
            "seeds": int(c["count"].max()),
        })
    return pd.DataFrame(rows)
