"""The reader when the picture size changes mid-stream or a live stream is joined mid-GOP, on real
encoded clips, with the native kernels and with the numpy reference (EDGEKIT_NATIVE=0)."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit.bitstream as bs
from edgekit.bitstream import _reference, reader as reader_module
from edgekit.errors import DecodeError
from media import joined_mid_gop, size_change_stream

MODES = {"mv-only": {"residual": False, "rgb": None}, "residual": {}, "accumulated": {"accumulate": True}}
KERNELS = ["native", "numpy"]


@pytest.fixture(params=KERNELS)
def kernel_choice(request, monkeypatch):
    if request.param == "native":
        if reader_module._native is None:
            pytest.skip("native extension not built (pip install -e . builds it)")
        monkeypatch.setenv("EDGEKIT_NATIVE", "1")
    else:
        monkeypatch.setenv("EDGEKIT_NATIVE", "0")
    return request.param


def read(source, **kw):
    with bs.open(source, **kw) as r:
        return list(r), r


def assert_frame_shapes(f, mode):
    h, w = f.height, f.width
    assert f.mv.shape == (2, -(-h // 8), -(-w // 8)) and f.intra.shape == f.mv.shape[1:]
    if mode == "mv-only":
        assert f.residual is None
    else:
        assert f.residual.shape == (3, h, w) and f.residual.dtype == np.int16


# -- a size change mid-stream ------------------------------------------------------------------------

@pytest.mark.parametrize("codec,bframes", [("h264", 0), ("h264", 2), ("mpeg4", 0)])
@pytest.mark.parametrize("sizes", [((128, 96), (160, 120)), ((160, 120), (128, 96))], ids=["grow", "shrink"])
@pytest.mark.parametrize("mode", MODES)
def test_size_change_starts_a_new_gop_with_the_new_geometry(tmp_path, kernel_choice, codec, bframes, sizes, mode):
    data = size_change_stream(tmp_path / "change.raw", codec, sizes=sizes, frames=(12, 24), bframes=bframes)
    frames, r = read(data, **MODES[mode])
    (w0, h0), (w1, h1) = sizes
    assert len(frames) == 36 and r.stats.size_changes == 1 and r.stats.skipped_frames == 0
    assert [(f.width, f.height) for f in frames] == [(w0, h0)] * 12 + [(w1, h1)] * 24
    assert [f.gop_index for f in frames] == [0] * 12 + [1] * 12 + [2] * 12
    assert frames[12].kind == "I" and (r.info.width, r.info.height) == (w1, h1)
    for f in frames:
        assert_frame_shapes(f, mode)
    if mode == "mv-only":
        return
    # real predictions on both sides of the change, not reads of another frame's memory
    for f in frames:
        if f.kind == "I":
            assert not f.residual.any()
        else:
            assert np.abs(f.residual[0]).mean() < 6.0, (f.index, f.kind)  # garbage gives tens
    if mode == "accumulated":  # traced back to the new GOP's I-frame: the square moved (2, 1) px per frame
        moved = frames[23].mv  # 11 frames after its I-frame: (22, 11) px inside the square
        assert ((np.abs(moved[0] - 22) <= 0.5) & (np.abs(moved[1] - 11) <= 0.5)).sum() >= 4


def test_size_change_native_equals_numpy(tmp_path, monkeypatch):
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    data = size_change_stream(tmp_path / "change.h264", "h264", sizes=((160, 120), (128, 96)), bframes=2)
    for accumulate in (False, True):
        native, _ = read(data, accumulate=accumulate)
        with monkeypatch.context() as m:
            m.setenv("EDGEKIT_NATIVE", "0")
            ref, _ = read(data, accumulate=accumulate)
        for a, b in zip(native, ref, strict=True):
            np.testing.assert_array_equal(a.mv, b.mv)
            np.testing.assert_array_equal(a.residual, b.residual)


@pytest.mark.parametrize("mode", MODES)
def test_new_size_before_its_i_frame_is_skipped_and_counted(tmp_path, kernel_choice, mode):
    # MPEG-4: a VOL header announcing 160x120, then P-VOPs of that size before any I-VOP of it. Their
    # references are 128x96 pictures: nothing may be predicted across the change.
    data = size_change_stream(tmp_path / "change.m4v", "mpeg4", frames=(12, 24), keyframe_headers_only=True)
    frames, r = read(data, **MODES[mode])
    assert r.stats.size_changes == 1 and r.stats.skipped_frames == 11
    assert [(f.width, f.height) for f in frames] == [(128, 96)] * 12 + [(160, 120)] * 12
    assert "".join(f.kind for f in frames) == ("I" + "P" * 11) * 2
    assert [f.gop_index for f in frames] == [0] * 12 + [1] * 12
    for f in frames:
        assert_frame_shapes(f, mode)


def test_size_change_in_a_chunk_stream(tmp_path):
    data = size_change_stream(tmp_path / "change.h264", "h264")
    frames, r = read((data[i:i + 700] for i in range(0, len(data), 700)))
    assert [(f.width, f.height) for f in frames] == [(128, 96)] * 12 + [(160, 120)] * 24
    assert r.stats.size_changes == 1


def test_transcoding_re_encodes_each_size_with_its_own_encoder(tmp_path):
    data = size_change_stream(tmp_path / "change.h264", "h264", frames=(12, 12), bframes=2)
    frames, r = read(data, transcode="mpeg4", accumulate=True)
    assert [(f.width, f.height) for f in frames] == [(128, 96)] * 12 + [(160, 120)] * 12
    assert "".join(f.kind for f in frames) == ("I" + "P" * 11) * 2
    assert r.stats.size_changes == 1 and r.stats.damaged_frames == r.stats.decode_errors == 0


# -- joining a live stream mid-GOP -------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_chunk_stream_joined_mid_gop_starts_at_the_next_keyframe(tmp_path, codec):
    data, before_keyframe = joined_mid_gop(tmp_path / "live.raw", codec, frames=48, gop=12, drop=5)
    assert before_keyframe == 7
    file_frames, _ = read(data, residual=False, rgb=None)
    chunks = (data[i:i + 1000] for i in range(0, len(data), 1000))
    with bs.open(chunks, accumulate=True) as r:
        assert (r.info.width, r.info.height) == (128, 96)  # learnt from the first picture, not the header
        frames = list(r)
    assert len(frames) == len(file_frames) == 36
    assert frames[0].kind == "I" and [f.gop_index for f in frames] == [i // 12 for i in range(36)]
    assert r.stats.skipped_frames == 7 and r.stats.damaged_frames == 0 and r.stats.size_changes == 0
    for a, b in zip(frames, file_frames):
        assert a.kind == b.kind
        np.testing.assert_array_equal(a.intra, b.intra)


def test_stream_without_any_keyframe_is_a_typed_error(tmp_path):
    data, _ = joined_mid_gop(tmp_path / "live.m4v", "mpeg4", frames=12, gop=12, drop=3)
    with pytest.raises(DecodeError, match="no frame could be decoded") as err:  # nothing to start from
        read(data)
    assert "\n" not in str(err.value)


# -- the kernels refuse what does not fit the frame ----------------------------------------------------

def _kernel_modules():
    mods = [pytest.param(_reference, id="numpy")]
    mods.append(pytest.param(reader_module._native, id="native", marks=pytest.mark.skipif(
        reader_module._native is None, reason="native extension not built")))
    return mods


def _frame(H, W, stride_pad=8):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (H, W + stride_pad), dtype=np.uint8)
    u = rng.integers(0, 256, ((H + 1) // 2, (W + 1) // 2 + stride_pad), dtype=np.uint8)
    v = rng.integers(0, 256, ((H + 1) // 2, (W + 1) // 2 + stride_pad), dtype=np.uint8)
    return y, u, v


def _as_args(kernels, planes, W):
    """Plane arguments in each kernel module's form; numpy planes cropped to the picture."""
    if kernels is _reference:
        return tuple(p[:, :(W if k == 0 else (W + 1) // 2)] for k, p in enumerate(planes))
    y, u, v = planes
    return (y, y.shape[1], u, u.shape[1], v, v.shape[1])


BAD_CALLS = ["stride below width", "plane too short", "reference of another size", "out too short",
             "gw mismatch", "height beyond limit", "flags too short"]


@pytest.mark.parametrize("kernels", _kernel_modules())
@pytest.mark.parametrize("case", BAD_CALLS)
def test_mc_residual_refuses_buffers_that_do_not_fit(kernels, case):
    H, W = 40, 56
    gh, gw = (H + 7) // 8, (W + 7) // 8
    cur, ref = _frame(H, W), _frame(H, W)
    d0 = np.zeros((2, gh, gw), np.float32)
    d1 = np.zeros((2, gh, gw), np.float32)
    flags = np.ones((gh, gw), np.uint8)
    out = np.empty((3, H, W), np.int16)
    args = dict(cur=_as_args(kernels, cur, W), ref0=_as_args(kernels, ref, W), H=H, W=W, gw=gw, d0=d0, flags=flags,
                out=out)
    if case == "stride below width":
        y, u, v = cur
        args["cur"] = (y, W - 8, u, u.shape[1], v, v.shape[1]) if kernels is not _reference else (y[:, :W - 8], u, v)
    elif case == "plane too short":
        y, u, v = cur
        args["cur"] = _as_args(kernels, (y[:H - 2].copy(), u, v), W)  # its own allocation: ASan sees past it
    elif case == "reference of another size":
        args["ref0"] = _as_args(kernels, _frame(H // 2, W // 2, stride_pad=0), W // 2)
    elif case == "out too short":
        args["out"] = np.empty((3, H, W - 1), np.int16)
    elif case == "gw mismatch":
        args["gw"] = gw + 1
    elif case == "height beyond limit":
        args["H"] = 70000
    elif case == "flags too short":
        args["flags"] = flags[:-1]
    with pytest.raises(ValueError):
        kernels.mc_residual(args["cur"], args["ref0"], None, args["H"], args["W"], args["d0"], d1, args["flags"],
                            args["gw"], args["out"], 2)


@pytest.mark.parametrize("kernels", _kernel_modules())
@pytest.mark.parametrize("case", ["positions of a larger frame", "negative position", "acc0 too short",
                                  "iframe plane too short", "residual too short", "zero height"])
def test_accumulate_refuses_positions_and_buffers_that_do_not_fit(kernels, case):
    H, W = 40, 56
    gh, gw = (H + 7) // 8, (W + 7) // 8
    yy, xx = np.mgrid[0:H, 0:W].astype(np.int32)
    acc0 = ((yy << 16) | xx).reshape(-1)
    d0 = np.zeros((2, gh, gw), np.float32)
    flags = np.ones((gh, gw), np.uint8)
    cur, iframe = _frame(H, W), _frame(H, W)
    out, residual = np.empty(H * W, np.int32), np.empty((3, H, W), np.int16)
    h = H
    if case == "positions of a larger frame":  # an accumulation map kept across a size change
        acc0 = acc0 + (H << 16)
    elif case == "negative position":
        acc0 = acc0.copy()
        acc0[-1] = -1
    elif case == "acc0 too short":
        acc0 = acc0[:-1]
    elif case == "iframe plane too short":
        iframe = (iframe[0][:H // 2], iframe[1], iframe[2])
    elif case == "residual too short":
        residual = residual[:2]
    elif case == "zero height":
        h = 0
    with pytest.raises(ValueError):
        kernels.accumulate(acc0, None, h, W, d0, d0, flags, gw, out, 2, _as_args(kernels, cur, W),
                           _as_args(kernels, iframe, W), residual)


@pytest.mark.parametrize("kernels", _kernel_modules())
def test_mv_grid_refuses_partial_vectors_and_bad_grids(kernels):
    d0, d1, flags = np.empty((2, 2, 2), np.float32), np.empty((2, 2, 2), np.float32), np.empty((2, 2), np.uint8)
    side = np.zeros(2, _reference.MOTION_VECTOR_DTYPE).tobytes()
    with pytest.raises(ValueError, match="whole number"):
        kernels.mv_grid(side[:-3], 2, 2, d0, d1, flags)
    with pytest.raises(ValueError):
        kernels.mv_grid(side, -2, 2, d0, d1, flags)
    with pytest.raises(ValueError):
        kernels.mv_grid(side, 4, 4, d0, d1, flags)  # grids smaller than gh x gw
    kernels.mv_grid(side, 2, 2, d0, d1, flags)  # and the well-formed call still works


@pytest.mark.parametrize("kernels", _kernel_modules())
def test_drop_long_refuses_bad_grids_and_limits(kernels):
    d0, d1, flags = np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32), np.zeros((2, 3), np.uint8)
    for gh, gw, limit in [(-1, 3, 1.0), (4, 3, 1.0), (2, 4, 1.0), (2, 3, -1.0), (2, 3, float("nan"))]:
        with pytest.raises(ValueError):
            kernels.drop_long(d0, d1, flags, gh, gw, limit)
    with pytest.raises((ValueError, TypeError)):
        kernels.drop_long(d0, d1[:, :1], flags, 2, 3, 1.0)  # a grid shorter than gh x gw
    assert kernels.drop_long(d0, d1, flags, 2, 3, 1.0) == 0  # and the well-formed call still works


def test_drop_long_matches_in_both_kernels():
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    rng = np.random.default_rng(5)
    gh, gw = 17, 29
    d = rng.normal(0, 12, (2, 2, gh, gw)).astype(np.float32)
    d[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, 3e38]
    d[1, 1, 2, :2] = [np.nan, -3e38]
    d[0, :, 5, 5] = [9.0, 12.0]  # exactly 15 px: kept at a 15 px limit
    flags = rng.integers(0, 4, (gh, gw), dtype=np.uint8)
    out = {}
    for name, k in (("numpy", _reference), ("native", reader_module._native)):
        d0, d1, fl = d[0].copy(), d[1].copy(), flags.copy()
        n = k.drop_long(d0, d1, fl, gh, gw, 15.0)
        out[name] = (n, d0, d1, fl)
    (n, d0, d1, fl), (m, e0, e1, gl) = out["numpy"], out["native"]
    assert n == m > 0
    np.testing.assert_array_equal(d0, e0)
    np.testing.assert_array_equal(d1, e1)
    np.testing.assert_array_equal(fl, gl)
    length0 = np.hypot(d[0, 0], d[0, 1])
    far0 = length0 > 15
    assert np.all(d0[:, far0] == 0) and not np.any(fl[far0] & 1)
    assert d0[0, 5, 5] == 9.0 and (fl[5, 5] & 1) == (flags[5, 5] & 1)
    assert np.isnan(d0[0, 0, 0])  # NaN is left to the trace, which saturates it
    kept = ~far0 & ~np.isnan(length0)
    np.testing.assert_array_equal(d0[:, kept], d[0][:, kept])


def test_huge_and_nan_vectors_clamp_to_the_edge_in_both_kernels():
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    H, W = 24, 40
    gh, gw = 3, 5
    cur, ref = _frame(H, W), _frame(H, W)
    d0 = np.full((2, gh, gw), 3e9, np.float32)
    d0[1] = -1e12
    d0[:, 1, 1:3] = np.nan, np.inf
    flags = np.ones((gh, gw), np.uint8)
    got, want = np.empty((3, H, W), np.int16), np.empty((3, H, W), np.int16)
    reader_module._native.mc_residual(_as_args(None, cur, W), _as_args(None, ref, W), None, H, W, d0, d0, flags, gw,
                                      got)
    _reference.mc_residual(_as_args(_reference, cur, W), _as_args(_reference, ref, W), None, H, W, d0, d0, flags,
                           gw, want)
    np.testing.assert_array_equal(got, want)


def test_reader_turns_a_kernel_refusal_into_a_decode_error(tmp_path, monkeypatch):
    data = size_change_stream(tmp_path / "change.h264", "h264", frames=(12, 12))

    def refuses(*args):
        raise ValueError("ref0: Y plane holds 10 bytes")

    monkeypatch.setenv("EDGEKIT_NATIVE", "0")
    monkeypatch.setattr(_reference, "mc_residual", refuses)
    with pytest.raises(DecodeError, match="mc_residual: ref0"):
        read(data)
