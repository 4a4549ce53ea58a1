"""The compressed-domain reader: decoded frames plus FFmpeg's motion vectors, as CompressedFrames.

See the package docstring (``edgekit.bitstream``) for the definitions of every array.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from edgekit.bitstream import _reference
from edgekit.bitstream.encode import EncoderSettings, create_encoder
from edgekit.bitstream.source import _short, open_container
from edgekit.errors import (ConfigError, DecodeError, EmptySourceError, ResolutionError,
                            SourceError, SourceTimeoutError, UnsupportedCodecError)

try:
    from edgekit import _kernels as _native
except ImportError:  # extension not built: numpy kernels, same results, slower
    _native = None

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


def kernels():
    """The kernel module in use: the native extension, or the numpy reference (EDGEKIT_NATIVE=0)."""
    if _native is not None and os.environ.get("EDGEKIT_NATIVE", "1") != "0":
        return _native
    return _reference


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


@dataclass(frozen=True, eq=False)
class CompressedFrame:
    """One frame of side data, in display order.

    index       display-order index among yielded frames (0-based)
    pts         presentation time in seconds
    kind        'I', 'P' or 'B' (picture type the decoder reports; S-VOPs and SP slices count as P)
    gop_index   number of I-frames seen before and including this frame's GOP start, minus one
    mv          float32 (2, ceil(H/8), ceil(W/8)): dx, dy in pixels, forward-flow sign (see package doc)
    intra       bool (ceil(H/8), ceil(W/8)): blocks with no motion vector (intra coded); their mv is 0
    residual    int16 (3, H, W), YUV channels, or None when residual=False
    rgb         uint8 (H, W, 3) for I-frames (every frame with rgb="all"), else None
    """

    index: int
    pts: float
    kind: str
    gop_index: int
    mv: np.ndarray
    intra: np.ndarray
    residual: np.ndarray | None = None
    rgb: np.ndarray | None = None


class _Decoded:
    """A decoded picture with what the reader needs of it, kept while it may be referenced."""

    __slots__ = ("frame", "kind", "pts", "planes", "d0", "d1", "flags", "acc", "residual")

    def __init__(self, frame, kind, pts):
        self.frame, self.kind, self.pts = frame, kind, pts
        self.planes = None
        self.acc = None
        self.residual = None  # accumulated mode computes it with the positions


def open(source, *, residual: bool = True, rgb: str | None = "iframes", accumulate: bool = False,
         transcode: str | None = None, format: str | None = None, threads: str | int = "auto",
         timeout_s: float = 10.0, max_pixels: int = MAX_PIXELS, fast: bool = True) -> "Reader":
    """Open a video source for compressed-domain reading. See ``edgekit.bitstream`` for details."""
    return Reader(source, residual=residual, rgb=rgb, accumulate=accumulate, transcode=transcode,
                  format=format, threads=threads, timeout_s=timeout_s, max_pixels=max_pixels,
                  fast=fast)


class Reader:
    """Iterate a source's CompressedFrames. Use ``edgekit.bitstream.open``; a context manager."""

    def __init__(self, source, *, residual=True, rgb="iframes", accumulate=False, transcode=None,
                 format=None, threads="auto", timeout_s=10.0, max_pixels=MAX_PIXELS, fast=True):
        if rgb not in (None, "iframes", "all"):
            raise ConfigError(f"rgb must be None, 'iframes' or 'all', got {rgb!r}")
        if transcode not in (None, "mpeg4", "h264"):
            raise ConfigError(f"transcode must be None, 'mpeg4' or 'h264', got {transcode!r}")
        self.residual, self.rgb, self.accumulate = bool(residual), rgb, bool(accumulate)
        self.stats = ReaderStats()
        self._kernels = kernels()
        self._container, self.description = open_container(source, timeout_s=timeout_s, format=format)
        try:
            self._setup(transcode, threads, max_pixels, fast)
        except BaseException:
            self._container.close()
            raise

    # -- setup -------------------------------------------------------------------------------------

    def _setup(self, transcode, threads, max_pixels, fast):
        streams = self._container.streams.video
        if not streams:
            raise EmptySourceError(f"{self.description}: no video stream (audio-only or data file)")
        stream = self._stream = streams[0]
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if width <= 0 or height <= 0:
            raise ResolutionError(f"{self.description}: the video stream has no valid size ({width}x{height})")
        if width * height > max_pixels:
            raise ResolutionError(f"{self.description}: {width}x{height} exceeds the {max_pixels} pixel limit "
                                  "(pass max_pixels= to allow it)")
        codec = ctx.name
        if codec not in MV_CODECS and transcode is None:
            raise UnsupportedCodecError(
                f"{self.description}: FFmpeg exports no motion vectors for {codec}; "
                "open it with transcode='mpeg4' (or 'h264') to re-encode on the fly", codec=codec)
        # Decoder threads: slice threads (FFmpeg's thread_count, 0 = one per core) and never frame
        # threads. With frame threads, FFmpeg 8's H.264 decoder exports another picture's motion
        # vectors for frames returned while draining at the end of the stream, in most runs
        # (tests/test_bitstream.py::test_threads_never_change_motion_vectors). Kernel threads: rows of
        # the residual split over min(cpu_count, 4) threads above 640x360, where they pay off.
        large = width * height >= 640 * 360
        if threads == "auto":
            ctx.thread_count = 0
            self._kernel_threads = min(os.cpu_count() or 1, 4) if large else 1
        elif isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
            ctx.thread_count = threads
            self._kernel_threads = threads
        else:
            raise ConfigError(f"threads must be 'auto' or an int >= 1, got {threads!r}")
        ctx.thread_type = "SLICE"
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
        if transcode is None:
            ctx.options = dict(decoder_options)
            self._decoder = ctx
            self._encoder = None
        else:
            # source decoder -> encoder (MV codec) -> our decoder with export_mvs. The source decoder
            # exports nothing, so frame threads are safe there.
            stream.thread_type = "AUTO" if threads == "auto" and large else "SLICE"
            self._encoder = create_encoder(EncoderSettings(transcode, gop=12, qscale=3, preset="ultrafast",
                                                           tune="zerolatency"), width, height, rate)
            self._decoder = av.CodecContext.create(transcode, "r")
            self._decoder.thread_type, self._decoder.thread_count = "SLICE", ctx.thread_count
            self._decoder.options = dict(decoder_options)
        self.decoder_options = decoder_options  # what FFmpeg was told (its own dict is consumed on open)
        self.info = StreamInfo(codec=transcode or codec, source_codec=codec, width=width, height=height, fps=fps,
                               time_base=stream.time_base, frame_count=frame_count, duration_s=duration_s,
                               transcoded=transcode is not None)
        self._H, self._W = height, width
        self._gh, self._gw = (height + 7) // 8, (width + 7) // 8
        # block-centre pixel of every cell, for sampling accumulated positions onto the MV grid
        cy = np.minimum(np.arange(self._gh) * 8 + 4, height - 1)
        cx = np.minimum(np.arange(self._gw) * 8 + 4, width - 1)
        self._cell_y, self._cell_x = np.meshgrid(cy, cx, indexing="ij")
        self._cell_index = (self._cell_y * width + self._cell_x).astype(np.int64)
        self._identity = None

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the container and decoder."""
        self._container.close()

    # -- decoding ----------------------------------------------------------------------------------

    def _packets(self) -> Iterator:
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except SourceTimeoutError:
                raise
            except av.error.ExitError as err:
                raise SourceTimeoutError(f"{self.description}: the source stalled ({_short(err)})") from None
            except (av.error.FFmpegError, OSError) as err:
                cause = err.__context__ if isinstance(err.__context__, SourceError) else None
                if isinstance(cause, SourceTimeoutError):
                    raise cause from None
                self.stats.decode_errors += 1
                return  # a demuxer error ends the stream (truncated file); frames so far stand
            yield packet

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
        """Decoded av.VideoFrames with MV side data, in display order; damaged ones skipped."""
        if self._encoder is None:
            source_frames = None
            packets = self._packets()
        else:
            source_frames = self._source_frames()
            packets = self._transcoded_packets(source_frames)
        out = 0  # frames the decoder returned, damaged or not
        for packet in itertools.chain(packets, [None]):  # None flushes the delayed frames
            if packet is not None and packet.size == 0:
                continue
            for frame in self._decode(packet):
                out += 1
                if frame.is_corrupt:
                    self.stats.damaged_frames += 1
                    continue
                yield frame
        # one packet carries one picture here, so packets without a frame are pictures lost to damage
        lost = self.stats.packets - self.stats.decode_errors - out
        self.stats.damaged_frames += self.stats.decode_errors + max(lost, 0)

    def _source_frames(self) -> Iterator:
        ctx = self._stream.codec_context
        for packet in self._packets():
            try:
                frames = ctx.decode(packet)
            except av.error.FFmpegError:
                self.stats.decode_errors += 1
                continue
            yield from frames
        try:
            yield from ctx.decode(None)
        except av.error.FFmpegError:
            self.stats.decode_errors += 1

    def _transcoded_packets(self, frames) -> Iterator:
        for i, frame in enumerate(frames):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, self._encoder.time_base
            yield from self._encoder.encode(frame)
        yield from self._encoder.encode(None)

    def __iter__(self) -> Iterator[CompressedFrame]:
        needs_refs = self.residual or self.accumulate
        pending: list[_Decoded] = []       # B-frames waiting for their future reference
        iframe: _Decoded | None = None     # the current GOP's I-frame
        anchor: _Decoded | None = None     # last I/P frame (the past reference)
        gop = -1
        fps = self.info.fps or 25.0
        decoded_any = False
        last_pts = 0.0
        for n, frame in enumerate(self._frames()):
            decoded_any = True
            kind = _KINDS.get(int(frame.pict_type), "P")
            t = frame.time
            # flushed or raw-stream frames may carry no timestamp: continue at the nominal rate
            pts = float(t) if t is not None and math.isfinite(t) else (last_pts + 1 / fps if n else 0.0)
            last_pts = pts
            cur = _Decoded(frame, kind, pts)
            self._grids(cur)
            if kind == "I":
                gop += 1
                self.stats.gops += 1
            if gop < 0:  # stream joined mid-GOP: nothing to trace back to yet
                self.stats.damaged_frames += 1
                continue
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
        for b, b_gop in pending:  # stream ended before the future reference arrived
            self._predict(b, anchor, None, iframe)
            yield self._emit(b, b_gop, iframe, anchor, None)
        if not decoded_any:
            if self.stats.decode_errors or self.stats.damaged_frames:
                raise DecodeError(f"{self.description}: no frame could be decoded "
                                  f"({self.stats.decode_errors} decode errors)")
            raise EmptySourceError(f"{self.description}: the video stream holds no frames")

    # -- per-frame work ----------------------------------------------------------------------------

    def _grids(self, cur: _Decoded) -> None:
        gh, gw = self._gh, self._gw
        cur.d0 = np.empty((2, gh, gw), np.float32)
        cur.d1 = np.empty((2, gh, gw), np.float32)
        cur.flags = np.empty((gh, gw), np.uint8)
        if cur.kind == "I":
            self._kernels.mv_grid(None, gh, gw, cur.d0, cur.d1, cur.flags)
            return
        side_data = cur.frame.side_data
        self._kernels.mv_grid(side_data.get("MOTION_VECTORS"), gh, gw, cur.d0, cur.d1, cur.flags)
        _detach_side_data(side_data)

    def _planes(self, d: _Decoded):
        """(native tuple, numpy tuple) of the Y, U, V planes of a decoded frame."""
        if d.planes is None:
            frame = d.frame
            if frame.format.name not in _SAFE_PIX_FMTS:
                frame = d.frame = frame.reformat(format="yuv420p")
            arrays, native = [], []
            for k, plane in enumerate(frame.planes[:3]):
                h = self._H if k == 0 else (self._H + 1) // 2
                w = self._W if k == 0 else (self._W + 1) // 2
                a = np.frombuffer(plane, np.uint8, count=h * plane.line_size).reshape(h, plane.line_size)
                arrays.append(a[:, :w])
                native += [a, plane.line_size]
            d.planes = (tuple(native), tuple(arrays))
        return d.planes[0] if self._kernels is _native else d.planes[1]

    def _start_gop(self, cur: _Decoded) -> None:
        if self.accumulate:
            if self._identity is None:  # read-only and shared by every GOP: positions are never mutated
                yy, xx = np.mgrid[0:self._H, 0:self._W].astype(np.int32)
                self._identity = ((yy << 16) | xx).reshape(-1)
            cur.acc = self._identity

    def _predict(self, cur: _Decoded, past: _Decoded | None, future: _Decoded | None,
                 iframe: _Decoded | None, future_same_gop: bool = True) -> None:
        """Accumulated mode: set ``cur.acc`` for a P/B frame given its references and, when the
        residual is wanted, ``cur.residual`` in the same pass over memory."""
        if not self.accumulate or past is None:
            return
        H, W = self._H, self._W
        cur.acc = np.empty(H * W, np.int32)
        acc1 = future.acc if (future is not None and future_same_gop) else None
        args = (past.acc, acc1, H, W, cur.d0, cur.d1, cur.flags, self._gw, cur.acc, self._kernel_threads)
        if self.residual and iframe is not None:
            cur.residual = np.empty((3, H, W), np.int16)
            self._kernels.accumulate(*args, self._planes(cur), self._planes(iframe), cur.residual)
        else:
            self._kernels.accumulate(*args)

    def _emit(self, cur: _Decoded, gop: int, iframe, past, future) -> CompressedFrame:
        flags = cur.flags
        intra = flags == 0
        if cur.kind == "I":
            intra = np.ones_like(intra)
            mv = np.zeros((2, self._gh, self._gw), np.float32)
        elif self.accumulate and cur.acc is not None:
            a = cur.acc.reshape(-1)[self._cell_index]
            mv = np.stack([self._cell_x - (a & 0xFFFF), self._cell_y - (a >> 16)]).astype(np.float32)
        elif cur.kind == "B":
            # past-reference vector where the block has one, else the future one negated (forward in time)
            mv = np.where(flags & 1, cur.d0, -cur.d1)
        else:
            mv = cur.d0
        residual = None
        if self.residual:
            residual = self._residual(cur, iframe, past, future)
        rgb = None
        if self.rgb == "all" or (self.rgb == "iframes" and cur.kind == "I"):
            rgb = cur.frame.to_ndarray(format="rgb24")
        self.stats.frames += 1
        self.stats.kinds[cur.kind] += 1
        out = CompressedFrame(index=self.stats.frames - 1, pts=cur.pts, kind=cur.kind, gop_index=gop,
                              mv=mv, intra=intra, residual=residual, rgb=rgb)
        cur.planes = None if cur.kind == "B" else cur.planes  # B-frames are never referenced again
        return out

    def _residual(self, cur: _Decoded, iframe, past, future) -> np.ndarray:
        H, W = self._H, self._W
        if cur.residual is not None:  # accumulated: computed by _predict
            out, cur.residual = cur.residual, None
            return out
        if cur.kind == "I" or past is None or self.accumulate:
            return np.zeros((3, H, W), np.int16)
        out = np.empty((3, H, W), np.int16)
        ref1 = self._planes(future) if future is not None else None
        self._kernels.mc_residual(self._planes(cur), self._planes(past), ref1, H, W, cur.d0, cur.d1, cur.flags,
                                  self._gw, out, self._kernel_threads)
        return out


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
