# Input and param functions of the stage files (rules/<stage>.smk), kept apart from the rules as
# Snakemake's linter asks. They read the constants (DATA_CFG, SB, TX, GAN, ...) that each stage file
# sets at its top: all rule files share one namespace, and a function runs only when its rule is
# parsed or its jobs are planned, after those constants exist.
#
# Lint left: "Specify a conda environment or container for each rule". Every rule is to name
# "../environment.yml" as its `conda:` file, but Snakemake reads that file into each finished job's
# metadata even without --use-conda, and the tests' workflow copies do not carry it yet
# (tests/workflow_support.py WORKFLOW_FILES); tests/test_report.py drops the exception with it.
from topkshape.paper_data import fewshot_part
from topkshape.shape_bias.tags import TRAINED_PREFIX


# Downloads (rules/data.smk, shape_bias.smk, weights.smk).

def stop_if_unpinned(*keys, outputs=()):
    """An input function of a download rule: when ``downloads.require_pinned`` would refuse the
    download (a key of ``keys`` unpinned) and its output is not there yet, the plan stops in one
    line (``snakemake -n`` included) instead of the job failing hours into a run."""
    def check(wildcards):
        targets = [path.format(**wildcards) for path in outputs]
        if targets and all(os.path.exists(path) for path in targets):
            return []
        for key in keys:
            key = key.format(**wildcards)
            if key in UNPINNED:
                sys.exit(f"topkshape: {UNPINNED[key]}")
        return []
    return check


# Data stage (rules/data.smk).

def subset_options(subset):
    """The options section of the data source (only its own values are a job's params); of the
    home-texture overrides only the subset's own classes', so editing another subset's reruns nothing here."""
    if DATA_CFG["source"] != "synthetic":
        return DATA_CFG["imagenet"]
    options = {key: value for key, value in DATA_CFG["synthetic"].items() if key != "home_textures"}
    homes = own_home_textures(DATA_CFG["subsets"][subset])
    return {**options, "home_textures": homes} if homes else options


def fewshot_param(value):
    """A param of a few-shot job that builds its set; None for a set copied from the paper's data."""
    return lambda wildcards: None if wildcards.fewshot in PAPER_FEWSHOT else value(wildcards)


def fewshot_options(cls):
    """What building a few-shot set of class ``cls`` reads: not the subsets' counts or texture correlation."""
    if DATA_CFG["source"] == "synthetic":
        homes = own_home_textures([cls])
        return {**{key: DATA_CFG["synthetic"][key] for key in ("image_size", "seed")}, **({"home_textures": homes} if homes else {})}
    return {key: value for key, value in DATA_CFG["imagenet"].items() if key != "max_train_per_class"}


def style_folder():
    """The AdaIN style images: generated, the paper's three, or a user folder."""
    styles = STYLIZE["styles"]
    return {"builtin": f"{DATA}/styles", "paper_data": f"{PAPER_DATA}/styles"}.get(styles, styles)


def adain_weight_paths():
    """Configured weight files, or the ones the download rule fetches."""
    return (
        ADAIN["encoder_path"] or f"{DOWNLOADS_DIR}/adain/vgg_normalised.pth",
        ADAIN["decoder_path"] or f"{DOWNLOADS_DIR}/adain/decoder.pth",
    )


def downloaded(path):
    """A pinned download as an input: its content is fixed by its pin (a param of the consumer), so its
    time means nothing, and a clone that pulled the results (not the downloads) recomputes nothing."""
    return ancient(path)


def adain_inputs():
    """The AdaIN weights: downloaded (pinned, see adain_pins) or a user's files (their times count)."""
    encoder, decoder = adain_weight_paths()
    return (downloaded(encoder) if not ADAIN["encoder_path"] else encoder,
            downloaded(decoder) if not ADAIN["decoder_path"] else decoder)


def adain_pins():
    """The pins of downloaded AdaIN weights: a changed pin reruns the stylized sets."""
    return {part: ADAIN[f"{part}_sha256"] for part in ("encoder", "decoder") if not ADAIN[f"{part}_path"]}


def stylized_inputs(wildcards):
    inputs = {"subset": f"{DATA}/{wildcards.subset}"}
    if USES_ADAIN:
        inputs["encoder"], inputs["decoder"] = adain_inputs()
        styles = style_folder()  # a user folder too: replacing it reruns the stylized sets
        inputs["styles"] = downloaded(styles) if STYLIZE["styles"] == "paper_data" else styles
    return inputs


def fewshot_inputs(wildcards):
    """A few-shot set taken from the paper's published data reads its verified folder."""
    paper_set = PAPER_FEWSHOT.get(wildcards.fewshot)
    return {"paper": downloaded(f"{PAPER_DATA}/{fewshot_part(paper_set)}")} if paper_set else {}


def stylized_home_textures(subset):
    """The home-texture overrides a texture-swap cue-conflict set of ``subset`` wears (None: the built-in
    pairing, or AdaIN): only its own classes', so another subset's edit reruns nothing here."""
    if USES_ADAIN:
        return None
    return own_home_textures(DATA_CFG["subsets"][subset]) or None


def own_home_textures(classes):
    """The ``data.synthetic.home_textures`` entries of these classes (a job's param holds only these)."""
    overrides = DATA_CFG["synthetic"]["home_textures"]
    return {cls: overrides[cls] for cls in classes if cls in overrides}


def stylized_options():
    """The stylize values a stylized job of this method uses (AdaIN weights and styles are inputs)."""
    if not USES_ADAIN:
        return {key: STYLIZE[key] for key in ("method", "per_class", "seed")}
    return {key: STYLIZE[key] for key in ("method", "alpha", "image_size", "style_size", "crop", "seed")}


