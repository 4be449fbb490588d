# Beyond the paper: the shape-bias atlas, the same Top-K sweep for any model of shape_bias.atlas
# (torchvision, timm or a user's builder) at any placement, one job per model.

ATLAS = {entry["name"]: entry for entry in SB["atlas"]}
ATLAS_STIMULI = SB["atlas_stimuli"]
ATLAS_RAW = f"{RESULTS}/shape_bias/atlas/raw/cue-conflict_{{entry}}-{{tag}}_session-1.csv"
ATLAS_RECORD = f"{RESULTS}/shape_bias/atlas/records/{{entry}}.json"
ATLAS_TIES = f"{RESULTS}/shape_bias/atlas/ties/{{entry}}.csv"


rule atlas_stimuli:
    output:
        directory(f"{DATA}/atlas-stimuli"),
    params:
        per_category=ATLAS_STIMULI["per_category"],
        seed=ATLAS_STIMULI["seed"],
    log:
        f"{LOGS}/shape_bias/atlas_stimuli.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_atlas_stimuli.py"


rule atlas_eval:
    input:
        unpack(atlas_inputs),
    output:
        raw=expand(ATLAS_RAW, tag=SB_TAGS, allow_missing=True),
        record=ATLAS_RECORD,
        ties=ATLAS_TIES,
    params:
        entry=lambda wildcards: ATLAS[wildcards.entry],
        tags=SB_TAGS,
        batch_size=SB["batch_size"],
        ties=SB["ties"],
        tie_seed=SB["tie_seed"],
        images_per_class=SB["cue_conflict"]["images_per_class"] if ATLAS_STIMULI["source"] == "cue_conflict" else None,
        weights_pins=lambda wildcards: weights_pins(f"atlas:{wildcards.entry}"),
    log:
        f"{LOGS}/shape_bias/atlas_{{entry}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/atlas_eval_{{entry}}.tsv"
    threads: SB["threads"]
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_atlas.py"


rule atlas_report:
    input:
        raw=expand(ATLAS_RAW, entry=list(ATLAS), tag=SB_TAGS),
        records=expand(ATLAS_RECORD, entry=list(ATLAS)),
        ties=expand(ATLAS_TIES, entry=list(ATLAS)),
        humans=[downloaded(human_folder())] if SB["humans"]["source"] == "download" else [],
    output:
        csv=report(f"{RESULTS}/tables/shape_bias_atlas.csv", caption="../report/shape_bias_atlas.rst", category="Atlas"),
        md=f"{RESULTS}/tables/shape_bias_atlas.md",
        png=report(f"{RESULTS}/figures/shape_bias_atlas.png", caption="../report/shape_bias_atlas_figure.rst", category="Atlas"),
        pdf=f"{RESULTS}/figures/shape_bias_atlas.pdf",
    params:
        humans=human_folder() if ATLAS_STIMULI["source"] == "cue_conflict" else None,
        experiment=EXP,
        bootstrap_samples=SB["bootstrap_samples"],
        chance_alpha=SB["chance_alpha"],
    log:
        f"{LOGS}/shape_bias/atlas_report.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_atlas_report.py"
