# Figures 4 and 5: Top-K at inference on the cue-conflict benchmark, swept over K and mode.

SB = config["shape_bias"]
SB_RAW = f"{RESULTS}/shape_bias/raw/cue-conflict_{{model}}-{{tag}}_session-1.csv"
SB_TIES = f"{RESULTS}/shape_bias/ties/{{model}}.csv"
SB_TIE_SPREAD = f"{RESULTS}/shape_bias/tie_spread/{{model}}.csv"


rule cue_conflict_images:
    input:
        stop_if_unpinned("shape_bias.cue_conflict.sha256", outputs=(f"{DATA}/cue-conflict",)),
    output:
        directory(f"{DATA}/cue-conflict"),
    params:
        url=SB["cue_conflict"]["url"],
        sha256=SB["cue_conflict"]["sha256"],
        require_pinned=REQUIRE_PINNED,
    log:
        f"{LOGS}/shape_bias/cue_conflict_images.log",
    threads: 1
    conda:
        "../environment.yml"
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
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fetch_human_decisions.py"


# The paper's transformers (ViT-L, CLIP) as reference lines of Figure 4: model-vs-human raw files.
rule reference_decisions:
    input:
        stop_if_unpinned(*(f"shape_bias.references.files.{label}.sha256" for label in SB["references"]["files"]),
                         outputs=(f"{DATA}/references",)),
    output:
        directory(f"{DATA}/references"),
    params:
        base_url=SB["references"]["base_url"],
        files=SB["references"]["files"],
        require_pinned=REQUIRE_PINNED,
    log:
        f"{LOGS}/shape_bias/reference_decisions.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/fetch_reference_decisions.py"


# One job per model: the model is loaded and the stimuli decoded once, then every setting of
# the sweep writes its own raw CSV (the same files as one job per setting would).
rule cue_conflict_eval:
    input:
        unpack(cue_conflict_inputs),
    output:
        raw=expand(SB_RAW, tag=SB_TAGS, allow_missing=True),
        ties=SB_TIES,
    params:
        tags=SB_TAGS,
        weights=imagenet_only(SB["weights"]),
        image_size=imagenet_only(SB["image_size"]),
        batch_size=SB["batch_size"],
        ties=SB["ties"],
        tie_seed=SB["tie_seed"],
        images_per_class=lambda wildcards: None if wildcards.model.startswith(TRAINED_PREFIX) else SB["cue_conflict"]["images_per_class"],
        stimuli_sha256=imagenet_only(SB["cue_conflict"]["sha256"] if SB["cue_conflict"]["source"] == "download" else None),
        weights_pins=lambda wildcards: weights_pins(f"shape_bias:{wildcards.model}"),
    log:
        f"{LOGS}/shape_bias/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cue_conflict_eval_{{model}}.tsv"
    threads: SB["threads"]
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_cue_conflict.py"


# The same Top-K settings under shape_bias.tie_spread_draws random tie orders (exactly K, ties drawn
# at random): how far tie order alone moves each exactly-K shape bias.
rule cue_conflict_tie_spread:
    input:
        unpack(cue_conflict_inputs),
    output:
        SB_TIE_SPREAD,
    params:
        tags=SB_TAGS,
        draws=SB["tie_spread_draws"],
        weights=imagenet_only(SB["weights"]),
        image_size=imagenet_only(SB["image_size"]),
        batch_size=SB["batch_size"],
        images_per_class=lambda wildcards: None if wildcards.model.startswith(TRAINED_PREFIX) else SB["cue_conflict"]["images_per_class"],
        stimuli_sha256=imagenet_only(SB["cue_conflict"]["sha256"] if SB["cue_conflict"]["source"] == "download" else None),
        weights_pins=lambda wildcards: weights_pins(f"shape_bias:{wildcards.model}"),
    log:
        f"{LOGS}/shape_bias/tie_spread_{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cue_conflict_tie_spread_{{model}}.tsv"
    threads: SB["threads"]
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/eval_tie_spread.py"


rule shape_bias_report:
    input:
        raw=expand(SB_RAW, model=SB["models"], tag=SB_TAGS),
        ties=expand(SB_TIES, model=SB["models"]),
        tie_spread=expand(SB_TIE_SPREAD, model=SB["models"]) if SB["tie_spread_draws"] else [],
        humans=[downloaded(human_folder())] if SB["humans"]["source"] == "download" else [],
        references=[downloaded(reference_folder())] if SB["references"]["source"] == "download" else [],
    output:
        csv=report(f"{RESULTS}/tables/shape_bias.csv", caption="../report/shape_bias_table.rst", category="Figures 4-5"),
        per_class_csv=f"{RESULTS}/tables/shape_bias_per_class.csv",
        md=f"{RESULTS}/tables/shape_bias.md",
        overall_png=report(f"{RESULTS}/figures/shape_bias_overall.png", caption="../report/shape_bias_overall.rst", category="Figures 4-5"),
        overall_pdf=f"{RESULTS}/figures/shape_bias_overall.pdf",
        per_class_png=report(f"{RESULTS}/figures/shape_bias_per_class.png", caption="../report/shape_bias_per_class.rst", category="Figures 4-5"),
        per_class_pdf=f"{RESULTS}/figures/shape_bias_per_class.pdf",
        sweep_csv=report(f"{RESULTS}/tables/shape_bias_sweep.csv", caption="../report/shape_bias_sweep.rst", category="Figures 4-5"),
        vs_k_png=report(f"{RESULTS}/figures/shape_bias_vs_k.png", caption="../report/shape_bias_vs_k.rst", category="Figures 4-5"),
        vs_k_pdf=f"{RESULTS}/figures/shape_bias_vs_k.pdf",
    params:
        humans=human_folder(),
        references=reference_files(),
        reference_pins={label: entry["sha256"] for label, entry in SB["references"]["files"].items()} if SB["references"]["source"] == "download" else None,
        experiment=EXP,
        bootstrap_samples=SB["bootstrap_samples"],
        chance_alpha=SB["chance_alpha"],
        figure5_k=SB["figure5_k"],
    log:
        f"{LOGS}/shape_bias/report.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/make_shape_bias_report.py"
