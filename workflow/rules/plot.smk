rule plot_model_wise:
    input:
        rules.collect.output.parquet,
    output:
        report(
            multiext(f"{RESULTS}/{{experiment}}/figures/model_wise", ".pdf", ".png", ".svg"),
            caption="../report/model_wise.rst",
            category="{experiment}",
        ),
    params:
        spec=plot_spec,
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_model_wise.log",
    conda:
        "../envs/doubledescent.yaml"
    shell:
        "python -m doubledescent plot --metrics {input} --spec {params.spec:q}"
        " --out {output} > {log} 2>&1"


rule summarize:
    input:
        rules.collect.output.parquet,
    output:
        report(
            f"{RESULTS}/{{experiment}}/summary.csv",
            caption="../report/summary.rst",
            category="{experiment}",
        ),
    params:
        tol=interpolation_tol,
    log:
        f"{RESULTS}/{{experiment}}/logs/summarize.log",
    conda:
        "../envs/doubledescent.yaml"
    shell:
        "python -m doubledescent summarize --metrics {input} --tol {params.tol}"
        " --out {output} > {log} 2>&1"
