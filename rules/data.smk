# Data stage: classification subsets, their stylized / cue-conflict evaluation sets, the few-shot
# synthesis sets, and the files the paper publishes. The source (generated shapes, ImageNet or the
# paper's own files) and the stylization (texture swap or AdaIN) are config values; every branch
# writes the same layout. Every value a job uses is a param: editing it reruns exactly those jobs.
from topkshape.config import unpinned_downloads
from topkshape.paper_data import PART_FOLDERS

DATA_CFG = config["data"]
STYLIZE = config["stylize"]
ADAIN = STYLIZE["adain"]
USES_ADAIN = STYLIZE["method"] == "adain"
REQUIRE_PINNED = config["downloads"]["require_pinned"]
UNPINNED = unpinned_downloads(config)
# Downloads go to downloads.folder (resources/ unless a config moves them, as the smoke run does).
DOWNLOADS_DIR = config["downloads"]["folder"]
PAPER_DATA = f"{DOWNLOADS_DIR}/paper-data"
PAPER_FEWSHOT = DATA_CFG["paper_fewshot"]


rule subset:
    # Ahead of everything (above the long jobs' 10): a 2-thread job waits for both cores, and behind the
    # long jobs it left one core idle for a GAN run's length while every train job waited on it.
    priority: 20
    output:
        directory(f"{DATA}/{{subset}}"),
    params:
        source=DATA_CFG["source"],
        classes=lambda wildcards: DATA_CFG["subsets"][wildcards.subset],
        options=lambda wildcards: subset_options(wildcards.subset),
        imagenet_root=config["imagenet_root"] if DATA_CFG["source"] == "imagenet" else None,
    log:
        f"{LOGS}/data/subset_{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/subset_{{subset}}.tsv"
    threads: 2
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_subset.py"


rule fewshot:
    # Ahead of the long jobs that need it (gan_train, texture_synthesis): Snakemake does not pass a
    # job's priority on to the jobs it waits for.
    priority: 10
    input:
        unpack(fewshot_inputs),
    output:
        directory(f"{DATA}/fewshot/{{fewshot}}"),
    params:
        source=fewshot_param(lambda wildcards: DATA_CFG["source"]),
        cls=fewshot_param(lambda wildcards: DATA_CFG["fewshot"][wildcards.fewshot]),
        images=fewshot_param(lambda wildcards: DATA_CFG["fewshot_images"]),
        options=fewshot_param(lambda wildcards: fewshot_options(DATA_CFG["fewshot"][wildcards.fewshot])),
        imagenet_root=fewshot_param(lambda wildcards: config["imagenet_root"] if DATA_CFG["source"] == "imagenet" else None),
        paper_set=lambda wildcards: PAPER_FEWSHOT.get(wildcards.fewshot),
        paper_images=lambda wildcards: DATA_CFG["paper_fewshot_images"] if wildcards.fewshot in PAPER_FEWSHOT else None,
    log:
        f"{LOGS}/data/fewshot_{{fewshot}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fewshot_{{fewshot}}.tsv"
    threads: 2
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_fewshot.py"


rule paper_data:
    output:
        directory(f"{PAPER_DATA}/{{part}}"),
    params:
        base_url=config["paper_data"]["base_url"],
    wildcard_constraints:
        part="|".join(PART_FOLDERS),
    log:
        "logs/paper_data/{part}.log",
    threads: 2
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fetch_paper_data.py"


rule builtin_styles:
    output:
        directory(f"{DATA}/styles"),
    params:
        num_styles=STYLIZE["num_styles"],
        image_size=STYLIZE["style_size"] or STYLIZE["image_size"] or 256,
        seed=STYLIZE["seed"],
    log:
        f"{LOGS}/data/builtin_styles.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_builtin_styles.py"


rule adain_weights:
    input:
        stop_if_unpinned("stylize.adain.encoder_sha256", "stylize.adain.decoder_sha256",
                         outputs=(f"{DOWNLOADS_DIR}/adain/vgg_normalised.pth", f"{DOWNLOADS_DIR}/adain/decoder.pth")),
    output:
        encoder=f"{DOWNLOADS_DIR}/adain/vgg_normalised.pth",
        decoder=f"{DOWNLOADS_DIR}/adain/decoder.pth",
    params:
        encoder_url=ADAIN["encoder_url"],
        encoder_sha256=ADAIN["encoder_sha256"],
        decoder_url=ADAIN["decoder_url"],
        decoder_sha256=ADAIN["decoder_sha256"],
        require_pinned=REQUIRE_PINNED,
    log:
        "logs/adain_weights.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/download_adain_weights.py"


rule stylized:
    # Ahead of everything, as subset: a 2-thread job the train jobs wait for.
    priority: 20
    input:
        unpack(stylized_inputs),
    output:
        directory(f"{DATA}/{{subset}}-stylized"),
    params:
        classes=lambda wildcards: DATA_CFG["subsets"][wildcards.subset],
        stylize=stylized_options(),
        image_size=DATA_CFG["synthetic"]["image_size"] if not USES_ADAIN else None,
        home_textures=lambda wildcards: stylized_home_textures(wildcards.subset),
        style_dir=style_folder() if USES_ADAIN else None,
        encoder=adain_weight_paths()[0] if USES_ADAIN else None,
        decoder=adain_weight_paths()[1] if USES_ADAIN else None,
        adain_pins=adain_pins() if USES_ADAIN else None,
    log:
        f"{LOGS}/data/stylized_{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stylized_{{subset}}.tsv"
    threads: 2
    resources:
        gpu=1 if USES_ADAIN else 0,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_stylized.py"


rule data:
    input:
        DATA_TARGETS,
