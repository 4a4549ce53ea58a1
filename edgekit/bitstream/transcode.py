"""Re-encode any video FFmpeg reads into the CoViAR/DMC-Net training format.

MPEG-4 Part 2 with a fixed GOP and no B-frames at 340x256 is what CoViAR and DMC-Net train on;
H.264 is also offered. Encoder settings come from :mod:`edgekit.bitstream.encode` (fixed GOP,
references that are the nearest I/P frames, which is what edgekit.bitstream assumes for B-frames).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av

from edgekit._fileio import atomic_output
from edgekit.bitstream.encode import CONTAINERS, EncoderSettings, add_video_stream, open_output
from edgekit.bitstream.source import _short, open_container
from edgekit.errors import (ConfigError, EmptySourceError, SourceError, SourceTimeoutError, check_output_name,
                            output_error)

# raw elementary-stream muxers take one codec only; the other containers take both
_RAW_STREAM_CODECS = {"m4v": "mpeg4", "h264": "h264"}


def output_format(path: str | os.PathLike, codec: str, container: str | None = None) -> str:
    """The FFmpeg muxer that writes ``codec`` to ``path`` (from its extension, or ``container``).

    Raises ConfigError, up front, for an extension edgekit does not write (``.webm``) or a pair that
    cannot hold the codec (MPEG-4 Part 2 in ``.h264``), listing what works.
    """
    if container is None:
        extension = os.path.splitext(os.fspath(path))[1].lower()
        container = CONTAINERS.get(extension)
        if container is None:
            raise ConfigError(f"cannot write {extension or 'a file without an extension'} ({os.fspath(path)}): "
                              f"use one of {', '.join(CONTAINERS)} (.m4v holds MPEG-4 Part 2 only, .h264/.264 "
                              "H.264 only)")
    wanted = _RAW_STREAM_CODECS.get(container)
    if wanted is not None and wanted != codec:
        raise ConfigError(f"a .{'m4v' if container == 'm4v' else 'h264'} file holds {wanted} only, not {codec}: "
                          f"use codec {wanted!r}, or a container for both (.mp4, .mkv, .avi, .mov)")
    return container


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
    """Re-encode ``src`` into ``dst`` (container from the extension: .mp4, .mkv, .avi, .mov, .m4v, .h264).

    size: (width, height) to scale to, or None to keep the source size. MPEG-4 needs even sizes.
    fps: output frame rate (frames are re-timed, not dropped), default the source's.
    qscale: MPEG-4's fixed quantiser (1 best .. 31); crf: H.264's constant rate factor.
    progress: called with the number of frames written so far.
    The output is written to a temporary name beside ``dst`` and renamed when complete, so an
    interrupted run never leaves a half-written file under ``dst``. Raises SourceError subclasses
    for bad input, ConfigError for bad options (an extension that cannot hold ``codec`` included,
    before reading anything) and OutputError when ``dst`` cannot be written.
    """
    settings = EncoderSettings(codec, gop=gop, bframes=bframes, qscale=qscale, crf=crf)
    if size is not None and (len(size) != 2 or min(size) < 16 or size[0] % 2 or size[1] % 2):
        raise ConfigError(f"size must be (width, height), even and >= 16, got {size!r}")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps)
                            or fps <= 0):
        raise ConfigError(f"fps must be a number of frames per second > 0, got {fps!r}")
    dst = os.fspath(dst)
    muxer = output_format(dst, codec)  # before any work: a wrong extension is refused at once
    check_output_name(dst)
    container, desc = open_container(src, timeout_s=timeout_s)
    try:
        if not container.streams.video:
            raise EmptySourceError(f"{desc}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = size if size is not None else (stream.codec_context.width // 2 * 2,
                                                       stream.codec_context.height // 2 * 2)
        if width < 16 or height < 16:
            raise SourceError(f"{desc}: the video has no usable size ({width}x{height})")
        rate = Fraction(fps).limit_denominator(1001) if fps else (stream.average_rate or Fraction(25))
        try:
            written = _write(container, stream, dst, muxer, settings, width, height, rate, desc, progress)
        except OSError as err:  # the output: folder, permission, disk (the source's errors are SourceErrors)
            raise output_error(dst, err) from None
    finally:
        container.close()
    return TranscodeResult(dst, codec, width, height, written, gop, bframes)


def _write(container, stream, dst, muxer, settings, width, height, rate, desc, progress) -> int:
    """Decode ``stream``, re-encode it into ``dst`` atomically; returns the frames written."""
    written = 0
    with atomic_output(dst) as tmp:
        with open_output(tmp, settings, format=muxer) as out:
            ostream = add_video_stream(out, settings, width, height, rate)
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except SourceTimeoutError:
                    raise
                except (av.error.FFmpegError, OSError) as err:  # truncated input: keep what decoded
                    if written == 0:
                        raise SourceError(f"{desc}: cannot decode ({_short(err)}); the file may be truncated "
                                          "or damaged") from None
                    break
                for frame in _decode(stream, packet):
                    frame = frame.reformat(width=width, height=height, format="yuv420p")
                    frame.pts, frame.time_base = written, Fraction(1) / rate
                    out.mux(ostream.encode(frame))
                    written += 1
                    if progress:
                        progress(written)
            out.mux(ostream.encode(None))
        if written == 0:
            raise EmptySourceError(f"{desc}: no frames to transcode")
    return written


def _decode(stream, packet):
    try:
        return stream.codec_context.decode(packet)
    except (av.error.InvalidDataError, av.error.PatchWelcomeError):  # a damaged packet: skip it
        return []
