"""The compressed-domain reader: decoded frames plus FFmpeg's motion vectors, as CompressedFrames.

See the package docstring (``edgekit.bitstream``) for the definitions of every array.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import numbers
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from edgekit.bitstream import _reference
from edgekit.bitstream.encode import EncoderSettings, create_encoder
from edgekit.bitstream.source import Reconnect, _short, is_finite_resource, open_container, reconnect_policy
from edgekit.errors import (ConfigError, DecodeError, EmptySourceError, ResolutionError, SourceError,
                            SourceTimeoutError,
                            UnsupportedCodecError)

from edgekit._native import extension as _native  # None when not built
from edgekit._native import native

# Decoders whose FFmpeg implementation exports AVMotionVector side data (flags2=+export_mvs).
MV_CODECS = {"h264", "mpeg4", "mpeg2video", "mpeg1video", "h263", "h263p", "flv", "msmpeg4v2", "msmpeg4v3"}
# Common codecs that decode fine but export no motion vectors in FFmpeg 8.
NO_MV_CODECS = {"hevc", "vp9", "av1", "vp8", "libdav1d", "libaom-av1", "mjpeg", "prores", "rawvideo", "theora"}
MAX_PIXELS = 8192 * 4352  # DCI 8K; anything larger is refused before allocating
# AVPictureType -> kind: I, P, B, S (MPEG-4 GMC, a P-frame), SI, SP, BI
_KINDS = {1: "I", 2: "P", 3: "B", 4: "P", 5: "I", 6: "P", 7: "B"}
_SAFE_PIX_FMTS = {"yuv420p", "yuvj420p"}
# A frame without side data: what a decoded frame's side-data container is re-pointed to once read
_NO_SIDE_DATA = av.VideoFrame()
# Yielded by Reader._frames() in place of a picture when a live source was reconnected: nothing is
# predicted across it (the reader ends the GOP in progress and waits for the next I-frame).
RECONNECTED = object()
# Passed down the packet pipeline when a network source ended, broke or stalled and is about to be
# reopened: the decoders hand out the pictures they still hold and reset (nothing outlives a connection).
_SOURCE_LOST = object()


def kernels():
    """The kernel module in use: the native extension, or the numpy reference (EDGEKIT_NATIVE=0)."""
    return native() or _reference


@dataclass(frozen=True)
class StreamInfo:
    """What the reader knows about the video stream before decoding it."""

    codec: str              # FFmpeg decoder name of the stream read (after transcoding, if asked)
    source_codec: str       # codec of the source itself
    width: int
    height: int
    fps: float | None
    time_base: Fraction | None
    frame_count: int | None  # from the container, when it says
    duration_s: float | None
    transcoded: bool = False


@dataclass
class ReaderStats:
    """Counters of one reader, updated while iterating."""

    frames: int = 0             # CompressedFrames yielded
    damaged_frames: int = 0     # frames lost to damage: flagged corrupt, or packets that gave no frame
    decode_errors: int = 0      # packets the decoder rejected
    packets: int = 0            # packets sent to the decoder
    kinds: dict = field(default_factory=lambda: {"I": 0, "P": 0, "B": 0})
    gops: int = 0
    skipped_frames: int = 0     # pictures with no I-frame to start from: before the first one (a live
                                # stream joined mid-GOP) and after a size change until the next one
    size_changes: int = 0       # times the picture size changed mid-stream (each starts a new GOP)
    damaged_packets: int = 0    # packets the demuxer flagged as damaged (data lost on the way: MPEG-TS
                                # continuity or transport errors); decoded for reference, their
                                # pictures are not yielded (counted in damaged_frames). FFmpeg's flag
                                # may land on the picture next to the damaged one (its parser's delay)
    stalls: int = 0             # times a network source sent nothing for timeout_s (then reopened)
    reconnects: int = 0         # times a network source was reopened and reading went on
    reconnect_attempts: int = 0  # reopening attempts, successful or not
    undecoded_frames: int = 0   # non-reference pictures never decoded because ``unused`` said no one
                                # would read them (yielded with mv, intra and residual None)
    dropped_vectors: int = 0    # 8x8 cells whose vector ``max_vector`` dropped (per reference)
    still_vectors: int = 0      # 8x8 cells whose vector ``min_gain`` set to 0 (per reference)
    kernel_ms: float = 0.0      # wall milliseconds spent in the side-data kernels (MV scatter, long-vector
                                # drop, residual, accumulation, tracing, area binning), in the iterating thread;
                                # part of what a caller's ``next()`` waits for (``edgekit profile``)


@dataclass(frozen=True, eq=False)
class CompressedFrame:
    """One frame of side data, in display order.

    index       display-order index among yielded frames (0-based)
    pts         presentation time in seconds
    kind        'I', 'P' or 'B' (picture type the decoder reports; S-VOPs and SP slices count as P)
    gop_index   number of I-frames seen before and including this frame's GOP start, minus one
    mv          float32 (2, ceil(H/8), ceil(W/8)): dx, dy in pixels, forward-flow sign (see package doc)
    intra       bool (ceil(H/8), ceil(W/8)): blocks with no motion vector (intra coded); their mv is 0
    residual    int16 (3, H, W), YUV channels; float32 (3, h, w) when the reader was given
                residual_size=(h, w) (the area average, as ``edgekit.preprocess.resize`` makes it);
                None when residual=False or when ``wants`` declined this frame
    (mv and intra are None on a B-frame ``wants`` declined: no frame is predicted from it, so its
    vectors are not even read)
    rgb         uint8 (H, W, 3) for I-frames (every frame with rgb="all"), else None
    height, width  H and W of this frame's picture (the size may change mid-stream, at a new GOP)
    arrival     time.monotonic() when the decoder returned the picture (for latency figures)
    wallclock   seconds since the Unix epoch when the picture was captured, where the source says
                (RTSP, from the server's RTCP sender reports: FFmpeg's ``start_time_realtime`` plus
                the frame's pts; the first second or two of a session come before the first report
                and have None); None for files, raw streams and transcoded sources
    """

    index: int
    pts: float
    kind: str
    gop_index: int
    mv: np.ndarray
    intra: np.ndarray
    residual: np.ndarray | None = None
    rgb: np.ndarray | None = None
    height: int = 0
    width: int = 0
    arrival: float = 0.0
    wallclock: float | None = None


class _Geometry:
    """One picture size and what the reader derives from it; shared by every frame of that size."""

    def __init__(self, height: int, width: int, kernel_threads: int):
        self.height, self.width, self.kernel_threads = height, width, kernel_threads
        self.gh, self.gw = (height + 7) // 8, (width + 7) // 8
        # block-centre pixel of every cell, for sampling accumulated positions onto the MV grid
        cy = np.minimum(np.arange(self.gh) * 8 + 4, height - 1)
        cx = np.minimum(np.arange(self.gw) * 8 + 4, width - 1)
        self.cell_y, self.cell_x = np.meshgrid(cy, cx, indexing="ij")
        self.cell_index = (self.cell_y * width + self.cell_x).astype(np.int64)
        self._identity = None
        self._zero_disp = None

    def zero_disp(self) -> np.ndarray:
        """Block-trace displacements of an I-frame (all zero), read-only and shared."""
        if self._zero_disp is None:
            self._zero_disp = np.zeros((2, self.gh, self.gw), np.float32)
            self._zero_disp.flags.writeable = False
        return self._zero_disp

    def identity(self) -> np.ndarray:
        """Accumulated positions of the I-frame, read-only and shared by every GOP of this size."""
        if self._identity is None:
            yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.int32)
            self._identity = ((yy << 16) | xx).reshape(-1)
            self._identity.flags.writeable = False
        return self._identity


class _Decoded:
    """A decoded picture with what the reader needs of it, kept while it may be referenced."""

    __slots__ = ("frame", "kind", "pts", "geometry", "planes", "d0", "d1", "flags", "acc", "disp", "residual",
                 "arrival", "deferred", "wallclock")

    def __init__(self, frame, kind, pts, geometry, arrival=0.0):
        self.frame, self.kind, self.pts, self.geometry, self.arrival = frame, kind, pts, geometry, arrival
        self.planes = None
        self.acc = None
        self.disp = None      # block trace: float32 (2, gh, gw) cell displacements to the I-frame (px)
        self.residual = None  # accumulated mode computes it with the positions
        self.d0 = self.d1 = self.flags = None
        self.wallclock = None
        self.deferred = None  # a B-frame's _predict arguments, kept until _emit knows it is wanted


def open(source, *, residual: bool = True, rgb: str | None = "iframes", accumulate: bool = False,
         transcode: str | None = None, format: str | None = None, threads: str | int = "auto",
         timeout_s: float = 10.0, max_pixels: int = MAX_PIXELS, fast: bool = True, trace: str = "pixel",
         residual_size: tuple[int, int] | None = None, wants=None, residual_layout: str = "444",
         residual_step: int | None = None, unused=None,
         reconnect: "bool | Reconnect | None" = None, transport: str | None = None,
         max_vector: float | None = None, min_gain: float | None = None) -> "Reader":
    """Open a video source for compressed-domain reading. See ``edgekit.bitstream`` for details."""
    from edgekit.bitstream.motion import EncoderMotion  # encoder-side motion vectors: no container to open

    if isinstance(source, EncoderMotion):
        return source.open(residual=residual, rgb=rgb, accumulate=accumulate, transcode=transcode, format=format,
                           threads=threads, timeout_s=timeout_s, max_pixels=max_pixels, fast=fast, trace=trace,
                           residual_size=residual_size, wants=wants, reconnect=reconnect,
                           transport=transport, max_vector=max_vector, min_gain=min_gain)
    return Reader(source, residual=residual, rgb=rgb, accumulate=accumulate, transcode=transcode,
                  format=format, threads=threads, timeout_s=timeout_s, max_pixels=max_pixels,
                  fast=fast, trace=trace, residual_size=residual_size, wants=wants,
                  residual_layout=residual_layout, residual_step=residual_step, unused=unused,
                  reconnect=reconnect, transport=transport, max_vector=max_vector, min_gain=min_gain)


def _option_number(name: str, value, inside, what: str) -> float | None:
    """``value`` as a float for which ``inside`` holds, or None; ConfigError naming ``what`` otherwise."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not inside(value)):
        raise ConfigError(f"{name} must be None or {what}, got {value!r}")
    return float(value)


