"""Deterministic benchmark clips, encoded with PyAV (FFmpeg's own encoders) and cached on disk.

A clip is textured objects moving over a textured background that pans slowly, so motion
estimation finds real, varied motion. Textures are smooth (random values on coarse grids,
bilinearly interpolated, mostly brightness): block matching can track them, as it tracks natural images.

>>> spec = ClipSpec("mpeg4", 340, 256, frames=600)
>>> path = encode_clip(spec, "/tmp/edgekit-bench")   # re-used when already there
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from edgekit._fileio import atomic_output
from edgekit.bitstream.encode import EncoderSettings, add_video_stream, container_format, encoder_arguments, open_output

# bump when the rendering or the encoding changes, so cached clips are re-encoded (2: qscale is really
# applied; version 1 clips were coded at FFmpeg's default 200 kb/s whatever qscale said)
_VERSION = 2


@dataclass(frozen=True)
class ClipSpec:
    """What to encode. ``codec`` is "mpeg4" (MPEG-4 Part 2) or "h264" (libx264)."""

    codec: str
    width: int
    height: int
    frames: int
    gop: int = 12
    bframes: int = 0
    qscale: int = 3              # mpeg4 only: fixed quantiser
    crf: int = 23                # h264 only
    preset: str = "veryfast"     # h264 only
    objects: int = 4
    fps: int = 25
    seed: int = 0

    def encoder_settings(self) -> EncoderSettings:
        return EncoderSettings(self.codec, gop=self.gop, bframes=self.bframes, qscale=self.qscale, crf=self.crf,
                               preset=self.preset)

    def key(self) -> str:
        text = json.dumps({**asdict(self), "version": _VERSION, "av": av.__version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> dict:
        """The spec plus the exact encoder settings, for the benchmark report."""
        encoder, options, attributes = encoder_arguments(self.encoder_settings())
        return {**asdict(self), "encoder": encoder, "encoder_options": options, "encoder_attributes": attributes}


def smooth_texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """float32 (h, w, 3): random values in [0, 1) on a grid of ``cell`` pixels, bilinearly interpolated."""
    gh, gw = h // cell + 2, w // cell + 2
    coarse = rng.random((gh, gw, 3), dtype=np.float32)
    ys = np.linspace(0, gh - 1.001, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1.001, w, dtype=np.float32)
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    # separable: interpolate the rows first (small), then the columns
    rows = coarse[y0] * (1 - fy) + coarse[y0 + 1] * fy                  # (h, gw, 3)
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx                # (h, w, 3)


def natural_texture(rng: np.random.Generator, h: int, w: int, cell: int, tint) -> np.ndarray:
    """uint8 (h, w, 3): two octaves of brightness detail over a low-saturation colour field.

    Like natural images, most of the variation is in brightness, little in colour.
    """
    detail = smooth_texture(rng, h, w, cell)[..., :1]                   # fine brightness
    shape = smooth_texture(rng, h, w, cell * 4)                         # large shapes and colour
    luma = 0.55 * detail + 0.45 * shape[..., 1:2]
    colour = np.asarray(tint, np.float32) + 0.25 * (shape - 0.5)
    return np.clip(40 + 190 * luma * colour, 0, 255).astype(np.uint8)


def render_frames(spec: ClipSpec):
    """Yield the clip's frames as uint8 (H, W, 3) RGB arrays, deterministically from ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    scale = h / 256  # texture detail and speeds follow the picture size
    pan_amp = max(2, round(12 * scale))           # background pans back and forth by this much
    margin = pan_amp + 2
    bg = natural_texture(rng, h + 2 * margin, w + 2 * margin, cell=max(6, round(10 * scale)),
                         tint=(0.9, 1.0, 0.8))
    objects = []
    for _ in range(spec.objects):
        ow = int(rng.integers(round(0.15 * h), round(0.3 * h)))
        oh = int(rng.integers(round(0.15 * h), round(0.3 * h)))
        tex = natural_texture(rng, oh, ow, cell=max(4, round(6 * scale)), tint=rng.uniform(0.6, 1.2, 3))
        x, y = float(rng.uniform(0, w - ow)), float(rng.uniform(0, h - oh))
        speed = max(1.0, 3.0 * scale)
        vx, vy = (float(v) for v in rng.uniform(-speed, speed, 2))
        objects.append([tex, x, y, vx, vy])
    for i in range(spec.frames):
        # slow elliptical pan of the camera, whole pixels (content moves by the offset change)
        ox = margin + round(pan_amp * math.sin(2 * math.pi * i / 90))
        oy = margin + round(pan_amp * 0.5 * math.sin(2 * math.pi * i / 130))
        img = bg[oy:oy + h, ox:ox + w].copy()
        for obj in objects:
            tex, x, y, vx, vy = obj
            oh, ow = tex.shape[:2]
            xi, yi = int(round(x)), int(round(y))
            img[yi:yi + oh, xi:xi + ow] = tex
            # move, bouncing off the picture borders
            x, y = x + vx, y + vy
            if x < 0 or x > w - ow:
                vx, x = -vx, min(max(x, 0.0), float(w - ow))
            if y < 0 or y > h - oh:
                vy, y = -vy, min(max(y, 0.0), float(h - oh))
            obj[1:] = [x, y, vx, vy]
        yield img


def encode_clip(spec: ClipSpec, workdir: str | os.PathLike) -> Path:
    """Encode ``spec`` into ``workdir`` (once: an existing file with the same spec is re-used).

    Written to a temporary name, then renamed, so an interrupted run never leaves a half clip.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{spec.codec}_{spec.width}x{spec.height}_{spec.frames}f_{spec.key()}.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    settings = spec.encoder_settings()
    with atomic_output(path) as tmp, open_output(tmp, settings, format=container_format(path)) as out:
        stream = add_video_stream(out, settings, spec.width, spec.height, spec.fps)
        for img in render_frames(spec):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path
