"""What the workflow builds from a config: the figures, the final outputs, and the patterns
its wildcards may take. Torch- and matplotlib-free, so Snakemake can read it while it parses
the workflow; the `.smk` files only call it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from doubledescent import config, packing

RESULTS = "results"
FIGURE_EXTENSIONS = (".pdf", ".png", ".svg")


def _always(exp: dict) -> bool:
    return True


@dataclass(frozen=True)
class Figure:
    """A figure of the catalogue (drawn by doubledescent.plots' function of that name) and
    which experiments get it."""

    name: str
    drawn_for: Callable[[dict], bool] = _always


CATALOGUE = (
    Figure("model_wise"),
    Figure("model_wise_loss"),
    Figure("memorization"),
    Figure("epoch_wise"),
    Figure("epoch_curves"),
    # Only an experiment that sweeps a weight-decay grid has lambdas to choose between.
    Figure("optimal_regularization", config.has_grid),
    # Only an experiment that sweeps training-set sizes has a sample-wise axis.
    Figure("sample_wise", config.sweeps_sizes),
)
FIGURES = [f.name for f in CATALOGUE]


def figures_of(exp: dict) -> list[str]:
    """The figures an experiment gets, in catalogue order."""
    return [f.name for f in CATALOGUE if f.drawn_for(exp)]


def final_outputs(experiments: dict, results: str = RESULTS) -> list[str]:
    """Every file a complete run of the config leaves, per experiment: its tables, its
    provenance and its figures in each format."""
    out = []
    for name, exp in experiments.items():
        folder = f"{results}/{name}"
        out += [f"{folder}/{f}" for f in ("metrics.parquet", "summary.csv", "summary.tex")]
        out.append(f"{folder}/provenance.json")
        if config.has_grid(exp):
            out += [f"{folder}/optimal_regularization{ext}" for ext in (".csv", ".tex")]
        out += [
            f"{folder}/figures/{fig}{ext}" for fig in figures_of(exp) for ext in FIGURE_EXTENSIONS
        ]
    return out


def one_of(names) -> str:
    """A regex matching exactly the given names; one that matches nothing if none (Snakemake
    ignores an empty constraint)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


def wildcard_constraints(experiments: dict, packs: bool = False) -> dict[str, str]:
    """Snakemake's wildcard patterns: exactly the config's experiments, their training jobs
    (config.group_id's ids, or with `packs` packing.pack_id's where an experiment packs;
    enumerated rather than re-encoded as a pattern), their prepared datasets
    (config.data_name's, one per rate in a noise sweep) and the figures, so a file of no such
    job, dataset or figure matches no rule."""
    groups = {job for exp in experiments.values() for job in packing.jobs(exp, packs)}
    data = {config.data_name(q) for exp in experiments.values() for q in data_rates(exp)}
    return {
        "experiment": one_of(experiments),
        "group": one_of(groups),
        "data": one_of(data),
        "figure": one_of(FIGURES),
    }


def data_rates(exp: dict) -> list[float | None]:
    """The label-noise rates an experiment prepares a dataset for; None: its single rate."""
    return config.noise_levels(exp) if config.sweeps_noise(exp) else [None]
