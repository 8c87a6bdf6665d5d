rule collect:
    input:
        group_tables,
    output:
        parquet=f"{RESULTS}/{{experiment}}/metrics.parquet",
        csv=f"{RESULTS}/{{experiment}}/metrics.csv",
    log:
        f"{RESULTS}/{{experiment}}/logs/collect.log",
    conda:
        "../envs/doubledescent.yaml"
    shell:
        "python -m doubledescent collect {input} --parquet {output.parquet}"
        " --csv {output.csv} > {log} 2>&1"
