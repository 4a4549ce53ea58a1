"""Appearance families of the broad presets: textures, backgrounds and object shapes beyond ``texture``.

All images are float32 in [0, 255], RGB, (H, W, 3); patterns and masks float32 in [0, 1], (H, W);
everything is drawn from the caller's ``numpy.random.Generator``. The standard presets never call
this module (their clips stay byte-identical); ``training.synth.broad`` does.

Texture families (:data:`PATTERN_FAMILIES`): ``blend`` (``texture``'s noise/stripes/checks/spots),
``stripes``, ``checker``, ``grating`` (two crossed sinusoids), ``gradient`` (smooth linear or radial
ramp with faint grain), ``flat`` (almost no texture: motion shows only at the edges), ``pink`` (1/f
noise, the power spectrum of natural images). Shapes (:data:`SHAPES`): ``blob``, ``ellipse``,
``rectangle``, ``polygon`` (an irregular 5-9-gon), ``star``.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth import texture

PATTERN_FAMILIES = ("blend", "stripes", "checker", "grating", "gradient", "flat", "pink")
BACKGROUND_FAMILIES = ("value", "pink", "grating", "checker", "stripes", "gradient")
SHAPES = ("blob", "ellipse", "rectangle", "polygon", "star")
# families and shapes that show a rotation of the object (a flat ellipse spinning shows nothing)
ROTATION_SAFE_FAMILIES = ("blend", "stripes", "checker", "grating", "pink")
ROTATION_SAFE_SHAPES = ("blob", "polygon", "star")


def pink_noise(rng: np.random.Generator, height_px: int, width_px: int, exponent: float = 1.0) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^(2*exponent) (1: natural-image statistics), float32 (H, W) in [0, 1]."""
    white = rng.standard_normal((height_px, width_px))
    fy = np.fft.fftfreq(height_px)[:, None]
    fx = np.fft.rfftfreq(width_px)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    spectrum = np.fft.rfft2(white) / radius**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height_px, width_px))
    lo, hi = np.percentile(field, (1, 99))
    return np.clip((field - lo) / max(hi - lo, 1e-9), 0, 1).astype(np.float32)


def _rotated_coordinates(rng: np.random.Generator, height_px: int, width_px: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    return u, v


def pattern(rng: np.random.Generator, family: str, height_px: int, width_px: int, period_px: float) -> np.ndarray:
    """A float32 (H, W) pattern in [0, 1] of ``family`` (:data:`PATTERN_FAMILIES`) with feature size
    about ``period_px``. Raises KeyError for an unknown family."""
    if family == "blend":
        size = max(height_px, width_px)
        return texture._pattern(rng, size)[:height_px, :width_px]
    if family == "pink":
        return pink_noise(rng, height_px, width_px, rng.uniform(0.8, 1.3))
    grain = texture.value_noise(rng, height_px, width_px, (2.0, 1.0))
    if family == "flat":
        return (0.5 + 0.06 * (grain - 0.5)).astype(np.float32)
    u, v = _rotated_coordinates(rng, height_px, width_px)
    if family == "stripes":
        base = (np.sin(2 * np.pi * u / period_px) > 0).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 0.7)
    elif family == "checker":
        base = ((np.floor(u / period_px) + np.floor(v / period_px)) % 2).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 0.7)
    elif family == "grating":
        ratio = rng.uniform(0.4, 1.0)
        base = 0.5 + 0.25 * np.sin(2 * np.pi * u / period_px) + 0.25 * np.sin(2 * np.pi * v / (period_px * ratio))
    elif family == "gradient":
        if rng.random() < 0.5:
            base = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
        else:
            cy, cx = rng.uniform(0, height_px), rng.uniform(0, width_px)
            yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
            r = np.hypot(yy - cy, xx - cx)
            base = r / max(float(r.max()), 1e-6)
    else:
        raise KeyError(f"unknown pattern family {family!r}; one of {PATTERN_FAMILIES}")
    return np.clip(0.9 * base + 0.1 * grain, 0, 1).astype(np.float32)


