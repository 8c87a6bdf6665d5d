rule train_group:
    input:
        data=data_file,
    output:
        f"{RESULTS}/{{experiment}}/groups/{{group}}.parquet",
    log:
        f"{RESULTS}/{{experiment}}/logs/train/{{group}}.log",
    wildcard_constraints:
        experiment=ddtargets.one_of(FRESH),
    priority: train_priority
    threads: CONFIG["threads"]
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=TRAIN_GPUS,
        # A display setting, so not a param: a param's change would retrain every group.
        # Snakemake schedules nothing by it (no --resources names it), and SLURM ignores it.
        progress_every=str(CONFIG["progress_every"]),
    params:
        spec=group_spec,
        device=CONFIG["device"],
        checkpoint=checkpoint_file,
        checkpoint_every=CONFIG["checkpoint_every"],
    message:
        "Training {wildcards.experiment} {wildcards.group}"
    shell:
        "python -m doubledescent train --spec {params.spec:q} --data {input.data}"
        " --out {output} --device {params.device} --threads {threads}"
        " --checkpoint {params.checkpoint} --checkpoint-every {params.checkpoint_every}"
        " --progress-every {resources.progress_every}"
        " > {log} 2>&1"


# Weight reuse (Belkin et al. 2019): each job also writes its final weights, and a width
# below the threshold depends on the next smaller width's, so changing a width retrains it
# and the chain above it. `--out` then names the table and the weights.
use rule train_group as train_group_reuse with:
    input:
        data=data_file,
        previous=previous_weights,
    output:
        f"{RESULTS}/{{experiment}}/groups/{{group}}.parquet",
        f"{RESULTS}/{{experiment}}/weights/{{group}}.pt",
    wildcard_constraints:
        experiment=ddtargets.one_of(REUSING),
