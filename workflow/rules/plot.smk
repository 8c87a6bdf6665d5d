# Figures and tables, computed from the tidy metrics table alone: editing the plot
# settings redraws them without retraining.


rule plot:
    input:
        rules.collect.output.parquet,
    output:
        report(
            multiext(f"{RESULTS}/{{experiment}}/figures/{{figure}}", *FIGURE_EXTENSIONS),
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="figures",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_{{figure}}.log",
    params:
        spec=plot_spec,
    message:
        "Drawing {wildcards.figure} of {wildcards.experiment}"
    shell:
        "python -m doubledescent plot --figure {wildcards.figure} --metrics {input}"
        " --spec {params.spec:q} --out {output} > {log} 2>&1"


rule summarize:
    input:
        rules.collect.output.parquet,
    output:
        csv=report(
            f"{RESULTS}/{{experiment}}/summary.csv",
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="tables",
        ),
        tex=report(
            f"{RESULTS}/{{experiment}}/summary.tex",
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="tables",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/summarize.log",
    params:
        tol=interpolation_tol,
    shell:
        "python -m doubledescent summarize --metrics {input} --tol {params.tol}"
        " --out {output.csv} --tex {output.tex} > {log} 2>&1"


rule optimal_regularization_table:
    input:
        rules.collect.output.parquet,
    output:
        csv=report(
            f"{RESULTS}/{{experiment}}/optimal_regularization.csv",
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="tables",
        ),
        tex=report(
            f"{RESULTS}/{{experiment}}/optimal_regularization.tex",
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="tables",
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/optimal_regularization.log",
    shell:
        "python -m doubledescent optimal --metrics {input} --out {output.csv}"
        " --tex {output.tex} > {log} 2>&1"
