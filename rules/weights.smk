# Pretrained weights (torchvision's AlexNet/VGG16/VGG-19, LPIPS's VGG-16 backbone, torch-fidelity's
# Inception): each file is downloaded once, on the submitting host, into resources/weights/ and
# read by the jobs from there (topkshape.pretrained), so compute nodes need no internet and a
# mirror or a full SHA-256 pin is a config value (downloads.torchvision_url, inception_url, sha256).
from topkshape import pretrained

DOWNLOADS = config["downloads"]
WEIGHT_FILES = pretrained.workflow_weight_files(config)
WEIGHTS_DIR = f"{DOWNLOADS_DIR}/weights"


rule pretrained_weights:
    input:
        stop_if_unpinned("downloads.sha256.{weights_file}", outputs=(f"{WEIGHTS_DIR}/{{weights_file}}",)),
    output:
        f"{WEIGHTS_DIR}/{{weights_file}}",
    params:
        url=lambda wildcards: pretrained.weights_url(wildcards.weights_file, DOWNLOADS),
        sha256=lambda wildcards: pretrained.pinned_hash(wildcards.weights_file, DOWNLOADS),
        require_pinned=REQUIRE_PINNED,
    wildcard_constraints:
        weights_file=one_of(sorted({re.escape(name) for name in WEIGHT_FILES.values()})),
    log:
        "logs/weights/{weights_file}.log",
    threads: 1
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/download_weights.py"
