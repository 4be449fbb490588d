# Table 2 stage: few-shot image synthesis with FastGAN and FastGAN + Top-K, FID/KID over seeds.

GAN = config["gan"]
GAN_VARIANTS = ["fastgan", "fastgan_topk"]
GAN_RUN = f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{{gan_seed}}"
GAN_CLASSIFIER = GAN["eval"]["feature_extractor"] == "classifier"


def gan_eval_inputs(wildcards):
    inputs = {"generator": GAN_RUN.format(**wildcards) + "/generator_ema.pt", "real": f"{DATA}/fewshot/{wildcards.fewshot}"}
    if GAN_CLASSIFIER:
        inputs["classifier"] = f"{RESULTS}/train/{GAN['eval']['classifier_subset']}/baseline/seed{SEEDS[0]}/model.pt"
    return inputs


rule gan_train:
    input:
        f"{DATA}/fewshot/{{fewshot}}",
    output:
        generator=f"{GAN_RUN}/generator_ema.pt",
        losses=f"{GAN_RUN}/losses.csv",
    log:
        f"{LOGS}/gan/{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gan_train_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../workflow_scripts/train_gan.py"


rule gan_eval:
    input:
        unpack(gan_eval_inputs),
    output:
        metrics=f"{GAN_RUN}/metrics.json",
        preview=f"{GAN_RUN}/preview.png",
    log:
        f"{LOGS}/gan/eval_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gan_eval_{{fewshot}}_{{gan_variant}}_seed{{gan_seed}}.tsv"
    threads: 1
    resources:
        gpu=1,
    script:
        "../workflow_scripts/eval_gan.py"


rule table2:
    input:
        metrics=expand(f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{{gan_seed}}/metrics.json", fewshot=FEWSHOT, gan_variant=GAN_VARIANTS, gan_seed=GAN["seeds"]),
        previews=expand(f"{RESULTS}/gan/{{fewshot}}/{{gan_variant}}/seed{GAN['seeds'][0]}/preview.png", fewshot=FEWSHOT, gan_variant=GAN_VARIANTS),
        reference="config/paper_reference.yaml",
    output:
        csv=f"{RESULTS}/tables/table2.csv",
        md=f"{RESULTS}/tables/table2.md",
        tex=f"{RESULTS}/tables/table2.tex",
        json=f"{RESULTS}/tables/table2.json",
        samples=f"{RESULTS}/figures/fewshot_samples.png",
    log:
        f"{LOGS}/table2.log",
    threads: 1
    script:
        "../workflow_scripts/make_table2.py"


rule gan_all:
    input:
        rules.table2.input.metrics,
