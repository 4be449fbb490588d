# topkshape workflow: reproduces Li et al. (NeurIPS 2023) from data to tables and figures.
# This file only sets up (configuration, validation, wildcard constraints, shared paths) and
# includes one rules/<stage>.smk per stage; the logic lives in src/topkshape.
import os
import re
import sys

import yaml
from snakemake.utils import min_version

from topkshape.config import gan_sets, validate_config
from topkshape.errors import ConfigError
from topkshape.plan_checks import workflow_resource_problems
from topkshape.shape_bias.tags import sweep_tags
from topkshape.sigterm import install_graceful_sigterm

# report(), report zips and the profiles need Snakemake 8+; only 9.x is tested (the lock pins 9.27.1).
min_version("9.0")

# `snakemake --report report.zip` after a run: this text opens the report (captions in report/).
report: "report/workflow.rst"


# The embedded default, unless --configfile names another (a whole config, not a patch:
# Snakemake would otherwise merge their dicts, e.g. the class lists of both).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


if workflow.overwrite_configfiles and "experiment" not in config:
    # Config files of overrides only (no experiment): layered over the embedded default, as
    # `--configfile config.yaml overrides.yaml` would layer them.
    from snakemake.utils import update_config

    with open(os.path.join(workflow.basedir, "config.yaml")) as handle:
        _layered = yaml.safe_load(handle)
    update_config(_layered, config)
    config.clear()
    config.update(_layered)
    print(f"topkshape: {' '.join(os.path.relpath(f) for f in workflow.overwrite_configfiles)} name no experiment: layered over config.yaml",
          file=sys.stderr)

try:
    checked = validate_config(config)
except ConfigError as err:
    sys.exit(f"topkshape: {err}")
# Dotted keys (e.g. from the Python API) arrive nested: drop the flat originals.
config.clear()
config.update(checked)

EXP = config["experiment"]

# A partial `dvc pull` must not turn into a silent retraining of everything, and a whole one
# restores the times of what it pulled before anything is planned (see topkshape.sharing).
if not os.environ.get("TOPKSHAPE_REBUILD_MISSING"):
    from topkshape.sharing import missing_pulls, missing_pulls_message, sync_pulled_metadata

    _missing = missing_pulls(".")
    if _missing:
        sys.exit(f"topkshape: {missing_pulls_message(_missing)}")
    _synced = sync_pulled_metadata(".", EXP)
    if _synced:
        print(f"topkshape: {_synced} results pulled by DVC got back the times their jobs ended (results/{EXP}/snakemake-metadata)", file=sys.stderr)

DATA = f"data/{EXP}"
RESULTS = f"results/{EXP}"
LOGS = f"logs/{EXP}"
SUBSETS = list(config["data"]["subsets"])
FEWSHOT = list(config["data"]["fewshot"])
# The sets the GAN stage trains on (gan.fewshot_sets; null: all of FEWSHOT, each extracted either way).
GAN_SETS = gan_sets(config)
VARIANTS = ["baseline", "topk", "topk_mean_rpl"]
SEEDS = config["train"]["seeds"]
SB_TAGS = sweep_tags(config["shape_bias"]["fractions"], config["shape_bias"]["modes"])
# Project files are found beside this Snakefile, whatever the working directory.
# Relative to the working directory, so that a clone elsewhere records the same input paths.
PAPER_REFERENCE = os.path.relpath(os.path.join(workflow.basedir, "config", "paper_reference.yaml"))
# Its values are also a param of the table rules, so editing them reruns the tables (the
# workflow profile's rerun triggers do not look at timestamps).
with open(PAPER_REFERENCE) as handle:
    PAPER_VALUES = yaml.safe_load(handle)
# The classes the paper's Table 1 values belong to (config/paper.yaml's subsets): a subset run on other
# classes gets no paper values beside it.
with open(os.path.join(workflow.basedir, "config", "paper.yaml")) as handle:
    PAPER_SUBSETS = yaml.safe_load(handle)["data"]["subsets"]


# A constraint matching exactly the configured names. A lambda, not a def: the linter asks for no
# functions beside rules in a Snakefile, and the constraints below need it before the includes.
one_of = lambda names: "|".join(names) if names else "(?!)"  # noqa: E731


wildcard_constraints:
    subset=one_of(SUBSETS),
    fewshot=one_of(FEWSHOT),
    variant=one_of(VARIANTS),
    seed=r"\d+",
    model=one_of(config["shape_bias"]["models"]),
    entry=one_of([entry["name"] for entry in config["shape_bias"]["atlas"]]),
    tag=one_of(SB_TAGS),
    gan_variant="fastgan|fastgan_topk",
    gan_seed=r"\d+",
    ood=one_of(config["robustness"]["ood"]["datasets"]),


DATA_TARGETS = (
    expand(f"{DATA}/{{subset}}", subset=SUBSETS)
    + expand(f"{DATA}/{{subset}}-stylized", subset=SUBSETS)
    + expand(f"{DATA}/fewshot/{{fewshot}}", fewshot=FEWSHOT)
)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/weights.smk"
include: "rules/train.smk"
include: "rules/shape_bias.smk"
include: "rules/atlas.smk"
include: "rules/texture.smk"
include: "rules/gan.smk"
include: "rules/robustness.smk"
include: "rules/ood.smk"


# Tables, reports, figures, downloads and the environment record run where Snakemake runs, never
# as cluster jobs: they take seconds, or need the network that compute nodes may lack.
localrules:
    all,
    data,
    train_all,
    gan_all,
    environment,
    table1,
    table1b,
    shape_bias_vs_robustness,
    table2,
    shape_bias_report,
    atlas_stimuli,
    atlas_report,
    ood_dataset,
    ood_humans,
    ood_report,
    mask_dynamics,
    gan_mask_dynamics,
    builtin_styles,
    adain_weights,
    pretrained_weights,
    cue_conflict_images,
    human_decisions,
    reference_decisions,
    paper_data,


rule all:
    input:
        f"{RESULTS}/environment.txt",
        DATA_TARGETS,
        rules.table1.output,
        rules.table1b.output if config["robustness"]["corruptions"]["enabled"] else [],
        rules.shape_bias_vs_robustness.output if config["robustness"]["corruptions"]["enabled"] else [],
        rules.shape_bias_report.output,
        rules.atlas_report.output if config["shape_bias"]["atlas"] else [],
        rules.ood_report.output if OOD_NAMES else [],
        rules.texture_synthesis.output,
        rules.mask_dynamics.output,
        rules.gan_mask_dynamics.output if GAN_SETS else [],
        rules.table2.output,
    default_target: True


# Snakemake's own SIGTERM handler can deadlock (topkshape.sigterm): a signal to the process group
# (a scheduler's time limit, `kill`) must stop the run, whose jobs then resume from their checkpoints.
onstart:
    install_graceful_sigterm(getattr(workflow, "scheduler", None))


# Resource settings that name no rule, or an empty SLURM partition/account, stop the plan (one line).
for _problem in workflow_resource_problems(workflow):
    sys.exit(f"topkshape: {_problem}")