def background(rng: np.random.Generator, family: str, height_px: int, width_px: int) -> np.ndarray:
    """A background of ``family`` (:data:`BACKGROUND_FAMILIES`), float32 (H, W, 3) in [0, 255].
    ``value`` is the standard presets' background; the others colour a :func:`pattern` between two
    colours. Every family keeps some fine detail, or a pan would give no motion vectors at all."""
    if family == "value":
        return texture.background(rng, height_px, width_px)
    unit = min(height_px, width_px) / 256.0
    base = pattern(rng, family, height_px, width_px, rng.uniform(10, 60) * unit)[..., None]
    a = texture.random_colour(rng, value=(0.2, 0.9))
    b = texture.random_colour(rng, value=(0.2, 0.9))
    detail = texture.value_noise(rng, height_px, width_px, (6 * unit, 2.0))[..., None] - 0.5
    image = (a * (1 - base) + b * base) * (1 + detail * rng.uniform(0.1, 0.5))
    return np.clip(image, 0, 255).astype(np.float32)


def shape_mask(rng: np.random.Generator, shape: str, size_px: int) -> np.ndarray:
    """An anti-aliased alpha mask float32 (size, size) in [0, 1] of ``shape`` (:data:`SHAPES`),
    filling the square. Raises KeyError for an unknown shape."""
    if shape == "blob":
        return texture.blob_mask(rng, size_px)
    scale = 8  # draw 8x larger, then area-average: anti-aliasing
    big = np.zeros((size_px * scale, size_px * scale), np.uint8)
    c = size_px * scale / 2.0
    r = size_px * scale / 2.0 - 1.5 * scale
    if shape == "ellipse":
        axes = (int(r), int(r * rng.uniform(0.45, 0.95)))
        cv2.ellipse(big, (int(c), int(c)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif shape == "rectangle":
        half = (r * 0.7, r * 0.7 * rng.uniform(0.4, 1.0))
        box = cv2.boxPoints(((c, c), (2 * half[0], 2 * half[1]), float(rng.uniform(0, 90))))
        cv2.fillPoly(big, [np.round(box).astype(np.int32)], 255)
    elif shape in ("polygon", "star"):
        n = int(rng.integers(5, 10))  # jittered around even spacing: irregular, never a sliver
        angles = (np.arange(n) + rng.uniform(-0.35, 0.35, n)) * 2 * np.pi / n + rng.uniform(0, 2 * np.pi)
        radii = rng.uniform(0.6, 1.0, n) * r
        if shape == "star":
            n = int(rng.integers(4, 8))
            angles = np.arange(2 * n) * np.pi / n + rng.uniform(0, np.pi)
            radii = np.where(np.arange(2 * n) % 2 == 0, r, r * rng.uniform(0.35, 0.6))
            radii = radii * rng.uniform(0.85, 1.0, 2 * n)  # uneven points: no rotational symmetry
        points = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(big, [np.round(points).astype(np.int32)], 255)
    else:
        raise KeyError(f"unknown shape {shape!r}; one of {SHAPES}")
    small = cv2.resize(big.astype(np.float32) / 255.0, (size_px, size_px), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0, 1).astype(np.float32)


def object_patch(rng: np.random.Generator, size_px: int, family: str, shape: str, colour: str = "any",
                 contrast_to: float | None = None) -> np.ndarray:
    """A textured object: premultiplied RGBA float32 (size, size, 4), texture ``family``, mask ``shape``.

    ``colour``: "any", "red" or "blue" (the hue bands of ``texture.object_patch``); ``contrast_to``:
    mean background brightness, the object then tends to the other half of the brightness range.
    """
    size_px = max(int(size_px), 8)
    if colour == "red":
        hue, sat = rng.uniform(-0.03, 0.03), (0.65, 0.95)
    elif colour == "blue":
        hue, sat = rng.uniform(0.58, 0.68), (0.65, 0.95)
    else:
        hue, sat = rng.random(), (0.1, 0.9)
    if contrast_to is not None and rng.random() < 0.6:
        value = (0.55, 0.95) if contrast_to < 128 else (0.2, 0.6)
    else:
        value = (0.2, 0.95)
    light = texture.random_colour(rng, hue, sat, value)
    dark = light * rng.uniform(0.3, 0.75) if colour != "any" or rng.random() < 0.5 else \
        texture.random_colour(rng, None, (0.1, 0.8), (0.1, 0.6))
    t = pattern(rng, family, size_px, size_px, rng.uniform(0.1, 0.35) * size_px)[..., None]
    rgb = dark * (1 - t) + light * t
    alpha = shape_mask(rng, shape, size_px)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=2).astype(np.float32)
