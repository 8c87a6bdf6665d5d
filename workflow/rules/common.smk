# Helpers shared by the rules: config validation and the experiment -> group expansion.
# All logic lives in the doubledescent package; this file only adapts it to wildcards.
import sys
from pathlib import Path

from doubledescent import captions as ddcaptions
from doubledescent import config as ddconfig
from doubledescent import gpus as ddgpus
from doubledescent import packing as ddpacking
from doubledescent import resources as ddresources
from doubledescent import targets as ddtargets
from doubledescent import warm as ddwarm
from doubledescent.config import canonical_json
from doubledescent.targets import FIGURE_EXTENSIONS, RESULTS


def checked_config():
    """The validated config; any problem with it or the results folder exits with one line."""
    try:
        # Snakemake's own YAML loader keeps the last of duplicate keys; re-read to refuse them.
        for path in workflow.configfiles:
            ddconfig.read_yaml(path)
        cfg = ddconfig.validate(
            config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
        )
        ddconfig.check_results_dir(RESULTS, cfg["experiments"])
    except ddconfig.ConfigError as e:
        sys.exit(f"config error: {e}")
    return cfg


CONFIG = checked_config()
EXPERIMENTS = CONFIG["experiments"]
# A GPU per training job where it trains on CUDA: SLURM then allocates one, and locally
# at most one job per card runs (the job itself claims a free card: doubledescent.gpus).
TRAIN_GPUS = ddgpus.per_job(CONFIG["device"])
GPU_LIMIT = ddgpus.default_limit(CONFIG["device"])
if "gpu" not in workflow.global_resources and GPU_LIMIT:
    workflow.register_resource("gpu", GPU_LIMIT)
# Experiments whose training jobs pass final weights on to the next width (weight reuse),
# and the others: two training rules, as only the former write weights.
REUSING = [name for name, exp in EXPERIMENTS.items() if "weight_reuse" in exp["training"]]
FRESH = [name for name in EXPERIMENTS if name not in REUSING]
# Whether training jobs are packs of groups (on CUDA by default) or one group each.
PACKS = ddpacking.enabled(CONFIG["packing"], CONFIG["device"])


wildcard_constraints:
    **ddtargets.wildcard_constraints(EXPERIMENTS, PACKS),


def dataset_spec(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    rate = {ddconfig.data_name(q): q for q in ddtargets.data_rates(exp)}[wildcards.data]
    return canonical_json(ddconfig.data_params(exp, rate))


def data_file(wildcards):
    """The prepared dataset a group trains on: its noise rate's, in a noise sweep."""
    exp, runs = _experiment_and_runs(wildcards)
    name = ddconfig.data_name(runs[0].label_noise)
    return f"{RESULTS}/{wildcards.experiment}/{name}.npz"


def previous_weights(wildcards):
    """Under weight reuse, the final weights of the group this one starts from (none for
    the smallest width and those at or above the reuse threshold)."""
    exp = EXPERIMENTS[wildcards.experiment]
    source = ddconfig.reuse_source(exp, wildcards.group)
    return [] if source is None else f"{RESULTS}/{wildcards.experiment}/weights/{source}.pt"


def group_spec(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    return ddconfig.rerun_key(ddpacking.job_spec(wildcards.experiment, exp, wildcards.group))


def checkpoint_file(wildcards):
    """Not an output: Snakemake must not delete it when a job fails, or nothing resumes."""
    return f"{RESULTS}/{wildcards.experiment}/checkpoints/{wildcards.group}.pt"


def plot_spec(wildcards):
    return canonical_json(EXPERIMENTS[wildcards.experiment]["plot"])


def figure_caption(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    return ddcaptions.caption(wildcards.experiment, exp, "plot", wildcards.figure)


def table_caption(rule):
    """The caption param of the table that `rule` writes."""
    return lambda wildcards: ddcaptions.caption(
        wildcards.experiment, EXPERIMENTS[wildcards.experiment], rule
    )


def interpolation_tol(wildcards):
    return EXPERIMENTS[wildcards.experiment]["plot"]["interpolation_tol"]


def group_tables(wildcards):
    return expand(
        f"{RESULTS}/{{experiment}}/groups/{{group}}.parquet",
        experiment=wildcards.experiment,
        group=ddpacking.jobs(EXPERIMENTS[wildcards.experiment], PACKS),
    )


def experiment_config(wildcards):
    """The experiment's resolved config, plus the run-wide settings, for its provenance."""
    exp = EXPERIMENTS[wildcards.experiment]
    return canonical_json({"device": CONFIG["device"], "threads": CONFIG["threads"], **exp})


def _experiment_and_runs(wildcards):
    """A training job's experiment and runs (of a group, or of a pack of groups)."""
    exp = EXPERIMENTS[wildcards.experiment]
    return exp, ddpacking.jobs(exp, PACKS)[wildcards.group]


def _experiment_and_size(wildcards):
    """A training job's experiment and the (width, runs, n_train) it is costed at."""
    exp, runs = _experiment_and_runs(wildcards)
    return exp, ddresources.job_size(runs)


def train_runtime(wildcards, attempt):
    """Minutes for a training job; a retry after a timeout gets proportionally more."""
    exp, (width, n_runs, n_train) = _experiment_and_size(wildcards)
    return attempt * ddresources.train_runtime_min(exp, width, n_runs, n_train, gpu=TRAIN_GPUS)


def train_priority(wildcards):
    exp, (width, n_runs, n_train) = _experiment_and_size(wildcards)
    return ddresources.train_priority(exp, width, n_runs, n_train, gpu=TRAIN_GPUS)


def train_mem_mb(wildcards, attempt):
    """Memory for a training job; a retry after running out gets proportionally more."""
    exp, (width, n_runs, _) = _experiment_and_size(wildcards)
    return attempt * ddresources.train_mem_mb(exp, width, n_runs, gpu=TRAIN_GPUS)
