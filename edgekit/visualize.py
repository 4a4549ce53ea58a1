"""Pictures of side data: MV fields as colour-wheel flow images, residual magnitude, PNG output.

PNGs are encoded with FFmpeg's png encoder through PyAV, so no imaging library is needed.
"""

from __future__ import annotations

import os

import av
import numpy as np

from edgekit._fileio import atomic_write
from edgekit.errors import check_output_name, output_error


def flow_to_rgb(flow: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """uint8 (h, w, 3) colour-wheel image of a (2, h, w) vector field (Middlebury convention).

    Hue is the direction (right = red, down = yellow-green, left = cyan, up = blue/purple),
    saturation the magnitude relative to ``max_px`` (default: the field's 99th percentile).
    """
    dx, dy = flow[0].astype(np.float32), flow[1].astype(np.float32)
    mag = np.hypot(dx, dy)
    if max_px is None:
        max_px = float(np.percentile(mag, 99)) if mag.any() else 1.0
    sat = np.clip(mag / max(max_px, 1e-6), 0, 1)
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0  # [0, 1)
    h6 = hue * 6
    i = np.floor(h6).astype(int) % 6
    f = h6 - np.floor(h6)
    v = np.ones_like(sat)
    p, q, t = v * (1 - sat), v * (1 - sat * f), v * (1 - sat * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def residual_to_rgb(residual: np.ndarray, max_abs: float = 48.0) -> np.ndarray:
    """uint8 (H, W, 3) grey image of the residual magnitude (luma channel), bright = large."""
    mag = np.abs(residual[0].astype(np.float32))
    g = (np.clip(mag / max_abs, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def upsample_cells(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a per-8x8-block image to (h, w)."""
    return np.repeat(np.repeat(img, 8, axis=0), 8, axis=1)[:h, :w]


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) image as PNG (atomically: to a temp name, then renamed).
    Raises OutputError when ``path`` cannot be written."""
    check_output_name(path)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    packets = codec.encode(frame) + codec.encode(None)
    try:
        atomic_write(path, b"".join(bytes(p) for p in packets))
    except OSError as err:
        raise output_error(path, err) from None


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Return ``img`` with a dark caption bar on top holding ``text`` in a 5x7 pixel font."""
    bar = np.full((12, img.shape[1], 3), 24, np.uint8)
    x = 3
    for ch in text.upper():
        glyph = _FONT.get(ch)
        if glyph is not None and x + 5 < img.shape[1]:
            bits = np.array([[(row >> (4 - c)) & 1 for c in range(5)] for row in glyph], bool)
            bar[2:9, x:x + 5][bits] = 230
        x += 6
    return np.concatenate([bar, img], axis=0)


# 5x7 glyphs, one int per row (5 bits), for captions: digits, capitals and a few signs
_FONT = {
    "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14], "2": [14, 17, 1, 2, 4, 8, 31],
    "3": [30, 1, 1, 14, 1, 1, 30], "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8], "8": [14, 17, 17, 14, 17, 17, 14],
    "9": [14, 17, 17, 15, 1, 2, 12], "A": [14, 17, 17, 31, 17, 17, 17], "B": [30, 17, 17, 30, 17, 17, 30],
    "C": [14, 17, 16, 16, 16, 17, 14], "D": [30, 17, 17, 17, 17, 17, 30], "E": [31, 16, 16, 30, 16, 16, 31],
    "F": [31, 16, 16, 30, 16, 16, 16], "G": [14, 17, 16, 23, 17, 17, 15], "H": [17, 17, 17, 31, 17, 17, 17],
    "I": [14, 4, 4, 4, 4, 4, 14], "J": [7, 2, 2, 2, 2, 18, 12], "K": [17, 18, 20, 24, 20, 18, 17],
    "L": [16, 16, 16, 16, 16, 16, 31], "M": [17, 27, 21, 21, 17, 17, 17], "N": [17, 17, 25, 21, 19, 17, 17],
    "O": [14, 17, 17, 17, 17, 17, 14], "P": [30, 17, 17, 30, 16, 16, 16], "Q": [14, 17, 17, 17, 21, 18, 13],
    "R": [30, 17, 17, 30, 20, 18, 17], "S": [15, 16, 16, 14, 1, 1, 30], "T": [31, 4, 4, 4, 4, 4, 4],
    "U": [17, 17, 17, 17, 17, 17, 14], "V": [17, 17, 17, 17, 17, 10, 4], "W": [17, 17, 17, 21, 21, 21, 10],
    "X": [17, 17, 10, 4, 10, 17, 17], "Y": [17, 17, 10, 4, 4, 4, 4], "Z": [31, 1, 2, 4, 8, 16, 31],
    " ": [0] * 7, ".": [0, 0, 0, 0, 0, 12, 12], "-": [0, 0, 0, 31, 0, 0, 0], ":": [0, 12, 12, 0, 12, 12, 0],
    "=": [0, 0, 31, 0, 31, 0, 0], "/": [1, 1, 2, 4, 8, 16, 16], "+": [0, 4, 4, 31, 4, 4, 0],
}
