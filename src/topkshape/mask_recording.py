"""Top-K masks of fixed inputs recorded during training (paper Figure 8).

A neutral module below both trainers (``classify.train`` and ``gan.train``) and the
figure code (``texture``), so that no package imports one above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from topkshape.atomic import atomic_file
from topkshape.checkpoint import load_torch_file
from topkshape.errors import InputDataError
from topkshape.ops import TopK, TopKMeanReplace


class MaskRecorder:
    """Records the Top-K masks of fixed images and channels at one Top-K layer (Figure 8).

    Call ``record(step)`` during training; the model's train/eval mode and the layer's
    recording flag are restored afterwards, so training continues unaffected.
    """

    def __init__(self, model: nn.Module, layer_name: str, images: Tensor, channels: Sequence[int], *,
                 keep_outputs: Callable[[Tensor], Tensor] | None = None) -> None:
        try:
            layer = model.get_submodule(layer_name)
        except AttributeError as error:
            raise ValueError(f"model has no submodule {layer_name!r}") from error
        if not isinstance(layer, (TopK, TopKMeanReplace)):
            raise ValueError(f"{layer_name!r} is a {type(layer).__name__}, not a TopK or TopKMeanReplace layer")
        if images.dim() < 2:
            # Images (N, 3, H, W) for a classifier, latent codes (N, nz) for a generator.
            raise ValueError(f"images must be a batch of model inputs, got shape {tuple(images.shape)}")
        self.model = model
        self.layer = layer
        self.layer_name = layer_name
        self.images = images.detach()
        self.channels = list(channels)
        self.masks: dict[int, Tensor] = {}
        # A generator's inputs are latent codes: what its masks are of is its output at each step, kept
        # as keep_outputs makes it (a small uint8 image: a long run records a hundred times and more).
        self.keep_outputs = keep_outputs
        self.outputs: dict[int, Tensor] = {}

    def record(self, step: int) -> Tensor:
        """Run the fixed images in eval mode and store ``masks[step]`` (images, channels, H, W)."""
        was_training = self.model.training
        was_recording = self.layer.record_mask
        device = next((p.device for p in self.model.parameters()), self.images.device)
        self.model.eval()
        self.layer.record_mask = True
        try:
            # fork_rng: a generator's noise injection must not shift the training's random stream.
            with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                output = self.model(self.images.to(device))
            if self.layer.last_mask is None:
                raise RuntimeError(f"the Top-K layer {self.layer_name!r} was not called in the forward pass")
            mask = self.layer.last_mask[:, self.channels].cpu()
        finally:
            self.layer.record_mask = was_recording
            self.layer.last_mask = None  # holds a full-batch mask; free it
            self.model.train(was_training)
        self.masks[step] = mask
        if self.keep_outputs is not None:
            # The first output is the image (FastGAN's generator returns [full size, small size]).
            self.outputs[step] = self.keep_outputs((output[0] if isinstance(output, (list, tuple)) else output).detach()).cpu()
        return mask

    def save(self, path: str | os.PathLike) -> None:
        """Write ``{step: mask}`` and the recorded images (read back with ``load_masks``, ``load_mask_inputs``)."""
        save_masks(self.masks, path, inputs=self.images.cpu(), outputs=self.outputs if self.keep_outputs is not None else None)


def save_masks(masks: dict[int, Tensor], path: str | os.PathLike, *, inputs: Tensor | None = None,
               outputs: dict[int, Tensor] | None = None) -> None:
    """Write ``{"masks": {step: bool mask}, "inputs": images or None}`` atomically with ``torch.save``,
    plus ``"outputs": {step: model output}`` when given (a generator's images at each recording): the
    inputs or outputs let Figure 8 show what each row's masks are of."""
    content: dict = {"masks": dict(masks), "inputs": inputs}
    if outputs is not None:
        content["outputs"] = dict(outputs)
    with atomic_file(path) as tmp:
        torch.save(content, tmp)


def _recorded(path: str | os.PathLike) -> tuple[dict, Tensor | None, dict | None]:
    """Masks, inputs and outputs of a masks file; a file of masks alone (written before inputs were kept)
    has neither, one without ``outputs`` no outputs."""
    content = load_torch_file(path, "recorded Top-K masks")
    if isinstance(content, dict) and set(content) in ({"masks", "inputs"}, {"masks", "inputs", "outputs"}):
        masks, inputs, outputs = content["masks"], content["inputs"], content.get("outputs")
    else:
        masks, inputs, outputs = content, None, None
    if (not isinstance(masks, dict) or not all(isinstance(m, Tensor) for m in masks.values())
            or not (inputs is None or isinstance(inputs, Tensor))
            or not (outputs is None or (isinstance(outputs, dict) and all(isinstance(o, Tensor) for o in outputs.values())))):
        raise InputDataError(f"{str(path)!r} does not hold a dict of masks (got {type(masks).__name__})")
    return masks, inputs, outputs


def load_masks(path: str | os.PathLike) -> dict[int, Tensor]:
    """The ``{step: bool mask}`` dict written by ``save_masks`` (weights-only loader)."""
    return {int(step): mask for step, mask in _recorded(path)[0].items()}


def load_mask_inputs(path: str | os.PathLike) -> Tensor | None:
    """The images whose masks ``save_masks`` recorded (None when the file holds none, e.g. the GAN's latents)."""
    return _recorded(path)[1]


def load_mask_outputs(path: str | os.PathLike) -> dict[int, Tensor] | None:
    """The model's outputs at each recording (a generator's images), or None when the file holds none."""
    outputs = _recorded(path)[2]
    return None if outputs is None else {int(step): output for step, output in outputs.items()}
