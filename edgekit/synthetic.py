"""Synthetic clips with known motion, rendered with numpy and encoded with FFmpeg (no data download).

``make_clip`` draws a smooth-textured object moving a known number of pixels per frame over a
smooth-textured background (optionally panning), so a newcomer can try ``edgekit inspect`` at once
and the tests know what the motion vectors must be.
"""

from __future__ import annotations

import numbers
import os
from fractions import Fraction

import av
import numpy as np

from edgekit._fileio import atomic_output
from edgekit.bitstream.encode import EncoderSettings, add_video_stream, open_output
from edgekit.bitstream.transcode import output_format
from edgekit.errors import ConfigError, check_output_name, output_error

DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1), "none": (0, 0)}


def smooth_texture(rng: np.random.Generator, h: int, w: int, cell: int = 8) -> np.ndarray:
    """uint8 (h, w, 3): random colours on a grid of ``cell`` px, bilinearly interpolated.

    Smooth enough for block motion estimation to lock on, textured enough to be unambiguous."""
    gh, gw = h // cell + 2, w // cell + 2
    coarse = rng.integers(30, 226, (gh, gw, 3)).astype(np.float32)
    ys, xs = np.linspace(0, gh - 1.001, h), np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.uint8)


def render_frames(size=(320, 240), frames=24, motion=(4, -2), square=64, start=None, pan=(0, 0), seed=0):
    """Yield (frame_index, uint8 (H, W, 3)) of a square moving ``motion`` px/frame over a background
    shifting ``pan`` px/frame. The square's top-left at frame i is ``start + i * motion``."""
    w, h = size
    rng = np.random.default_rng(seed)
    margin = 8 + frames * max(abs(pan[0]), abs(pan[1]), 1)
    bg = smooth_texture(rng, h + 2 * margin, w + 2 * margin)
    obj = smooth_texture(rng, square, square, cell=6)
    if start is None:
        start = (w // 2 - square // 2 - motion[0] * frames // 2, h // 2 - square // 2 - motion[1] * frames // 2)
    for i in range(frames):
        oy, ox = margin - pan[1] * i, margin - pan[0] * i  # content moves by +pan
        img = bg[oy:oy + h, ox:ox + w].copy()
        x, y = start[0] + motion[0] * i, start[1] + motion[1] * i
        ys, xs = slice(max(y, 0), min(y + square, h)), slice(max(x, 0), min(x + square, w))
        if ys.start < ys.stop and xs.start < xs.stop:  # the square may have left the frame
            img[ys, xs] = obj[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
        yield i, img
    return start


def make_clip(path: str | os.PathLike, motion: str | tuple[int, int] = "right", *, speed_px: int = 4,
              codec: str = "mpeg4", size: tuple[int, int] = (320, 240), frames: int = 48, fps: int = 25,
              gop: int = 12, bframes: int = 0, square: int = 64, pan: tuple[int, int] = (0, 0),
              seed: int = 0, container: str | None = None) -> dict:
    """Encode a synthetic clip to ``path``; returns {"start", "motion", "square", "pan"} (pixels).

    motion: a direction name (right/left/up/down/none, at ``speed_px`` per frame) or (dx, dy).
    The container follows ``path``'s extension (or ``container``, an FFmpeg muxer name). Raises
    ConfigError for bad options (an extension that cannot hold ``codec`` included, before any work)
    and OutputError when ``path`` cannot be written; nothing is left half-written."""
    for name, value in (("frames", frames), ("fps", fps), ("square", square), ("gop", gop)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(motion, str):
        if motion not in DIRECTIONS:
            raise ConfigError(f"motion must be one of {sorted(DIRECTIONS)} or (dx, dy), got {motion!r}")
        motion = (DIRECTIONS[motion][0] * speed_px, DIRECTIONS[motion][1] * speed_px)
    settings = EncoderSettings(codec, gop=gop, bframes=bframes, qscale=2, crf=18)  # high quality: exact vectors
    w, h = size
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise ConfigError(f"size must be even and at least 16x16, got {w}x{h}")
    path = os.fspath(path)
    muxer = output_format(path, codec, container)
    check_output_name(path)
    gen = render_frames(size, frames, motion, square, None, pan, seed)
    try:
        with atomic_output(path) as tmp, open_output(tmp, settings, format=muxer) as out:
            stream = add_video_stream(out, settings, w, h, Fraction(fps))
            try:
                while True:
                    _, img = next(gen)
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            except StopIteration as stop:
                start = stop.value
            out.mux(stream.encode(None))
    except OSError as err:  # the folder is a file, not writable, the disk full, ...
        raise output_error(path, err) from None
    return {"start": start, "motion": tuple(motion), "square": square, "pan": tuple(pan)}
