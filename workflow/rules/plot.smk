# Figures and tables, computed from the tidy metrics table alone: editing the plot
# settings redraws them without retraining.


rule plot:
    input:
        rules.collect.output.parquet,
    # In the report once, as PNG; the PDF and SVG are for papers.
    output:
        pdf=f"{RESULTS}/{{experiment}}/figures/{{figure}}.pdf",
        png=report(
            f"{RESULTS}/{{experiment}}/figures/{{figure}}.png",
            caption="../report/caption.rst",
            category="{experiment}",
            subcategory="figures",
        ),
        svg=f"{RESULTS}/{{experiment}}/figures/{{figure}}.svg",
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_{{figure}}.log",
    params:
        spec=plot_spec,
        caption=figure_caption,
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
        tex=f"{RESULTS}/{{experiment}}/summary.tex",
    log:
        f"{RESULTS}/{{experiment}}/logs/summarize.log",
    params:
        tol=interpolation_tol,
        caption=table_caption("summarize"),
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
        tex=f"{RESULTS}/{{experiment}}/optimal_regularization.tex",
    log:
        f"{RESULTS}/{{experiment}}/logs/optimal_regularization.log",
    params:
        caption=table_caption("optimal_regularization_table"),
    shell:
        "python -m doubledescent optimal --metrics {input} --out {output.csv}"
        " --tex {output.tex} > {log} 2>&1"