def check_min_gain(value) -> float | None:
    """``min_gain`` as a float in [0, 255] (grey levels per pixel), or None (keep every vector).
    ConfigError otherwise."""
    return _option_number("min_gain", value, lambda v: 0 <= v <= 255, "grey levels per pixel in [0, 255]")


def check_max_vector(value) -> float | None:
    """``max_vector`` as a float in (0, 1], or None (keep every vector). ConfigError otherwise."""
    return _option_number("max_vector", value, lambda v: 0 < v <= 1,
                          "a fraction of the picture's shorter side in (0, 1]")


class Reader:
    """Iterate a source's CompressedFrames. Use ``edgekit.bitstream.open``; a context manager."""

    def __init__(self, source, *, residual=True, rgb="iframes", accumulate=False, transcode=None,
                 format=None, threads="auto", timeout_s=10.0, max_pixels=MAX_PIXELS, fast=True, trace="pixel",
                 residual_size=None, wants=None, residual_layout="444", residual_step=None, unused=None,
                 reconnect=None, transport=None, max_vector=None, min_gain=None):
        self.max_vector = check_max_vector(max_vector)
        self.min_gain = check_min_gain(min_gain)
        if self.min_gain is not None and not residual and (fast or not accumulate):
            raise ConfigError("min_gain compares decoded pictures with their references: open with residual=True "
                              "(or accumulate=True and fast=False, which decodes every picture in full)")
        if rgb not in (None, "iframes", "all"):
            raise ConfigError(f"rgb must be None, 'iframes' or 'all', got {rgb!r}")
        if trace not in ("pixel", "block"):
            raise ConfigError(f"trace must be 'pixel' or 'block', got {trace!r}")
        if residual_size is not None:
            if (not isinstance(residual_size, (tuple, list)) or len(residual_size) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096
                               for v in residual_size)):
                raise ConfigError(f"residual_size must be (height, width) in pixels, got {residual_size!r}")
            residual_size = (int(residual_size[0]), int(residual_size[1]))
        if wants is not None and not callable(wants):
            raise ConfigError("wants must be a callable (kind, (height, width)) -> bool, or None")
        if residual_layout not in ("444", "420"):
            raise ConfigError(f"residual_layout must be '444' (3, H, W) or '420' (Y full size, U/V half), "
                              f"got {residual_layout!r}")
        if residual_step not in (None, 1, 2):
            raise ConfigError(f"residual_step must be None (automatic), 1 or 2, got {residual_step!r}")
        if unused is not None and (not callable(unused) or wants is None):
            raise ConfigError("unused must be a callable (display position, kinds) -> bool, given with wants=")
        self.trace, self.residual_size, self._wants = trace, residual_size, wants
        self.residual_step = residual_step
        self._unused = unused
        self._skipper = None
        self.residual_layout = residual_layout
        if transcode not in (None, "mpeg4", "h264"):
            raise ConfigError(f"transcode must be None, 'mpeg4' or 'h264', got {transcode!r}")
        self.residual, self.rgb, self.accumulate = bool(residual), rgb, bool(accumulate)
        self.stats = ReaderStats()
        self._kernels = kernels()
        # local data (a regular file, bytes): decoded ahead in a thread while this one computes side
        # data and runs the model; live sources are read in the caller's thread (their own pace)
        self._prefetch = isinstance(source, (bytes, bytearray, memoryview)) or (
            isinstance(source, (str, os.PathLike)) and os.path.isfile(os.fspath(source)))
        self._prefetcher = None
        policy = reconnect_policy(reconnect, source)  # ConfigError before anything is opened
        # what reopening needs: the source as given and the options it was first opened with
        self._open_args = (source, {"timeout_s": timeout_s, "format": format, "transport": transport})
        self._container, self.description = open_container(source, **self._open_args[1])
        try:
            self._setup(transcode, threads, max_pixels, fast)
        except BaseException:
            self._container.close()
            raise
        if reconnect is None and policy is not None and is_finite_resource(source, self._container):
            policy = None  # a file served over HTTP: its end is the end of the video
        self.reconnect: Reconnect | None = policy  # how the source is reopened (None: never)
        self._outage: tuple[float, int] | None = None  # (start, attempts made) while reconnecting
        self._pictures_decoded = 0  # intact pictures out of the decoder, over every connection
        if self._unused is not None and self._prefetch and self._transcode is None and self.rgb != "all":
            self._skipper = _Skipper.for_stream(self._stream, self._unused)

    # -- setup -------------------------------------------------------------------------------------

    def _setup(self, transcode, threads, max_pixels, fast):
        streams = self._container.streams.video
        if not streams:
            raise EmptySourceError(f"{self.description}: no video stream (audio-only or data file)")
        stream = self._stream = streams[0]
        ctx = stream.codec_context
        if ctx is None:  # PyAV makes no decoder context for a codec FFmpeg cannot decode
            raise DecodeError(f"{self.description}: FFmpeg has no decoder for the video stream (an unknown or "
                              "damaged codec header); check the file, or re-encode it to H.264 or MPEG-4")
        width, height = ctx.width, ctx.height
        # A raw stream opened without probing (a live chunk stream, joined mid-GOP) may not have seen its
        # parameter sets yet: its size is 0x0 until the first picture decodes. Negative is damage.
        if width < 0 or height < 0 or (width == 0) != (height == 0):
            raise ResolutionError(f"{self.description}: the video stream has no valid size ({width}x{height})")
        self._max_pixels = max_pixels
        if width:
            self._check_size(height, width)
        codec = ctx.name
        if codec not in MV_CODECS and transcode is None:
            raise UnsupportedCodecError(
                f"{self.description}: FFmpeg exports no motion vectors for {codec}; "
                "open it with transcode='mpeg4' or 'h264' (edgekit: --transcode h264) to re-encode on the fly",
                codec=codec)
        # Decoder threads: slice threads (FFmpeg's thread_count, 0 = one per core) and never frame
        # threads. With frame threads, FFmpeg 8's H.264 decoder exports another picture's motion
        # vectors for frames returned while draining at the end of the stream, in most runs
        # (tests/test_bitstream.py::test_threads_never_change_motion_vectors). Kernel threads: rows of
        # the residual split over min(cpu_count, 4) threads above 640x360, where they pay off.
        large = width * height >= 640 * 360
        if threads == "auto":
            thread_count = 0
        elif isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
            thread_count = threads
        else:
            raise ConfigError(f"threads must be 'auto' or an int >= 1, got {threads!r}")
        self._threads = threads
        mv_only = not self.residual and self.rgb is None
        decoder_options = {"flags2": "+export_mvs"}
        if fast and mv_only:
            # MVs are parsed from the bitstream before reconstruction: skipping the loop filter and the
            # IDCT leaves them identical (tests/test_bitstream.py proves it) and decodes faster.
            decoder_options.update(skip_loop_filter="all", skip_idct="all")
        elif fast and self.rgb != "all":
            # Non-reference pictures (B-frames without B-pyramid) are never predicted from and, here,
            # never returned as RGB: not deblocking them leaves every other frame bit-identical, and
            # their residual is then prediction error before the in-loop filter, as coded.
            decoder_options.update(skip_loop_filter="noref")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frame_count = stream.frames or None
        duration_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        self.decoder_options = decoder_options  # what FFmpeg was told (its own dict is consumed on open)
        if transcode is None:
            self._transcode = None
            self._source_threads = (thread_count, "SLICE")
        else:
            # source decoder -> encoder (MV codec) -> our decoder with export_mvs. The source decoder
            # exports nothing, so frame threads are safe there. The encoder is made at the first source
            # picture (and again when the size changes), when its size is known.
            self._source_threads = (thread_count, "AUTO" if threads == "auto" and large else "SLICE")
            self._transcode = (EncoderSettings(transcode, gop=12, qscale=3, preset="ultrafast", tune="zerolatency"),
                               rate)
        self._use_source_decoder(ctx)
        if transcode is not None:
            self._decoder = av.CodecContext.create(transcode, "r")
            self._decoder.thread_type, self._decoder.thread_count = "SLICE", thread_count
            self._decoder.options = dict(decoder_options)
        self._info = StreamInfo(codec=transcode or codec, source_codec=codec, width=width, height=height, fps=fps,
                                time_base=stream.time_base, frame_count=frame_count, duration_s=duration_s,
                                transcoded=transcode is not None)
        # the container's size, until the first decoded picture confirms or replaces it
        self._geometry = self._make_geometry(height, width) if width else None
        self._pictures = None      # the decoded-frame generator, made once, shared by every iteration
        self._lookahead: list = []  # pictures decoded to learn the size (``info``) before iteration
        self._seen_picture = False  # a picture has fixed the geometry (later differences are size changes)
        self._damaged_pts: dict = {}  # pts of packets the demuxer flagged damaged, until their picture is out

    def _use_source_decoder(self, ctx) -> None:
        """Decode the source's video stream with ``ctx``, set up as every decoder of this reader is:
        slice threads (frame threads when transcoding, where nothing is exported) and, when it exports
        the vectors itself, ``decoder_options``. At opening, and after a reconnection that brought other
        codec parameters (the old decoder knows the old parameter sets only)."""
        ctx.thread_count, ctx.thread_type = self._source_threads
        if self._transcode is None:
            ctx.options = dict(self.decoder_options)
            self._decoder = ctx
        self._source_decoder, self._source_extradata = ctx, ctx.extradata

    @property
    def info(self) -> StreamInfo:
        """The video stream: codec, rate, and the current picture size. A stream whose header does not
        give the size (a raw chunk stream joined mid-GOP) is decoded up to its first picture to learn it
        (waiting up to ``timeout_s``); width and height stay 0 if the stream holds no picture. After a
        size change mid-stream, the size of the frames read last."""
        if self._geometry is None and self._pictures is None:
            self._prime()
        return self._info

    def _check_size(self, height: int, width: int) -> None:
        if height * width > self._max_pixels:
            raise ResolutionError(f"{self.description}: {width}x{height} exceeds the {self._max_pixels} pixel "
                                  "limit (pass max_pixels= to allow it)")
        if height > _reference.MAX_HEIGHT or width > _reference.MAX_WIDTH:
            raise ResolutionError(f"{self.description}: {width}x{height} is beyond what edgekit reads "
                                  f"({_reference.MAX_WIDTH}x{_reference.MAX_HEIGHT} at most)")

    def _make_geometry(self, height: int, width: int) -> _Geometry:
        if self._threads == "auto":
            threads = min(os.cpu_count() or 1, 4) if width * height >= 640 * 360 else 1
        else:
            threads = self._threads
        return _Geometry(height, width, threads)

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the container and decoder (after stopping the decoding thread, if any)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
        self._container.close()

    # -- decoding ----------------------------------------------------------------------------------

    def _packets(self) -> Iterator:
        """The video stream's packets. A network source with a reconnect policy is reopened when it
        ends, breaks or stalls: ``_SOURCE_LOST`` comes first (the decoders hand out what they hold and
        reset), then ``RECONNECTED`` once it is open again."""
        while True:
            failure: SourceError | None = None  # None: the source ended
            demux = self._container.demux(self._stream)
            while True:
                try:
                    packet = next(demux)
                except StopIteration:
                    break
                except SourceTimeoutError as err:  # the source wrapper names stalls as timeouts
                    if self.reconnect is None:
                        raise
                    failure = err
                    break
                except (av.error.FFmpegError, OSError) as err:
                    if self.reconnect is None:
                        self.stats.decode_errors += 1
                        return  # a demuxer error ends the stream (truncated file); frames so far stand
                    failure = SourceError(f"{self.description}: the connection failed ({_short(err)})")
                    break
                if packet.size:
                    self._outage = None  # the source delivers again
                    if packet.is_corrupt:
                        self._note_damaged(packet)
                yield packet
            if self.reconnect is None:
                return
            yield _SOURCE_LOST
            if not self._reconnect(failure):
                return
            yield RECONNECTED

    def _note_damaged(self, packet) -> None:
        """Count a packet the demuxer flagged damaged; its picture is dropped when it comes out."""
        self.stats.damaged_packets += 1
        if packet.pts is not None:
            self._damaged_pts[packet.pts] = True
            if len(self._damaged_pts) > 64:  # pictures the decoder never returned: forget the oldest
                del self._damaged_pts[next(iter(self._damaged_pts))]

    def _from_damaged_packet(self, frame) -> bool:
        return bool(self._damaged_pts) and self._damaged_pts.pop(frame.pts, None) is not None

    def _reconnect(self, cause: SourceError | None) -> bool:
        """Reopen the network source after it ended (``cause`` None), broke or stalled, waiting as
        ``self.reconnect`` says. True once it is open again. When the outage outlasts the policy:
        False (the stream ends) if pictures were decoded, else the last attempt's error; after a
        stall, always a SourceTimeoutError."""
        policy = self.reconnect
        if isinstance(cause, SourceTimeoutError):
            self.stats.stalls += 1
        started, attempt = self._outage or (time.monotonic(), 0)
        self._container.close()  # its socket (a UDP port) is free for the next attempt
        last = cause
        while policy.attempts is None or attempt < policy.attempts:
            wait_s = policy.wait_s(attempt)
            if policy.max_total_s is not None and time.monotonic() + wait_s - started > policy.max_total_s:
                break
            time.sleep(wait_s)
            attempt += 1
            self.stats.reconnect_attempts += 1
            self._outage = (started, attempt)
            source, options = self._open_args
            try:
                container, _ = open_container(source, **options)
            except SourceError as err:
                last = err
                continue
            if not container.streams.video or container.streams.video[0].codec_context is None:
                container.close()
                last = SourceError(f"{self.description}: no decodable video stream after reconnecting")
                continue
            self._resume(container)
            self.stats.reconnects += 1
            return True
        self._outage = None
        why = f"reconnecting did not bring it back ({attempt} attempts in {time.monotonic() - started:.0f} s"
        if last is not None and last is not cause:
            why += f", the last: {_reason(last, self.description)}"
        why += ")"
        if isinstance(cause, SourceTimeoutError):
            raise SourceTimeoutError(f"{cause}; {why}") from None
        if self._pictures_decoded:
            return False
        if last is not None and last is not cause:
            raise last
        raise SourceError(f"{self.description}: {_reason(cause, self.description) if cause else 'the source ended'} "
                          f"before any picture; {why}")

    def _resume(self, container) -> None:
        """Go on reading from a reopened ``container``: the same decoder when the stream's codec and
        parameter sets are the same, else the new stream's own, set up the same way."""
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx.name not in MV_CODECS and self._transcode is None:
            container.close()
            raise UnsupportedCodecError(
                f"{self.description}: the stream came back as {ctx.name}, which FFmpeg exports no motion vectors "
                "for; open it with transcode='mpeg4' or 'h264' (edgekit: --transcode h264)", codec=ctx.name)
        self._container, self._stream = container, stream
        if ctx.name != self._source_decoder.name or ctx.extradata != self._source_extradata:
            self._use_source_decoder(ctx)

    def _decode(self, packet) -> list:
        if packet is not None:
            self.stats.packets += 1
        try:
            return self._decoder.decode(packet)
        except av.error.EOFError:
            return []  # already flushed
        except av.error.FFmpegError:
            self.stats.decode_errors += 1
            return []

    def _frames(self) -> Iterator:
        """Decoded av.VideoFrames with MV side data, in decoder output order; damaged ones skipped;
        ``RECONNECTED`` in place of a picture where a network source was reopened."""
        if self._transcode is None:
            packets = self._packets()
        else:
            packets = self._transcoded_packets(self._source_frames())
        # per connection: counters when it began, frames the decoder returned (damaged or not), and
        # the counters when its first intact picture came out
        start, out, joined_at = (self.stats.packets, self.stats.decode_errors), 0, None
        for packet in itertools.chain(packets, [None]):  # None flushes the delayed frames
            if packet is RECONNECTED:
                yield RECONNECTED
                continue
            source_lost = packet is _SOURCE_LOST
            if source_lost:
                packet = None  # hand out the pictures of the lost connection now: the wait may be long
            elif packet is not None and packet.size == 0:
                continue
            skipper = self._skipper
            if skipper is not None and packet is not None and skipper.skip(packet):
                continue  # never decoded: a placeholder takes its place in display order
            for frame in self._decode(packet):
                out += 1
                if frame.is_corrupt or (self._transcode is None and self._from_damaged_packet(frame)):
                    self.stats.damaged_frames += 1
                    continue
                if joined_at is None:
                    joined_at = (self.stats.packets, self.stats.decode_errors)
                self._pictures_decoded += 1
                if skipper is not None:
                    yield from skipper.before(frame)
                yield frame
            if packet is None and skipper is not None:
                yield from skipper.before(None)
            if packet is None:
                self._count_lost(start, out, joined_at)
                start, out, joined_at = (self.stats.packets, self.stats.decode_errors), 0, None
                if source_lost:
                    self._decoder.flush_buffers()  # out of draining: ready for the next connection

    def _count_lost(self, start: tuple[int, int], out: int, joined_at: tuple[int, int] | None) -> None:
        """Count the pictures of one connection that never came out of the decoder. One packet
        carries one picture here, so packets without a frame are pictures lost to damage, except
        before the first picture: a stream joined mid-GOP (or before its parameter sets) gives
        nothing until its next keyframe, and those pictures are skipped, not damaged."""
        sent, errors = self.stats.packets - start[0], self.stats.decode_errors - start[1]
        lost = max(sent - errors - out, 0)
        if joined_at is None:
            self.stats.damaged_frames += errors + lost
            return
        sent_before, errors_before = joined_at[0] - start[0], joined_at[1] - start[1]
        skipped = min(lost, max(sent_before - 1 - errors_before, 0))
        self.stats.skipped_frames += errors_before + skipped
        self.stats.damaged_frames += errors - errors_before + lost - skipped

    def _drain(self, ctx) -> list:
        """The pictures ``ctx`` still holds (it is then draining: flush_buffers() before reuse)."""
        try:
            return ctx.decode(None)
        except av.error.EOFError:
            return []  # already flushed by the demuxer's final empty packet: not an error
        except av.error.FFmpegError:
            self.stats.decode_errors += 1
            return []

    def _source_frames(self) -> Iterator:
        """Transcoding: the source's decoded pictures; ``_SOURCE_LOST`` and ``RECONNECTED`` passed on."""
        for packet in self._packets():
            if packet is RECONNECTED:
                yield packet
                continue
            if packet is _SOURCE_LOST:
                yield from self._drain(self._source_decoder)
                self._source_decoder.flush_buffers()
                yield packet
                continue
            try:
                frames = self._source_decoder.decode(packet)
            except av.error.FFmpegError:
                self.stats.decode_errors += 1
                continue
            for frame in frames:
                if self._from_damaged_packet(frame):
                    self.stats.damaged_frames += 1
                    continue
                yield frame
        yield from self._drain(self._source_decoder)

    def _transcoded_packets(self, frames) -> Iterator:
        settings, rate = self._transcode
        encoder, size = None, None
        for i, frame in enumerate(frames):
            if frame is _SOURCE_LOST or frame is RECONNECTED:
                if encoder is not None:  # the lost connection's pictures; the next one starts a new encoder
                    yield from encoder.encode(None)
                encoder, size = None, None
                yield frame
                continue
            if frame.width <= 0 or frame.height <= 0 or frame.format is None:
                self.stats.damaged_frames += 1
                continue
            if (frame.width, frame.height) != size:  # first picture, or a size change: a new encoder
                if encoder is not None:
                    yield from encoder.encode(None)
                size = (frame.width, frame.height)
                self._check_size(frame.height, frame.width)
                try:
                    encoder = create_encoder(settings, frame.width, frame.height, rate)
                    encoder.open()
                except (av.error.FFmpegError, ValueError) as err:
                    raise DecodeError(f"{self.description}: cannot re-encode a {size[0]}x{size[1]} picture "
                                      f"({_short(err)})") from None
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, encoder.time_base
            yield from encoder.encode(frame)
        if encoder is not None:
            yield from encoder.encode(None)

    def _picture_source(self) -> Iterator:
        if self._prefetch:
            self._prefetcher = _Prefetcher(self._frames(), prefetch_depth(self._info.width, self._info.height))
            return iter(self._prefetcher)
        return self._frames()

    def _decoded(self) -> Iterator:
        """Every decoded picture once: those read ahead by ``info`` first, then the decoder's."""
        if self._pictures is None:
            self._pictures = self._picture_source()
        while self._lookahead:
            yield self._lookahead.pop(0)
        yield from self._pictures

    def _prime(self) -> None:
        """Decode up to the first usable picture, so that ``info`` gives its size."""
        self._pictures = self._picture_source()
        for frame in self._pictures:
            self._lookahead.append(frame)
            size = _picture_size(frame)
            if size is not None:
                self._check_size(*size)
                self._info = dataclasses.replace(self._info, height=size[0], width=size[1])
                return

    def __iter__(self) -> Iterator[CompressedFrame]:
        needs_refs = self.residual or self.accumulate
        pending: list[_Decoded] = []       # B-frames waiting for their future reference
        iframe: _Decoded | None = None     # the current GOP's I-frame
        anchor: _Decoded | None = None     # last I/P frame (the past reference)
        gop = -1
        waiting = True                     # no I-frame of the current size yet: nothing to trace back to
        fps = self._info.fps or 25.0
        decoded_any = False
        last_pts = 0.0
        for n, frame in enumerate(self._decoded()):
            if frame is RECONNECTED:
                # a new connection: nothing is predicted across it; wait for its first I-frame
                yield from self._end_gop(pending, anchor, iframe)
                iframe = anchor = None
                waiting = True
                continue
            arrival = time.monotonic()
            size, kind, t = self._describe(frame)
            if size is None:  # a frame without a usable picture
                self.stats.damaged_frames += 1
                continue
            decoded_any = True
            # flushed or raw-stream frames may carry no timestamp: continue at the nominal rate
            pts = float(t) if t is not None and math.isfinite(t) else (last_pts + 1 / fps if n else 0.0)
            last_pts = pts
            geometry = self._geometry
            if geometry is None or size != (geometry.height, geometry.width):
                # A new picture size (the first picture, or an SPS / VOL header announcing another
                # size): nothing is predicted across it. B-frames still waiting end their GOP without a
                # future reference; the new size starts a new GOP at its first I-frame.
                self._check_size(*size)
                if self._seen_picture:
                    self.stats.size_changes += 1
                yield from self._end_gop(pending, anchor, iframe)
                iframe = anchor = None
                waiting = True
                geometry = self._geometry = self._make_geometry(*size)
                self._info = dataclasses.replace(self._info, height=size[0], width=size[1])
            self._seen_picture = True
            if kind == "I":
                gop += 1
                self.stats.gops += 1
                waiting = False
            if waiting:  # joined mid-GOP, or a new size before its I-frame
                self.stats.skipped_frames += 1
                continue
            cur = _Decoded(frame, kind, pts, geometry, arrival)
            cur.wallclock = self._wallclock(pts)
            if kind != "B" or self._wants is None:
                self._grids(cur)  # a B-frame's vectors wait until _emit knows whether it is wanted
            if not needs_refs:
                yield self._emit(cur, gop, None, None, None)
                continue
            if kind == "B":
                pending.append((cur, gop))
                continue
            # an anchor (I or P): finish it, then the B-frames that were waiting for it
            if kind == "I":
                self._start_gop(cur)
                past_anchor, new_iframe = anchor, cur
            else:
                self._predict(cur, anchor, None, iframe)
                past_anchor, new_iframe = anchor, iframe
            for b, b_gop in pending:
                same_gop = b_gop == gop
                self._predict(b, past_anchor, cur, iframe, future_same_gop=same_gop)
                yield self._emit(b, b_gop, iframe, past_anchor, cur)
            pending.clear()
            iframe = new_iframe
            yield self._emit(cur, gop, iframe, anchor, None)
            anchor = cur
        yield from self._end_gop(pending, anchor, iframe)  # the stream ended before the future reference
        if not decoded_any:
            if self.stats.decode_errors or self.stats.damaged_frames:
                raise DecodeError(f"{self.description}: no frame could be decoded "
                                  f"({self.stats.decode_errors} decode errors)")
            raise EmptySourceError(f"{self.description}: the video stream holds no frames")
        if self.stats.frames == 0 and self.stats.gops == 0:
            raise DecodeError(f"{self.description}: no intact I-frame to start from ({self.stats.skipped_frames} "
                              f"frames skipped, {self.stats.damaged_frames} damaged); the stream is damaged or "
                              "holds no keyframe")

    def _wallclock(self, pts: float) -> float | None:
        """Capture time of the frame at ``pts``, where the source gives one (see CompressedFrame)."""
        if self._transcode is not None:
            return None  # the re-encoded stream's timestamps are its own
        realtime = getattr(getattr(self, "_container", None), "start_time_realtime", None)
        if not realtime or realtime < 0:
            return None
        return realtime / 1e6 + pts  # FFmpeg: pts 0 was captured at start_time_realtime

    def _end_gop(self, pending: list, anchor, iframe) -> Iterator[CompressedFrame]:
        """End the GOP in progress: the B-frames still waiting get no future reference."""
        for b, b_gop in pending:
            self._predict(b, anchor, None, iframe)
            yield self._emit(b, b_gop, iframe, anchor, None)
        pending.clear()

    # -- per-frame work ----------------------------------------------------------------------------

    def _kernel(self, name: str, *args):
        """Call a kernel and return what it returns; a refusal (a buffer or geometry that does not fit
        the frame) is a DecodeError."""
        started = time.perf_counter()
        try:
            return getattr(self._kernels, name)(*args)
        except (ValueError, TypeError) as err:
            raise DecodeError(f"{self.description}: frame {self.stats.frames} cannot be read "
                              f"({name}: {_short(err)})") from None
        finally:
            self.stats.kernel_ms += (time.perf_counter() - started) * 1000

    # The two seams a reader of another kind of picture (edgekit.bitstream.motion: motion vectors
    # an encoder reported) replaces: what a picture is, and where its vectors come from.

    def _describe(self, picture) -> tuple[tuple[int, int] | None, str, float | None]:
        """(height, width) or None when there is no usable picture, the frame type ("I", "P",
        "B"), and the presentation time in seconds (None when the picture carries none)."""
        if isinstance(picture, _Undecoded):  # a non-reference picture never decoded (``unused``)
            g = self._geometry
            return ((g.height, g.width) if g is not None else None), "B", picture.time
        size = _picture_size(picture)
        if size is None:
            return None, "P", None
        return size, _KINDS.get(int(picture.pict_type), "P"), picture.time

    def _scatter(self, cur: _Decoded) -> None:
        """Fill ``cur.d0``/``cur.d1``/``cur.flags`` from the picture's AVMotionVector side data."""
        g = cur.geometry
        side_data = cur.frame.side_data
        try:
            self._kernel("mv_grid", side_data.get("MOTION_VECTORS"), g.gh, g.gw, cur.d0, cur.d1, cur.flags)
        finally:
            _detach_side_data(side_data)

    def _grids(self, cur: _Decoded) -> None:
        gh, gw = cur.geometry.gh, cur.geometry.gw
        cur.d0 = np.empty((2, gh, gw), np.float32)
        cur.d1 = np.empty((2, gh, gw), np.float32)
        cur.flags = np.empty((gh, gw), np.uint8)
        if cur.kind == "I":
            self._kernel("mv_grid", None, gh, gw, cur.d0, cur.d1, cur.flags)
            return
        self._scatter(cur)
        if self.max_vector is not None:  # vectors no motion explains read as intra (see edgekit.bitstream)
            g = cur.geometry
            self.stats.dropped_vectors += self._kernel("drop_long", cur.d0, cur.d1, cur.flags, gh, gw,
                                                       self.max_vector * min(g.height, g.width))

    def _still(self, cur: _Decoded, past: _Decoded | None, future: _Decoded | None) -> None:
        """``min_gain``: set to 0 each vector of ``cur`` that predicts its 8x8 cell no better than no
        motion does, against the reference it points to (``still_vectors``; see edgekit.bitstream).
        Called once per picture, when its vectors are read and its references known (``_predict``, or
        ``_emit`` for a B-frame read late outside accumulated mode). A reference of another size, or
        never decoded, is not compared."""
        if self.min_gain is None or cur.kind == "I" or cur.d0 is None:
            return
        g = cur.geometry
        # a P-frame has past-reference vectors only (the kernel skips cells without the flag's bit)
        for d, bit, ref in ((cur.d0, 1, past),) if cur.kind == "P" else ((cur.d0, 1, past), (cur.d1, 2, future)):
            if ref is None or ref.geometry is not g or isinstance(ref.frame, _Undecoded):
                continue
            self.stats.still_vectors += self._kernel("still_vectors", self._planes(cur), self._planes(ref),
                                                     g.height, g.width, d, cur.flags, bit, g.gw, self.min_gain)

    def _planes(self, d: _Decoded):
        """(native tuple, numpy tuple) of the Y, U, V planes of a decoded frame. DecodeError if a plane
        does not hold the rows its size says (never read past it)."""
        if d.planes is None:
            frame = d.frame
            try:
                if frame.format.name not in _SAFE_PIX_FMTS:
                    frame = d.frame = frame.reformat(format="yuv420p")
                planes = frame.planes
            except (av.error.FFmpegError, ValueError) as err:
                raise DecodeError(f"{self.description}: frame {self.stats.frames} has no usable picture "
                                  f"({_short(err)})") from None
            H, W = d.geometry.height, d.geometry.width
            if len(planes) < 3 or (frame.height, frame.width) != (H, W):
                raise DecodeError(f"{self.description}: frame {self.stats.frames} has no usable 4:2:0 picture "
                                  f"({len(planes)} planes, {frame.width}x{frame.height})")
            arrays, native = [], []
            for k, plane in enumerate(planes[:3]):
                h = H if k == 0 else (H + 1) // 2
                w = W if k == 0 else (W + 1) // 2
                if plane.line_size < w or plane.buffer_size < h * plane.line_size:
                    raise DecodeError(f"{self.description}: frame {self.stats.frames}: plane {k} holds "
                                      f"{plane.buffer_size} bytes with line size {plane.line_size}, too few for "
                                      f"{w}x{h}")
                a = np.frombuffer(plane, np.uint8, count=h * plane.line_size).reshape(h, plane.line_size)
                arrays.append(a[:, :w])
                native += [a, plane.line_size]
            d.planes = (tuple(native), tuple(arrays))
        return d.planes[0] if self._kernels is _native else d.planes[1]

    def _start_gop(self, cur: _Decoded) -> None:
        if not self.accumulate:
            return
        if self.trace == "block":
            cur.disp = cur.geometry.zero_disp()
        else:
            cur.acc = cur.geometry.identity()

    def _predict(self, cur: _Decoded, past: _Decoded | None, future: _Decoded | None,
                 iframe: _Decoded | None, future_same_gop: bool = True) -> None:
        """Accumulated mode: set ``cur.acc`` for a P/B frame given its references and, when the
        residual is wanted, ``cur.residual`` in the same pass over memory."""
        self._still(cur, past, future)  # nothing while a B-frame's vectors wait (deferred below)
        if not self.accumulate or past is None:
            return
        if cur.d0 is None:  # a B-frame not read yet: traced in _emit if wanted
            cur.deferred = (past, future, iframe, future_same_gop)
            return
        g = cur.geometry
        if past.geometry is not g or (iframe is not None and iframe.geometry is not g):
            return  # never traced across a size change (the reader starts a new GOP there)
        H, W = g.height, g.width
        if self.trace == "block":  # one step per 8x8 cell; the residual waits for _emit (if wanted)
            if past.disp is None:
                return
            disp1 = future.disp if (future is not None and future_same_gop and future.geometry is g) else None
            cur.disp = np.empty((2, g.gh, g.gw), np.float32)
            self._kernel("trace_cells", past.disp, disp1, H, W, cur.d0, cur.d1, cur.flags, g.gw, cur.disp)
            return
        cur.acc = np.empty(H * W, np.int32)
        acc1 = future.acc if (future is not None and future_same_gop and future.geometry is g) else None
        args = (past.acc, acc1, H, W, cur.d0, cur.d1, cur.flags, g.gw, cur.acc, g.kernel_threads)
        if self.residual and iframe is not None:
            cur.residual, c420 = self._full_residual(H, W)
            self._kernel("accumulate", *args, self._planes(cur), self._planes(iframe), cur.residual, c420)
        else:
            self._kernel("accumulate", *args)

    def _emit(self, cur: _Decoded, gop: int, iframe, past, future) -> CompressedFrame:
        g = cur.geometry
        wanted = self._wants is None or bool(self._wants(cur.kind, (g.height, g.width)))
        if isinstance(cur.frame, _Undecoded):  # nothing to read, wanted or not (the plan said unused)
            self.stats.undecoded_frames += 1
            wanted = False
        if cur.d0 is None:  # a B-frame whose vectors waited for this answer
            if not wanted:  # no frame is predicted from a B-frame: nothing else needs them
                return self._count(CompressedFrame(index=self.stats.frames, pts=cur.pts, kind=cur.kind, gop_index=gop,
                                                   mv=None, intra=None, residual=None, rgb=self._rgb(cur),
                                                   height=g.height, width=g.width, arrival=cur.arrival,
                                                   wallclock=cur.wallclock))
            self._grids(cur)
            if cur.deferred is not None:
                self._predict(cur, *cur.deferred)
            else:
                self._still(cur, past, future)
        flags = cur.flags
        intra = flags == 0
        if cur.kind == "I":
            intra = np.ones_like(intra)
            mv = np.zeros((2, g.gh, g.gw), np.float32)
        elif self.accumulate and cur.disp is not None:
            mv = np.negative(cur.disp)  # from the I-frame position to the cell (float32, as disp)
        elif self.accumulate and cur.acc is not None:
            a = cur.acc.reshape(-1)[g.cell_index]
            mv = np.stack([g.cell_x - (a & 0xFFFF), g.cell_y - (a >> 16)]).astype(np.float32)
        elif cur.kind == "B":
            # past-reference vector where the block has one, else the future one negated (forward in time)
            mv = np.where(flags & 1, cur.d0, -cur.d1)
        else:
            mv = cur.d0
        residual = None
        if self.residual and wanted:
            residual = self._residual(cur, iframe, past, future)
        out = CompressedFrame(index=self.stats.frames, pts=cur.pts, kind=cur.kind, gop_index=gop,
                              mv=mv, intra=intra, residual=residual, rgb=self._rgb(cur), height=g.height,
                              width=g.width, arrival=cur.arrival, wallclock=cur.wallclock)
        cur.planes = None if cur.kind == "B" else cur.planes  # B-frames are never referenced again
        return self._count(out)

    def _rgb(self, cur: _Decoded):
        if not (self.rgb == "all" or (self.rgb == "iframes" and cur.kind == "I")):
            return None
        try:
            return cur.frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError) as err:
            raise DecodeError(f"{self.description}: frame {self.stats.frames} cannot be converted to RGB "
                              f"({_short(err)})") from None

    def _count(self, out: CompressedFrame) -> CompressedFrame:
        self.stats.frames += 1
        self.stats.kinds[out.kind] += 1
        return out

    def _full_residual(self, H: int, W: int, make=np.empty) -> tuple[np.ndarray, bool]:
        """A buffer for a full-size int16 residual in the layout asked for, and whether it is 4:2:0."""
        if self.residual_layout == "420" and self.residual_size is None:
            return make(_reference.residual_len(H, W, True), np.int16), True
        return make((3, H, W), np.int16), False

    def _finish(self, out: np.ndarray, H: int, W: int):
        """What a frame carries from a kernel's output: binned, 4:2:0 planes, or (3, H, W)."""
        if self.residual_size is not None:
            return self._binned(out)
        if out.ndim == 1:
            return YUV420.from_buffer(out, H, W)
        return out

    def _zero_residual(self, H: int, W: int):
        if self.residual_size is not None:
            return np.zeros((3, *self.residual_size), np.float32)
        buf, _ = self._full_residual(H, W, np.zeros)  # zeroed pages from the OS: nothing written here
        return self._finish(buf, H, W)

    def _residual(self, cur: _Decoded, iframe, past, future):
        g = cur.geometry
        H, W = g.height, g.width
        size = self.residual_size
        if cur.residual is not None:  # accumulated: computed by _predict
            out, cur.residual = cur.residual, None
            return self._finish(out, H, W)
        if future is not None and future.geometry is not g:
            future = None
        if cur.kind == "I" or past is None or past.geometry is not g:
            return self._zero_residual(H, W)
        if self.accumulate:
            if cur.disp is None or iframe is None or iframe.geometry is not g:
                return self._zero_residual(H, W)
            # block trace: computed here, for this frame only, straight at the size asked for, from
            # the I-frame pixels the cells' displacements point at (rounded to whole pixels)
            disp = _reference.round_displacements(cur.disp)
            if size:
                out = np.empty((3, *size), np.float32)
                self._kernel("trace_residual", self._planes(cur), self._planes(iframe), disp, H, W, g.gw, out,
                             g.kernel_threads, *size, False, residual_step(H, W, size, self.residual_step))
                return out
            out, c420 = self._full_residual(H, W)
            self._kernel("trace_residual", self._planes(cur), self._planes(iframe), disp, H, W, g.gw, out,
                         g.kernel_threads, 0, 0, c420)
            return self._finish(out, H, W)
        out, c420 = self._full_residual(H, W)
        ref1 = self._planes(future) if future is not None else None
        self._kernel("mc_residual", self._planes(cur), self._planes(past), ref1, H, W, cur.d0, cur.d1, cur.flags,
                     g.gw, out, g.kernel_threads, c420)
        return self._finish(out, H, W)

    def _binned(self, full: np.ndarray) -> np.ndarray:
        """A full-size int16 residual, area-averaged to ``residual_size``."""
        h, w = self.residual_size
        out = np.empty((full.shape[0], h, w), np.float32)
        self._kernel("area_bins", full, full.shape[0], full.shape[1], full.shape[2], out, h, w)
        return out


