"""Encoder settings: the one place that turns "MPEG-4 Part 2 or H.264, this GOP, these B-frames" into
FFmpeg encoder options. Every clip edgekit, training, the benchmarks and the tests encode goes
through :func:`encoder_arguments`.

    settings = EncoderSettings("h264", gop=12, bframes=2, crf=18)
    with open_output("clip.mp4", settings) as out:
        stream = add_video_stream(out, settings, 320, 240, rate=25)
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))

What :mod:`edgekit.bitstream` assumes of a B-frame holds for every clip encoded here: x264 gets
``ref=1`` and no B-pyramid, so a P-frame references the nearest earlier I/P frame and a B-frame the
nearest I/P frame before it (its past vectors) and after it (its future vectors), never another
B-frame; ``b-adapt=0`` places the B-frames at fixed positions (``IBBPBBPBBPBP`` for GOP 12 and 2
B-frames), so a frame's kind and reference distance follow from its place in the GOP.

Two FFmpeg traps this module avoids, both silent:
- MPEG-4's ``qscale`` is not an encoder option: ``options={"qscale": "3"}`` is ignored and the clip
  is coded at FFmpeg's default 200 kb/s; and the library takes a fixed quantiser from each
  *frame's* ``quality``, which PyAV leaves at 0, so the ``qscale`` flag alone codes at ``qmin``.
  A fixed quantiser is therefore ``qmin = qmax = qscale``.
- x264's scene-cut detection inserts I-frames where the content changes, which breaks a fixed GOP
  unless turned off (``scenecut=0``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from edgekit.errors import ConfigError

CODECS = {"mpeg4": "mpeg4", "h264": "libx264"}  # our codec name -> FFmpeg encoder
FF_QP2LAMBDA = 118  # FFmpeg's quantiser -> lambda scale (global_quality is in lambda units)
X264_SCENECUT = 40  # x264's default scene-cut threshold, used when scene cuts are wanted
CONTAINERS = {".mp4": "mp4", ".m4v": "m4v", ".h264": "h264", ".264": "h264", ".avi": "avi", ".mkv": "matroska",
              ".mov": "mov"}  # file extension -> FFmpeg muxer (.m4v and .h264: raw elementary streams)


H264_PROFILES = ("baseline", "main", "high")


@dataclass(frozen=True)
class EncoderSettings:
    """How a clip is encoded.

    codec: "mpeg4" (MPEG-4 Part 2, FFmpeg's encoder) or "h264" (x264).
    gop: frames from one I-frame to the next (a fixed GOP unless ``scene_cut``).
    bframes: B-frames between two anchors (I/P frames), placed at fixed positions.
    qscale: mpeg4 only, fixed quantiser 1 (best) .. 31.
    crf: h264 only, x264's constant rate factor 0 (lossless) .. 51.
    preset, tune: h264 only, x264's speed preset and tuning (e.g. "zerolatency" for a live re-encode).
    profile: h264 only, the H.264 profile ("baseline", "main", "high"; None: x264's choice);
        baseline has no B-frames.
    scene_cut: let the encoder start a new GOP (an IDR frame) where the content changes.
    vectors_per_8x8_block: mpeg4 only, allow four vectors per macroblock (``+mv4``): the finest
        motion the MV grid (one vector per 8x8 block) can carry.
    threads: encoder threads, 0 = the encoder's choice (1 when clips are encoded in parallel).
    bitexact: FFmpeg's version strings left out of the MPEG-4 headers and the container, so the
        same frames always give the same bytes (x264 does so with ``threads=1``).

    Raises :class:`ConfigError` for an unknown codec or a value out of range.
    """

    codec: str = "mpeg4"
    gop: int = 12
    bframes: int = 0
    qscale: int = 3
    crf: int = 23
    preset: str = "veryfast"
    tune: str | None = None
    profile: str | None = None
    scene_cut: bool = False
    vectors_per_8x8_block: bool = False
    threads: int = 0
    bitexact: bool = False

    def __post_init__(self):
        if self.codec not in CODECS:
            raise ConfigError(f"codec must be one of {sorted(CODECS)}, got {self.codec!r}")
        if self.gop < 1 or self.bframes < 0 or self.bframes >= self.gop:
            raise ConfigError(f"need gop >= 1 and 0 <= bframes < gop, got gop={self.gop}, bframes={self.bframes}")
        if not 1 <= self.qscale <= 31:
            raise ConfigError(f"qscale must be 1..31, got {self.qscale}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"crf must be 0..51, got {self.crf}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.profile is not None:
            if self.codec != "h264" or self.profile not in H264_PROFILES:
                raise ConfigError(f"profile {self.profile!r} needs codec h264 and one of {', '.join(H264_PROFILES)}")
            if self.profile == "baseline" and self.bframes:
                raise ConfigError("the baseline profile has no B-frames; use bframes=0 or profile main/high")


def encoder_arguments(settings: EncoderSettings) -> tuple[str, dict[str, str], dict[str, int]]:
    """(FFmpeg encoder name, encoder options, codec-context attributes) for ``settings``."""
    attributes = {"gop_size": settings.gop, "max_b_frames": settings.bframes}
    if settings.threads:
        attributes["thread_count"] = settings.threads
    if settings.codec == "mpeg4":
        flags = "+qscale" + ("+mv4" if settings.vectors_per_8x8_block else "") + ("+bitexact" if settings.bitexact else "")
        q = str(settings.qscale)
        options = {"flags": flags, "qmin": q, "qmax": q, "global_quality": str(settings.qscale * FF_QP2LAMBDA)}
        if not settings.scene_cut:
            options["sc_threshold"] = "1000000000"
        return CODECS["mpeg4"], options, attributes
    # min-keyint=1 with scene cuts: a cut always starts a new GOP (an IDR frame), never a mid-GOP I-frame.
    # b-adapt=0 everywhere (the synthetic benchmark and transcode used to leave it on): with it, x264's
    # lookahead places B-frames by content, often none at all, so "bframes=2" would not mean IBBP...
    params = (f"keyint={settings.gop}:min-keyint={1 if settings.scene_cut else settings.gop}:"
              f"scenecut={X264_SCENECUT if settings.scene_cut else 0}:bframes={settings.bframes}:"
              "b-adapt=0:b-pyramid=none:ref=1")
    options = {"preset": settings.preset, "crf": str(settings.crf), "x264-params": params}
    if settings.tune:
        options["tune"] = settings.tune
    if settings.profile:
        options["profile"] = settings.profile
    return CODECS["h264"], options, attributes


def container_format(path: str | os.PathLike) -> str | None:
    """The FFmpeg muxer for ``path``'s extension (None: let FFmpeg guess from the name)."""
    return CONTAINERS.get(os.path.splitext(os.fspath(path))[1].lower())


def open_output(path: str | os.PathLike, settings: EncoderSettings, *, format: str | None = None):
    """``av.open(path, "w", format=format)`` with the container options ``settings`` needs (``bitexact``).
    ``format``: the muxer, e.g. ``container_format(destination)`` when ``path`` is a temporary name."""
    options = {"fflags": "+bitexact"} if settings.bitexact else {}
    return av.open(os.fspath(path), "w", format=format, options=options)


def add_video_stream(container, settings: EncoderSettings, width: int, height: int, rate) -> av.VideoStream:
    """A yuv420p video stream of ``container`` encoding ``width`` x ``height`` frames at ``rate``
    frames/s (int or Fraction) as ``settings`` says. Raises :class:`ConfigError` for odd sizes."""
    if width % 2 or height % 2:
        raise ConfigError(f"frame size {width}x{height} must be even for yuv420p")
    name, options, attributes = encoder_arguments(settings)
    stream = container.add_stream(name, rate=rate)
    _configure(stream.codec_context, attributes, width, height)
    stream.options = options
    return stream


def create_encoder(settings: EncoderSettings, width: int, height: int, rate=None) -> av.CodecContext:
    """A bare encoder context (no container), e.g. to re-encode frames in memory; ``rate`` defaults to 25."""
    name, options, attributes = encoder_arguments(settings)
    rate = Fraction(rate or 25)
    encoder = av.CodecContext.create(name, "w")
    _configure(encoder, attributes, width, height)
    encoder.time_base, encoder.framerate = 1 / rate, rate
    encoder.options = options
    return encoder


def _configure(context, attributes: dict, width: int, height: int) -> None:
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    for key, value in attributes.items():
        setattr(context, key, value)
