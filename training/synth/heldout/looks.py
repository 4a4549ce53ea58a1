"""Held-out appearance: vector sprites and backdrops drawn with OpenCV primitives.

A :class:`Sprite` is a list of filled polygons in its own frame (unit radius: every vertex within
distance 1 of the origin), the first one the body; :func:`draw_sprite` rasterises it at any pose.
Backdrops are uint8 RGB images (H, W, 3). Nothing here shares code with the training renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BACKDROPS = ("dead_leaves", "bricks", "plaid", "wood")
BODIES = ("ngon", "ellipse", "kite", "cross")
SUBPIXEL_BITS = 4  # cv2.fillPoly shift: vertices at 1/16 px


@dataclass(frozen=True)
class Sprite:
    """``polygons``: float64 (N_i, 2) vertex arrays in sprite units (x right, y down), back to front,
    ``colours``: one RGB uint8 triple each; ``polygons[0]`` is the body (its outline is the sprite's
    silhouette). ``kind`` names the body."""

    polygons: tuple[np.ndarray, ...]
    colours: tuple[tuple[int, int, int], ...]
    kind: str


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi + 1, 3))


def _ellipse(cx: float, cy: float, rx: float, ry: float, tilt: float, n: int = 40) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(a), ry * np.sin(a)
    c, s = math.cos(tilt), math.sin(tilt)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _body(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "ngon":
        n = int(rng.integers(3, 9))
        a = np.sort(rng.uniform(0, 2 * np.pi, n)) if rng.random() < 0.5 else \
            np.arange(n) * 2 * np.pi / n + rng.uniform(0, 1)
        r = rng.uniform(0.7, 1.0, n)
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    if kind == "ellipse":
        return _ellipse(0, 0, 1.0, rng.uniform(0.5, 1.0), rng.uniform(0, np.pi))
    if kind == "kite":
        return np.array([[0, -1.0], [rng.uniform(0.4, 0.8), -0.1], [0, 1.0], [-rng.uniform(0.3, 0.6), 0.2]])
    if kind == "cross":
        w = rng.uniform(0.25, 0.45)
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w],
                         [-1, -w], [-w, -w]], np.float64) * 0.95
    raise KeyError(f"unknown sprite body {kind!r}; one of {BODIES}")


def make_sprite(rng: np.random.Generator, kind: str | None = None, decorations: tuple[int, int] = (4, 14)) -> Sprite:
    """A sprite with a body of ``kind`` (:data:`BODIES`, random when None) and a random number of
    decorations in ``decorations`` (inclusive range): small ellipses, triangles and bars inside the
    body, so the sprite has edges inside its outline and no rotational symmetry."""
    kind = kind or BODIES[int(rng.integers(len(BODIES)))]
    body = _body(rng, kind)
    polygons, colours = [body], [_colour(rng)]
    for _ in range(int(rng.integers(decorations[0], decorations[1] + 1))):
        cx, cy = rng.uniform(-0.45, 0.45, 2)
        size = rng.uniform(0.08, 0.3)
        shape = rng.integers(3)
        if shape == 0:
            poly = _ellipse(cx, cy, size, size * rng.uniform(0.4, 1), rng.uniform(0, np.pi), 16)
        elif shape == 1:
            a = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2])
            poly = np.stack([cx + size * np.cos(a), cy + size * np.sin(a)], axis=1)
        else:
            a = rng.uniform(0, np.pi)
            d, n = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
            poly = np.array([[cx, cy]]) + np.array([d * 2 * size + n * 0.05, d * 2 * size - n * 0.05,
                                                    -d * 2 * size - n * 0.05, -d * 2 * size + n * 0.05])
        polygons.append(poly)
        colours.append(_colour(rng))
    return Sprite(tuple(polygons), tuple(colours), kind)


def to_image(points: np.ndarray, centre_px: np.ndarray, radius_px: float, angle_rad: float) -> np.ndarray:
    """Sprite units -> image pixels: rotate by ``angle_rad`` (clockwise as displayed), scale by
    ``radius_px``, move to ``centre_px`` (x, y). float64 (N, 2)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    rotated = np.stack([c * points[:, 0] - s * points[:, 1], s * points[:, 0] + c * points[:, 1]], axis=1)
    return centre_px + radius_px * rotated


