# Table 2 stage: few-shot image synthesis with FastGAN and FastGAN + Top-K, FID/KID over seeds.
# Every value a job uses is a param: editing it reruns exactly the jobs that use it.

GAN = config["gan"]
GAN_VARIANTS = ["fastgan", "fastgan_topk"]
GAN_RUN = f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{{gan_seed}}"
GAN_CLASSIFIER = GAN["eval"]["feature_extractor"] == "classifier"
# What one training job uses: not the seed or set lists or the per-set Top-K table (the job's own
# fraction is its own param), and of the evaluation options only the snapshot interval.
GAN_TRAIN_PARAMS = {key: value for key, value in GAN.items() if key not in ("seeds", "fewshot_sets", "eval", "topk_fraction")}


GAN_FID_DURING_TRAINING = GAN["rollback"]["enabled"]


rule gan_train:
    # The longest jobs start first (Snakemake's priority): the run then ends on short jobs, not on a
    # lone long one with a core idle.
    priority: 10
    input:
        unpack(gan_train_inputs),
    output:
        generator=f"{GAN_RUN}/generator_ema.pt",
        initial=f"{GAN_RUN}/generator_init.pt",
        losses=f"{GAN_RUN}/losses.csv",
    params:
        gan=GAN_TRAIN_PARAMS,
        topk_fraction=gan_topk_fraction,
        snapshot_every=GAN["eval"]["snapshot_every"],
        fid=GAN["eval"] if GAN_FID_DURING_TRAINING else None,
        weights_pins=weights_pins("lpips", "inception") if GAN_FID_DURING_TRAINING else weights_pins("lpips"),
        mask_dynamics=config["texture"]["mask_dynamics"],
    log:
        f"{LOGS}/gan/{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gan_train_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/train_gan.py"


rule gan_eval:
    input:
        unpack(gan_eval_inputs),
    output:
        metrics=f"{GAN_RUN}/metrics.json",
        preview=f"{GAN_RUN}/preview.png",
    params:
        eval=GAN["eval"],
        weights_pins=weights_pins("inception"),
    log:
        f"{LOGS}/gan/eval_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gan_eval_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_gan.py"


rule table2:
    input:
        metrics=expand(f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{{gan_seed}}/metrics.json", fewshot=GAN_SETS, gan_variant=GAN_VARIANTS, gan_seed=GAN["seeds"]),
        previews=expand(f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{GAN['seeds'][0]}/preview.png", fewshot=GAN_SETS, gan_variant=GAN_VARIANTS),
        reference=PAPER_REFERENCE,
    output:
        csv=report(f"{RESULTS}/tables/table2.csv", caption="../report/table2.rst", category="Table 2"),
        md=f"{RESULTS}/tables/table2.md",
        tex=f"{RESULTS}/tables/table2.tex",
        json=f"{RESULTS}/tables/table2.json",
        samples=report(f"{RESULTS}/figures/fewshot_samples.png", caption="../report/fewshot_samples.rst", category="Table 2"),
        samples_pdf=f"{RESULTS}/figures/fewshot_samples.pdf",
        figure_png=report(f"{RESULTS}/figures/table2.png", caption="../report/table2_figure.rst", category="Table 2"),
        figure_pdf=f"{RESULTS}/figures/table2.pdf",
    params:
        title=f"Table 2 ({EXP})",
        gan=GAN,
        paper_values=PAPER_VALUES["table2"],
    log:
        f"{LOGS}/table2.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_table2.py"


rule gan_all:
    input:
        rules.table2.input.metrics,
