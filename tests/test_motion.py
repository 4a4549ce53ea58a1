"""Encoder-side motion vectors (edgekit.bitstream.motion): the same frames and the same predictions
as reading the file those vectors were coded into.

Real clips are encoded with x264 through PyAV (with and without B-frames) and MPEG-4 Part 2. The
vectors FFmpeg's decoder exports for each frame (AVMotionVector side data, read with PyAV directly,
not through edgekit) are handed to ``EncoderMotion`` as if the encoder had reported them, with the
kind and timestamp of the decoded frame. Every frame's ``mv`` and ``intra`` must equal what
``edgekit.bitstream.open(path, residual=False, rgb=None)`` reads from the file, per frame and
accumulated, and a motion-vector-only model packaged for real (torch -> ONNX -> .edgepkg -> ONNX
Runtime) must give the same windows, labels and scores. The Jetson MVInfo and dense-grid conversions
are checked against grids worked out by hand and against the FFmpeg-row path; bad inputs raise
typed errors.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import edgekit
import edgekit.bitstream as bs
from edgekit.bitstream.motion import MOTION_VECTOR_DTYPE, ROW_FIELDS, EncoderMotion, MotionFrame, pack_rows
from edgekit.errors import ConfigError, DecodeError, EmptySourceError, ResolutionError
from media import moving_square_clip

ROOT = Path(__file__).resolve().parents[1]
KIND = {1: "I", 2: "P", 3: "B", 4: "P"}  # AVPictureType: I, P, B, S (MPEG-4 GMC, a P-frame)
MODES = [(False, "block"), (True, "block"), (True, "pixel")]


def exported_motion(path) -> tuple[list[dict], tuple[int, int], float]:
    """Every frame of ``path`` in display order as FFmpeg's decoder exports it: kind, pts and the
    AVMotionVector rows (N, 10) ``ROW_FIELDS``; plus (height, width) and the frame rate. PyAV only."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        size, fps = (stream.codec_context.height, stream.codec_context.width), float(stream.average_rate)
        for frame in container.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            vectors = side.to_ndarray() if side is not None else np.zeros(0, MOTION_VECTOR_DTYPE)
            rows = np.stack([vectors[f].astype(np.int64) for f in ROW_FIELDS], axis=1) if len(vectors) else \
                np.zeros((0, 10), np.int64)
            out.append({"kind": KIND[int(frame.pict_type)], "pts": frame.time, "rows": rows})
    return out, size, fps


def as_encoder(exported, size, fps, **kwargs) -> EncoderMotion:
    frames = [MotionFrame.from_rows(e["kind"], e["pts"], e["rows"]) for e in exported]
    return EncoderMotion(frames, width=size[1], height=size[0], fps=fps, **kwargs)


def read_all(source, **options) -> list:
    with bs.open(source, residual=False, rgb=None, **options) as reader:
        return list(reader)