# Figures 4-5 (rules/shape_bias.smk).

def cue_conflict_folder():
    """The stimuli: a user folder, the paper's published files (rule paper_data), or the archive's."""
    opts = SB["cue_conflict"]
    return {"folder": opts["path"], "paper_data": f"{PAPER_DATA}/cue-conflict"}.get(opts["source"], f"{DATA}/cue-conflict")


def human_folder():
    opts = SB["humans"]
    return {"none": None, "folder": opts["path"], "download": f"{DATA}/humans"}[opts["source"]]


def reference_folder():
    opts = SB["references"]
    return {"none": None, "folder": opts["path"], "download": f"{DATA}/references"}[opts["source"]]


def reference_files():
    """Figure label -> raw decision file of each reference decision maker (empty when none)."""
    folder = reference_folder()
    if folder is None:
        return {}
    return {label: f"{folder}/{entry['name']}" for label, entry in SB["references"]["files"].items()}


def cue_conflict_inputs(wildcards):
    """Trained models read their own subset's cue-conflict set; ImageNet models the stimuli."""
    if wildcards.model.startswith(TRAINED_PREFIX):
        subset = wildcards.model[len(TRAINED_PREFIX):]
        return {
            "images": f"{DATA}/{subset}-stylized",
            "checkpoint": f"{RESULTS}/train/{subset}/baseline/seed{SEEDS[0]}/model.pt",
        }
    folder = cue_conflict_folder()
    return {"images": folder if SB["cue_conflict"]["source"] == "folder" else downloaded(folder),
            **weights_input("weights", f"shape_bias:{wildcards.model}")}


def imagenet_only(value):
    """A param that only torchvision models use: a trained model's job does not depend on it."""
    return lambda wildcards: None if wildcards.model.startswith(TRAINED_PREFIX) else value


# The shape-bias atlas (rules/atlas.smk).

def atlas_images():
    """The stimuli the atlas's ImageNet classifiers see: the cue-conflict stimuli, or generated ones."""
    if ATLAS_STIMULI["source"] == "generated":
        return f"{DATA}/atlas-stimuli"
    folder = cue_conflict_folder()
    return folder if SB["cue_conflict"]["source"] == "folder" else downloaded(folder)


def atlas_inputs(wildcards):
    return {"images": atlas_images(), **entry_weights(wildcards.entry)}


def entry_weights(name):
    """An atlas entry's weights: the downloaded file of named weights, or the user's weights file."""
    files = weights_input("weights", f"atlas:{name}")
    if pretrained.is_weights_file(ATLAS[name]["weights"]):
        files["weights_file"] = ATLAS[name]["weights"]
    return files


# Model-vs-human's OOD benchmark (rules/ood.smk).

def ood_eval_inputs(wildcards):
    return {"dataset": downloaded(f"{OOD_DIR}/{wildcards.ood}"), **entry_weights(wildcards.entry)}


# Pretrained weights (rules/weights.smk).

def weights_input(name, role):
    """``{name: <downloads.folder>/weights/<file>}`` when this configuration downloads ``role``'s weights, else empty."""
    return {name: downloaded(f"{WEIGHTS_DIR}/{WEIGHT_FILES[role]}")} if role in WEIGHT_FILES else {}


def weights_pins(*roles):
    """What pins each downloaded weights file of ``roles`` (a param: a changed pin reruns the job)."""
    return {WEIGHT_FILES[role]: pretrained.pinned_hash(WEIGHT_FILES[role], DOWNLOADS) or pretrained.name_prefix(WEIGHT_FILES[role])
            for role in roles if role in WEIGHT_FILES}


# Figures 2, 3, 8 (rules/texture.smk).

def texture_inputs(wildcards):
    inputs = {"targets": f"{DATA}/fewshot/{TX['targets']}", **weights_input("weights", "texture")}
    if TX_TRAINED:
        inputs["checkpoint"] = f"{RESULTS}/train/{TX['feature_net'][len('trained_'):]}/baseline/seed{SEEDS[0]}/model.pt"
    return inputs


# Table 2 (rules/gan.smk).

def gan_topk_fraction(wildcards):
    """This job's Top-K fraction: the set's value for the Top-K variant, None for the baseline."""
    return GAN["topk_fraction"][wildcards.fewshot] if wildcards.gan_variant == "fastgan_topk" else None


def gan_train_inputs(wildcards):
    """The few-shot set; with FID during training (the paper's rollback) also the classifier extractor."""
    inputs = {"images": f"{DATA}/fewshot/{wildcards.fewshot}", **weights_input("lpips", "lpips")}
    if GAN_FID_DURING_TRAINING:
        inputs.update(weights_input("inception", "inception"))
    if GAN_FID_DURING_TRAINING and GAN_CLASSIFIER:
        inputs["classifier"] = f"{RESULTS}/train/{GAN['eval']['classifier_subset']}/baseline/seed{SEEDS[0]}/model.pt"
    return inputs


def gan_eval_inputs(wildcards):
    inputs = {"generator": f"{GAN_RUN.format(**wildcards)}/generator_ema.pt", "initial": f"{GAN_RUN.format(**wildcards)}/generator_init.pt", "real": f"{DATA}/fewshot/{wildcards.fewshot}",
              **weights_input("inception", "inception")}
    if GAN_CLASSIFIER:
        inputs["classifier"] = f"{RESULTS}/train/{GAN['eval']['classifier_subset']}/baseline/seed{SEEDS[0]}/model.pt"
    return inputs


# The provenance rule lives in its own file, so that this one holds functions only.
include: "provenance.smk"
