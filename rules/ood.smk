# Beyond the paper: model-vs-human's out-of-distribution benchmark for every atlas entry, with and without
# Top-K. The 17 datasets and the human observers' decisions are downloads (pinned); one job per entry and
# dataset evaluates the entry at every setting; the report sets the benchmark beside the atlas's shape bias.
from topkshape.robustness.ood_datasets import human_files

OOD = config["robustness"]["ood"]
OOD_NAMES = OOD["datasets"]
OOD_TAGS = sweep_tags(OOD["fractions"] or SB["fractions"], ["topk"])
OOD_DIR = f"{DATA}/ood"
OOD_HUMANS = f"{DATA}/ood-humans"
OOD_RAW = f"{RESULTS}/ood/raw/{{entry}}/{{ood}}.csv"


rule ood_dataset:
    input:
        stop_if_unpinned("robustness.ood.sha256.{ood}", outputs=(f"{OOD_DIR}/{{ood}}",)),
    output:
        directory(f"{OOD_DIR}/{{ood}}"),
    params:
        url=lambda wildcards: OOD["url"].format(name=wildcards.ood),
        sha256=lambda wildcards: OOD["sha256"].get(wildcards.ood),
        require_pinned=REQUIRE_PINNED,
    log:
        f"{LOGS}/ood/dataset_{{ood}}.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fetch_ood_dataset.py"


rule ood_humans:
    output:
        directory(f"{OOD_HUMANS}/{{ood}}"),
    params:
        base_url=OOD["humans_url"],
        require_pinned=REQUIRE_PINNED,
        pins=lambda wildcards: human_files(wildcards.ood),  # shipped in the package: other pins rerun this
    log:
        f"{LOGS}/ood/humans_{{ood}}.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fetch_ood_humans.py"


rule ood_eval:
    input:
        unpack(ood_eval_inputs),
    output:
        OOD_RAW,
    params:
        entry=lambda wildcards: ATLAS[wildcards.entry],
        tags=OOD_TAGS,
        batch_size=OOD["batch_size"],
        images_per_class=OOD["images_per_class"],
        ties=SB["ties"],
        tie_seed=SB["tie_seed"],
        dataset_pin=lambda wildcards: OOD["sha256"].get(wildcards.ood),
        weights_pins=lambda wildcards: weights_pins(f"atlas:{wildcards.entry}"),
    log:
        f"{LOGS}/ood/eval_{{entry}}_{{ood}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ood_eval_{{entry}}_{{ood}}.tsv"
    threads: SB["threads"]
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_ood.py"


rule ood_report:
    input:
        raw=expand(OOD_RAW, entry=list(ATLAS), ood=OOD_NAMES),
        humans=[downloaded(f"{OOD_HUMANS}/{name}") for name in OOD_NAMES],
        atlas=rules.atlas_report.output.csv,
    output:
        csv=report(f"{RESULTS}/tables/ood_benchmark.csv", caption="../report/ood_benchmark.rst", category="Atlas"),
        md=f"{RESULTS}/tables/ood_benchmark.md",
        points_csv=f"{RESULTS}/tables/shape_bias_vs_ood_points.csv",
        correlation_csv=f"{RESULTS}/tables/shape_bias_vs_ood.csv",
        correlation_md=f"{RESULTS}/tables/shape_bias_vs_ood.md",
        png=report(f"{RESULTS}/figures/shape_bias_vs_ood.png", caption="../report/shape_bias_vs_ood.rst", category="Atlas"),
        pdf=f"{RESULTS}/figures/shape_bias_vs_ood.pdf",
    params:
        datasets=OOD_NAMES,
        title=f"{EXP}: model-vs-human's OOD benchmark of the atlas models",
        bootstrap_samples=SB["bootstrap_samples"],
    log:
        f"{LOGS}/ood/report.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_ood_report.py"
