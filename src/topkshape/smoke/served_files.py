"""What the smoke run's 127.0.0.1 server hands out, in the layout each configured URL expects.

Real files where they are public data (the paper's published files, model-vs-human's raw
decisions: linked from the folders given); files of the real format holding seeded random
weights for the pretrained networks (torchvision's AlexNet, VGG16 and VGG-19, pytorch-AdaIN's
encoder and decoder, torch-fidelity's Inception), under their real file names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision

from topkshape.atomic import atomic_file
from topkshape.download import sha256_of
from topkshape.errors import InputDataError
from topkshape.paper_data import PART_FOLDERS
from topkshape.pretrained import inception_file, torchvision_file

# Where each folder of the paper's repository lies in a local copy (../shared/paper-data's layout).
PAPER_DATA_LAYOUT = {
    PART_FOLDERS["styles"]: "style_target",
    "few-shot-img-syn/data": "fewshot",
    PART_FOLDERS["cue-conflict"]: "cue-conflict",
}
TORCHVISION_ARCHS = ("alexnet", "vgg16", "vgg19", "resnet50")
ADAIN_FILES = ("vgg_normalised.pth", "decoder.pth")


def _link(target: Path, link: Path) -> None:
    if not target.is_dir():
        raise InputDataError(f"folder to serve not found: {target}")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=True)


def _random_torchvision(arch: str, path: Path, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = torchvision.models.get_model(arch, weights=None).state_dict()
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def write_served_tree(serve: str | Path, paper_data: str | Path, human_raw_data: str | Path, *, seed: int = 0,
                      ood_datasets: tuple[str, ...] | list[str] = ()) -> dict[str, Path]:
    """Lay out ``serve/`` and return each served file that is pinned (route -> path); existing ones are kept.

    ``paper_data``: a local copy of the paper repository's files (``style_target/``, ``fewshot/``,
    ``cue-conflict/``). ``human_raw_data``: model-vs-human's ``raw-data/`` (``<dataset>/*.csv``): the
    cue-conflict decisions, and for each of ``ood_datasets`` the humans' files and a stand-in archive
    (:mod:`topkshape.smoke.ood_stand_ins`).
    """
    from topkshape.smoke.ood_stand_ins import write_stand_in_archive

    from topkshape.gan.fidelity import save_random_inception_weights
    from topkshape.stylize.adain import save_random_adain_weights

    serve = Path(serve)
    for repo_folder, local in PAPER_DATA_LAYOUT.items():
        _link(Path(paper_data) / local, serve / "paper" / repo_folder)
    _link(Path(human_raw_data) / "cue-conflict", serve / "model-vs-human" / "cue-conflict")
    files: dict[str, Path] = {}
    for dataset in ood_datasets:
        _link(Path(human_raw_data) / dataset, serve / "model-vs-human" / "raw-data" / dataset)
        archive = serve / "ood" / f"{dataset}.tar.gz"
        if not archive.is_file():
            write_stand_in_archive(dataset, Path(human_raw_data) / dataset, archive, seed=seed)
        files[f"ood/{archive.name}"] = archive
    for index, arch in enumerate(TORCHVISION_ARCHS):
        path = serve / "torchvision" / torchvision_file(arch, "DEFAULT")
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            _random_torchvision(arch, path, seed + index)
        files[f"torchvision/{path.name}"] = path
    encoder, decoder = (serve / "adain" / name for name in ADAIN_FILES)
    if not (encoder.is_file() and decoder.is_file()):
        encoder.parent.mkdir(parents=True, exist_ok=True)
        save_random_adain_weights(encoder, decoder, seed=seed)
    files["adain/" + encoder.name], files["adain/" + decoder.name] = encoder, decoder
    inception = serve / "fidelity" / inception_file()
    if not inception.is_file():
        inception.parent.mkdir(parents=True, exist_ok=True)
        save_random_inception_weights(inception, seed=seed)
    files[f"fidelity/{inception.name}"] = inception
    return files


def downloads_overlay(base_url: str, files: dict[str, Path], imagenet_root: str | os.PathLike, folder: str | os.PathLike) -> dict[str, Any]:
    """The config layer that points the paper config's downloads at ``base_url`` and pins what it serves.

    ``folder``: where the smoke run's downloads go, apart from a real run's ``resources/``
    (random weights must never stand in for real ones).
    """
    pins = {route: sha256_of(path) for route, path in files.items()}
    return {
        "imagenet_root": str(imagenet_root),
        "paper_data": {"base_url": f"{base_url}/paper"},
        "downloads": {
            "folder": str(folder),
            "torchvision_url": f"{base_url}/torchvision",
            "inception_url": f"{base_url}/fidelity/{inception_file()}",
            "sha256": {Path(route).name: sha for route, sha in pins.items() if route.startswith(("torchvision/", "fidelity/"))},
        },
        "stylize": {"adain": {
            "encoder_url": f"{base_url}/adain/{ADAIN_FILES[0]}", "encoder_sha256": pins[f"adain/{ADAIN_FILES[0]}"],
            "decoder_url": f"{base_url}/adain/{ADAIN_FILES[1]}", "decoder_sha256": pins[f"adain/{ADAIN_FILES[1]}"],
        }},
        "shape_bias": {
            "humans": {"base_url": f"{base_url}/model-vs-human/cue-conflict"},
            "references": {"base_url": f"{base_url}/model-vs-human/cue-conflict"},
        },
        "robustness": {"ood": {
            "url": f"{base_url}/ood/{{name}}.tar.gz",
            "humans_url": f"{base_url}/model-vs-human/raw-data",
            "sha256": {Path(route).name.removesuffix(".tar.gz"): sha for route, sha in pins.items() if route.startswith("ood/")},
        }},
    }
