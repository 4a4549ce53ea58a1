"""edgekit.bitstream on videos the tests encode themselves with real FFmpeg encoders."""

from __future__ import annotations

import io
import itertools
import time

import av
import numpy as np
import pytest

import edgekit.bitstream as bs
from edgekit.bitstream import _reference, reader as reader_module
from edgekit.bitstream.encode import EncoderSettings, add_video_stream, open_output
from edgekit.errors import (ConfigError, EmptySourceError, ResolutionError, SourceError, SourceTimeoutError,
                            UnsupportedCodecError)
from edgekit.synthetic import render_frames
from media import (audio_only, hevc_clip, moving_square_clip, object_cells, smooth_texture,
                   zero_frame_video)

CODECS = [("mpeg4", 0), ("h264", 0), ("h264", 2)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for codec, b in CODECS:
        path = root / f"square_{codec}_b{b}.mp4"
        out[(codec, b)] = (path, moving_square_clip(path, codec=codec, bframes=b, motion=(4, -2)))
    return out


def read(path, **kw):
    with bs.open(path, **kw) as r:
        return list(r), r


def pyav_kinds(path) -> str:
    with av.open(str(path)) as c:
        return "".join("?IPBSIPB"[int(f.pict_type)] for f in c.decode(video=0))


# -- frame kinds and GOPs ---------------------------------------------------------------------------

def test_mpeg4_gop12_kinds_are_exact(clips):
    frames, r = read(clips[("mpeg4", 0)][0], residual=False, rgb=None)
    assert "".join(f.kind for f in frames) == ("I" + "P" * 11) * 2
    assert [f.gop_index for f in frames] == [i // 12 for i in range(24)]
    assert r.stats.kinds == {"I": 2, "P": 22, "B": 0} and r.stats.gops == 2


def test_h264_without_b_frames_kinds_are_exact(clips):
    frames, _ = read(clips[("h264", 0)][0], residual=False, rgb=None)
    assert "".join(f.kind for f in frames) == ("I" + "P" * 11) * 2


def test_h264_b_frames_are_labelled_in_display_order(clips):
    path = clips[("h264", 2)][0]
    for accumulate in (False, True):  # the buffering path must not reorder or relabel frames
        frames, _ = read(path, accumulate=accumulate)
        kinds = "".join(f.kind for f in frames)
        assert kinds == pyav_kinds(path)
        assert kinds == "IBBPBBPBBPBP" * 2  # x264 with b-adapt=0, bframes=2, closed GOP of 12
        assert [f.index for f in frames] == list(range(24))
        assert all(a.pts < b.pts for a, b in zip(frames, frames[1:]))


def test_scene_cut_i_frame_starts_a_new_gop(tmp_path):
    path = tmp_path / "cut.mp4"
    rng = np.random.default_rng(3)
    a, b = smooth_texture(rng, 96, 128), smooth_texture(rng, 96, 128)
    settings = EncoderSettings("h264", gop=250, scene_cut=True)
    with open_output(path, settings) as out:
        s = add_video_stream(out, settings, 128, 96, rate=25)
        for i in range(20):
            img = np.roll(a if i < 7 else b, i, axis=1)
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    frames, _ = read(path, residual=False, rgb=None)
    kinds = "".join(f.kind for f in frames)
    assert kinds[0] == "I" and kinds[7] == "I" and kinds.count("I") == 2
    assert [f.gop_index for f in frames] == [0] * 7 + [1] * 13


# -- motion vectors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("codec,b", CODECS)
def test_mv_in_object_equals_known_motion(clips, codec, b):
    path, meta = clips[(codec, b)]
    frames, _ = read(path, residual=False, rgb=None)
    anchors = [f for f in frames if f.kind != "B"]
    for f in frames:
        if f.kind == "I":
            assert not f.mv.any() and f.intra.all()
            continue
        rows, cols = object_cells(meta, f.index, f.mv.shape[1:])
        # a vector spans the distance to its reference: the nearest I/P before (or, for a B-frame
        # block predicted only from the future, after) the frame in display order
        past = f.index - max(a.index for a in anchors if a.index < f.index)
        future = min((a.index for a in anchors if a.index > f.index), default=f.index + 1) - f.index
        spans = {past} if f.kind == "P" else {past, future}
        inter = ~f.intra[rows, cols]  # the encoder may code a few blocks intra (mv 0, flagged)
        dx, dy = f.mv[0][rows, cols][inter], f.mv[1][rows, cols][inter]
        assert inter.mean() >= 0.75, (f.index, f.kind)
        if f.kind == "P":
            assert abs(np.median(dx) - 4 * past) <= 0.5 and abs(np.median(dy) + 2 * past) <= 0.5, f.index
        hit = np.zeros(dx.shape, bool)
        for span in spans:  # each block spans the distance to the reference it uses
            hit |= (np.abs(dx - 4 * span) <= 0.5) & (np.abs(dy + 2 * span) <= 0.5)
        assert hit.mean() >= 0.8, (f.index, f.kind)
        assert np.abs(f.mv[:, :3, :3]).max() == 0  # static background corner


@pytest.mark.parametrize("size", [(338, 254), (32, 32)])
def test_odd_and_tiny_sizes(tmp_path, size):
    path = tmp_path / "odd.mp4"
    meta = moving_square_clip(path, "mpeg4", size=size, frames=13, motion=(2, 1),
                              square=min(64, size[1] // 2))
    frames, _ = read(path)
    w, h = size
    assert all(f.mv.shape == (2, -(-h // 8), -(-w // 8)) for f in frames)
    assert all(f.residual.shape == (3, h, w) and f.residual.dtype == np.int16 for f in frames)
    assert frames[0].rgb.shape == (h, w, 3) and frames[1].rgb is None
    if size == (338, 254):
        rows, cols = object_cells(meta, 5, frames[5].mv.shape[1:])
        assert np.median(frames[5].mv[0][rows, cols]) == pytest.approx(2, abs=0.5)


def test_short_1080p_h264_clip(tmp_path):
    path = tmp_path / "hd.mp4"
    meta = moving_square_clip(path, "h264", size=(1920, 1080), frames=5, motion=(6, 3), square=256, bframes=0)
    frames, r = read(path, accumulate=True)
    assert r.info.width == 1920 and r.info.height == 1080 and len(frames) == 5
    assert frames[4].mv.shape == (2, 135, 240) and frames[4].residual.shape == (3, 1080, 1920)
    rows, cols = object_cells(meta, 4, (135, 240), inset=16)
    assert np.median(frames[4].mv[0][rows, cols]) == pytest.approx(24, abs=0.5)  # accumulated: 4 x 6
    assert np.median(frames[4].mv[1][rows, cols]) == pytest.approx(12, abs=0.5)


def test_b_frame_future_only_vectors_keep_forward_sign():
    # one entry from the future reference: dst - src = -4 px (content came from +4 in the future frame)
    side = np.zeros(1, _reference.MOTION_VECTOR_DTYPE)
    side[0] = (1, 16, 16, 12, 8, 8, 8, 0, 16, 0, 4)  # source=+1, w, h, src, dst, flags, motion, scale
    d0, d1 = np.empty((2, 2, 2), np.float32), np.empty((2, 2, 2), np.float32)
    flags = np.empty((2, 2), np.uint8)
    bs.kernels().mv_grid(side.tobytes(), 2, 2, d0, d1, flags)
    assert (flags == 2).all() and (d1[0] == -4).all() and not d0.any()
    composed = np.where(flags & 1, d0, -d1)  # what the reader emits for a B-frame
    assert (composed[0] == 4).all()


# -- residuals and accumulation ---------------------------------------------------------------------

@pytest.mark.parametrize("codec,b", CODECS)
def test_residual_near_zero_where_prediction_is_exact(clips, codec, b):
    path, meta = clips[(codec, b)]
    frames, _ = read(path)
    for f in frames[1:]:
        if f.kind == "I":
            assert not f.residual.any()
            continue
        rows, cols = object_cells(meta, f.index, f.mv.shape[1:])
        inner = f.residual[0, rows.start * 8:rows.stop * 8, cols.start * 8:cols.stop * 8]
        # only quantisation noise is left: a few grey levels out of 255
        assert np.abs(inner).mean() < 4.0, f.index
        assert np.abs(f.residual[:, :48, :48]).mean() < 2.5  # static background


def test_accumulated_mv_is_sum_of_per_frame_mvs_for_a_pan(tmp_path):
    path = tmp_path / "pan.mp4"
    moving_square_clip(path, "mpeg4", frames=12, motion=(0, 0), square=8, pan=(3, -1))
    per_frame, _ = read(path, residual=False, rgb=None)
    accumulated, _ = read(path, accumulate=True)
    inner = (slice(6, -6), slice(6, -6))  # away from edges, where content enters the frame
    running = np.zeros_like(per_frame[0].mv)
    for pf, acc in zip(per_frame, accumulated):
        running += pf.mv
        assert np.median(pf.mv[0][inner]) == pytest.approx(3 if pf.kind == "P" else 0, abs=0.5)
        assert np.median(acc.mv[0][inner]) == pytest.approx(np.median(running[0][inner]), abs=0.5)
        assert np.median(acc.mv[1][inner]) == pytest.approx(np.median(running[1][inner]), abs=0.5)
        assert np.abs(acc.residual[0][48:-48, 48:-48]).mean() < 3.0
    assert np.median(accumulated[-1].mv[0][inner]) == pytest.approx(33, abs=0.5)


@pytest.mark.parametrize("codec,b", CODECS)
@pytest.mark.parametrize("accumulate", [False, True])
def test_native_kernels_match_numpy_reference(clips, monkeypatch, codec, b, accumulate):
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    path = clips[(codec, b)][0]
    native, _ = read(path, accumulate=accumulate)
    monkeypatch.setenv("EDGEKIT_NATIVE", "0")
    assert bs.kernels() is _reference
    ref, _ = read(path, accumulate=accumulate)
    for a, r in zip(native, ref, strict=True):
        np.testing.assert_array_equal(a.mv, r.mv)
        np.testing.assert_array_equal(a.residual, r.residual)


def test_fast_full_mode_skips_deblocking_only_where_nothing_depends_on_it(clips):
    path = clips[("h264", 2)][0]
    fast, r = read(path)
    exact, r_exact = read(path, fast=False)
    assert r.decoder_options.get("skip_loop_filter") == "noref" and "skip_loop_filter" not in r_exact.decoder_options
    b_diff = []
    for f, e in zip(fast, exact, strict=True):
        np.testing.assert_array_equal(f.mv, e.mv)
        if f.kind == "B":  # not deblocked: close to, not equal to, the player's picture
            b_diff.append(np.abs(f.residual.astype(np.int32) - e.residual).mean())
        else:  # nothing is predicted from a non-reference picture: I/P decode bit-identically
            np.testing.assert_array_equal(f.residual, e.residual)
            if f.rgb is not None:
                np.testing.assert_array_equal(f.rgb, e.rgb)
    assert len(b_diff) == 14 and 0 < max(b_diff) < 1.0  # IBBPBBPBBPBP x 2
    _, r_all = read(path, rgb="all")  # every frame returned as RGB: every frame deblocked
    assert "skip_loop_filter" not in r_all.decoder_options


def test_threads_never_change_motion_vectors(tmp_path):
    """Decoder and kernel threads give the single-threaded result, the last frames included: FFmpeg's
    frame threads would export another picture's vectors for frames returned while draining."""
    path = tmp_path / "long.mp4"
    moving_square_clip(path, codec="h264", bframes=2, size=(648, 360), frames=48, pan=(3, 1), motion=(6, -3))
    want, _ = read(path, threads=1)
    for threads in ["auto", 2] * 4:
        got, r = read(path, threads=threads)
        assert r._stream.codec_context.thread_type.name == "SLICE"
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a.mv, b.mv)
            np.testing.assert_array_equal(a.residual, b.residual)
    # the last frame, a P two frames after its reference: the background pan of 3 px/frame, twice
    assert want[-1].kind == "P" and np.median(want[-1].mv[0]) == pytest.approx(6, abs=0.5)


@pytest.mark.parametrize("size", [(648, 360), (650, 362)])
def test_native_kernels_match_numpy_reference_in_threaded_bands(tmp_path, monkeypatch, size):
    """Above 640x360 the kernels split rows over threads; at a width that is a multiple of 8 they also
    use streaming stores. Both paths must give the reference's exact arrays, at every thread count."""
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    path = tmp_path / "wide.mp4"
    moving_square_clip(path, codec="h264", bframes=2, size=size, frames=13, pan=(3, 1), motion=(6, -3))
    for accumulate in (False, True):
        runs = {threads: read(path, accumulate=accumulate, threads=threads)[0] for threads in ("auto", 1, 3)}
        with monkeypatch.context() as m:
            m.setenv("EDGEKIT_NATIVE", "0")
            ref, _ = read(path, accumulate=accumulate)
        for frames in runs.values():
            for a, r in zip(frames, ref, strict=True):
                np.testing.assert_array_equal(a.mv, r.mv)
                np.testing.assert_array_equal(a.residual, r.residual)
        assert any(np.abs(f.residual).sum() > 0 for f in ref)  # a real comparison, not zeros


@pytest.mark.parametrize("H,W", [(37, 53), (64, 512), (90, 1024)])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_kernels_match_reference_on_random_fields(H, W, threads):
    """Vectors pointing far outside the frame, all prediction modes, odd sizes, more bands than rows
    of cells: the native kernels equal the numpy reference."""
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    native = reader_module._native
    rng = np.random.default_rng(H * W + threads)
    gh, gw = (H + 7) // 8, (W + 7) // 8

    def planes():
        ys = rng.integers(0, 256, (H, W + 16), dtype=np.uint8)
        cs = [rng.integers(0, 256, ((H + 1) // 2, (W + 1) // 2 + 8), dtype=np.uint8) for _ in range(2)]
        return ys, cs

    def as_native(p):
        ys, (u, v) = p
        return (ys, ys.shape[1], u, u.shape[1], v, v.shape[1])

    def as_numpy(p):
        ys, (u, v) = p
        return (ys[:, :W], u[:, :(W + 1) // 2], v[:, :(W + 1) // 2])

    cur, r0, r1 = planes(), planes(), planes()
    d0 = (rng.integers(-80, 81, (2, gh, gw)) / 4).astype(np.float32)
    d1 = (rng.integers(-80, 81, (2, gh, gw)) / 4).astype(np.float32)
    d0[:, ::3] = 0  # runs of alike cells, as on a static background
    flags = rng.integers(0, 4, (gh, gw)).astype(np.uint8)
    d0[0, 1::2, -1], d0[1, 1::2, -1] = 4, 0  # partial last column, source inside the frame: must not take a full-cell path
    flags[1::2, -1] = 1
    def guarded(shape, dtype):  # an output with a sentinel tail: a write past its end shows
        buf = np.full(int(np.prod(shape)) + 64, -7, dtype)
        return buf, buf[:-64].reshape(shape)

    for ref1, c420 in itertools.product((None, r1), (False, True)):  # both output layouts
        shape = (_reference.residual_len(H, W, True),) if c420 else (3, H, W)
        buf, got = guarded(shape, np.int16)
        want = np.empty(shape, np.int16)
        native.mc_residual(as_native(cur), as_native(r0), ref1 and as_native(ref1), H, W, d0, d1, flags, gw, got,
                           threads, c420)
        _reference.mc_residual(as_numpy(cur), as_numpy(r0), ref1 and as_numpy(ref1), H, W, d0, d1, flags, gw, want,
                               c420=c420)
        np.testing.assert_array_equal(got, want)
        assert (buf[-64:] == -7).all()
    yy, xx = np.mgrid[0:H, 0:W].astype(np.int32)
    acc0 = ((yy << 16) | xx).reshape(-1)
    acc1 = np.roll(acc0.reshape(H, W), (3, -5), axis=(0, 1)).reshape(-1).copy()
    for a1 in (None, acc1):
        acc_buf, got_acc = guarded((H * W,), np.int32)
        buf, got = guarded((3, H, W), np.int16)
        want_acc, want = np.empty(H * W, np.int32), np.empty((3, H, W), np.int16)
        native.accumulate(acc0, a1, H, W, d0, d1, flags, gw, got_acc, threads, as_native(cur), as_native(r0), got)
        _reference.accumulate(acc0, a1, H, W, d0, d1, flags, gw, want_acc, 1, as_numpy(cur), as_numpy(r0), want)
        np.testing.assert_array_equal(got_acc, want_acc)
        np.testing.assert_array_equal(got, want)
        assert (acc_buf[-64:] == -7).all() and (buf[-64:] == -7).all()
        positions_only = np.empty(H * W, np.int32)
        native.accumulate(acc0, a1, H, W, d0, d1, flags, gw, positions_only, threads)
        np.testing.assert_array_equal(positions_only, want_acc)


@pytest.mark.parametrize("codec,b", CODECS)
def test_mv_only_mode_gives_identical_mvs_and_skips_work(clips, codec, b):
    path = clips[(codec, b)][0]
    full, _ = read(path)
    fast, r = read(path, residual=False, rgb=None)
    assert r.decoder_options.get("skip_idct") == "all"  # the fast path was really taken
    assert all(f.residual is None and f.rgb is None for f in fast)
    for a, c in zip(full, fast, strict=True):
        np.testing.assert_array_equal(a.mv, c.mv)
        np.testing.assert_array_equal(a.intra, c.intra)


@pytest.mark.parametrize("codec,b", [("h264", 0), ("h264", 2), ("mpeg4", 0)])
def test_a_p_frames_vectors_do_not_need_the_other_p_frames_decoded(clips, codec, b):
    """What FFmpeg exports for a P-frame depends on that frame alone (its vector predictors are its
    neighbours in the frame): fed the I-frames and one P-frame in three, and no B-frame, the decoder
    exports for those P-frames exactly the vectors of a full decode. (A reader of per-frame vectors
    could skip the P-frames no window reads; the defaults' accumulated vectors need them all.)"""
    path = clips[(codec, b)][0]
    options = {"flags2": "+export_mvs", "skip_loop_filter": "all", "skip_idct": "all"}
    kinds, full = {}, {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = options
        for frame in container.decode(stream):
            kinds[frame.pts] = "IPB"[int(frame.pict_type) - 1]
            if kinds[frame.pts] != "I":
                full[frame.pts] = frame.side_data.get("MOTION_VECTORS").to_ndarray().copy()
    p_frames = sorted(t for t, k in kinds.items() if k == "P")
    kept = set(p_frames[::3])
    got = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = options
        for packet in container.demux(stream):
            if packet.size and (kinds[packet.pts] == "B" or (kinds[packet.pts] == "P" and packet.pts not in kept)):
                continue  # never sent to the decoder
            for frame in stream.codec_context.decode(packet if packet.size else None):
                assert not frame.is_corrupt
                if frame.pts in kept:
                    got[frame.pts] = frame.side_data.get("MOTION_VECTORS").to_ndarray().copy()
    assert len(kept) >= 3 and set(got) == kept
    assert all(np.any(got[t]["motion_x"] != 0) for t in kept)  # the square moves: real vectors to compare
    for t in kept:
        for field in full[t].dtype.names:  # field by field: the struct has padding bytes
            np.testing.assert_array_equal(got[t][field], full[t][field], err_msg=f"pts {t} {field}")


def test_accumulated_mode_with_b_frames_traces_to_the_iframe(clips):
    path, meta = clips[("h264", 2)]
    frames, _ = read(path, accumulate=True)
    for f in frames:
        k = f.index % 12
        if k == 0:
            continue
        rows, cols = object_cells(meta, f.index, f.mv.shape[1:], inset=12)
        assert np.median(f.mv[0][rows, cols]) == pytest.approx(4 * k, abs=0.5), f.index
        assert np.median(f.mv[1][rows, cols]) == pytest.approx(-2 * k, abs=0.5), f.index


# -- sources -----------------------------------------------------------------------------------------

def _raw_stream(tmp_path, codec):
    ext = {"mpeg4": "m4v", "h264": "h264"}[codec]
    path = tmp_path / f"raw.{ext}"
    moving_square_clip(path, codec, frames=13, motion=(2, 2), container=ext)
    return path


@pytest.mark.parametrize("codec", ["mpeg4", "h264"])
def test_bytes_filelike_and_chunk_iterables_match_the_path(tmp_path, codec):
    path = _raw_stream(tmp_path, codec)
    data = path.read_bytes()
    want, _ = read(path, residual=False, rgb=None)
    chunks = (data[i:i + 1000] for i in range(0, len(data), 1000))
    for source in (data, io.BytesIO(data), chunks):
        got, r = read(source, residual=False, rgb=None)
        assert len(got) == len(want) == 13
        assert r.info.codec == codec
        for a, c in zip(want, got):
            assert a.kind == c.kind
            np.testing.assert_array_equal(a.mv, c.mv)


def test_stalled_chunk_source_times_out(tmp_path):
    data = _raw_stream(tmp_path, "h264").read_bytes()

    def stalls():
        yield data[:len(data) // 2]
        time.sleep(60)
        yield data[len(data) // 2:]

    t0 = time.monotonic()
    with pytest.raises(SourceTimeoutError, match="stalled"):
        with bs.open(stalls(), residual=False, rgb=None, timeout_s=1.0) as r:
            list(r)
    assert time.monotonic() - t0 < 10


def test_hevc_raises_typed_error_naming_the_fallback_and_transcode_works(tmp_path):
    path = tmp_path / "hevc.mp4"
    hevc_clip(path)
    with pytest.raises(UnsupportedCodecError, match="transcode='mpeg4'") as err:
        bs.open(path)
    assert err.value.codec == "hevc"
    frames, r = read(path, transcode="mpeg4", residual=False, rgb=None)
    assert r.info.codec == "mpeg4" and r.info.source_codec == "hevc" and r.info.transcoded
    assert len(frames) == 8 and frames[0].kind == "I" and frames[1].kind == "P"
    # the background pans 2 px/frame to the left
    assert np.median(frames[3].mv[0][2:-2, 2:-2]) == pytest.approx(-2, abs=0.5)


def test_mpeg4_fixed_quantiser_is_applied(tmp_path):
    # FFmpeg ignores a "qscale" option silently: a finer quantiser must give a bigger clip
    sizes = {}
    for q in (2, 8):
        path = tmp_path / f"q{q}.mp4"
        settings = EncoderSettings("mpeg4", qscale=q)
        with open_output(path, settings) as out:
            s = add_video_stream(out, settings, 128, 96, rate=25)
            for _, img in render_frames((128, 96), frames=12, motion=(2, 1), square=32):
                out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(s.encode(None))
        sizes[q] = path.stat().st_size
    assert sizes[2] > 2 * sizes[8]


def test_encoder_settings_refuse_unknown_codecs_and_bad_gops():
    with pytest.raises(ConfigError, match="codec must be one of"):
        EncoderSettings("hevc")
    with pytest.raises(ConfigError, match="bframes < gop"):
        EncoderSettings("h264", gop=2, bframes=2)


def test_transcode_writes_the_coviar_training_format(tmp_path, clips):
    dst = tmp_path / "out.mp4"
    result = bs.transcode(clips[("h264", 2)][0], dst)  # defaults: mpeg4, GOP 12, no B, 340x256
    assert result.frames == 24 and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary left
    frames, r = read(dst, residual=False, rgb=None)
    assert (r.info.codec, r.info.width, r.info.height) == ("mpeg4", 340, 256)
    assert "".join(f.kind for f in frames) == ("I" + "P" * 11) * 2


# -- bad input ---------------------------------------------------------------------------------------

def _bad_inputs(tmp_path, clips):
    good = clips[("mpeg4", 0)][0].read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])  # moov atom is at the end
    audio_only(tmp_path / "audio.mp4")
    zero_frame_video(tmp_path / "zero.mp4")
    # a YUV4MPEG header announcing a 10000x10000 picture
    (tmp_path / "huge.y4m").write_bytes(b"YUV4MPEG2 W10000 H10000 F25:1 Ip A1:1 C420jpeg\n")
    return {
        "missing.mp4": SourceError, "empty.mp4": EmptySourceError, "text.mp4": SourceError,
        "random.mp4": SourceError, "truncated.mp4": SourceError, "audio.mp4": EmptySourceError,
        "zero.mp4": EmptySourceError, "huge.y4m": ResolutionError,
    }


def test_bad_inputs_raise_typed_one_line_errors(tmp_path, clips):
    for name, error in _bad_inputs(tmp_path, clips).items():
        with pytest.raises(error) as info:
            with bs.open(tmp_path / name) as r:
                list(r)
        assert "\n" not in str(info.value) and str(info.value), name


@pytest.mark.parametrize("codec", ["mpeg4", "h264"])
def test_corruption_mid_stream_skips_and_counts_damaged_frames(tmp_path, codec):
    path = tmp_path / "clip.mp4"
    moving_square_clip(path, codec, frames=18, motion=(2, 2))
    with av.open(str(path)) as c:  # where frame 5's coded data lies in the file
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[5]
    data = bytearray(path.read_bytes())
    data[pos:pos + size] = np.random.default_rng(5).integers(0, 256, size, np.uint8).tobytes()
    frames, r = read(bytes(data))
    intact, _ = read(path, residual=False, rgb=None)
    assert r.stats.damaged_frames >= 1
    assert len(frames) + r.stats.damaged_frames == 18
    assert [f.kind for f in frames[:5]] == ["I", "P", "P", "P", "P"]  # before the damage: intact
    # decoding went on: the second GOP is there whole (FFmpeg may re-guess pts after damage)
    assert sum(f.gop_index == 1 for f in frames) == sum(f.gop_index == 1 for f in intact) == 6


def test_empty_and_unsupported_python_sources():
    with pytest.raises(EmptySourceError):
        bs.open(b"")
    with pytest.raises(EmptySourceError):
        bs.open(iter([b"", b""]))
    with pytest.raises(SourceError, match="unsupported source type"):
        bs.open(12345)


def test_long_stream_holds_memory_flat(tmp_path):
    path = tmp_path / "long.mp4"
    moving_square_clip(path, "h264", size=(160, 128), frames=240, motion=(1, 0), square=32, bframes=2)
    import tracemalloc

    tracemalloc.start()
    with bs.open(path, accumulate=True) as r:
        peaks = []
        for f in r:
            if f.index in (40, 230):
                peaks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    assert peaks[1] - peaks[0] < 200_000  # bytes: nothing accumulates per frame


def test_decoded_frames_are_freed_without_the_cyclic_garbage_collector(clips):
    # PyAV's frame <-> side-data reference cycle would keep every frame (and its decoder buffer)
    # alive until the cyclic GC runs; the reader breaks it, so frames go as soon as they are read
    import gc

    path = clips[("h264", 2)][0]
    gc.collect()
    gc.disable()
    try:
        for options in ({"residual": False, "rgb": None}, {}, {"accumulate": True}):
            with bs.open(path, **options) as r:
                for _ in r:
                    pass
            alive = sum(type(o) is av.VideoFrame for o in gc.get_objects())
            assert alive <= 8, (options, alive)
    finally:
        gc.enable()
