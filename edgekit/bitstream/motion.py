"""Encoder-side motion vectors: the vectors a camera's own encoder computed, read with no decoding at all.

A camera application that already encodes its video (NVIDIA Jetson's hardware encoder, a software
x264, any encoder that reports its motion search) knows every frame's motion vectors before a single
byte is written. :class:`EncoderMotion` turns that per-frame motion data, with each frame's kind and
timestamp, into the same :class:`~edgekit.bitstream.CompressedFrame` s the file reader yields with
``residual=False, rgb=None`` (motion vectors and intra flags; no residual, no RGB), so a
motion-vector-only model runs on it unchanged::

    import edgekit
    from edgekit.bitstream import EncoderMotion, MotionFrame

    frames = (MotionFrame.from_mvinfo(kind, pts, mvinfo_bytes) for kind, pts, mvinfo_bytes in encoder)
    source = EncoderMotion(frames, width=1280, height=720, fps=30)
    with edgekit.Recognizer("mv-model.edgepkg") as rec:
        for window in rec.stream(source):          # or rec.recognize(source) / rec.windows(source)
            print(window.start_s, window.label, window.score)

    with edgekit.open(source, residual=False, rgb=None) as reader:   # the frames themselves
        for f in reader:
            f.kind, f.pts, f.mv, f.intra

The reader behind it (:class:`MotionReader`) is the file reader's own state machine (GOPs, B-frames
waiting for their future reference, accumulated traces, size changes; ``edgekit.bitstream``'s
docstring defines every array) with the decoder replaced by the frames given here. Accumulation
(``accumulate=True``) works as for a file; ``trace="block"`` (one step per 8x8 cell) is the default of
:meth:`EncoderMotion.open` and ``trace="pixel"`` is what ``edgekit.open`` passes unless told otherwise,
so a Recognizer reads encoder motion exactly as it reads a file with the same vectors.

**Per-frame motion data** (:class:`MotionFrame` constructors; ``kind`` is "I", "P" or "B", ``pts`` the
presentation time in seconds or None to continue at the nominal rate):

``MotionFrame(kind, pts)``
    A frame without vectors: an I-frame (I-frames never carry vectors: mv 0, all intra), or a P/B
    frame coded all intra.

``MotionFrame.from_rows(kind, pts, rows)``
    FFmpeg-style rows, ``AVMotionVector`` without its unused ``flags``: an integer array (N, 10) with
    columns ``(source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y, motion_scale)``, a numpy
    structured array with those fields (``MOTION_VECTOR_DTYPE`` included), or the raw bytes of
    40-byte ``AVMotionVector`` records. They are packed into FFmpeg's byte layout and scattered by the
    very kernel that reads a file's side data (``mv_grid``), so the grid equals the file reader's by
    construction: ``dst - src = -motion / motion_scale``, ``source < 0`` a past reference, ``> 0`` the
    future one (negated on B-frames, as the package docstring says). **Intra blocks** are the blocks
    no row covers.

``MotionFrame.from_mvinfo(kind, pts, mvinfo, *, block=16, scale=-1.0, intra=None)``
    An NVIDIA Jetson encoder's ``MVInfo`` grid (``V4L2_CID_MPEG_VIDEOENC_METADATA_MV``,
    ``NvVideoEncoder::getMotionVectors``): one vector per 16x16 macroblock (H.264, ``block=16``) or
    per 32x32 coding tree block (H.265, ``block=32``), raster order, ``ceil(H/block)`` rows of
    ``ceil(W/block)``. Accepted as an array (rows, cols, 2 or 3) of ``(mv_x, mv_y[, weight])``, a
    structured array with fields ``mv_x``, ``mv_y`` (and ``weight``), or the raw bytes of the
    ``pMVInfo`` buffer (``bufSize`` bytes). See "Jetson MVInfo" below for the units. ``weight`` is read
    but not used. **Intra blocks:** MVInfo has no intra flag, so every block of a P/B frame counts as
    inter (a zero vector is a zero vector) unless ``intra``, a bool mask (rows, cols), says otherwise.

``MotionFrame.from_grid(kind, pts, grid, *, block=8, intra=None)``
    A dense grid float (2, rows, cols) of ``(dx, dy)`` in pixels, one vector per ``block`` x ``block``
    pixels (8, 16, 32 or 64), in **edgekit's convention**: ``d = dst - src``, where the block's
    content moved *from* the reference *to* this frame (forward optical flow; a rightward motion is
    positive dx), relative to the past reference. **Intra blocks:** where ``intra`` (bool, rows x
    cols) is True, or where a vector is NaN or infinite (no vector).

Each constructor takes ``size=(height, width)`` for a frame whose picture size differs from the
source's (an encoder reconfigured on the fly: a new size starts a new GOP at its first I-frame, as
in a file). Grid and MVInfo vectors are taken as past-reference (L0) vectors on every frame kind.

**Jetson MVInfo: units, sign and layout.** NVIDIA's Jetson Linux API reference (``MVInfo_``,
``v4l2_nv_extensions.h``, releases 32.x to 38.x) documents ``mv_x`` / ``mv_y`` as the "number of pixels
the macro block moved in horizontal / vertical direction", bit fields ``__s32 mv_x:16``, ``__s32
mv_y:14``, ``__u32 weight:2`` ("temporal hints used by hardware for motion estimation"), one vector
per 16x16 macroblock for H.264 and per 32x32 CTB for H.265; ``v4l2_ctrl_videoenc_outputbuf_metadata_MV``
holds ``bufSize`` (bytes) and ``pMVInfo``. Not documented there, and **assumed** here (no Jetson was
available to check): (1) the sign: the vector is the coded one, pointing from the block to its
reference block as in the H.264/H.265 bitstream and in FFmpeg's ``motion_x``, so edgekit's ``d =
-mv`` (``scale=-1.0``); pass ``scale=+1.0`` if your encoder reports where the content moved. (2) The
unit: whole pixels, as documented; the field widths (16 and 14 bits) would also hold quarter-pixel
values, so if vectors come out four times too large, pass ``scale=-0.25``. Check both once with a
known pan: content moving right must give ``mv[0] > 0``. (3) The raw layout: the bit fields packed
into one little-endian 32-bit word as GCC lays them out on aarch64 (``mv_x`` bits 0-15, ``mv_y``
bits 16-29, ``weight`` bits 30-31), each record 4 bytes (L4T 32.x-35.x), 20 bytes (36.x adds ``__u32
reserved[4]``) or 68 bytes (38.x adds ``__u8 reserved[64]``); the record size follows from the
buffer's length and the block count. Which Jetsons: Orin NX and AGX Orin have the NVENC encoder; Orin
Nano has none (its encoding is in software, with no such metadata).

**Order.** Frames are taken in display order (``order="display"``, what an encoder without B-frames
emits). An encoder with B-frames emits in decode order: give ``order="decode"`` and each anchor (I/P)
is held until the next one arrives, with the B-frames between them sorted by ``pts`` in front of it.

**What is refused.** Encoder motion has no residual and no picture: ``residual=True``, ``rgb`` other
than None, ``transcode``, ``format``, ``residual_size``, ``reconnect`` and ``transport`` raise
``ConfigError``. ``wants`` works as for a file (a declined B-frame is not traced). ``timeout_s``, ``fast`` and ``residual_layout`` are accepted and
have no effect (the iterable paces itself; nothing is decoded; there is no residual to lay out).

**Errors.** A constructor given a wrong kind, shape, dtype, block size or value raises ``ConfigError``
with a one-line message; while reading, an item that is not a :class:`MotionFrame`, a grid that does
not match the picture size, or an MVInfo buffer of another length raises ``DecodeError`` naming the
frame. Nothing is read outside a buffer: rows are bounds-checked when packed, and the scatter kernel
checks every argument against the frame, clipping blocks that fall outside it.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator

import numpy as np

from edgekit.bitstream import _reference
from edgekit.bitstream.reader import MAX_PIXELS, Reader, ReaderStats, StreamInfo, _Decoded, check_max_vector, kernels
from edgekit.errors import ConfigError, DecodeError

KINDS = ("I", "P", "B")
BLOCKS = (8, 16, 32, 64)             # grid block sizes accepted (multiples of the 8x8 cell)
MVINFO_BLOCKS = (16, 32)             # H.264 macroblock, H.265 CTB as the Jetson encoder reports them
MVINFO_RECORD_BYTES = (4, 20, 68)    # sizeof(MVInfo) in L4T 32.x-35.x, 36.x, 38.x
ROW_FIELDS = ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")
MOTION_VECTOR_DTYPE = _reference.MOTION_VECTOR_DTYPE  # FFmpeg's AVMotionVector, 40 bytes
_NO_VECTORS = np.zeros(0, MOTION_VECTOR_DTYPE)
_LIMITS = {name: np.iinfo(MOTION_VECTOR_DTYPE.fields[name][0]) for name in ROW_FIELDS}
_MAX_GRID = 8192                     # cells per side: beyond every frame edgekit reads


def _kind(kind) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind must be 'I', 'P' or 'B', got {kind!r}")
    return kind


def _pts(pts) -> float | None:
    if pts is None:
        return None
    if isinstance(pts, bool) or not isinstance(pts, numbers.Real) or not math.isfinite(pts):
        raise ConfigError(f"pts must be a finite number of seconds or None, got {pts!r}")
    return float(pts)


def _dimension(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= 65535:
        raise ConfigError(f"{name} must be a whole number of pixels in 1..65535, got {value!r}")
    return int(value)


def _size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ConfigError(f"size must be (height, width) in pixels or None, got {size!r}")
    return _dimension("size height", size[0]), _dimension("size width", size[1])


def _block(block, allowed) -> int:
    if isinstance(block, bool) or block not in allowed:
        raise ConfigError(f"block must be one of {', '.join(map(str, allowed))} pixels, got {block!r}")
    return int(block)


def _is_buffer(data) -> bool:
    return isinstance(data, (bytes, bytearray, memoryview))


def _raw_bytes(data, what: str) -> bytes:
    """An owned copy of a bytes-like object (an encoder recycles its buffers)."""
    try:
        return memoryview(data).cast("B").tobytes()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{what}: not a contiguous bytes-like buffer ({err})") from None


def _integral(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as int64, refusing booleans, non-numbers and non-integral or non-finite floats."""
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or not np.array_equal(a, np.floor(a)):
            raise ConfigError(f"{what}: values must be whole numbers")
        if a.size and np.abs(a).max() > 2 ** 62:
            raise ConfigError(f"{what}: values beyond any motion vector")
        return a.astype(np.int64)
    raise ConfigError(f"{what}: expected integers, got dtype {a.dtype}")


