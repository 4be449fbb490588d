"""FID and KID (Table 2) through torch-fidelity, with feature extractors usable offline.

``fid_kid`` is one ``torch_fidelity.calculate_metrics(fid=True, kid=True)`` call
between two folders of same-size images; the paper evaluates 3,000 samples against
the class's real images with KID subset size 100 and reports KID x 1e3.

Offline: the default extractor (``inception-v3-compat``) downloads its weights unless
``feature_extractor_weights_path`` names a local copy. Alternatively
``register_classifier_extractor`` plugs a trained topkshape classifier in as an
in-domain extractor (penultimate features). ``save_random_inception_weights`` writes
a random-init state dict in the Inception's format, for tests only.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from topkshape.atomic import atomic_directory, atomic_file
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.images import find_images, square_image

# torch-fidelity's own file search: the top folder only, these extensions.
SAMPLE_EXTENSIONS = "png,jpg,jpeg"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


FEW_IMAGES = 256


def sample_files(folder: str | Path) -> list[str]:
    """The files torch-fidelity reads from ``folder`` (non-recursive PNG/JPEG), sorted."""
    from torch_fidelity.utils import glob_samples_paths

    if not Path(folder).is_dir():
        raise InputDataError(f"image folder not found: {folder}")
    return glob_samples_paths(str(folder), False, SAMPLE_EXTENSIONS, verbose=False)


def _check_one_size(files: list[str], folder: str | Path) -> None:
    sizes = set()
    for path in files:
        with Image.open(path) as image:  # reads the header only
            sizes.add(image.size)
        if len(sizes) > 1:
            raise InputDataError(
                f"images in {folder} differ in size ({sorted(sizes)}); torch-fidelity batches them, "
                "so write same-size copies with prepare_real_images()"
            )


def fid_kid(
    generated_dir: str | Path,
    real_dir: str | Path,
    *,
    kid_subset_size: int,
    feature_extractor: str | None = None,
    feature_extractor_weights_path: str | None = None,
    cuda: bool | None = None,
    save_cpu_ram: bool | None = None,
) -> dict[str, float]:
    """``{"fid", "kid", "kid_std", "kid_x1e3"}`` between two folders of same-size images.

    ``kid_subset_size`` must not exceed either folder's image count (torch-fidelity
    would fail only after extracting all features). ``save_cpu_ram`` reads images in
    the main process instead of DataLoader workers; None: so for folders of at most
    ``FEW_IMAGES`` images, where starting the workers costs more than decoding (the
    features, and so the scores, are the same either way).
    """
    import torch_fidelity

    generated, real = sample_files(generated_dir), sample_files(real_dir)
    for files, folder in ((generated, generated_dir), (real, real_dir)):
        if not files:
            raise InputDataError(f"no PNG or JPEG images directly in {folder}")
        _check_one_size(files, folder)
    if isinstance(kid_subset_size, bool) or not isinstance(kid_subset_size, int) or kid_subset_size < 2:
        raise ConfigError(f"kid_subset_size must be an integer >= 2, got {kid_subset_size!r}")
    smallest = min(len(generated), len(real))
    if save_cpu_ram is None:
        save_cpu_ram = max(len(generated), len(real)) <= FEW_IMAGES
    if kid_subset_size > smallest:
        raise ConfigError(
            f"kid_subset_size {kid_subset_size} exceeds the image count ({len(generated)} generated in {generated_dir}, "
            f"{len(real)} real in {real_dir}); set it to at most {smallest}"
        )
    if feature_extractor_weights_path is not None and not Path(feature_extractor_weights_path).is_file():
        raise InputDataError(f"feature extractor weights not found: {feature_extractor_weights_path}")
    metrics = torch_fidelity.calculate_metrics(
        input1=str(generated_dir),
        input2=str(real_dir),
        fid=True,
        kid=True,
        kid_subset_size=kid_subset_size,
        feature_extractor=feature_extractor,
        feature_extractor_weights_path=None if feature_extractor_weights_path is None else str(feature_extractor_weights_path),
        cuda=torch.cuda.is_available() if cuda is None else bool(cuda),
        save_cpu_ram=save_cpu_ram,
        verbose=False,
        cache=False,
    )
    kid = float(metrics[torch_fidelity.KEY_METRIC_KID_MEAN])
    return {
        "fid": float(metrics[torch_fidelity.KEY_METRIC_FID]),
        "kid": kid,
        "kid_std": float(metrics[torch_fidelity.KEY_METRIC_KID_STD]),
        "kid_x1e3": kid * 1000.0,
    }


def prepare_real_images(src_dir: str | Path, out_dir: str | Path, im_size: int, resize: str = "center_crop",
                        resample: str = "bicubic") -> Path:
    """Write every image under ``src_dir`` as a ``im_size`` px PNG into ``out_dir`` (flat).

    Uses the training loader's resizing (``resize`` as in ``GanSettings``), so the
    real set is measured as the generator saw it. The folder appears complete or not at all.
    """
    sources = find_images(src_dir)
    with atomic_directory(out_dir) as tmp:
        for index, path in enumerate(sources):
            square_image(path, im_size, resize, resample).save(tmp / f"{index:05d}_{path.stem}.png")
    return Path(out_dir)


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """A trained topkshape classifier as a torch-fidelity feature extractor.

    Input: uint8 ``(N, 3, H, W)`` as torch-fidelity passes it. Preprocessing is the
    classifier's evaluation transform (resize to ``round(s * 256 / 224)``, centre crop
    ``s``, ImageNet normalisation; ``s`` its training image size). Features:
    ``"penultimate"`` (default for FID/KID/PRC): for ResNets the globally average-pooled
    ``layer4`` output (the CIFAR-style ResNet's head flattens the map instead, whose
    size would make FID's covariance impractical); otherwise the input of the last
    ``nn.Linear``. ``"logits"`` (default for ISC): the model output.

    Subclassed per model by :func:`register_classifier_extractor`.
    """

    model_path: ClassVar[str] = ""
    image_size: ClassVar[int] = 224

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.model = _load_classifier(self.model_path).eval().requires_grad_(False)
        self._captured: dict[str, Tensor] = {}
        if isinstance(getattr(self.model, "layer4", None), nn.Module):
            self.model.layer4.register_forward_hook(self._capture_pooled)
        else:
            linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise InputDataError(f"{self.model_path}: no layer4 and no nn.Linear head to take features from")
            linears[-1].register_forward_pre_hook(self._capture_head_input)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _capture_pooled(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._captured["penultimate"] = output.mean(dim=(2, 3))

    def _capture_head_input(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self._captured["penultimate"] = inputs[0].flatten(1)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "penultimate"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @classmethod
    def get_dummy_input_for_compile(cls) -> Tensor:
        return torch.zeros(1, 3, cls.image_size, cls.image_size, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if not (isinstance(x, Tensor) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        size = self.image_size
        resized = round(size * 256 / 224)
        h, w = x.shape[-2:]
        scale = resized / min(h, w)
        x = F.interpolate(x.float() / 255.0, size=(max(resized, round(h * scale)), max(resized, round(w * scale))),
                          mode="bilinear", align_corners=False, antialias=True)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = (x[..., top:top + size, left:left + size] - self.mean) / self.std
        logits = self.model(x)
        features = {"penultimate": self._captured.pop("penultimate").float(), "logits": logits.float()}
        return tuple(features[name] for name in self.features_list)


def _load_classifier(model_path: str | Path) -> nn.Module:
    """A Table 1 classifier from its ``model.pt``, with Top-K as it was trained."""
    from topkshape.classify.train import VARIANT_MODES
    from topkshape.classify.trained import load_trained_classifier, trained_classifier_state

    state = trained_classifier_state(model_path)
    settings = state["settings"]
    mode = VARIANT_MODES[settings["variant"]]
    fraction = settings["topk_fraction"] if mode else None
    # Evaluated with Top-K as it was trained, tie rule included (older files: "keep").
    model, _ = load_trained_classifier(model_path, fraction, mode or "topk", ties=settings.get("ties"), state=state)
    return model


def _classifier_settings(model_path: str | Path) -> dict[str, Any]:
    from topkshape.classify.trained import trained_classifier_state

    return trained_classifier_state(model_path)["settings"]


def register_classifier_extractor(name: str, model_path: str | Path) -> type[ClassifierFeatureExtractor]:
    """Register ``model_path``'s classifier with torch-fidelity as extractor ``name``.

    Then ``fid_kid(..., feature_extractor=name)`` uses it. Registering the same name
    for the same file again is a no-op; for another file it is a ConfigError.
    """
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    path = str(Path(model_path).resolve())
    existing = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if existing is not None:
        if getattr(existing, "model_path", None) == path:
            return existing
        raise ConfigError(f"feature extractor {name!r} is already registered (for {getattr(existing, 'model_path', 'torch-fidelity')}); choose another name")
    settings = _classifier_settings(path)
    cls = type(
        f"ClassifierFeatureExtractor_{name}",
        (ClassifierFeatureExtractor,),
        {"model_path": path, "image_size": int(settings["image_size"]), "__module__": __name__},
    )
    register_feature_extractor(name, cls)
    return cls


def save_random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a random-init state dict of torch-fidelity's ``inception-v3-compat`` network.

    For tests only: keys and shapes match the real weights, so
    ``feature_extractor_weights_path=path`` works with no download. Built by skipping
    the constructor's weight load; convolutions get He-normal weights so features
    neither vanish nor explode through the 90-odd layers.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _WithoutWeights(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # the constructor's load only
            return None

    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        empty = os.path.join(tmp, "empty.pt")
        torch.save({}, empty)
        torch.manual_seed(seed)
        model = _WithoutWeights("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 1.0 / math.sqrt(module.in_features))
                nn.init.zeros_(module.bias)
    with atomic_file(path) as tmp_path:
        torch.save(model.state_dict(), tmp_path)
    return Path(path)