class YUV420(tuple):
    """A residual in the 4:2:0 layout (``residual_layout="420"``): int16 planes ``y`` (H, W), ``u``
    and ``v`` ((H + 1) // 2, (W + 1) // 2), views of one buffer; half the memory of (3, H, W)."""

    __slots__ = ()

    def __new__(cls, y: np.ndarray, u: np.ndarray, v: np.ndarray):
        return super().__new__(cls, (y, u, v))

    @classmethod
    def from_buffer(cls, buf: np.ndarray, H: int, W: int) -> "YUV420":
        ch, cw = (H + 1) // 2, (W + 1) // 2
        return cls(buf[:H * W].reshape(H, W), buf[H * W:H * W + ch * cw].reshape(ch, cw),
                   buf[H * W + ch * cw:].reshape(ch, cw))

    y = property(lambda self: self[0])
    u = property(lambda self: self[1])
    v = property(lambda self: self[2])
    shape = property(lambda self: (3, *self[0].shape))
    dtype = property(lambda self: self[0].dtype)

    def to_444(self) -> np.ndarray:
        """(3, H, W) int16 with each chroma sample repeated 2x2, as the default layout holds it."""
        H, W = self[0].shape
        out = np.empty((3, H, W), np.int16)
        out[0] = self[0]
        for k in (1, 2):
            out[k] = np.repeat(np.repeat(self[k], 2, axis=0), 2, axis=1)[:H, :W]
        return out


