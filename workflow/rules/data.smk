rule prepare_data:
    output:
        # data.npz; in a label-noise sweep data/noise~<rate>.npz, one per rate
        f"{RESULTS}/{{experiment}}/{{data}}.npz",
    log:
        f"{RESULTS}/{{experiment}}/logs/{{data}}.log",
    params:
        spec=dataset_spec,
    message:
        "Preparing the dataset of {wildcards.experiment}"
    shell:
        "python -m doubledescent data --spec {params.spec:q} --out {output} > {log} 2>&1"