def assert_same_frames(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert (x.index, x.kind, x.gop_index, x.height, x.width) == (y.index, y.kind, y.gop_index, y.height, y.width)
        assert x.pts == pytest.approx(y.pts, abs=1e-9)
        assert x.mv.dtype == y.mv.dtype == np.float32 and x.intra.dtype == y.intra.dtype == np.bool_
        np.testing.assert_array_equal(x.mv, y.mv, err_msg=f"frame {x.index} ({x.kind}): mv")
        np.testing.assert_array_equal(x.intra, y.intra, err_msg=f"frame {x.index} ({x.kind}): intra")
        assert y.residual is None and y.rgb is None


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    paths = {"h264": root / "h264.mp4", "h264-b": root / "h264b.mp4", "mpeg4": root / "m4.mp4"}
    # x264 without B-frames, a picture that is not a whole number of macroblocks (136 = 8.5 x 16)
    moving_square_clip(paths["h264"], "h264", size=(200, 136), frames=36, motion=(3, -2), pan=(1, 0), gop=12)
    # x264 with 2 B-frames between anchors: B-frames wait for their future reference
    moving_square_clip(paths["h264-b"], "h264", size=(192, 128), frames=40, motion=(-2, 1), gop=12, bframes=2,
                       seed=3)
    # MPEG-4 Part 2: half-pixel vectors, 8x8 blocks (4MV)
    moving_square_clip(paths["mpeg4"], "mpeg4", size=(176, 144), frames=30, motion=(5, 3), gop=10)
    return {name: (path, *exported_motion(path)) for name, path in paths.items()}


# -- the equality with reading the file -------------------------------------------------------------------

@pytest.mark.parametrize("accumulate,trace", MODES)
@pytest.mark.parametrize("clip", ["h264", "h264-b", "mpeg4"])
def test_encoder_rows_give_the_frames_of_the_file(clips, clip, accumulate, trace):
    path, exported, size, fps = clips[clip]
    from_file = read_all(path, accumulate=accumulate, trace=trace)
    from_encoder = read_all(as_encoder(exported, size, fps), accumulate=accumulate, trace=trace)
    assert_same_frames(from_file, from_encoder)
    kinds = {f.kind for f in from_encoder}
    assert kinds == ({"I", "P", "B"} if clip == "h264-b" else {"I", "P"})
    moving = [f for f in from_encoder if f.kind != "I"]
    assert all(np.abs(f.mv).max() > 0 for f in moving)  # real motion, not zeros on both sides
    if accumulate:  # the trace grows over a GOP: later P-frames are further from their I-frame
        p = [f for f in from_encoder if f.kind == "P" and f.gop_index == 0]
        assert np.abs(p[-1].mv).max() > np.abs(p[0].mv).max()


def test_decode_order_input_gives_the_display_order_frames(clips):
    """An encoder with B-frames emits each anchor before the B-frames shown before it."""
    path, exported, size, fps = clips["h264-b"]
    decode_order, waiting = [], []
    for e in exported:
        if e["kind"] == "B":
            waiting.append(e)
        else:
            decode_order += [e, *waiting]
            waiting = []
    decode_order += waiting
    assert [e["kind"] for e in decode_order] != [e["kind"] for e in exported]
    for accumulate, trace in MODES:
        expected = read_all(path, accumulate=accumulate, trace=trace)
        got = read_all(as_encoder(decode_order, size, fps, order="decode"), accumulate=accumulate, trace=trace)
        assert_same_frames(expected, got)


def test_generator_source_and_reader_info(clips):
    path, exported, size, fps = clips["h264"]
    closed = []

    def encoder():
        try:
            for e in exported:
                yield MotionFrame.from_rows(e["kind"], e["pts"], e["rows"])
        finally:
            closed.append(True)

    source = EncoderMotion(encoder(), width=size[1], height=size[0], fps=fps, name="cam0")
    with edgekit.open(source, residual=False, rgb=None) as reader:
        assert isinstance(reader, bs.MotionReader) and reader.description == "cam0"
        info = reader.info
        assert (info.width, info.height, info.fps, info.frame_count) == (size[1], size[0], fps, None)
        first = next(iter(reader))
        assert first.kind == "I" and first.intra.all()
    assert closed == [True]  # closing the reader closed the generator
    assert reader.stats.frames == 1


def test_raw_side_data_bytes_and_structured_rows_are_rows_too(clips):
    path, exported, size, fps = clips["mpeg4"]
    structured, raw = [], []
    for e in exported:
        packed = pack_rows(e["rows"])
        structured.append(MotionFrame.from_rows(e["kind"], e["pts"], packed))
        raw.append(MotionFrame.from_rows(e["kind"], e["pts"], packed.tobytes()))
    expected = read_all(path)
    for frames in (structured, raw):
        assert_same_frames(expected, read_all(EncoderMotion(frames, width=size[1], height=size[0], fps=fps)))


# -- the same predictions ---------------------------------------------------------------------------------

SIZE = 32


def make_mv_package(root: Path, representation: str) -> Path:
    """A real motion-vector-only package (onnx_models.mv_tsn_package), packaged for the CPU."""
    from onnx_models import mv_tsn_package

    return mv_tsn_package(root, representation=representation, size=SIZE)


@pytest.fixture(scope="module")
def mv_packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("mv-packages")
    return {r: make_mv_package(root, r) for r in ("accumulated", "frame")}


@pytest.mark.parametrize("representation", ["accumulated", "frame"])
@pytest.mark.parametrize("clip", ["h264", "h264-b"])
def test_a_motion_vector_model_predicts_the_same_from_the_encoder(clips, mv_packages, clip, representation):
    path, exported, size, fps = clips[clip]
    with edgekit.Recognizer(mv_packages[representation], threads=1) as rec:
        from_file = rec.recognize(path)
        from_encoder = rec.recognize(as_encoder(exported, size, fps))
        file_windows = list(rec.windows(path))
        encoder_windows = list(rec.windows(as_encoder(exported, size, fps)))
        # the comparison is sensitive: the same rows with every vector doubled predict otherwise
        doubled = [{**e, "rows": e["rows"] * np.array([1, 1, 1, 1, 1, 1, 1, 2, 2, 1])} for e in exported]
        changed = list(rec.windows(as_encoder(doubled, size, fps)))
    assert from_encoder.frames == from_file.frames == len(exported)
    assert len(from_file.windows) == len(from_encoder.windows) >= 3
    for a, b in zip(from_file.windows, from_encoder.windows):
        assert a.label == b.label and (a.start_s, a.end_s) == pytest.approx((b.start_s, b.end_s))
        assert [lab for lab, _ in a.topk] == [lab for lab, _ in b.topk]
        np.testing.assert_allclose([s for _, s in a.topk], [s for _, s in b.topk], rtol=0, atol=1e-6)
    assert from_file.label == from_encoder.label and abs(from_file.score - from_encoder.score) <= 1e-6
    for a, b in zip(file_windows, encoder_windows):
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    assert max(np.abs(a.scores - c.scores).max() for a, c in zip(file_windows, changed)) > 1e-4


def test_a_model_that_reads_residuals_or_iframes_is_refused(clips):
    path, exported, size, fps = clips["h264"]
    with edgekit.Recognizer.default(threads=1) as rec:  # the bundled model reads MV + residual
        with pytest.raises(ConfigError, match="no residual"):
            rec.recognize(as_encoder(exported, size, fps))


# -- Jetson MVInfo ----------------------------------------------------------------------------------------

def mvinfo_bytes(mv_x: np.ndarray, mv_y: np.ndarray, weight: np.ndarray | None = None, record: int = 4) -> bytes:
    """MVInfo records as a Jetson's encoder lays them out: bit fields mv_x:16, mv_y:14, weight:2 in one
    little-endian word, then ``record - 4`` reserved bytes (filled with junk that must be ignored)."""
    weight = np.zeros_like(mv_x) if weight is None else weight
    words = ((mv_x.astype(np.int64) & 0xFFFF) | ((mv_y.astype(np.int64) & 0x3FFF) << 16)
             | ((weight.astype(np.int64) & 3) << 30)).astype("<u4").reshape(-1)
    out = np.full((words.size, record), 0xAB, np.uint8)
    out[:, :4] = words.view(np.uint8).reshape(-1, 4)
    return out.tobytes()


def one_p_frame(frame: MotionFrame, width: int, height: int, **options):
    frames = read_all(EncoderMotion([MotionFrame("I", 0.0), frame], width=width, height=height, fps=25), **options)
    return frames[1]


def test_mvinfo_16x16_grid_becomes_the_8x8_grid():
    rng = np.random.default_rng(0)
    mv = rng.integers(-40, 41, size=(3, 4, 2))  # 64x48 picture: 4 x 3 macroblocks
    f = one_p_frame(MotionFrame.from_mvinfo("P", 0.04, mv), 64, 48)
    expected = -np.repeat(np.repeat(np.moveaxis(mv, -1, 0), 2, axis=1), 2, axis=2).astype(np.float32)
    assert f.mv.shape == (2, 6, 8)
    np.testing.assert_array_equal(f.mv, expected)  # default scale -1: coded vector -> forward-flow sign
    assert not f.intra.any()
    # by hand: macroblock (row 1, col 2) covers cells rows 2-3, cols 4-5
    assert (f.mv[0, 2:4, 4:6] == -mv[1, 2, 0]).all() and (f.mv[1, 2:4, 4:6] == -mv[1, 2, 1]).all()


def test_mvinfo_32x32_grid_cropped_at_the_picture_edge_with_an_intra_mask():
    mv = np.array([[[4, -8], [12, 0]], [[-4, 2], [0, 6]]])  # 50x40 picture: 2 x 2 CTBs of 32x32
    intra = np.array([[False, False], [True, False]])
    f = one_p_frame(MotionFrame.from_mvinfo("P", None, mv, block=32, scale=0.25, intra=intra), 50, 40)
    assert f.mv.shape == (2, 5, 7)  # ceil(40/8) x ceil(50/8)
    expected = np.zeros((2, 5, 7), np.float32)
    expected[:, 0:4, 0:4] = np.array([1.0, -2.0])[:, None, None]
    expected[:, 0:4, 4:7] = np.array([3.0, 0.0])[:, None, None]
    expected[:, 4:5, 4:7] = np.array([0.0, 1.5])[:, None, None]  # CTB (1, 0) is intra: zero, flagged
    np.testing.assert_array_equal(f.mv, expected)
    expected_intra = np.zeros((5, 7), bool)
    expected_intra[4:5, 0:4] = True
    np.testing.assert_array_equal(f.intra, expected_intra)


@pytest.mark.parametrize("record", [4, 20, 68])
def test_raw_mvinfo_buffers_of_every_l4t_layout(record):
    rng = np.random.default_rng(record)
    cols, rows = 5, 3  # 80x48 at 16x16
    mv_x = rng.integers(-2048, 2048, size=(rows, cols))
    mv_y = rng.integers(-512, 512, size=(rows, cols))
    weight = rng.integers(0, 4, size=(rows, cols))
    raw = mvinfo_bytes(mv_x, mv_y, weight, record)
    from_raw = one_p_frame(MotionFrame.from_mvinfo("P", 0.04, raw), 80, 48)
    from_array = one_p_frame(MotionFrame.from_mvinfo("P", 0.04, np.stack([mv_x, mv_y, weight], -1)), 80, 48)
    np.testing.assert_array_equal(from_raw.mv, from_array.mv)
    assert from_raw.mv[0, 0, 0] == -mv_x[0, 0] and from_raw.mv[1, 5, 9] == -mv_y[2, 4]
    structured = np.zeros((rows, cols), [("mv_x", "i4"), ("mv_y", "i4"), ("weight", "u4")])
    structured["mv_x"], structured["mv_y"], structured["weight"] = mv_x, mv_y, weight
    from_structured = one_p_frame(MotionFrame.from_mvinfo("P", 0.04, structured), 80, 48)
    np.testing.assert_array_equal(from_structured.mv, from_array.mv)


def test_mvinfo_equals_the_same_vectors_given_as_ffmpeg_rows_per_frame_and_accumulated():
    """A macroblock grid through the grid path gives what the same vectors give through the file
    reader's kernel as 16x16 AVMotionVectors (past reference), for every mode, edge blocks included."""
    width, height, n = 200, 136, 14  # 13 x 9 macroblocks, the last row and column cut by the edge
    rng = np.random.default_rng(5)
    rows_, cols_ = -(-height // 16), -(-width // 16)
    grid_frames, row_frames = [MotionFrame("I", 0.0)], [MotionFrame("I", 0.0)]
    for i in range(1, n):
        kind = "I" if i == 7 else "P"
        mv = rng.integers(-6, 7, size=(rows_, cols_, 2))
        grid_frames.append(MotionFrame.from_mvinfo(kind, i / 25, mv))
        r, c = np.mgrid[0:rows_, 0:cols_]
        dst_x, dst_y = (c * 16 + 8).ravel(), (r * 16 + 8).ravel()
        rows = np.stack([np.full(dst_x.size, -1), np.full(dst_x.size, 16), np.full(dst_x.size, 16),
                         dst_x + mv[..., 0].ravel(), dst_y + mv[..., 1].ravel(), dst_x, dst_y,
                         4 * mv[..., 0].ravel(), 4 * mv[..., 1].ravel(), np.full(dst_x.size, 4)], axis=1)
        row_frames.append(MotionFrame.from_rows(kind, i / 25, rows))
    for accumulate, trace in MODES:
        a = read_all(EncoderMotion(grid_frames, width=width, height=height, fps=25), accumulate=accumulate, trace=trace)
        b = read_all(EncoderMotion(row_frames, width=width, height=height, fps=25), accumulate=accumulate, trace=trace)
        assert_same_frames(b, a)
        assert a[3].gop_index == 0 and a[8].gop_index == 1


# -- dense grids ------------------------------------------------------------------------------------------

def test_dense_grid_keeps_edgekit_sign_and_marks_missing_vectors_intra():
    grid = np.zeros((2, 3, 4), np.float32)  # 32x24 picture at 8x8: the grid is the result
    grid[0] = 1.5
    grid[1, 1, 2] = -0.25
    grid[:, 2, 3] = np.nan  # no vector: intra
    intra = np.zeros((3, 4), bool)
    intra[0, 0] = True
    f = one_p_frame(MotionFrame.from_grid("P", 0.04, grid, intra=intra), 32, 24)
    expected = np.where(np.isnan(grid), 0, grid)
    expected[:, 0, 0] = 0
    np.testing.assert_array_equal(f.mv, expected)
    assert f.intra.sum() == 2 and f.intra[2, 3] and f.intra[0, 0]


def test_dense_grid_of_32px_blocks_accumulates_a_translation():
    width, height = 96, 64  # 3 x 2 blocks of 32
    frames = [MotionFrame("I", 0.0)] + [MotionFrame.from_grid("P", i / 25, np.stack([np.full((2, 3), 2.0),
                                                                                  np.full((2, 3), -1.0)]),
                                                       block=32) for i in range(1, 6)]
    per_frame = read_all(EncoderMotion(frames, width=width, height=height), accumulate=False)
    assert all(f.mv.shape == (2, 8, 12) for f in per_frame)
    assert (per_frame[3].mv[0] == 2).all() and (per_frame[3].mv[1] == -1).all()
    accumulated = read_all(EncoderMotion(frames, width=width, height=height), accumulate=True, trace="block")
    centre = accumulated[5].mv[:, 4, 6]  # away from the edge, where the trace clamps
    np.testing.assert_array_equal(centre, [10.0, -5.0])  # five frames of (2, -1)


def test_a_size_change_starts_a_new_gop_as_in_a_file():
    frames = [MotionFrame("I", 0.0), MotionFrame.from_grid("P", 0.04, np.ones((2, 2, 2)), block=16),
              MotionFrame("I", 0.08, size=(48, 64)),
              MotionFrame.from_grid("P", 0.12, np.ones((2, 3, 4)), block=16, size=(48, 64))]
    with bs.open(EncoderMotion(frames, width=32, height=32), residual=False, rgb=None) as reader:
        got = list(reader)
    assert [(f.height, f.width) for f in got] == [(32, 32), (32, 32), (48, 64), (48, 64)]
    assert reader.stats.size_changes == 1 and [f.gop_index for f in got] == [0, 0, 1, 1]
    assert reader.info.width == 64


# -- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: MotionFrame("X", 0.0), "kind"),
    (lambda: MotionFrame("P", float("nan")), "pts"),
    (lambda: MotionFrame("P", 0.0, size=(0, 10)), "size"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.zeros((3, 9), int)), r"\(N, 10\)"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.array([[-1, 300, 16, 0, 0, 8, 8, 0, 0, 4]])), "column w holds 300"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.array([[-1, 16, 16, 0, 0, 40000, 8, 0, 0, 4]])), "dst_x"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.array([[-1, 16, 16, 0, 0, 8, 8, 0.5, 0, 4]])), "whole numbers"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.zeros(2, [("w", "u1")])), "lacks the field"),
    (lambda: MotionFrame.from_rows("P", 0.0, b"\x00" * 41), "whole number of 40-byte"),
    (lambda: MotionFrame.from_rows("P", 0.0, np.zeros((2, 10), bool)), "integers"),
    (lambda: MotionFrame.from_mvinfo("P", 0.0, np.zeros((3, 4)), block=16), r"\(rows, cols, 2 or 3\)"),
    (lambda: MotionFrame.from_mvinfo("P", 0.0, np.zeros((3, 4, 2)), block=8), "block must be one of 16, 32"),
    (lambda: MotionFrame.from_mvinfo("P", 0.0, np.zeros((3, 4, 2)), scale=0), "scale"),
    (lambda: MotionFrame.from_mvinfo("P", 0.0, np.zeros((3, 4, 2)), intra=np.zeros((3, 4))), "bool"),
    (lambda: MotionFrame.from_mvinfo("P", 0.0, np.zeros((3, 4, 2)), intra=np.zeros((4, 3), bool)), "shape"),
    (lambda: MotionFrame.from_grid("P", 0.0, np.zeros((3, 4, 4))), r"\(2, rows, cols\)"),
    (lambda: MotionFrame.from_grid("P", 0.0, np.zeros((2, 4, 4)), block=12), "block must be one of 8"),
    (lambda: MotionFrame.from_grid("P", 0.0, np.zeros((2, 4, 4), bool)), "dtype"),
    (lambda: EncoderMotion([], width=0, height=10), "width"),
    (lambda: EncoderMotion([], width=10, height=10, fps=-1), "fps"),
    (lambda: EncoderMotion([], width=10, height=10, order="random"), "order"),
    (lambda: EncoderMotion("clip.mp4", width=10, height=10), "iterable of MotionFrame"),
])
def test_bad_arguments_raise_config_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize("options,match", [
    ({}, "no residual"),  # edgekit.open's defaults ask for residuals and I-frame RGB
    ({"residual": False}, "no picture"),
    ({"residual": False, "rgb": None, "transcode": "mpeg4"}, "transcode"),
    ({"residual": False, "rgb": None, "reconnect": True}, "reconnect"),
    ({"residual": False, "rgb": None, "trace": "cell"}, "trace"),
    ({"residual": False, "rgb": None, "threads": 0}, "threads"),
])
def test_options_an_encoder_cannot_honour_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        bs.open(EncoderMotion([MotionFrame("I", 0.0)], width=16, height=16), **options)


