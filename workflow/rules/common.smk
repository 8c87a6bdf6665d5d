# Helpers shared by the rules: config validation and the experiment -> group expansion.
# All logic lives in the doubledescent package; this file only adapts it to wildcards.
import json
import sys
from pathlib import Path

from doubledescent import config as ddconfig
from doubledescent.cli import FIGURES

try:
    CONFIG = ddconfig.validate(
        config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    )
except ddconfig.ConfigError as e:
    sys.exit(f"config error: {e}")

# Report captions render `config`: let them see the defaults the schema filled in.
config.update(CONFIG)

EXPERIMENTS = CONFIG["experiments"]
RESULTS = "results"
FIGURE_EXTENSIONS = [".pdf", ".png", ".svg"]


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    group=r"width~\d+_norm~\w+",
    figure="|".join(FIGURES),


def as_json(obj):
    """Params as canonical JSON, so that only a real change to them triggers a rerun."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def dataset_spec(wildcards):
    return as_json(EXPERIMENTS[wildcards.experiment]["dataset"])


def group_spec(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    return as_json(ddconfig.group_spec(wildcards.experiment, exp, wildcards.group))


def checkpoint_file(wildcards):
    """Not an output: Snakemake must not delete it when a job fails, or nothing resumes."""
    return f"{RESULTS}/{wildcards.experiment}/checkpoints/{wildcards.group}.pt"


def plot_spec(wildcards):
    return as_json(EXPERIMENTS[wildcards.experiment]["plot"])


def interpolation_tol(wildcards):
    return EXPERIMENTS[wildcards.experiment]["plot"]["interpolation_tol"]


def group_tables(wildcards):
    return expand(
        f"{RESULTS}/{{experiment}}/groups/{{group}}.parquet",
        experiment=wildcards.experiment,
        group=ddconfig.groups(EXPERIMENTS[wildcards.experiment]),
    )


def final_outputs():
    tables = expand(
        [
            f"{RESULTS}/{{experiment}}/metrics.parquet",
            f"{RESULTS}/{{experiment}}/summary.csv",
            f"{RESULTS}/{{experiment}}/summary.tex",
        ],
        experiment=EXPERIMENTS,
    )
    figures = expand(
        f"{RESULTS}/{{experiment}}/figures/{{figure}}{{ext}}",
        experiment=EXPERIMENTS,
        figure=FIGURES,
        ext=FIGURE_EXTENSIONS,
    )
    return tables + figures
