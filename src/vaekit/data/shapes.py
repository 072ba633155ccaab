"""``shapes``: an embedded colour data set, drawn with numpy alone (no download, no drawing library).

Each 32x32 RGB image holds one coloured shape on a dark grey background, and six known factors
made it: ``shape`` (square, ellipse, triangle, cross: the label), ``colour`` (one of six hues),
``scale`` (the shape's half-size, 0.18 to 0.32 of the image side), ``rotation`` (radians, 0 to
2 pi), ``x`` and ``y`` (the centre, as fractions of the side, kept so the shape stays inside).
The factors are drawn from numpy's PCG64 generator with a fixed seed (a stream numpy keeps stable
across versions) and every pixel is the coverage of a 4x4 grid of sub-pixel samples, rounded to
8 bits: the images depend on no drawing library. 20,000 images: train 16,000, valid 2,000, test 2,000 (the first,
next and last of one sequence). :func:`shapes_factors` gives the ``[N, 6]`` factor array, :func:`declared_factors` the factors as
the generator drew them, for :mod:`vaekit.disentangle`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .factors import Factors

SHAPE_NAMES = ("square", "ellipse", "triangle", "cross")
COLOURS = np.array([[0.90, 0.20, 0.15], [0.95, 0.65, 0.10], [0.95, 0.95, 0.25],
                    [0.25, 0.80, 0.30], [0.20, 0.55, 0.95], [0.75, 0.35, 0.90]], dtype=np.float64)
BACKGROUND = np.array([0.12, 0.12, 0.14])
FACTORS = ("shape", "colour", "scale", "rotation", "x", "y")
GENERATIVE = ("shape", "colour", "scale", "rotation phase", "x fraction", "y fraction")  # generative_factors()
SCALE = (0.18, 0.32)  # the half-size's range, as a fraction of the side
SYMMETRY = np.array([np.pi / 2, np.pi, 2 * np.pi, np.pi / 2])  # the turn that maps each shape onto itself
SIZES = {"train": 16000, "valid": 2000, "test": 2000}
SIDE = 32
SUPERSAMPLE = 4
SEED = 20261125


def _draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The generator's draws, in its order: shape, colour, scale, rotation, and the centre's uniform fractions."""
    shape = rng.integers(0, len(SHAPE_NAMES), n)
    colour = rng.integers(0, len(COLOURS), n)
    scale = rng.uniform(SCALE[0], SCALE[1], n)
    rotation = rng.uniform(0, 2 * np.pi, n)
    return shape, colour, scale, rotation, rng.uniform(0, 1, n), rng.uniform(0, 1, n)


def _compose(shape, colour, scale, rotation, ux, uy) -> np.ndarray:
    margin = scale * np.sqrt(2)  # the farthest a corner of any shape reaches from its centre
    x, y = margin + ux * (1 - 2 * margin), margin + uy * (1 - 2 * margin)
    return np.stack([shape, colour, scale, rotation, x, y], axis=1).astype(np.float64)


def shapes_factors(n: int = sum(SIZES.values()), seed: int = SEED) -> np.ndarray:
    """The factors ``[n, 6]`` (shape, colour, scale, rotation, x, y) of the first ``n`` images."""
    return _compose(*_draw(n, np.random.default_rng(seed)))


def generative_factors(f: np.ndarray) -> np.ndarray:
    """The factors as the generator drew them, each in [0, 1] or a category: shape, colour, the scale's fraction
    of its range, the rotation's phase within the shape's symmetry (a quarter turn for the square and the cross,
    a half turn for the ellipse, a whole one for the triangle: rotations that look the same score the same;
    the phase wraps round, 0 and 1 being one pose), and the centre's uniform fractions (not pixel positions,
    whose range depends on the scale)."""
    shape = f[:, 0].astype(np.int64)
    period = SYMMETRY[shape]
    margin = f[:, 2] * np.sqrt(2)
    return np.stack([f[:, 0], f[:, 1], (f[:, 2] - SCALE[0]) / (SCALE[1] - SCALE[0]),
                     np.mod(f[:, 3], period) / period, (f[:, 4] - margin) / (1 - 2 * margin),
                     (f[:, 5] - margin) / (1 - 2 * margin)], axis=1)


