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


# The vector-instruction flags that decide which kernels oneDNN and MKL pick, so that a
# benchmark's numbers say what kind of CPU they came from (machines of "one kind" differ).
CPU_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_bf16": "AVX512-BF16",
    "amx_tile": "AMX",
}


def cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """This machine's CPU as benchmarks report it: model, core count and vector flags, e.g.
    `AMD EPYC 7B13, 2 cores, AVX2 AVX-512`; the platform's name where /proc is absent."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}  # the first processor's entries
    cores = 0
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        cores += bool(colon) and key.strip() == "processor"
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", platform.machine())
    flags = set(fields.get("flags", "").split())
    named = " ".join(name for flag, name in CPU_FLAGS.items() if flag in flags)
    return f"{model}, {cores} cores" + (f", {named}" if named else "")


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
    # The groups of a pack shared one job and its wall time (doubledescent.packing).
    job = df["pack"].fillna(df["group"]) if "pack" in df else df["group"]
    finished = _unique(df, "finished_at")
    return {
        "groups": int(per_group.ngroups),
        "runs": int(df["run_id"].nunique()),
        "rows": len(df),
        "devices": _unique(df, "device"),
        "hostnames": _unique(df, "hostname"),
        "train_seconds": float(df.groupby(job)["wall_time"].max().sum()),
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
        "written_on_cpu": cpu(),  # where training ran elsewhere (a cluster), see hostnames
    }