def draw_sprite(image: np.ndarray, labels: np.ndarray, label: int, sprite: Sprite, centre_px: np.ndarray,
                radius_px: float, angle_rad: float) -> None:
    """Draw ``sprite`` onto ``image`` uint8 (H, W, 3) in place, anti-aliased, and write ``label`` into
    ``labels`` uint8 (H, W) where its body covers the pixel centre."""
    fixed = float(1 << SUBPIXEL_BITS)
    for k, (poly, colour) in enumerate(zip(sprite.polygons, sprite.colours)):
        pts = np.round(to_image(poly, centre_px, radius_px, angle_rad) * fixed).astype(np.int32)
        cv2.fillPoly(image, [pts], colour, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
        if k == 0:
            cv2.fillPoly(labels, [pts], int(label), lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)


def backdrop(rng: np.random.Generator, kind: str, height_px: int, width_px: int) -> np.ndarray:
    """A backdrop of ``kind`` (:data:`BACKDROPS`), uint8 (H, W, 3)."""
    image = np.empty((height_px, width_px, 3), np.uint8)
    image[:] = _colour(rng, 60, 200)
    short = min(height_px, width_px)
    if kind == "dead_leaves":  # occluding discs and boxes of power-law sizes: natural-image statistics
        for _ in range(int(height_px * width_px / (short * 0.9) ** 2 * 260)):
            r = short * 0.25 * rng.uniform(0.02, 1.0) ** 2.2 + 1.5
            x, y = rng.uniform(-r, width_px + r), rng.uniform(-r, height_px + r)
            if rng.random() < 0.6:
                cv2.circle(image, (int(x * 16), int(y * 16)), int(r * 16), _colour(rng), -1, cv2.LINE_AA, 4)
            else:
                cv2.rectangle(image, (int(x - r), int(y - r)), (int(x + r), int(y + r * rng.uniform(0.3, 1))),
                              _colour(rng), -1)
    elif kind == "bricks":
        bh = int(rng.uniform(0.04, 0.12) * short) + 4
        bw = int(bh * rng.uniform(1.6, 3.0))
        mortar = _colour(rng, 150, 230)
        image[:] = mortar
        base = np.array(_colour(rng, 60, 180), np.int32)
        for row, y in enumerate(range(0, height_px, bh)):
            offset = (row % 2) * bw // 2
            for x in range(-offset, width_px, bw):
                tone = np.clip(base + rng.integers(-35, 36, 3), 0, 255)
                cv2.rectangle(image, (x + 1, y + 1), (x + bw - 2, y + bh - 2), tuple(int(v) for v in tone), -1)
    elif kind == "plaid":
        for _ in range(int(rng.integers(12, 30))):
            colour = _colour(rng)
            thick = int(rng.integers(1, max(2, short // 25)))
            if rng.random() < 0.5:
                x = int(rng.integers(width_px))
                cv2.line(image, (x, 0), (x, height_px), colour, thick)
            else:
                y = int(rng.integers(height_px))
                cv2.line(image, (0, y), (width_px, y), colour, thick)
    elif kind == "wood":
        cy, cx = rng.uniform(-0.5, 1.5) * height_px, rng.uniform(-0.5, 1.5) * width_px
        yy, xx = np.mgrid[0:height_px, 0:width_px].astype(np.float32)
        wobble = 4 * np.sin(yy / rng.uniform(7, 20)) + 3 * np.sin(xx / rng.uniform(9, 25))
        rings = 0.5 + 0.5 * np.sin((np.hypot(yy - cy, xx - cx) + wobble) / rng.uniform(2.0, 5.0))
        a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
        image[:] = np.clip(a * rings[..., None] + b * (1 - rings[..., None]), 0, 255).astype(np.uint8)
    else:
        raise KeyError(f"unknown backdrop {kind!r}; one of {BACKDROPS}")
    return image
