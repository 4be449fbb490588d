# Figures 2, 3, 8: what Top-K neurons encode (texture synthesis, reconstruction, mask dynamics).

TX = config["texture"]
TX_TRAINED = TX["feature_net"].startswith("trained_")
MASK_SUBSET = TX["mask_dynamics"]["subset"] or SUBSETS[0]
GAN_MASK_SET = GAN_SETS[0] if GAN_SETS else "none"


rule texture_synthesis:
    # The longest jobs start first (Snakemake's priority): the run then ends on short jobs, not on a
    # lone long one with a core idle.
    priority: 10
    input:
        unpack(texture_inputs),
    output:
        csv=report(f"{RESULTS}/tables/texture_synthesis.csv", caption="../report/texture_synthesis_table.rst", category="Figures 2-3, 8"),
        synthesis_png=report(f"{RESULTS}/figures/texture_synthesis.png", caption="../report/texture_synthesis.rst", category="Figures 2-3, 8"),
        synthesis_pdf=f"{RESULTS}/figures/texture_synthesis.pdf",
        reconstruction_png=report(f"{RESULTS}/figures/reconstruction.png", caption="../report/reconstruction.rst", category="Figures 2-3, 8"),
        reconstruction_pdf=f"{RESULTS}/figures/reconstruction.pdf",
    params:
        # The synthesis settings; mask_dynamics is the trainers' business and must not rerun this.
        texture={key: value for key, value in TX.items() if key != "mask_dynamics"},
        weights_pins=weights_pins("texture"),
    log:
        f"{LOGS}/texture/texture_synthesis.log",
    benchmark:
        f"{RESULTS}/benchmarks/texture_synthesis.tsv"
    # One thread: the job needs no trained model, so it runs beside the training jobs (about 60 CPU
    # seconds for the default); torch's intra-op threads on a busy CPU mostly spin.
    threads: 1
    resources:
        gpu=1,
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/texture_synthesis.py"


rule mask_dynamics:
    input:
        # masks.pt is written beside the Top-K run's summary by the train rule.
        summary=f"{RESULTS}/train/{MASK_SUBSET}/topk/seed{SEEDS[0]}/summary.json",
    output:
        png=report(f"{RESULTS}/figures/topk_mask_dynamics.png", caption="../report/topk_mask_dynamics.rst", category="Figures 2-3, 8"),
        pdf=f"{RESULTS}/figures/topk_mask_dynamics.pdf",
    params:
        title=f"Top-K masks during training ({MASK_SUBSET}, epochs)",
    log:
        f"{LOGS}/texture/mask_dynamics.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/mask_dynamics.py"


rule gan_mask_dynamics:
    input:
        # masks.pt is written beside the Top-K GAN run's generator by the gan_train rule.
        generator=f"{RESULTS}/gan/{GAN_MASK_SET}/fastgan_topk/seed{config['gan']['seeds'][0]}/generator_ema.pt",
    output:
        png=report(f"{RESULTS}/figures/gan_topk_mask_dynamics.png", caption="../report/gan_topk_mask_dynamics.rst", category="Figures 2-3, 8"),
        pdf=f"{RESULTS}/figures/gan_topk_mask_dynamics.pdf",
    params:
        title=f"FastGAN Top-K masks during training ({GAN_MASK_SET}, iterations)",
    log:
        f"{LOGS}/texture/gan_mask_dynamics.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/gan_mask_dynamics.py"
