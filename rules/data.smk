# Data stage: classification subsets, their stylized / cue-conflict evaluation sets, and the
# few-shot synthesis sets. The source (generated shapes or ImageNet) and the stylization
# (texture swap or AdaIN) are config values; every branch writes the same layout.

ADAIN = config["stylize"]["adain"]
USES_ADAIN = config["stylize"]["method"] == "adain"
BUILTIN_STYLES = config["stylize"]["styles"] == "builtin"


def adain_weight_paths():
    """Configured weight files, or the ones the download rule fetches."""
    return (
        ADAIN["encoder_path"] or "resources/adain/vgg_normalised.pth",
        ADAIN["decoder_path"] or "resources/adain/decoder.pth",
    )


def stylized_inputs(wildcards):
    inputs = {"subset": f"{DATA}/{wildcards.subset}"}
    if USES_ADAIN:
        inputs["encoder"], inputs["decoder"] = adain_weight_paths()
        if BUILTIN_STYLES:
            inputs["styles"] = f"{DATA}/styles"
    return inputs


rule subset:
    output:
        directory(f"{DATA}/{{subset}}"),
    log:
        f"{LOGS}/data/subset_{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/subset_{{subset}}.tsv"
    threads: 2
    script:
        "../workflow_scripts/make_subset.py"


rule fewshot:
    output:
        directory(f"{DATA}/fewshot/{{fewshot}}"),
    log:
        f"{LOGS}/data/fewshot_{{fewshot}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fewshot_{{fewshot}}.tsv"
    threads: 2
    script:
        "../workflow_scripts/make_fewshot.py"


rule builtin_styles:
    output:
        directory(f"{DATA}/styles"),
    log:
        f"{LOGS}/data/builtin_styles.log",
    threads: 1
    script:
        "../workflow_scripts/make_builtin_styles.py"


rule adain_weights:
    output:
        encoder="resources/adain/vgg_normalised.pth",
        decoder="resources/adain/decoder.pth",
    log:
        "logs/adain_weights.log",
    threads: 1
    script:
        "../workflow_scripts/download_adain_weights.py"


rule stylized:
    input:
        unpack(stylized_inputs),
    output:
        directory(f"{DATA}/{{subset}}-stylized"),
    params:
        style_dir=(f"{DATA}/styles" if BUILTIN_STYLES else config["stylize"]["styles"]) if USES_ADAIN else None,
        encoder=adain_weight_paths()[0] if USES_ADAIN else None,
        decoder=adain_weight_paths()[1] if USES_ADAIN else None,
    log:
        f"{LOGS}/data/stylized_{{subset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stylized_{{subset}}.tsv"
    threads: 2
    resources:
        gpu=1 if USES_ADAIN else 0,
    script:
        "../workflow_scripts/make_stylized.py"


rule data:
    input:
        DATA_TARGETS,