def sample_holding(k: int, n: int, rng: np.random.Generator, side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` new images (float32 in [0, 1]) with generative factor ``k`` held at one value drawn at random and
    the others free, and their generative factors."""
    g = generative_factors(_compose(*_draw(n, rng)))
    g[:, k] = g[0, k]
    shape = g[:, 0].astype(np.int64)
    scale = SCALE[0] + g[:, 2] * (SCALE[1] - SCALE[0])
    f = _compose(g[:, 0], g[:, 1], scale, g[:, 3] * SYMMETRY[shape], g[:, 4], g[:, 5])
    return render_shapes(f, side).astype(np.float32) / 255.0, g


def declared_factors(split: str, side: int = SIDE) -> Factors:
    """The ``shapes`` factors of ``split``, for :mod:`vaekit.disentangle`."""
    return Factors(GENERATIVE, generative_factors(shapes_factors()[_span(split)]), (True, True, False, False, False,
                   False), sample=lambda k, n, rng: sample_holding(k, n, rng, side),
                   note="scale, rotation and position as the generator drew them: the scale's fraction of its "
                        "range, the rotation's phase within each shape's symmetry (it wraps round), the centre's "
                        "uniform fractions")


def _span(split: str) -> slice:
    start = {"train": 0, "valid": SIZES["train"], "test": SIZES["train"] + SIZES["valid"]}[split]
    return slice(start, start + SIZES[split])


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points ``(u, v)`` in the shape's own frame (unit half-size) are inside shape number ``shape``."""
    au, av = np.abs(u), np.abs(v)
    if shape == 0:  # square
        return np.maximum(au, av) <= 1
    if shape == 1:  # ellipse, 1 by 0.55
        return u * u + (v / 0.55) ** 2 <= 1
    if shape == 2:  # isosceles triangle pointing along +v: apex (0, 1), base v = -0.8 from u = -0.9 to 0.9
        return (v >= -0.8) & (v <= 1 - 2 * au)
    return ((au <= 1) & (av <= 0.3)) | ((av <= 1) & (au <= 0.3))  # cross


def render_shapes(factors: np.ndarray, side: int = SIDE, chunk: int = 500) -> np.ndarray:
    """Images ``[n, 3, side, side]`` uint8 of the shapes the factors describe."""
    k = side * SUPERSAMPLE
    centres = (np.arange(k) + 0.5) / k  # sub-pixel centres in [0, 1]
    gx, gy = np.meshgrid(centres, centres)  # gy grows downwards, as image rows do
    gx, gy = gx.reshape(1, -1).astype(np.float32), gy.reshape(1, -1).astype(np.float32)
    out = np.empty((len(factors), 3, side, side), dtype=np.uint8)
    for start in range(0, len(factors), chunk):
        f = factors[start : start + chunk]
        shape, colour, scale, rot, cx, cy = (f[:, i : i + 1].astype(np.float32) for i in range(6))
        dx, dy = gx - cx, cy - gy  # v points up on the screen
        cos, sin = np.cos(rot), np.sin(rot)
        u = (cos * dx + sin * dy) / scale
        v = (-sin * dx + cos * dy) / scale
        inside = np.empty(u.shape, dtype=bool)
        for kind in range(len(SHAPE_NAMES)):  # each image is tested against its own shape only
            rows = shape[:, 0] == kind
            inside[rows] = _inside(kind, u[rows], v[rows])
        cover = inside.reshape(-1, side, SUPERSAMPLE, side, SUPERSAMPLE).mean(axis=(2, 4))  # [n, side, side]
        rgb = COLOURS[colour[:, 0].astype(np.int64)]  # [n, 3]
        img = cover[:, None] * rgb[:, :, None, None] + (1 - cover[:, None]) * BACKGROUND[None, :, None, None]
        out[start : start + chunk] = np.round(img * 255).astype(np.uint8)
    return out


def load_shapes(split: str, data_dir: Path | None = None, download: bool = True, side: int = SIDE):
    """The loader of the ``shapes`` data set: images ``[N, 3, side, side]`` in [0, 1] and the shape labels
    (``side`` 64: the same shapes drawn at 64x64, ``--image-size 64``)."""
    f = shapes_factors()[_span(split)]
    return render_shapes(f, side).astype(np.float32) / 255.0, f[:, 0].astype(np.int64)
