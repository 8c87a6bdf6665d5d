"""`doubledescent status`: how far a config's sweeps have got, while they run or after a stop.

A group is done when its table exists, running when its job has written a progress file or
a checkpoint (a stopped job leaves them too: the age of its last update tells), and pending
otherwise. The model-wise figure so far is drawn from the done groups' tables and the rows
that running groups have checkpointed, each run at its latest evaluated epoch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from doubledescent import packing, progress

RESULTS = "results"
STATES = ("done", "running", "pending")


def group_table(results: str | Path, experiment: str, group: str) -> Path:
    """Where a training job writes its table (the train_group rule's output)."""
    return Path(results) / experiment / "groups" / f"{group}.parquet"


def checkpoint_path(results: str | Path, experiment: str, group: str) -> Path:
    """Where a training job checkpoints (not a rule output, so a failure never deletes it)."""
    return Path(results) / experiment / "checkpoints" / f"{group}.pt"


@dataclass
class Group:
    name: str
    state: str  # one of STATES
    progress: dict | None = None  # the job's last progress record, if it wrote one


def groups(results: str | Path, experiment: str, exp: dict, packs: bool = False) -> list[Group]:
    """The state of each training job: a group, or with `packs` a pack of groups."""
    out = []
    for gid in packing.jobs(exp, packs):
        ckpt = checkpoint_path(results, experiment, gid)
        record = progress.read(progress.path_for(ckpt))
        if group_table(results, experiment, gid).exists():
            out.append(Group(gid, "done"))
        elif record or ckpt.exists():
            out.append(Group(gid, "running", record))
        else:
            out.append(Group(gid, "pending"))
    return out


def _running_line(g: Group, now: dt.datetime) -> str:
    if not g.progress:
        return f"  running  {g.name}  (no progress record yet)"
    age = (now - dt.datetime.fromisoformat(g.progress["updated"])).total_seconds()
    return (
        f"  running  {g.name}  {progress.line(g.progress)}  (updated {progress.duration(age)} ago)"
    )


def summary(experiment: str, states: list[Group], now: dt.datetime) -> list[str]:
    """Lines for one experiment: the counts, each running group, the done and pending ones."""
    by = {s: [g for g in states if g.state == s] for s in STATES}
    counts = ", ".join(f"{len(by[s])} {s}" for s in STATES)
    lines = [f"{experiment}: {len(states)} groups: {counts}"]
    lines += [_running_line(g, now) for g in by["running"]]
    for s in ("done", "pending"):
        if by[s]:
            lines.append(f"  {s:<7}  " + " ".join(g.name for g in by[s]))
    return lines


def table_so_far(results: str | Path, experiment: str, exp: dict, states: list[Group]):
    """The done groups' rows and the running groups' checkpointed ones, or None if none."""
    import pandas as pd

    from doubledescent.results import read_table

    tables = [
        read_table(group_table(results, experiment, g.name), "group table")
        for g in states
        if g.state == "done"
    ]
    running = [g for g in states if g.state == "running"]
    if running:
        tables += _checkpointed(results, experiment, exp, running)
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else None


def _checkpointed(results, experiment: str, exp: dict, running: list[Group]) -> list:
    """Tables of the rows the running groups have checkpointed (needs torch and the data)."""
    from doubledescent import checkpoint, data, train

    arrays = data.load(Path(results) / experiment / "data.npz")
    tables = []
    for g in running:
        spec = packing.job_spec(experiment, exp, g.name)
        rows = checkpoint.rows(checkpoint_path(results, experiment, g.name), spec)
        if rows:
            runs = list(spec.runs)
            group_arrays = train.group_arrays(spec, arrays)
            # Device and precision are the finished job's to record: unknown from here.
            table = train.group_table(spec, group_arrays, runs, rows, "unknown", "unknown")
            tables.append(table)
    return tables


def figure_path(results: str | Path, experiment: str) -> Path:
    return Path(results) / experiment / "status" / "model_wise.png"


def report(cfg: dict, results: str | Path = RESULTS, out=print) -> None:
    """Print each experiment's state and draw its model-wise figure so far."""
    from doubledescent import plots

    now = dt.datetime.now(dt.UTC)
    packs = packing.enabled(cfg["packing"], cfg["device"])
    for name, exp in cfg["experiments"].items():
        states = groups(results, name, exp, packs)
        for line in summary(name, states, now):
            out(line)
        table = table_so_far(results, name, exp, states)
        if table is None:
            out("  no evaluated rows yet: no figure")
            continue
        path = figure_path(results, name)
        plots.save(plots.draw("model_wise", table, exp["plot"]), [path])
        epochs = table.groupby("run_id")["epoch"].max()
        out(
            f"  figure: {path} ({len(epochs)} runs, at epochs {epochs.min()}-{epochs.max()}"
            f" of {exp['training']['epochs']})"
        )
