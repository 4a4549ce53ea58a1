"""Procedural appearance: multi-scale noise textures, random colours and random-shape alpha masks.

All images are float32 in [0, 255], channel order RGB, shape (H, W, 3); masks are float32 in [0, 1],
shape (H, W). Everything is drawn from the caller's ``numpy.random.Generator``, so it is
deterministic by seed. Textures carry detail at several scales on purpose: block-matching encoders
find motion vectors only where there is texture.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, height_px: int, width_px: int, scales_px: tuple[float, ...]) -> np.ndarray:
    """Sum of smooth random fields, one per scale (feature size in pixels), normalised to [0, 1].

    Returns float32 (height_px, width_px). Coarse scales weigh more (amplitude ~ sqrt(scale)).
    """
    total = np.zeros((height_px, width_px), np.float32)
    for scale in scales_px:
        scale = max(float(scale), 1.0)
        grid_h = int(np.ceil(height_px / scale)) + 2
        grid_w = int(np.ceil(width_px / scale)) + 2
        grid = rng.random((grid_h, grid_w), dtype=np.float32)
        up = cv2.resize(grid, (int(grid_w * scale), int(grid_h * scale)), interpolation=cv2.INTER_CUBIC)
        total += np.sqrt(scale) * up[:height_px, :width_px]
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def random_colour(rng: np.random.Generator, hue: float | None = None, saturation: tuple[float, float] = (0.15, 0.8),
                  value: tuple[float, float] = (0.2, 0.95)) -> np.ndarray:
    """One RGB colour, float32 (3,) in [0, 255]. ``hue`` in [0, 1) fixes the hue, else it is random."""
    h = rng.random() if hue is None else hue % 1.0
    s = rng.uniform(*saturation)
    v = rng.uniform(*value)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255.0


def _pattern(rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A [0, 1] float32 (size, size) pattern: noise, stripes, checks or spots, always with some noise."""
    noise = value_noise(rng, size_px, size_px, (size_px / 3, size_px / 8, 3.0, 1.5))
    kind = rng.integers(4)
    if kind == 0:
        return noise
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.12, 0.3) * size_px
    if kind == 1:  # stripes
        u = xx * np.cos(angle) + yy * np.sin(angle)
        base = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    elif kind == 2:  # checks
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        base = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 0.8)
    else:  # spots
        base = (value_noise(rng, size_px, size_px, (period / 2,)) > 0.55).astype(np.float32)
        base = cv2.GaussianBlur(base, (0, 0), 0.8)
    mix = rng.uniform(0.55, 0.8)
    return (mix * base + (1 - mix) * noise).astype(np.float32)


def background(rng: np.random.Generator, height_px: int, width_px: int) -> np.ndarray:
    """A textured background, float32 (height_px, width_px, 3) in [0, 255].

    Two colours mixed by multi-scale noise, a third colour in soft patches, and a multiplicative
    detail texture at 1.5-8 px, so that a panning camera produces motion vectors everywhere.
    """
    unit = min(height_px, width_px) / 256.0
    colours = [random_colour(rng, value=(0.25, 0.85)) for _ in range(3)]
    n1 = value_noise(rng, height_px, width_px, tuple(s * unit for s in (96, 40, 16, 6, 2.5)))[..., None]
    n2 = value_noise(rng, height_px, width_px, tuple(s * unit for s in (64, 24)))[..., None]
    patches = np.clip((n2 - 0.55) * 6.0, 0.0, 1.0)
    image = colours[0] * (1 - n1) + colours[1] * n1
    image = image * (1 - patches) + colours[2] * patches
    detail = value_noise(rng, height_px, width_px, (8 * unit, 3.5 * unit, 1.5))[..., None] - 0.5
    return np.clip(image * (1 + detail * rng.uniform(0.4, 0.8)), 0, 255).astype(np.float32)


def blob_mask(rng: np.random.Generator, size_px: int, elongation: float = 1.0) -> np.ndarray:
    """A random star-shaped blob filling a (size_px, size_px) square, float32 alpha in [0, 1].

    The radius varies with angle by a few random harmonics, so the shape has no rotational
    symmetry (a spinning blob shows its rotation). ``elongation`` > 1 stretches it into a bar.
    Edges are anti-aliased over about one pixel.
    """
    c = (size_px - 1) / 2.0
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    dx, dy = xx - c, (yy - c) * elongation
    rho = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx)
    radius = np.ones_like(rho)
    for k in range(2, 6):
        radius += rng.uniform(0.0, 0.14) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    kmax = radius.max()
    radius *= (size_px / 2.0 - 1.5) / kmax
    return np.clip(radius - rho + 0.5, 0.0, 1.0).astype(np.float32)


def object_patch(rng: np.random.Generator, size_px: int, colour: str = "any", contrast_to: float | None = None,
                 elongation: float = 1.0) -> np.ndarray:
    """A textured object with a random-shape mask: premultiplied RGBA, float32 (size, size, 4).

    Args:
        colour: ``"any"`` (random hue), ``"red"`` or ``"blue"`` (saturated hue band).
        contrast_to: mean background brightness in [0, 255]; the object's brightness is then
            drawn mostly from the other half, so it stands out without being trivially flat.
        elongation: > 1 gives a bar (used for occluders).
    """
    size_px = max(int(size_px), 8)
    if colour == "red":
        hue, sat = rng.uniform(-0.03, 0.03), (0.65, 0.95)
    elif colour == "blue":
        hue, sat = rng.uniform(0.58, 0.68), (0.65, 0.95)
    else:
        hue, sat = rng.random(), (0.15, 0.85)
    if contrast_to is not None and rng.random() < 0.75:
        value = (0.55, 0.95) if contrast_to < 128 else (0.25, 0.6)
    else:
        value = (0.25, 0.95)
    light = random_colour(rng, hue, sat, value)
    dark = light * rng.uniform(0.35, 0.7)
    if colour == "any" and rng.random() < 0.5:
        dark = random_colour(rng, None, (0.1, 0.8), (0.15, 0.6))
    t = _pattern(rng, size_px)[..., None]
    rgb = dark * (1 - t) + light * t
    alpha = blob_mask(rng, size_px, elongation)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=2).astype(np.float32)
