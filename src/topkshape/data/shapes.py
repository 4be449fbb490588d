"""Images of shapes filled with textures: the embedded default's stand-in for ImageNet.

The class of an image is its *shape*; its *texture* is a second, separable cue. In
the training split each class mostly wears its own "home" texture (probability
``texture_correlation``), so a CNN can take the texture shortcut the way ImageNet
CNNs do (Geirhos et al. 2019). Cue-conflict images put one class's shape in another
class's home texture, so shape and texture decisions can both be scored.

Everything is numpy, deterministic given a seed, and independent of the order in
which images are rendered (each image has its own seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

Array = np.ndarray
ShapeFn = Callable[[Array, Array], Array]
TextureFn = Callable[[Array, Array, np.random.Generator], Array]


def _regular_polygon(sides: int, radius: float = 1.0) -> ShapeFn:
    apothem = radius * np.cos(np.pi / sides)

    def inside(u: Array, v: Array) -> Array:
        result = np.ones(u.shape, dtype=bool)
        for i in range(sides):
            angle = 2 * np.pi * (i + 0.5) / sides + np.pi / 2
            result &= u * np.cos(angle) + v * np.sin(angle) <= apothem
        return result

    return inside


def _star(u: Array, v: Array) -> Array:
    r = np.hypot(u, v)
    theta = np.arctan2(v, u) + np.pi / 2
    tri = np.abs(((theta * 5 / (2 * np.pi)) % 1.0) * 2 - 1)  # 1 at points, 0 between
    return r <= 0.42 + 0.58 * tri


def _heart(u: Array, v: Array) -> Array:
    x, y = u * 1.15, -v * 1.15 + 0.25
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def _arrow(u: Array, v: Array) -> Array:
    shaft = (np.abs(v) <= 0.22) & (u >= -1) & (u <= 0.15)
    head = (u >= 0.1) & (u <= 1.0) & (np.abs(v) <= (1.0 - u) * 0.95)
    return shaft | head


SHAPES: dict[str, ShapeFn] = {
    "disk": lambda u, v: u**2 + v**2 <= 1,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.82,
    "triangle": _regular_polygon(3, 1.05),
    "ring": lambda u, v: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.36),
    "cross": lambda u, v: ((np.abs(u) <= 0.3) & (np.abs(v) <= 1)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1)),
    "star": _star,
    "ellipse": lambda u, v: u**2 + (v / 0.5) ** 2 <= 1,
    "diamond": lambda u, v: np.abs(u) / 0.62 + np.abs(v) <= 1,
    "crescent": lambda u, v: (u**2 + v**2 <= 1) & ((u - 0.45) ** 2 + v**2 >= 0.64),
    "arrow": _arrow,
    "hexagon": _regular_polygon(6, 1.0),
    "heart": _heart,
}


def _rotated(x: Array, y: Array, angle: float) -> tuple[Array, Array]:
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _stripes(x, y, rng):
    a, _ = _rotated(x, y, rng.uniform(0, np.pi))
    return np.sin(2 * np.pi * rng.uniform(5, 8) * a + rng.uniform(0, 6.3)) > 0


def _checkers(x, y, rng):
    a, b = _rotated(x, y, rng.uniform(0, np.pi / 2))
    f = rng.uniform(4, 7)
    return (np.floor(a * f + rng.uniform()) + np.floor(b * f + rng.uniform())) % 2 == 0


def _dots(x, y, rng):
    f = rng.uniform(5, 8)
    a, b = _rotated(x, y, rng.uniform(0, np.pi / 2))
    da = (a * f + rng.uniform()) % 1 - 0.5
    db = (b * f + rng.uniform()) % 1 - 0.5
    return da**2 + db**2 <= 0.09


def _waves(x, y, rng):
    a, b = _rotated(x, y, rng.uniform(0, np.pi))
    return np.sin(2 * np.pi * (rng.uniform(5, 7) * b + 0.6 * np.sin(2 * np.pi * 2.5 * a + rng.uniform(0, 6.3)))) > 0


def _rings(x, y, rng):
    cx, cy = rng.uniform(-1, 1, size=2)
    return np.sin(2 * np.pi * rng.uniform(5, 8) * np.hypot(x - cx, y - cy)) > 0


def _grid(x, y, rng):
    a, b = _rotated(x, y, rng.uniform(0, np.pi / 2))
    f = rng.uniform(4, 6)
    return (((a * f + rng.uniform()) % 1) < 0.28) | (((b * f + rng.uniform()) % 1) < 0.28)


def _zigzag(x, y, rng):
    a, b = _rotated(x, y, rng.uniform(0, np.pi))
    tri = np.abs(((a * rng.uniform(4, 6)) % 1.0) * 2 - 1)
    return np.sin(2 * np.pi * rng.uniform(4, 6) * (b + 0.25 * tri)) > 0


def _crosshatch(x, y, rng):
    f = rng.uniform(5, 7)
    a, b = _rotated(x, y, np.pi / 4 + rng.uniform(-0.2, 0.2))
    return (np.abs(np.sin(2 * np.pi * f * a)) < 0.35) | (np.abs(np.sin(2 * np.pi * f * b)) < 0.35)


def _speckle(x, y, rng):
    cells = 12
    noise = rng.uniform(size=(cells, cells))
    ix = np.clip(((x + 1) / 2 * cells).astype(int), 0, cells - 1)
    iy = np.clip(((y + 1) / 2 * cells).astype(int), 0, cells - 1)
    return noise[iy, ix] > 0.5


def _scales(x, y, rng):
    f = rng.uniform(4, 6)
    a, b = x * f + rng.uniform(), y * f + rng.uniform()
    row = np.floor(b)
    da = (a + 0.5 * (row % 2)) % 1 - 0.5
    db = b % 1
    return da**2 + db**2 <= 0.3


def _plaid(x, y, rng):
    f = rng.uniform(3, 5)
    return np.sin(2 * np.pi * f * x) + np.sin(2 * np.pi * f * y + rng.uniform(0, 6.3)) > 0.4


# Each texture is a pattern and a pair of colours; both belong to the texture's identity.
TEXTURES: dict[str, tuple[TextureFn, tuple[int, int, int], tuple[int, int, int]]] = {
    "stripes": (_stripes, (220, 40, 40), (250, 220, 60)),
    "checkers": (_checkers, (30, 60, 200), (235, 235, 235)),
    "dots": (_dots, (20, 120, 40), (15, 15, 15)),
    "waves": (_waves, (0, 170, 190), (245, 245, 200)),
    "rings": (_rings, (140, 40, 160), (250, 170, 40)),
    "grid": (_grid, (110, 70, 30), (240, 200, 150)),
    "zigzag": (_zigzag, (240, 110, 160), (40, 40, 90)),
    "crosshatch": (_crosshatch, (60, 60, 60), (150, 220, 90)),
    "speckle": (_speckle, (200, 120, 20), (90, 30, 10)),
    "scales": (_scales, (20, 90, 110), (200, 240, 240)),
    "plaid": (_plaid, (180, 20, 60), (20, 50, 120)),
    "dense_stripes": (_stripes, (250, 250, 250), (120, 0, 180)),
}


@dataclass(frozen=True)
class RenderSpec:
    """One image: a shape, a texture, a size, and the seed of everything random in it."""

    shape: str | None
    """None: the texture fills the whole frame (a texture-only image, no shape to see)."""
    texture: str
    size: int
    seed: int
    permute_colours: bool = False
    """True: the texture's two colours have their RGB channels permuted, one permutation drawn per image,
    so that a texture is known by its pattern and not by its hue."""


def render(spec: RenderSpec, supersample: int = 2) -> Image.Image:
    """Render one RGB image (shape at random position, scale and rotation; textured fill)."""
    if spec.shape is not None and spec.shape not in SHAPES:
        raise ValueError(f"unknown shape {spec.shape!r}; choose from {sorted(SHAPES)}")
    if spec.texture not in TEXTURES:
        raise ValueError(f"unknown texture {spec.texture!r}; choose from {sorted(TEXTURES)}")
    rng = np.random.default_rng(spec.seed)
    n = spec.size * supersample
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(coords, coords)

    scale = rng.uniform(0.5, 0.8)
    cx, cy = rng.uniform(-1 + scale * 0.9, 1 - scale * 0.9, size=2)
    u, v = _rotated(x - cx, y - cy, rng.uniform(0, 2 * np.pi))
    inside = SHAPES[spec.shape](u / scale, v / scale) if spec.shape is not None else np.ones(u.shape, dtype=bool)

    pattern, color_a, color_b = TEXTURES[spec.texture]
    jitter = rng.integers(-25, 26, size=(2, 3))
    colors = np.clip(np.array([color_a, color_b]) + jitter, 0, 255)
    if spec.permute_colours:  # its own stream: every other draw of the image stays as it was
        colors = colors[:, np.random.default_rng([spec.seed, 7]).permutation(3)]
    fill = np.where(pattern(x, y, rng)[..., None], colors[0], colors[1])

    gray = rng.uniform(90, 170)
    background = np.clip(gray + rng.normal(0, 6, size=(n, n, 1)), 0, 255) * np.ones(3)
    image = np.where(inside[..., None], fill, background).astype(np.uint8)
    pil = Image.fromarray(image, "RGB")
    if supersample > 1:
        pil = pil.resize((spec.size, spec.size), Image.Resampling.BOX)
    return pil


def render_texture(texture: str, size: int, seed: int) -> Image.Image:
    """A texture over the whole frame (no shape, no background): a style image."""
    if texture not in TEXTURES:
        raise ValueError(f"unknown texture {texture!r}; choose from {sorted(TEXTURES)}")
    pattern, color_a, color_b = TEXTURES[texture]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, coords)
    mask = pattern(x, y, np.random.default_rng(seed))
    pixels = np.where(mask[..., None], np.array(color_a), np.array(color_b)).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