def test_bad_frames_while_reading_raise_decode_errors_naming_the_frame():
    def read(frames, width=64, height=48):
        return read_all(EncoderMotion(frames, width=width, height=height))

    with pytest.raises(DecodeError, match="item 1 is a dict"):
        read([MotionFrame("I", 0.0), {"kind": "P"}])
    with pytest.raises(DecodeError, match=r"frame 1: the 16x16-block grid is 2x4, a 64x48 picture has 3x4 blocks"):
        read([MotionFrame("I", 0.0), MotionFrame.from_mvinfo("P", 0.04, np.zeros((2, 4, 2)))])
    with pytest.raises(DecodeError, match="bytes per MVInfo record"):
        read([MotionFrame("I", 0.0), MotionFrame.from_mvinfo("P", 0.04, b"\x00" * (12 * 8))])
    with pytest.raises(DecodeError, match="intra mask"):
        read([MotionFrame("I", 0.0), MotionFrame.from_mvinfo("P", 0.04, b"\x00" * 48, intra=np.ones((2, 2), bool))])
    with pytest.raises(EmptySourceError):
        read([])
    with pytest.raises(DecodeError, match="no intact I-frame"):
        read([MotionFrame.from_grid("P", 0.0, np.zeros((2, 6, 8)))])
    with pytest.raises(ResolutionError):
        bs.open(EncoderMotion([], width=8192, height=8192), residual=False, rgb=None, max_pixels=1 << 20)


