# topkshape workflow: reproduces Li et al. (NeurIPS 2023) from data to tables and figures.
# The stages live in rules/<stage>.smk; the logic they call lives in src/topkshape.
from snakemake.utils import validate

configfile: "config.yaml"

validate(config, "config/schema.yaml")

include: "rules/common.smk"


rule all:
    input:
        "results/environment.txt",
    default_target: True
