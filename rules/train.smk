# Table 1 stage: train each (subset x variant x seed) classifier, then aggregate.

RUN = f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}"


rule train:
    input:
        subset=f"{DATA}/{{subset}}",
        stylized=f"{DATA}/{{subset}}-stylized",
    output:
        model=f"{RUN}/model.pt",
        metrics=f"{RUN}/metrics.csv",
        summary=f"{RUN}/summary.json",
    log:
        f"{LOGS}/train/{{subset}}_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_{{subset}}_{{variant}}_seed{{seed}}.tsv"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    script:
        "../workflow_scripts/train_classifier.py"


rule table1:
    input:
        summaries=expand(f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}/summary.json", subset=SUBSETS, variant=VARIANTS, seed=SEEDS),
        metrics=expand(f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}/metrics.csv", subset=SUBSETS, variant=VARIANTS, seed=SEEDS),
        reference="config/paper_reference.yaml",
    output:
        csv=f"{RESULTS}/tables/table1.csv",
        md=f"{RESULTS}/tables/table1.md",
        tex=f"{RESULTS}/tables/table1.tex",
        json=f"{RESULTS}/tables/table1.json",
        figure_png=f"{RESULTS}/figures/table1.png",
        figure_pdf=f"{RESULTS}/figures/table1.pdf",
        curves_png=f"{RESULTS}/figures/table1_training_curves.png",
        curves_pdf=f"{RESULTS}/figures/table1_training_curves.pdf",
    log:
        f"{LOGS}/table1.log",
    threads: 1
    script:
        "../workflow_scripts/make_table1.py"


rule train_all:
    input:
        rules.table1.input.summaries,
