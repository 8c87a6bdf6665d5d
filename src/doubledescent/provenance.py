"""What produced an experiment's results: config, code version, libraries, machines, times."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

LIBRARIES = ["torch", "numpy", "pandas", "snakemake", "doubledescent"]


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):  # no git installed, or a hung filesystem
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: str | Path) -> dict:
    """The commit checked out in `repo` and whether tracked files differ from it (else nulls)."""
    commit = _git(Path(repo), "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(Path(repo), "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict:
    """Python's version and those of the libraries that shape the numbers (null: not found)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _unique(df: pd.DataFrame, column: str) -> list:
    return sorted(df[column].dropna().unique().tolist()) if column in df else []


def training_summary(df: pd.DataFrame) -> dict:
    """Where and when the experiment's groups trained, from its collected metrics table."""
    per_group = df.groupby("group")
    finished = _unique(df, "finished_at")
    return {
        "groups": int(per_group.ngroups),
        "runs": int(df["run_id"].nunique()),
        "rows": len(df),
        "devices": _unique(df, "device"),
        "hostnames": _unique(df, "hostname"),
        "train_seconds": float(per_group["wall_time"].max().sum()),
        "first_group_finished_at": finished[0] if finished else None,
        "last_group_finished_at": finished[-1] if finished else None,
    }


def provenance(df: pd.DataFrame, experiment: str, config: dict, repo: str | Path) -> dict:
    """The provenance record of one experiment."""
    return {
        "experiment": experiment,
        "config": config,
        "git": git_state(repo),
        "versions": versions(),
        "training": training_summary(df),
        "written_at": now(),
        "written_on": platform.node(),
    }