class _Undecoded:
    """A non-reference picture that was not decoded: its display time only."""

    __slots__ = ("time",)

    def __init__(self, time: float):
        self.time = time


class _Skipper:
    """Decides, packet by packet, which pictures are not decoded at all: non-reference pictures
    (nothing is predicted from them: H.264 slices with nal_ref_idc 0, MPEG-4 B-VOPs) at a display
    position that ``unused(position, kinds)`` says no window will read. Positions come from
    timestamps (constant frame rate, counted from the first keyframe); the first decoded picture
    whose position disagrees with its order turns skipping off for good (variable frame rate, lost
    pictures), so a wrong guess costs speed, never a wanted picture. ``kinds`` maps the positions of
    the packets seen so far to their picture type, read from the slice or VOP header (None where a
    picture mixes slice types or cannot be read). Undecoded pictures are handed back in display
    order as :class:`_Undecoded` placeholders, before the first decoded picture that follows them."""

    KEEP = 1024  # positions of picture types remembered behind the newest packet

    def __init__(self, stream, unused, parse):
        self.unused, self.parse = unused, parse
        self.tb = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        self.step = float(1 / (rate * self.tb)) if rate and self.tb else None  # pts units per frame
        self.origin = None   # pts of display position 0
        self.pending: list[int] = []  # pts of undecoded pictures not yet handed back (a heap)
        self.emitted = 0     # pictures handed on (decoded and undecoded), in display order
        self.enabled = self.step is not None
        self.kinds: dict[int, str | None] = {}  # display position -> picture type, of packets seen
        self.newest = 0

    @classmethod
    def for_stream(cls, stream, unused) -> "_Skipper | None":
        ctx = stream.codec_context
        if ctx.name == "h264":
            extradata = ctx.extradata or b""
            if len(extradata) >= 7 and extradata[0] == 1:  # avcC: NAL units prefixed by their length
                size = (extradata[4] & 3) + 1
                return cls(stream, unused, lambda data: _h264_picture(_length_prefixed_nals(data, size)))
            return cls(stream, unused, lambda data: _h264_picture(_annexb_nals(data)))
        if ctx.name == "mpeg4":
            return cls(stream, unused, _mpeg4_vop)
        return None

    def position(self, pts: int) -> int:
        return round((pts - self.origin) / self.step)

    def skip(self, packet) -> bool:
        if not self.enabled or packet.pts is None:
            return False
        if self.origin is None:
            if not packet.is_keyframe:
                return False
            self.origin = packet.pts
        if packet.pts < self.origin:
            return False
        try:
            nonref, kind = self.parse(bytes(packet))
        except (IndexError, ValueError):
            return False
        position = self.position(packet.pts)
        self._remember(position, kind)
        if not nonref or not self.unused(position, self.kinds):
            return False
        heapq.heappush(self.pending, packet.pts)
        return True

    def _remember(self, position: int, kind: str | None) -> None:
        self.kinds[position] = kind
        if position > self.newest:
            self.newest = position
            if len(self.kinds) > 2 * self.KEEP:
                self.kinds = {q: k for q, k in self.kinds.items() if q > position - self.KEEP}

    def before(self, frame) -> Iterator[_Undecoded]:
        """The undecoded pictures shown before ``frame`` (all of them when None: the end)."""
        pts = None if frame is None else frame.pts
        while self.pending and (pts is None or self.pending[0] < pts):
            self.emitted += 1
            yield _Undecoded(float(heapq.heappop(self.pending) * self.tb))
        if frame is not None:
            if self.enabled and (pts is None or self.origin is None or self.position(pts) != self.emitted):
                self.enabled = False  # timestamps do not say positions here: decode everything from now on
            self.emitted += 1


