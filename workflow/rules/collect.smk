rule collect:
    input:
        group_tables,
    output:
        parquet=f"{RESULTS}/{{experiment}}/metrics.parquet",
        csv=f"{RESULTS}/{{experiment}}/metrics.csv",
    log:
        f"{RESULTS}/{{experiment}}/logs/collect.log",
    shell:
        "python -m doubledescent collect {input} --parquet {output.parquet}"
        " --csv {output.csv} > {log} 2>&1"


rule provenance:
    input:
        rules.collect.output.parquet,
    output:
        f"{RESULTS}/{{experiment}}/provenance.json",
    log:
        f"{RESULTS}/{{experiment}}/logs/provenance.log",
    params:
        config=experiment_config,
        repo=workflow.basedir,
    shell:
        "python -m doubledescent provenance --metrics {input} --experiment {wildcards.experiment}"
        " --config {params.config:q} --repo {params.repo:q} --out {output} > {log} 2>&1"