def test_vectors_far_outside_the_picture_are_clipped_not_read_outside():
    rows = np.array([[-1, 16, 16, 0, 0, 32767, -32768, 8, 8, 4],   # a block far outside: nothing scattered
                     [-1, 255, 255, 0, 0, 8, 8, -2 ** 31, 2 ** 31 - 1, 1]])  # huge vector over the corner
    f = one_p_frame(MotionFrame.from_rows("P", 0.04, rows), 32, 32, accumulate=True, trace="pixel")
    assert f.mv.shape == (2, 4, 4) and np.isfinite(f.mv).all()
    g = one_p_frame(MotionFrame.from_grid("P", 0.04, np.full((2, 4, 4), 1e30)), 32, 32, accumulate=True,
                    trace="block")
    assert np.isfinite(g.mv).all() and np.abs(g.mv).max() <= 32


# -- the example ------------------------------------------------------------------------------------------

def test_the_jetson_example_runs_its_simulation_on_a_local_file(clips, mv_packages):
    path = clips["h264"][0]
    script = ROOT / "examples" / "jetson_encoder_mv.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script), "--simulate", str(path)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "frames" in proc.stdout and "MVInfo" in proc.stdout
    proc = subprocess.run([sys.executable, str(script), "--simulate", str(path), "--package",
                           str(mv_packages["accumulated"]), "--json"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    windows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(windows) >= 3 and all(w["label"] in ("left", "right", "up", "down") for w in windows)
