"""Encoding of rendered frames into an .mp4 with a real encoder through PyAV.

Two codecs, both with motion vectors FFmpeg can export:

- ``mpeg4``: MPEG-4 Part 2, GOP 12, no B-frames (I every 12 frames, P otherwise), fixed quantiser
  ``qscale`` 4, four motion vectors per macroblock allowed (``+mv4``: one vector per 8x8 block),
  scene-change I-frames disabled so the GOP is regular.
- ``h264``: libx264 ``preset=veryfast``, CRF 23, 2 B-frames without pyramid, 1 reference,
  keyint 12 without scene cut.

Encoders run single-threaded (the generator parallelises over clips) with ``bitexact`` flags, so
the same frames always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from edgekit.errors import ConfigError

GOP_FRAMES = 12
MPEG4_QSCALE = 4
H264_CRF = 23
H264_X264_PARAMS = f"bframes=2:b-pyramid=none:ref=1:keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0:threads=1"


def _add_stream(container: av.container.OutputContainer, codec: str, fps: int, width_px: int, height_px: int):
    if codec == "mpeg4":
        stream = container.add_stream("mpeg4", rate=fps, options={"sc_threshold": "1000000000", "flags": "+mv4+bitexact"})
        stream.codec_context.gop_size = GOP_FRAMES
        stream.codec_context.max_b_frames = 0
        stream.codec_context.qscale = MPEG4_QSCALE
    elif codec == "h264":
        stream = container.add_stream("libx264", rate=fps, options={
            "preset": "veryfast", "crf": str(H264_CRF), "x264-params": H264_X264_PARAMS})
    else:
        raise ConfigError(f"unknown codec {codec!r}; choose mpeg4 or h264")
    stream.width, stream.height, stream.pix_fmt = width_px, height_px, "yuv420p"
    stream.codec_context.thread_count = 1
    return stream


def encode_video(frames: np.ndarray, path: str | Path, codec: str, fps: int) -> None:
    """Encode ``frames`` uint8 (T, H, W, 3) RGB into an MP4 file at ``path`` (written in place;
    callers write to a temporary name and rename).

    Raises:
        ConfigError: unknown ``codec`` or frames that are not uint8 (T, H, W, 3) with even H, W.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ConfigError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    height_px, width_px = frames.shape[1:3]
    if width_px % 2 or height_px % 2:
        raise ConfigError(f"frame size {width_px}x{height_px} must be even for yuv420p")
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = _add_stream(container, codec, fps, width_px, height_px)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
