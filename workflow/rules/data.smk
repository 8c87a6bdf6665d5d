rule prepare_data:
    output:
        f"{RESULTS}/{{experiment}}/data.npz",
    params:
        spec=dataset_spec,
    log:
        f"{RESULTS}/{{experiment}}/logs/data.log",
    message:
        "Preparing the dataset of {wildcards.experiment}"
    conda:
        "../envs/doubledescent.yaml"
    shell:
        "python -m doubledescent data --spec {params.spec:q} --out {output} > {log} 2>&1"