def pack_rows(rows) -> np.ndarray:
    """FFmpeg-style rows -> a 1-D array of ``MOTION_VECTOR_DTYPE`` (``flags`` 0), bounds-checked.

    ``rows``: an integer array (N, 10) with columns ``ROW_FIELDS``, a structured array with those
    fields, or the raw bytes of 40-byte ``AVMotionVector`` records (None: no vectors). A value that
    does not fit its FFmpeg field (``w`` above 255, ``dst_x`` beyond int16...) raises ConfigError."""
    if rows is None:
        return _NO_VECTORS
    if _is_buffer(rows):
        raw = _raw_bytes(rows, "rows")
        if len(raw) % MOTION_VECTOR_DTYPE.itemsize:
            raise ConfigError(f"rows: {len(raw)} bytes is not a whole number of {MOTION_VECTOR_DTYPE.itemsize}-byte "
                              "AVMotionVector records")
        out = np.frombuffer(raw, MOTION_VECTOR_DTYPE).copy()
        out["flags"] = 0
        return out
    a = rows if isinstance(rows, np.ndarray) else np.asarray(rows)
    if a.dtype.names is not None:
        missing = [f for f in ROW_FIELDS if f not in a.dtype.names]
        if missing:
            raise ConfigError(f"rows: the structured array lacks the field(s) {', '.join(missing)}")
        if a.ndim != 1:
            raise ConfigError(f"rows: a structured array must be 1-D, got shape {a.shape}")
        columns = {f: a[f] for f in ROW_FIELDS}
        n = len(a)
    else:
        if a.size == 0 and a.ndim <= 2:
            return _NO_VECTORS
        if a.ndim != 2 or a.shape[1] != len(ROW_FIELDS):
            raise ConfigError(f"rows must be (N, 10): {', '.join(ROW_FIELDS)}; got shape {a.shape}")
        columns = {f: a[:, i] for i, f in enumerate(ROW_FIELDS)}
        n = a.shape[0]
    out = np.zeros(n, MOTION_VECTOR_DTYPE)
    if n == 0:
        return out
    for name, column in columns.items():
        values = _integral(np.asarray(column), f"rows column {name}")
        lo, hi = int(values.min()), int(values.max())
        limit = _LIMITS[name]
        if lo < limit.min or hi > limit.max:
            bad = lo if lo < limit.min else hi
            raise ConfigError(f"rows column {name} holds {bad}, outside FFmpeg's {limit.dtype} field "
                              f"({limit.min}..{limit.max})")
        out[name] = values
    return out


