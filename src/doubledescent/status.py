"""`doubledescent status`: how far a config's sweeps have got, while they run or after a stop.

A group is done when its table exists; running when its job has written a progress file
(or only a checkpoint, before its first report) and the job is alive; stopped when the job
that wrote the progress file is gone: its process has ended (on this host), or (on another,
such as a cluster node) it has missed three of its reports; pending otherwise. A rerun
resumes a stopped group from its checkpoint. The model-wise figure so far is drawn from the
done groups' tables and the rows that running and stopped groups have checkpointed, each run
at its latest evaluated epoch.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from doubledescent import packing, progress

RESULTS = "results"
STATES = ("done", "running", "stopped", "pending")
# Seconds a job on another host may be late with a report before it counts as stopped
# (a slow evaluation or checkpoint, or the hosts' clocks apart), beyond three intervals.
REPORT_SLACK = 60


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


def groups(
    results: str | Path, experiment: str, exp: dict, packs: bool = False, now=None
) -> list[Group]:
    """The state of each training job (a group, or with `packs` a pack of groups) at `now`
    (UTC; the current time by default)."""
    now = now or dt.datetime.now(dt.UTC)
    out = []
    for gid in packing.jobs(exp, packs):
        ckpt = checkpoint_path(results, experiment, gid)
        record = progress.read(progress.path_for(ckpt))
        if group_table(results, experiment, gid).exists():
            out.append(Group(gid, "done"))
        elif record:
            out.append(Group(gid, "running" if writer_alive(record, now) else "stopped", record))
        elif ckpt.exists():
            out.append(Group(gid, "running"))
        else:
            out.append(Group(gid, "pending"))
    return out


def writer_alive(record: dict, now: dt.datetime) -> bool:
    """Whether the job that wrote a progress record still runs: its process, on this host;
    elsewhere, whether its last report is at most three intervals old (and some slack).
    A record from before jobs said who wrote it counts as alive, as it did then."""
    if "pid" not in record:
        return True
    if record["host"] == platform.node():
        return pid_alive(record["pid"])
    return report_age(record, now) <= 3 * record["every"] + REPORT_SLACK


def report_age(record: dict, now: dt.datetime) -> float:
    """Seconds since the progress record was written."""
    return (now - dt.datetime.fromisoformat(record["updated"])).total_seconds()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _started_line(g: Group, now: dt.datetime) -> str:
    """A running or stopped group's line: its last progress and how old that is."""
    if not g.progress:
        return f"  {g.state}  {g.name}  (no progress record yet)"
    age = progress.duration(report_age(g.progress, now))
    when = (
        f"updated {age} ago"
        if g.state == "running"
        else f"last report {age} ago; a rerun resumes it"
    )
    return f"  {g.state}  {g.name}  {progress.line(g.progress)}  ({when})"


def summary(experiment: str, states: list[Group], now: dt.datetime) -> list[str]:
    """Lines for one experiment: the counts, each running group, the done and pending ones."""
    by = {s: [g for g in states if g.state == s] for s in STATES}
    counts = ", ".join(f"{len(by[s])} {s}" for s in STATES)
    lines = [f"{experiment}: {len(states)} groups: {counts}"]
    lines += [_started_line(g, now) for g in by["running"] + by["stopped"]]
    for s in ("done", "pending"):
        if by[s]:
            lines.append(f"  {s:<7}  " + " ".join(g.name for g in by[s]))
    return lines


def table_so_far(results: str | Path, experiment: str, exp: dict, states: list[Group]):
    """The done groups' rows and the running and stopped groups' checkpointed ones, or None
    if none."""
    import pandas as pd

    from doubledescent.results import read_table

    tables = [
        read_table(group_table(results, experiment, g.name), "group table")
        for g in states
        if g.state == "done"
    ]
    started = [g for g in states if g.state in ("running", "stopped")]
    if started:
        tables += _checkpointed(results, experiment, exp, started)
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else None


def _checkpointed(results, experiment: str, exp: dict, started: list[Group]) -> list:
    """Tables of the rows the `started` groups have checkpointed (needs torch and the data)."""
    from doubledescent import checkpoint, data, train

    arrays = data.load(Path(results) / experiment / "data.npz")
    tables = []
    for g in started:
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
        states = groups(results, name, exp, packs, now)
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
