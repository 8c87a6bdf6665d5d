"""Packing: all training groups of an experiment in one job, as one zero-padded model.

On the CPU one job per group is fastest (parallel jobs on all cores; a padded model would
compute every run at the widest width). On a GPU the default study's groups are far too
small to fill the card: each job would pay CUDA's start-up and then be bound by kernel
launches. A pack trains every group of an experiment (of one prepared dataset: one
training-set size and noise rate, in a sweep of those) in one process from one copy of the
data, with one set of launches per step for all its runs (doubledescent.models.padded says
why the padding is exact). Each run's numbers are its unpacked ones; only the job layout
changes: a pack writes one table, `groups/<pack>.parquet`, with each row's group as without packing.

`packing`: `none` (one job per group), `experiment` (pack every packable experiment), or
`auto`: pack where training runs on CUDA. Only the MLP packs, and not under weight reuse
(its widths train one after another); the families without a padded builder (the conv
nets) keep one job per group. Torch-free:
Snakemake reads it while it parses.
"""

from __future__ import annotations

from dataclasses import replace

from doubledescent import architectures, config, gpus
from doubledescent.config import Run
from doubledescent.specs import GroupSpec


def enabled(packing: str, device: str) -> bool:
    """Whether the config's `packing` packs on this machine (auto: where jobs train on CUDA,
    `device: cuda`, or `auto` with a card visible)."""
    if packing == "auto":
        return bool(gpus.per_job(device))
    return packing == "experiment"


def pack_id(run: Run) -> str:
    """The job name of the pack that holds `run`: `pack`, or in a sweep of training-set sizes
    or noise rates that of its data, e.g. `n~1000_pack`, `noise~0.1_pack`."""
    return f"{config.data_prefix(run)}pack"


def packs(exp: dict) -> bool:
    """Whether the experiment's groups can share a job: a family with a zero-padded stack
    (the MLP), whose groups are independent (under weight reuse each width starts from the
    previous one's final weights)."""
    padded = architectures.family(exp["model"]["name"]).padded_builder
    return padded is not None and "weight_reuse" not in exp["training"]


def jobs(exp: dict, packing: bool) -> dict[str, list[Run]]:
    """An experiment's training jobs, name -> runs: its groups, or with `packing` (where the
    experiment packs) one pack per prepared dataset (training-set size and noise rate)
    holding its groups' runs, group after group."""
    groups = config.groups(exp)
    if not (packing and packs(exp)):
        return groups
    out: dict[str, list[Run]] = {}
    for runs in groups.values():
        out.setdefault(pack_id(runs[0]), []).extend(runs)
    return out


def job_spec(name: str, exp: dict, job: str) -> GroupSpec:
    """What a training job needs: a group's spec (config.group_spec, unchanged), or a pack's,
    which is its groups' specs merged: the same sections, every group's runs (each group's
    in its spec's order), the widest width, and the pack's name as `group`."""
    groups = config.groups(exp)
    if job in groups:
        return config.group_spec(name, exp, job)
    specs = [
        config.group_spec(name, exp, gid)
        for gid, runs in groups.items()
        if pack_id(runs[0]) == job and packs(exp)
    ]
    if not specs:
        raise ValueError(f"experiment {name!r} has no training job {job!r}")
    return replace(
        specs[0],
        group=job,
        width=max(s.width for s in specs),
        runs=tuple(r for s in specs for r in s.runs),
    )
