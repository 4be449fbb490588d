# Figures 4 and 5: Top-K at inference on the cue-conflict benchmark, swept over K and mode.
from topkshape.shape_bias.tags import TRAINED_PREFIX

SB = config["shape_bias"]
SB_RAW = f"{RESULTS}/shape_bias/raw/cue-conflict_{{model}}-{{tag}}_session-1.csv"


def cue_conflict_folder():
    """The stimuli: a user folder, the paper's published files (rule paper_data), or the archive's."""
    opts = SB["cue_conflict"]
    return {"folder": opts["path"], "paper_data": f"{PAPER_DATA}/cue-conflict"}.get(opts["source"], f"{DATA}/cue-conflict")


def human_folder():
    opts = SB["humans"]
    return {"none": None, "folder": opts["path"], "download": f"{DATA}/humans"}[opts["source"]]


def cue_conflict_inputs(wildcards):
    """Trained models read their own subset's cue-conflict set; ImageNet models the stimuli."""
    if wildcards.model.startswith(TRAINED_PREFIX):
        subset = wildcards.model[len(TRAINED_PREFIX):]
        return {
            "images": f"{DATA}/{subset}-stylized",
            "checkpoint": f"{RESULTS}/train/{subset}/baseline/seed{SEEDS[0]}/model.pt",
        }
    return {"images": cue_conflict_folder()}


rule cue_conflict_images:
    output:
        directory(f"{DATA}/cue-conflict"),
    params:
        url=SB["cue_conflict"]["url"],
        sha256=SB["cue_conflict"]["sha256"],
        require_pinned=REQUIRE_PINNED,
    log:
        f"{LOGS}/shape_bias/cue_conflict_images.log",
    threads: 1
    script:
        "../workflow_scripts/fetch_cue_conflict.py"


rule human_decisions:
    output:
        directory(f"{DATA}/humans"),
    params:
        base_url=SB["humans"]["base_url"],
        require_pinned=REQUIRE_PINNED,
    log:
        f"{LOGS}/shape_bias/human_decisions.log",
    threads: 1
    script:
        "../workflow_scripts/fetch_human_decisions.py"


def imagenet_only(value):
    """A param that only torchvision models use: a trained model's job does not depend on it."""
    return lambda wildcards: None if wildcards.model.startswith(TRAINED_PREFIX) else value


# One job per model: the model is loaded and the stimuli decoded once, then every setting of
# the sweep writes its own raw CSV (the same files as one job per setting would).
rule cue_conflict_eval:
    input:
        unpack(cue_conflict_inputs),
    output:
        expand(SB_RAW, tag=SB_TAGS, allow_missing=True),
    params:
        tags=SB_TAGS,
        weights=imagenet_only(SB["weights"]),
        image_size=imagenet_only(SB["image_size"]),
        batch_size=SB["batch_size"],
        ties=SB["ties"],
    log:
        f"{LOGS}/shape_bias/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cue_conflict_{{model}}.tsv"
    threads: SB["threads"]
    resources:
        gpu=1,
    script:
        "../workflow_scripts/eval_cue_conflict.py"


rule shape_bias_report:
    input:
        raw=expand(SB_RAW, model=SB["models"], tag=SB_TAGS),
        humans=[human_folder()] if SB["humans"]["source"] == "download" else [],
    output:
        csv=f"{RESULTS}/tables/shape_bias.csv",
        md=f"{RESULTS}/tables/shape_bias.md",
        overall_png=f"{RESULTS}/figures/shape_bias_overall.png",
        overall_pdf=f"{RESULTS}/figures/shape_bias_overall.pdf",
        per_class_png=f"{RESULTS}/figures/shape_bias_per_class.png",
        per_class_pdf=f"{RESULTS}/figures/shape_bias_per_class.pdf",
    params:
        humans=human_folder(),
        experiment=EXP,
        bootstrap_samples=SB["bootstrap_samples"],
        chance_alpha=SB["chance_alpha"],
    log:
        f"{LOGS}/shape_bias/report.log",
    threads: 1
    script:
        "../workflow_scripts/make_shape_bias_report.py"