def _decode_mvinfo(raw: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(mv_x, mv_y) int16 of ``count`` raw MVInfo records (see the module docstring for the layout)."""
    if count <= 0 or len(raw) % count:
        raise ValueError(f"{len(raw)} bytes do not divide into {count} MVInfo records")
    record = len(raw) // count
    if record not in MVINFO_RECORD_BYTES:
        raise ValueError(f"{len(raw)} bytes for {count} blocks is {record} bytes per MVInfo record, not one of "
                         f"{', '.join(map(str, MVINFO_RECORD_BYTES))}")
    halves = np.frombuffer(raw, "<i2").reshape(count, record // 2)
    mv_x = halves[:, 0]                             # bits 0-15 of the word: a signed 16-bit field as it is
    mv_y = np.left_shift(halves[:, 1], 2) >> 2      # bits 16-29: a signed 14-bit field, sign-extended
    return mv_x, mv_y


def _intra_mask(intra, shape: tuple[int, int] | None, what: str) -> np.ndarray | None:
    if intra is None:
        return None
    mask = np.asarray(intra)
    if mask.dtype != np.bool_:
        raise ConfigError(f"{what}: intra must be a bool array, got dtype {mask.dtype}")
    if mask.ndim != 2 or (shape is not None and mask.shape != shape):
        raise ConfigError(f"{what}: intra must have the grid's shape {shape}, got {mask.shape}")
    return np.ascontiguousarray(mask)


class MotionFrame:
    """One frame of motion as an encoder reported it, with its kind ("I", "P", "B") and ``pts``
    (seconds, or None). ``MotionFrame(kind, pts)`` holds no vectors (an I-frame, or a P/B frame
    coded all intra); :meth:`from_rows`, :meth:`from_mvinfo` and :meth:`from_grid` build the others
    (see ``edgekit.bitstream.motion``). ``size``: (height, width) when it differs from the source's."""

    __slots__ = ("kind", "pts", "size", "_form", "_data", "_block", "_intra")

    def __init__(self, kind: str, pts: float | None = None, *, size: tuple[int, int] | None = None):
        self.kind, self.pts, self.size = _kind(kind), _pts(pts), _size(size)
        self._form: str | None = None   # None (no vectors), "rows", "grid" or "mvinfo-raw"
        self._data = None
        self._block = 8
        self._intra: np.ndarray | None = None

    def __repr__(self) -> str:
        what = {None: "no vectors", "rows": "rows", "grid": f"{self._block}x{self._block} grid",
                "mvinfo-raw": f"{self._block}x{self._block} MVInfo buffer"}[self._form]
        size = "" if self.size is None else f", {self.size[1]}x{self.size[0]}"
        return f"MotionFrame({self.kind!r}, pts={self.pts}, {what}{size})"

    @classmethod
    def from_rows(cls, kind: str, pts: float | None, rows, *, size: tuple[int, int] | None = None) -> "MotionFrame":
        """FFmpeg-style rows (N, 10) ``(source, w, h, src_x, src_y, dst_x, dst_y, motion_x, motion_y,
        motion_scale)``, a structured array with those fields, or raw ``AVMotionVector`` bytes."""
        frame = cls(kind, pts, size=size)
        packed = pack_rows(rows)
        if len(packed):
            frame._form, frame._data = "rows", packed.view(np.uint8)
        return frame

    @classmethod
    def from_mvinfo(cls, kind: str, pts: float | None, mvinfo, *, block: int = 16, scale: float = -1.0,
                    intra=None, size: tuple[int, int] | None = None) -> "MotionFrame":
        """A Jetson ``MVInfo`` grid: array (rows, cols, 2 or 3), structured (``mv_x``, ``mv_y``[,
        ``weight``]) or the raw ``pMVInfo`` bytes; ``block`` 16 (H.264) or 32 (H.265); edgekit's
        ``d = scale * (mv_x, mv_y)`` (default -1.0: whole pixels, coded-vector sign; see the module
        docstring); ``intra`` an optional bool mask (rows, cols)."""
        frame = cls(kind, pts, size=size)
        frame._block = _block(block, MVINFO_BLOCKS)
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale == 0:
            raise ConfigError(f"scale must be a finite non-zero number (pixels per MVInfo unit, signed), got {scale!r}")
        if _is_buffer(mvinfo):
            frame._form, frame._data = "mvinfo-raw", (_raw_bytes(mvinfo, "mvinfo"), float(scale))
            frame._intra = _intra_mask(intra, None, "mvinfo")
            return frame
        a = mvinfo if isinstance(mvinfo, np.ndarray) else np.asarray(mvinfo)
        if a.dtype.names is not None:
            if "mv_x" not in a.dtype.names or "mv_y" not in a.dtype.names:
                raise ConfigError("mvinfo: a structured array needs the fields mv_x and mv_y")
            if a.ndim != 2:
                raise ConfigError(f"mvinfo: a structured array must be (rows, cols), got shape {a.shape}")
            x, y = a["mv_x"], a["mv_y"]
        else:
            if a.ndim != 3 or a.shape[2] not in (2, 3):
                raise ConfigError(f"mvinfo must be (rows, cols, 2 or 3): mv_x, mv_y[, weight]; got shape {a.shape}")
            x, y = a[..., 0], a[..., 1]
        rows, cols = a.shape[:2]
        if not (1 <= rows <= _MAX_GRID and 1 <= cols <= _MAX_GRID):
            raise ConfigError(f"mvinfo: a grid of {rows}x{cols} blocks fits no picture")
        grid = np.empty((2, rows, cols), np.float32)
        grid[0] = _integral(np.asarray(x), "mvinfo mv_x")
        grid[1] = _integral(np.asarray(y), "mvinfo mv_y")
        grid *= np.float32(scale)
        frame._intra = _intra_mask(intra, (rows, cols), "mvinfo")
        if frame._intra is not None:
            grid[:, frame._intra] = 0
        frame._form, frame._data = "grid", grid
        return frame

    @classmethod
    def from_grid(cls, kind: str, pts: float | None, grid, *, block: int = 8, intra=None,
                  size: tuple[int, int] | None = None) -> "MotionFrame":
        """A dense grid float (2, rows, cols) of (dx, dy) in pixels, edgekit's sign (``dst - src``),
        one vector per ``block`` x ``block`` pixels; NaN/inf vectors and ``intra`` mark intra blocks."""
        frame = cls(kind, pts, size=size)
        frame._block = _block(block, BLOCKS)
        a = grid if isinstance(grid, np.ndarray) else np.asarray(grid)
        if a.dtype.kind not in "iuf" or a.dtype == np.bool_:
            raise ConfigError(f"grid: expected a float or integer array, got dtype {a.dtype}")
        if a.ndim != 3 or a.shape[0] != 2:
            raise ConfigError(f"grid must be (2, rows, cols): dx, dy; got shape {a.shape}")
        rows, cols = a.shape[1:]
        if not (1 <= rows <= _MAX_GRID and 1 <= cols <= _MAX_GRID):
            raise ConfigError(f"grid: {rows}x{cols} blocks fits no picture")
        out = a.astype(np.float32)  # a copy: the caller's array stays theirs
        missing = ~np.isfinite(out).all(axis=0)  # no vector: intra
        mask = _intra_mask(intra, (rows, cols), "grid")
        if mask is not None:
            missing |= mask
        if missing.any():
            out[:, missing] = 0
            frame._intra = missing
        frame._form, frame._data = "grid", out
        return frame

    # -- what the reader asks ----------------------------------------------------------------------

    def _grid(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(float32 (2, rows, cols) vectors in edgekit's convention, intra mask or None) for a
        ``height`` x ``width`` picture. ValueError when the data does not fit that picture."""
        b = self._block
        rows, cols = -(-height // b), -(-width // b)
        if self._form == "mvinfo-raw":
            raw, scale = self._data
            mv_x, mv_y = _decode_mvinfo(raw, rows * cols)
            grid = np.empty((2, rows, cols), np.float32)
            grid[0] = mv_x.reshape(rows, cols)
            grid[1] = mv_y.reshape(rows, cols)
            grid *= np.float32(scale)
            intra = self._intra
            if intra is not None:
                if intra.shape != (rows, cols):
                    raise ValueError(f"the intra mask is {intra.shape[0]}x{intra.shape[1]}, a {width}x{height} "
                                     f"picture has {rows}x{cols} blocks of {b}x{b}")
                grid[:, intra] = 0
            return grid, intra
        grid = self._data
        if grid.shape[1:] != (rows, cols):
            raise ValueError(f"the {b}x{b}-block grid is {grid.shape[1]}x{grid.shape[2]}, a {width}x{height} picture "
                             f"has {rows}x{cols} blocks")
        return grid, self._intra


def _expand(grid: np.ndarray, k: int, out: np.ndarray) -> None:
    """Write ``grid`` (..., rows, cols), each value repeated k x k, into ``out`` (..., gh, gw),
    cropped at the picture's edge: columns repeated once, then every k-th row of ``out`` written
    from them (contiguous rows: an order of magnitude faster than one 5-D broadcast)."""
    gh, gw = out.shape[-2:]
    if k == 1:
        out[...] = grid
        return
    cols = np.repeat(grid, k, axis=-1)
    if cols.shape[-1] != gw:
        cols = cols[..., :gw]
    for i in range(k):
        out[..., i::k, :] = cols[..., :len(range(i, gh, k)), :]


class EncoderMotion:
    """A video source made of the motion an encoder reported: an iterable of :class:`MotionFrame`
    (a list, or a generator fed by the encoder as frames are coded) for ``width`` x ``height``
    pictures at ``fps`` frames/s (None: 25 where a rate is needed). ``order``: "display" (default;
    an encoder without B-frames) or "decode" (an encoder with B-frames: the reader restores display
    order). ``name``: what errors and ``reader.description`` call it.

    Give it to ``edgekit.open(source, residual=False, rgb=None, ...)``, to :meth:`open`, or to a
    Recognizer (``stream``, ``windows``, ``recognize``) of a motion-vector-only model. A generator
    can be read once; a list as often as wanted."""

    def __init__(self, frames: Iterable[MotionFrame], *, width: int, height: int, fps: float | None = None,
                 order: str = "display", name: str = "encoder motion vectors"):
        if isinstance(frames, (str, bytes, bytearray, memoryview, os.PathLike)) or not isinstance(frames, Iterable):
            raise ConfigError(f"frames must be an iterable of MotionFrame, got {type(frames).__name__}")
        self.frames = frames
        self.width, self.height = _dimension("width", width), _dimension("height", height)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, numbers.Real)
                                or not math.isfinite(fps) or fps <= 0):
            raise ConfigError(f"fps must be a positive number or None, got {fps!r}")
        self.fps = None if fps is None else float(fps)
        if order not in ("display", "decode"):
            raise ConfigError(f"order must be 'display' or 'decode', got {order!r}")
        self.order = order
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string")
        self.name = name

    def __repr__(self) -> str:
        return (f"EncoderMotion({self.name!r}, {self.width}x{self.height}, fps={self.fps}, "
                f"order={self.order!r})")

    def open(self, **options) -> "MotionReader":
        """A :class:`MotionReader` over this source; ``options`` as for ``edgekit.open``
        (``accumulate``, ``trace``, ``threads``, ``max_pixels``; see the module docstring)."""
        return MotionReader(self, **options)


class MotionReader(Reader):
    """The CompressedFrames of an :class:`EncoderMotion` source: ``edgekit.bitstream.Reader``'s
    display-order state machine over the frames given instead of a decoder's. A context manager;
    ``info``, ``stats`` and ``description`` as for a file."""

    def __init__(self, source: EncoderMotion, *, residual: bool = False, rgb: str | None = None,
                 accumulate: bool = False, trace: str = "block", threads: str | int = "auto",
                 max_pixels: int = MAX_PIXELS, timeout_s: float = 10.0, fast: bool = True, transcode=None,
                 format=None, residual_size=None, wants=None, residual_layout: str = "444", residual_step=None,
                 reconnect=None, transport=None, max_vector=None, min_gain=None):
        if not isinstance(source, EncoderMotion):
            raise ConfigError(f"MotionReader reads an EncoderMotion, got {type(source).__name__}")
        lacking = [what for what, asked in (("no residual", residual), ("no picture", rgb is not None)) if asked]
        if lacking:
            raise ConfigError(f"{source.name}: an encoder's motion vectors carry {' and '.join(lacking)}: open it "
                              "with residual=False, rgb=None (only a motion-vector-only model runs on it)")
        refused = {"transcode": transcode, "format": format, "residual_size": residual_size,
                   "transport": transport, "min_gain": min_gain}
        for name, value in refused.items():
            if value is not None:
                raise ConfigError(f"{source.name}: {name}= does not apply to encoder motion vectors")
        if reconnect not in (None, False):
            raise ConfigError(f"{source.name}: reconnect= does not apply to encoder motion vectors (an iterable "
                              "is not reopened)")
        if wants is not None and not callable(wants):
            raise ConfigError("wants must be a callable (kind, (height, width)) -> bool, or None")
        if residual_layout not in ("444", "420"):
            raise ConfigError(f"residual_layout must be '444' or '420', got {residual_layout!r}")
        if trace not in ("pixel", "block"):
            raise ConfigError(f"trace must be 'pixel' or 'block', got {trace!r}")
        if not (threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1)):
            raise ConfigError(f"threads must be 'auto' or an int >= 1, got {threads!r}")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
            raise ConfigError(f"max_pixels must be a whole number >= 1, got {max_pixels!r}")
        # what Reader.__iter__ and the per-frame methods it calls read
        self.residual, self.rgb, self.accumulate, self.trace = False, None, bool(accumulate), trace
        self.max_vector = check_max_vector(max_vector)
        self.min_gain = None  # it compares pictures, which an encoder's vectors come without
        self.residual_size, self._wants, self.residual_layout = None, wants, residual_layout
        self.residual_step = residual_step
        self.stats = ReaderStats()
        self._kernels = kernels()
        self._threads, self._max_pixels = threads, int(max_pixels)
        self.description = source.name
        self.decoder_options: dict = {}
        self.reconnect = None
        self._prefetch, self._prefetcher = False, None
        self._transcode = None
        self._source, self._order = source, source.order
        self._pictures = None       # the frame iterator, made once, shared by every iteration
        self._lookahead: list = []
        self._seen_picture = False
        self._outage = None
        self._pictures_decoded = 0
        self._damaged_pts: dict = {}
        self._closed = False
        self._frames_iter = None    # the source's own iterator, once reading began (closed by close())
        frame_count = len(source.frames) if hasattr(source.frames, "__len__") else None
        self._info = StreamInfo(codec="encoder-mv", source_codec="encoder-mv", width=source.width,
                                height=source.height, fps=source.fps, time_base=None, frame_count=frame_count,
                                duration_s=None)
        self._check_size(source.height, source.width)
        self._geometry = self._make_geometry(source.height, source.width)

    def __repr__(self) -> str:
        mode = f"accumulate, trace={self.trace!r}" if self.accumulate else "per frame"
        return f"MotionReader({self.description!r}, {self._info.width}x{self._info.height}, {mode})"

    def close(self) -> None:
        """Stop reading: a generator source is closed (its ``finally`` blocks run)."""
        self._closed = True
        pictures, self._pictures = self._pictures, iter(())
        for it in (pictures, self._frames_iter):
            close = getattr(it, "close", None)
            if close is not None:
                close()

    # -- the seams of Reader.__iter__ ----------------------------------------------------------------

    def _decoded(self) -> Iterator[MotionFrame]:
        if self._pictures is None:
            self._pictures = self._ordered() if self._order == "decode" else self._checked()
        yield from self._pictures

    def _checked(self) -> Iterator[MotionFrame]:
        """The source's frames, each checked to be a MotionFrame."""
        if self._closed:
            return
        self._frames_iter = iter(self._source.frames)
        for n, frame in enumerate(self._frames_iter):
            if not isinstance(frame, MotionFrame):
                raise DecodeError(f"{self.description}: item {n} is a {type(frame).__name__}, not an "
                                  "edgekit.bitstream.MotionFrame")
            self._pictures_decoded += 1
            yield frame

    def _ordered(self) -> Iterator[MotionFrame]:
        """Decode order -> display order: each anchor waits for the next one; the B-frames that
        arrive after it are shown before it, sorted by pts."""
        anchor, run = None, []
        for frame in self._checked():
            if frame.kind == "B":
                run.append(frame)
                continue
            if run:
                yield from _by_pts(run)
                run = []
            if anchor is not None:
                yield anchor
            anchor = frame
        if run:
            yield from _by_pts(run)
        if anchor is not None:
            yield anchor

    def _describe(self, picture: MotionFrame) -> tuple[tuple[int, int], str, float | None]:
        return picture.size or (self._source.height, self._source.width), picture.kind, picture.pts

    def _scatter(self, cur: _Decoded) -> None:
        frame: MotionFrame = cur.frame
        g = cur.geometry
        if frame._form is None or frame._form == "rows":  # FFmpeg's layout: the file reader's own kernel
            self._kernel("mv_grid", frame._data, g.gh, g.gw, cur.d0, cur.d1, cur.flags)
            return
        try:
            grid, intra = frame._grid(g.height, g.width)
        except ValueError as err:
            raise DecodeError(f"{self.description}: frame {self.stats.frames}: {err}") from None
        k = frame._block // 8
        _expand(grid, k, cur.d0)
        cur.d1.fill(0)
        if intra is None:
            cur.flags.fill(1)  # every block has a past-reference (L0) vector
        else:
            _expand(np.logical_not(intra).view(np.uint8), k, cur.flags)


def _by_pts(frames: list[MotionFrame]) -> list[MotionFrame]:
    if any(f.pts is None for f in frames):
        return frames  # no timestamps: arrival order
    return sorted(frames, key=lambda f: f.pts)


__all__ = ["EncoderMotion", "MotionFrame", "MotionReader", "pack_rows", "MOTION_VECTOR_DTYPE", "ROW_FIELDS",
           "KINDS", "BLOCKS", "MVINFO_BLOCKS", "MVINFO_RECORD_BYTES"]
