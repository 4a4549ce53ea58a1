"""Re-encode any video FFmpeg reads into the CoViAR/DMC-Net training format.

MPEG-4 Part 2 with a fixed GOP and no B-frames at 340x256 is what CoViAR and DMC-Net train on;
H.264 is also offered. Encoder settings come from :mod:`edgekit.bitstream.encode` (fixed GOP,
references that are the nearest I/P frames, which is what edgekit.bitstream assumes for B-frames).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av

from edgekit._fileio import atomic_output
from edgekit.bitstream.encode import EncoderSettings, add_video_stream, container_format, open_output
from edgekit.bitstream.source import _short, open_container
from edgekit.errors import ConfigError, EmptySourceError, SourceError


@dataclass(frozen=True)
class TranscodeResult:
    path: str
    codec: str
    width: int
    height: int
    frames: int
    gop: int
    bframes: int


def transcode(src, dst: str | os.PathLike, codec: str = "mpeg4", gop: int = 12, bframes: int = 0,
              size: tuple[int, int] | None = (340, 256), *, fps: float | None = None, qscale: int = 3,
              crf: int = 20, timeout_s: float = 10.0,
              progress: Callable[[int], None] | None = None) -> TranscodeResult:
    """Re-encode ``src`` into ``dst`` (container from the extension: .mp4, .avi, .mkv, .m4v, .h264).

    size: (width, height) to scale to, or None to keep the source size. MPEG-4 needs even sizes.
    fps: output frame rate (frames are re-timed, not dropped), default the source's.
    qscale: MPEG-4's fixed quantiser (1 best .. 31); crf: H.264's constant rate factor.
    progress: called with the number of frames written so far.
    The output is written to a temporary name beside ``dst`` and renamed when complete, so an
    interrupted run never leaves a half-written file under ``dst``. Raises SourceError subclasses
    for bad input and ConfigError for bad options.
    """
    settings = EncoderSettings(codec, gop=gop, bframes=bframes, qscale=qscale, crf=crf)
    if size is not None and (len(size) != 2 or min(size) < 16 or size[0] % 2 or size[1] % 2):
        raise ConfigError(f"size must be (width, height), even and >= 16, got {size!r}")
    dst = os.fspath(dst)
    container, desc = open_container(src, timeout_s=timeout_s)
    try:
        if not container.streams.video:
            raise EmptySourceError(f"{desc}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = size if size is not None else (stream.codec_context.width // 2 * 2,
                                                       stream.codec_context.height // 2 * 2)
        rate = Fraction(fps).limit_denominator(1001) if fps else (stream.average_rate or Fraction(25))
        written = 0
        with atomic_output(dst) as tmp:
            with open_output(tmp, settings, format=container_format(dst)) as out:
                ostream = add_video_stream(out, settings, width, height, rate)
                try:
                    for packet in container.demux(stream):
                        for frame in _decode(stream, packet):
                            frame = frame.reformat(width=width, height=height, format="yuv420p")
                            frame.pts, frame.time_base = written, Fraction(1) / rate
                            out.mux(ostream.encode(frame))
                            written += 1
                            if progress:
                                progress(written)
                except av.error.FFmpegError as err:  # truncated input: keep what decoded
                    if written == 0:
                        raise SourceError(f"{desc}: cannot decode ({_short(err)})") from None
                out.mux(ostream.encode(None))
            if written == 0:
                raise EmptySourceError(f"{desc}: no frames to transcode")
    finally:
        container.close()
    return TranscodeResult(dst, codec, width, height, written, gop, bframes)


def _decode(stream, packet):
    try:
        return stream.codec_context.decode(packet)
    except av.error.InvalidDataError:
        return []
