# topkshape workflow: reproduces Li et al. (NeurIPS 2023) from data to tables and figures.
# This file only sets up (configuration, validation, wildcard constraints, shared paths) and
# includes one rules/<stage>.smk per stage; the logic lives in src/topkshape.
import sys

from topkshape.config import validate_config
from topkshape.errors import ConfigError
from topkshape.shape_bias.tags import sweep_tags


# The embedded default, unless --configfile names another (a whole config, not a patch:
# Snakemake would otherwise merge their dicts, e.g. the class lists of both).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


try:
    config.update(validate_config(config))
except ConfigError as err:
    sys.exit(f"topkshape: {err}")

EXP = config["experiment"]
DATA = f"data/{EXP}"
RESULTS = f"results/{EXP}"
LOGS = f"logs/{EXP}"
SUBSETS = list(config["data"]["subsets"])
FEWSHOT = list(config["data"]["fewshot"])
VARIANTS = ["baseline", "topk", "topk_mean_rpl"]
SEEDS = config["train"]["seeds"]
SB_TAGS = sweep_tags(config["shape_bias"]["fractions"], config["shape_bias"]["modes"])


def one_of(names):
    """A wildcard constraint matching exactly the configured names."""
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    subset=one_of(SUBSETS),
    fewshot=one_of(FEWSHOT),
    variant=one_of(VARIANTS),
    seed=r"\d+",
    model=one_of(config["shape_bias"]["models"]),
    tag=one_of(SB_TAGS),
    gan_variant="fastgan|fastgan_topk",
    gan_seed=r"\d+",


DATA_TARGETS = (
    expand(f"{DATA}/{{subset}}", subset=SUBSETS)
    + expand(f"{DATA}/{{subset}}-stylized", subset=SUBSETS)
    + expand(f"{DATA}/fewshot/{{fewshot}}", fewshot=FEWSHOT)
)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/shape_bias.smk"
include: "rules/texture.smk"
include: "rules/gan.smk"


rule all:
    input:
        "results/environment.txt",
        DATA_TARGETS,
        rules.table1.output,
        rules.shape_bias_report.output,
        rules.texture_synthesis.output,
        rules.mask_dynamics.output,
        rules.gan_mask_dynamics.output if FEWSHOT else [],
        rules.table2.output,
    default_target: True
