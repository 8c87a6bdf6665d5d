rule train_group:
    input:
        data=rules.prepare_data.output[0],
    output:
        f"{RESULTS}/{{experiment}}/groups/{{group}}.parquet",
    log:
        f"{RESULTS}/{{experiment}}/logs/train/{{group}}.log",
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
