# Table 1 stage: train each (subset x variant x seed) classifier, then aggregate.
# Every value a job uses is a param: editing it reruns exactly the jobs that use it.

RUN = f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}"
# The seed list selects jobs; it does not change any one job, so it is not a param.
TRAIN_PARAMS = {key: value for key, value in config["train"].items() if key != "seeds"}


rule train:
    input:
        subset=f"{DATA}/{{subset}}",
        stylized=f"{DATA}/{{subset}}-stylized",
    output:
        model=f"{RUN}/model.pt",
        metrics=f"{RUN}/metrics.csv",
        summary=f"{RUN}/summary.json",
    params:
        train=TRAIN_PARAMS,
        mask_dynamics=config["texture"]["mask_dynamics"],
    log:
        f"{LOGS}/train/{{subset}}_{{variant}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_{{subset}}_{{variant}}_seed{{seed}}.tsv"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/train_classifier.py"


rule table1:
    input:
        summaries=expand(f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}/summary.json", subset=SUBSETS, variant=VARIANTS, seed=SEEDS),
        metrics=expand(f"{RESULTS}/train/{{subset}}/{{variant}}/seed{{seed}}/metrics.csv", subset=SUBSETS, variant=VARIANTS, seed=SEEDS),
        reference=PAPER_REFERENCE,
    output:
        csv=report(f"{RESULTS}/tables/table1.csv", caption="../report/table1.rst", category="Table 1"),
        md=f"{RESULTS}/tables/table1.md",
        tex=f"{RESULTS}/tables/table1.tex",
        json=f"{RESULTS}/tables/table1.json",
        figure_png=report(f"{RESULTS}/figures/table1.png", caption="../report/table1_figure.rst", category="Table 1"),
        figure_pdf=f"{RESULTS}/figures/table1.pdf",
        curves_png=report(f"{RESULTS}/figures/table1_training_curves.png", caption="../report/table1_training_curves.rst", category="Table 1"),
        curves_pdf=f"{RESULTS}/figures/table1_training_curves.pdf",
    params:
        title=f"Table 1 ({EXP}: {config['train']['arch']}, {config['data']['source']} data)",
        train=config["train"],
        subsets=config["data"]["subsets"],
        paper_values=PAPER_VALUES["table1"],
        paper_subsets=PAPER_SUBSETS,
    log:
        f"{LOGS}/table1.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_table1.py"


rule train_all:
    input:
        rules.table1.input.summaries,