def _length_prefixed_nals(data: bytes, size: int) -> Iterator[bytes]:
    """The NAL units of an avcC access unit (each prefixed by its length in ``size`` bytes)."""
    i = 0
    while i + size < len(data):
        n = int.from_bytes(data[i:i + size], "big")
        yield data[i + size:i + size + n]
        i += size + n


def _annexb_nals(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B access unit (start codes), each from its header byte on."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        j = data.find(b"\x00\x00\x01", i + 3)
        yield data[i + 3:j if j >= 0 else len(data)]
        i = j


_H264_SLICE_KINDS = ("P", "B", "I", "P", "I")  # slice_type % 5: P, B, I, SP, SI


def _h264_slice_kind(nal: bytes) -> str | None:
    """The picture type of an H.264 slice NAL unit from its header (first_mb_in_slice and
    slice_type, two Exp-Golomb codes), or None if they cannot be read."""
    head = nal[1:12].replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention, in these bytes
    bits, nbits, pos = int.from_bytes(head, "big"), 8 * len(head), 0
    values = []
    for _ in range(2):
        zeros = 0
        while pos < nbits and not (bits >> (nbits - 1 - pos)) & 1:
            zeros, pos = zeros + 1, pos + 1
        if pos + zeros + 1 > nbits or zeros > 31:
            return None
        values.append(((bits >> (nbits - pos - zeros - 1)) & ((1 << (zeros + 1)) - 1)) - 1)
        pos += zeros + 1
    return _H264_SLICE_KINDS[values[1] % 5] if values[1] < 10 else None


def _h264_picture(nals: Iterator[bytes]) -> tuple[bool, str | None]:
    """(whether every slice of an access unit has nal_ref_idc 0, its picture type or None)."""
    slices, ref, kinds = 0, False, set()
    for nal in nals:
        if not nal:
            continue
        header = nal[0]
        if header & 0x1F in (1, 5):  # a coded slice (5: IDR, always intra)
            slices += 1
            ref |= bool(header & 0x60)
            kinds.add("I" if header & 0x1F == 5 else _h264_slice_kind(nal))
    kind = kinds.pop() if len(kinds) == 1 else None
    return slices > 0 and not ref, kind


_MPEG4_VOP_KINDS = ("I", "P", "B", "P")  # vop_coding_type: I, P, B, S (sprite: predicted)


def _mpeg4_vop(data: bytes) -> tuple[bool, str | None]:
    """(whether an MPEG-4 Part 2 packet is a B-VOP, never a reference; its VOP type or None)."""
    i = data.find(b"\x00\x00\x01\xb6")
    if i < 0 or i + 4 >= len(data):
        return False, None
    kind = _MPEG4_VOP_KINDS[data[i + 4] >> 6]
    return kind == "B", kind


PREFETCH_BYTES = 48 << 20  # decoded pictures held ahead of the consumer, at most (4:2:0 bytes)


def prefetch_depth(width: int, height: int) -> int:
    """How many pictures the decode-ahead thread may hold: 48 MiB of 4:2:0 pictures, 4 to 64. A deep
    queue keeps decoding while the model runs on a window (a whole stride of small pictures); 4
    when the size is not known yet."""
    if width <= 0 or height <= 0:
        return 4
    return max(4, min(64, PREFETCH_BYTES // (width * height * 3 // 2)))


class _Prefetcher:
    """Runs a decoded-picture iterator in a thread, a few pictures ahead of the consumer.

    FFmpeg decodes without Python's lock, so decoding the next pictures overlaps the side-data
    kernels and the model on another core. Only for local data: the thread never waits on a
    network or a pipe, so ``close()`` always ends it within one picture. Exceptions reach the
    consumer in order, after the pictures decoded before them.
    """

    _DONE = object()

    def __init__(self, pictures: Iterator, depth: int = 4):
        self._pictures, self._queue = pictures, queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgekit-decode", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for picture in self._pictures:
                if not self._put((picture, None)):
                    return
            self._put((self._DONE, None))
        except BaseException as err:  # handed to the consumer, raised there
            self._put((self._DONE, err))
        finally:
            self._pictures.close()

    def __iter__(self) -> Iterator:
        while True:
            item, err = self._queue.get()
            if item is self._DONE:
                self._thread.join()
                if err is not None:
                    raise err
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def _reason(err: BaseException, description: str) -> str:
    """An error's message without the source's name in front and the advice after it: "connection refused"."""
    text = str(err)
    if text.startswith(description + ": "):
        text = text[len(description) + 2:]
    return text.split(";", 1)[0]


def residual_step(H: int, W: int, size: tuple[int, int], asked: int | None = None) -> int:
    """The sampling step of a binned cell-trace residual: 1 (every pixel, the default), or 2 when
    asked (every other row and luma column, every other chroma row, where each output cell spans
    at least 4 x 4 source pixels; otherwise 1). Measured on 136 synthetic 720p H.264 clips with the
    default model (``benchmarks/residual_step.py``, ``docs/results/residual-step.json``): the kernel
    1.5x faster but the whole recognition only 1-5 % (decoding dominates), 3 of 136 labels changed
    and top-1 went from 83.1 % to 81.6 %. Not worth it by default."""
    if asked == 2 and H >= 4 * size[0] and W >= 4 * size[1]:
        return 2
    return 1


def _picture_size(frame) -> tuple[int, int] | None:
    """(height, width) of a decoded frame, or None when it carries no picture."""
    try:
        height, width = frame.height, frame.width
        has_format = frame.format is not None
    except (AttributeError, ValueError):
        return None
    if not has_format or height <= 0 or width <= 0:
        return None
    return height, width


def _detach_side_data(side_data) -> None:
    """Break the reference cycle PyAV makes when a frame's side data is read.

    ``frame.side_data`` caches on the frame a container whose entries reference the frame back, so
    the decoded picture is freed only by Python's cyclic garbage collector, typically a hundred or
    more frames later: hundreds of MB at 1080p, and a decoder that cannot recycle its buffers.
    Re-initialising the container on a frame without side data drops its entries and its reference
    to the frame, so the picture is freed as soon as the reader lets it go. Call it once the side
    data has been read (its buffers are not valid afterwards).
    """
    try:
        side_data.__init__(_NO_SIDE_DATA)
    except Exception:  # a PyAV whose container cannot be re-pointed: the collector frees the frame later
        pass
