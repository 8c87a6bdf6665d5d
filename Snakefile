# The double-descent pipeline: data -> train (one job per group of same-shape runs)
# -> collect (one tidy table per experiment) -> plot and summarize.
from snakemake.utils import min_version

min_version("8.0")


# The default experiments, unless the user names config files of their own: Snakemake
# would otherwise merge those into the defaults and run both.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/plot.smk"


# On a local run the steps fork from one process that has imported torch, pandas and
# matplotlib already (doubledescent.warm): seconds less per job. Not on a cluster.
onstart:
    ddwarm.start(CONFIG["warm_start"] and workflow.local_exec)


onsuccess:
    ddwarm.stop()


onerror:
    ddwarm.stop()


# Seconds of work each: on a cluster they run where Snakemake runs, sparing each the
# queueing and job-step overhead of a SLURM job.
localrules:
    collect,
    provenance,
    summarize,
    optimal_regularization_table,
    plot,


rule all:
    default_target: True
    input:
        ddtargets.final_outputs(EXPERIMENTS, RESULTS),
