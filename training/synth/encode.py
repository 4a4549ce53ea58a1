"""Encoding of rendered frames into an .mp4 with a real encoder through PyAV.

Two codecs, both with motion vectors FFmpeg can export (settings in :data:`SETTINGS`, turned into
encoder options by :mod:`edgekit.bitstream.encode`):

- ``mpeg4``: MPEG-4 Part 2, GOP 12, no B-frames (I every 12 frames, P otherwise), fixed quantiser
  2, four motion vectors per macroblock allowed (``+mv4``: one vector per 8x8 block),
  scene-change I-frames disabled so the GOP is regular.
- ``h264``: x264 ``preset=veryfast``, CRF 23, 2 B-frames at fixed places without pyramid,
  1 reference, keyint 12 without scene cut.

Encoders run single-threaded (the generator parallelises over clips) with ``bitexact`` flags, so
the same frames always give the same bytes.

Broad presets and the held-out renderer draw a :class:`ClipEncoding` per clip instead (codec, GOP,
B-frames, quantiser or CRF, x264 preset and profile, scene cuts, frame rate); :func:`encode_frames`
encodes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from edgekit.bitstream.encode import EncoderSettings, add_video_stream, open_output
from edgekit.errors import ConfigError

GOP_FRAMES = 12
SETTINGS = {
    # quantiser 2: what these clips were always coded at (an earlier "qscale 4" set only FFmpeg's
    # fixed-quantiser flag, which falls back to qmin = 2), so the datasets and the models trained on them stay valid
    "mpeg4": EncoderSettings("mpeg4", gop=GOP_FRAMES, bframes=0, qscale=2, vectors_per_8x8_block=True,
                             threads=1, bitexact=True),
    "h264": EncoderSettings("h264", gop=GOP_FRAMES, bframes=2, crf=23, preset="veryfast", threads=1, bitexact=True),
}


@dataclass(frozen=True)
class ClipEncoding:
    """How one clip is encoded: ``settings`` (codec, GOP, B-frames, quantiser/CRF, x264 preset and
    profile, scene cuts) and the frame rate ``fps``.

    Raises ConfigError for a frame rate that is not positive.
    """

    settings: EncoderSettings
    fps: int

    @property
    def profile(self) -> str | None:
        return self.settings.profile

    def __post_init__(self):
        if self.fps <= 0:
            raise ConfigError(f"fps must be positive, got {self.fps}")

    def to_metadata(self) -> dict:
        """JSON-ready description for the clip's metadata (``encoder``)."""
        s = self.settings
        quality = {"qscale": s.qscale} if s.codec == "mpeg4" else {"crf": s.crf, "preset": s.preset,
                                                                    "profile": self.profile}
        return {"codec": s.codec, "gop": s.gop, "bframes": s.bframes, "scene_cut": s.scene_cut,
                "vectors_per_8x8_block": s.vectors_per_8x8_block, **quality}


def encode_video(frames: np.ndarray, path: str | Path, codec: str, fps: int) -> None:
    """Encode ``frames`` uint8 (T, H, W, 3) RGB into an MP4 file at ``path`` with the fixed settings of
    ``codec`` (:data:`SETTINGS`; written in place: callers write to a temporary name and rename).

    Raises:
        ConfigError: unknown ``codec`` or frames that are not uint8 (T, H, W, 3) with even H, W.
    """
    if codec not in SETTINGS:
        raise ConfigError(f"unknown codec {codec!r}; choose mpeg4 or h264")
    encode_frames(frames, path, ClipEncoding(SETTINGS[codec], fps))


def encode_frames(frames: np.ndarray, path: str | Path, encoding: ClipEncoding) -> None:
    """Encode ``frames`` uint8 (T, H, W, 3) RGB into an MP4 file at ``path`` as ``encoding`` says.

    Raises:
        ConfigError: frames that are not uint8 (T, H, W, 3) with even H, W.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ConfigError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    height_px, width_px = frames.shape[1:3]
    if width_px % 2 or height_px % 2:
        raise ConfigError(f"frame size {width_px}x{height_px} must be even for yuv420p")
    settings = encoding.settings
    with open_output(path, settings, format="mp4") as container:
        stream = add_video_stream(container, settings, width_px, height_px, encoding.fps)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
