# Robustness beside shape bias (beyond the paper): Table 1's models on common corruptions (Table 1b).
# The corrupted sets are built once per subset, seeded; one job per subset evaluates its models.
CORRUPTIONS = config["robustness"]["corruptions"]
CORRUPTED = f"{DATA}/{{subset}}-corrupted"


rule corrupted:
    input:
        subset=f"{DATA}/{{subset}}",
    output:
        directory(CORRUPTED),
    params:
        classes=lambda wildcards: DATA_CFG["subsets"][wildcards.subset],
        corruptions={key: CORRUPTIONS[key] for key in ("names", "severities", "per_class", "seed")},
    log:
        f"{LOGS}/data/corrupted_{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corrupted_{{subset}}.tsv"
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_corrupted.py"


rule corruption_eval:
    input:
        corrupted=CORRUPTED,
        models=lambda wildcards: expand(f"{RESULTS}/train/{wildcards.subset}/{{variant}}/seed{{seed}}/model.pt", variant=VARIANTS, seed=SEEDS),
    output:
        f"{RESULTS}/corruptions/{{subset}}.csv",
    params:
        runs=[{"variant": variant, "seed": seed} for variant in VARIANTS for seed in SEEDS],
        batch_size=CORRUPTIONS["batch_size"],
    log:
        f"{LOGS}/corruptions/{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corruption_eval_{{subset}}.tsv"
    threads: 1
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_corruptions.py"


rule table1b:
    input:
        expand(f"{RESULTS}/corruptions/{{subset}}.csv", subset=SUBSETS),
    output:
        csv=report(f"{RESULTS}/tables/table1b.csv", caption="../report/table1b.rst", category="Table 1"),
        md=f"{RESULTS}/tables/table1b.md",
        tex=f"{RESULTS}/tables/table1b.tex",
        json=f"{RESULTS}/tables/table1b.json",
        accuracy_csv=f"{RESULTS}/tables/corruption_accuracy.csv",
    params:
        title=f"Table 1b ({EXP}: Table 1's models on common corruptions)",
    log:
        f"{LOGS}/table1b.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_table1b.py"


rule shape_bias_vs_robustness:
    input:
        summaries=rules.table1.input.summaries,
        accuracies=rules.table1b.input,
    output:
        csv=report(f"{RESULTS}/tables/shape_bias_vs_robustness.csv", caption="../report/shape_bias_vs_robustness.rst", category="Table 1"),
        points_csv=f"{RESULTS}/tables/shape_bias_vs_robustness_points.csv",
        md=f"{RESULTS}/tables/shape_bias_vs_robustness.md",
        png=report(f"{RESULTS}/figures/shape_bias_vs_robustness.png", caption="../report/shape_bias_vs_robustness.rst", category="Table 1"),
        pdf=f"{RESULTS}/figures/shape_bias_vs_robustness.pdf",
    params:
        title=f"Shape bias against corruption robustness ({EXP}: Table 1's models)",
        bootstrap_samples=config["shape_bias"]["bootstrap_samples"],
    log:
        f"{LOGS}/shape_bias_vs_robustness.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_shape_bias_vs_robustness.py"
