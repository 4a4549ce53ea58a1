"""The runtime path: side data only for the frames a model consumes, at the size it consumes.

- the block-trace kernels (``trace_cells``, ``trace_residual`` full and binned, ``area_bins``) equal
  their numpy reference, and binning equals ``edgekit.preprocess.resize`` of the full residual;
- they refuse buffers and sizes that do not fit (ValueError / TypeError, never a read outside);
- on real encoded video the reader's binned residual equals the resized full one, the first P-frame
  after an I-frame is traced exactly, and a declined frame gets no residual;
- the Recognizer's consumed-only inputs equal what it prepares when every frame's side data is
  computed, and its windows cover the whole clip with true durations.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
import edgekit.bitstream as bs
from edgekit import preprocess, sampling
from edgekit.bitstream import _reference
from edgekit.bitstream import reader as reader_module
from media import half_pel_pan_clip, joined_mid_gop, moving_square_clip

native = reader_module._native
needs_native = pytest.mark.skipif(native is None, reason="native extension not built (pip install -e . builds it)")


def _planes(rng, H, W, pad=16):
    ys = rng.integers(0, 256, (H, W + pad), dtype=np.uint8)
    u, v = (rng.integers(0, 256, ((H + 1) // 2, (W + 1) // 2 + pad // 2), dtype=np.uint8) for _ in range(2))
    return (ys, ys.shape[1], u, u.shape[1], v, v.shape[1]), (ys[:, :W], u[:, :(W + 1) // 2], v[:, :(W + 1) // 2])


def random_block_fields(H, W, threads, out_hw, check=True):
    """Random traces and vectors (some far outside the frame), every prediction mode, odd sizes:
    native kernels against the numpy reference. Also run under AddressSanitizer."""
    rng = np.random.default_rng(H * 7 + W + threads)
    gh, gw = (H + 7) // 8, (W + 7) // 8
    (cur_n, cur_p), (ifr_n, ifr_p) = _planes(rng, H, W), _planes(rng, H, W)
    traced = (rng.integers(-12 * W, 12 * W, (2, gh, gw)) / 4).astype(np.float32)  # quarter pixels
    traced[:, ::2] = rng.integers(-48, 49, (2, (gh + 1) // 2, gw)) / 4
    traced[1, -1, -1], traced[0, 0, -1] = np.nan, np.inf  # buffers the kernel must survive
    disp = _reference.round_displacements(traced)  # what trace_residual reads
    d0 = (rng.integers(-400, 401, (2, gh, gw)) / 4).astype(np.float32)
    d1 = (rng.integers(-80, 81, (2, gh, gw)) / 4).astype(np.float32)
    d0[0, 0, 0] = np.nan
    flags = rng.integers(0, 4, (gh, gw)).astype(np.uint8)
    for disp1 in (None, (rng.integers(-160, 161, (2, gh, gw)) / 4).astype(np.float32)):
        got, want = np.empty((2, gh, gw), np.float32), np.empty((2, gh, gw), np.float32)
        native.trace_cells(traced, disp1, H, W, d0, d1, flags, gw, got)
        _reference.trace_cells(traced, disp1, H, W, d0, d1, flags, gw, want)
        if check:
            np.testing.assert_array_equal(got, want)
            cy = np.minimum(np.arange(gh) * 8 + 4, H - 1)[:, None]
            cx = np.minimum(np.arange(gw) * 8 + 4, W - 1)[None]
            assert ((cx + got[0] >= 0) & (cx + got[0] <= W - 1) & (cy + got[1] >= 0) & (cy + got[1] <= H - 1)).all()
    full = np.full(3 * H * W + 64, -7, np.int16)
    native.trace_residual(cur_n, ifr_n, disp, H, W, gw, full[:-64].reshape(3, H, W), threads)
    want = np.empty((3, H, W), np.int16)
    _reference.trace_residual(cur_p, ifr_p, disp, H, W, gw, want)
    binned = np.full(3 * out_hw[0] * out_hw[1] + 16, -7, np.float32)
    native.trace_residual(cur_n, ifr_n, disp, H, W, gw, binned[:-16].reshape(3, *out_hw), threads, *out_hw)
    bins = np.empty((3, *out_hw), np.float32)
    native.area_bins(want, 3, H, W, bins, *out_hw, threads)
    sampled = np.full(3 * out_hw[0] * out_hw[1] + 16, -7, np.float32)  # step 2: every other row and column
    native.trace_residual(cur_n, ifr_n, disp, H, W, gw, sampled[:-16].reshape(3, *out_hw), threads, *out_hw, False, 2)
    sampled_ref = np.empty((3, *out_hw), np.float32)
    _reference.trace_residual(cur_p, ifr_p, disp, H, W, gw, sampled_ref, 1, *out_hw, False, 2)
    if check:
        np.testing.assert_array_equal(full[:-64].reshape(3, H, W), want)
        assert (full[-64:] == -7).all() and (binned[-16:] == -7).all()
        resized = preprocess.resize(want, out_hw)
        # numpy sums in float32, the kernel in float64
        np.testing.assert_allclose(binned[:-16].reshape(3, *out_hw), resized, atol=5e-3, rtol=1e-4)
        np.testing.assert_allclose(bins, resized, atol=5e-3, rtol=1e-4)
        np.testing.assert_allclose(sampled[:-16].reshape(3, *out_hw), sampled_ref, atol=5e-3, rtol=1e-4)
        assert (sampled[-16:] == -7).all()  # numpy sums in float32, the kernel in float64


@needs_native
@pytest.mark.parametrize("H,W,out_hw", [(37, 53, (8, 8)), (61, 83, (112, 112)), (120, 160, (112, 112)),
                                         (256, 340, (112, 112)), (90, 1024, (56, 200))])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_block_kernels_match_reference_on_random_fields(H, W, out_hw, threads):
    random_block_fields(H, W, threads, out_hw)


@needs_native
@pytest.mark.parametrize("kernels", ["native", "reference"])
def test_block_kernels_refuse_buffers_that_do_not_fit(kernels):
    k = native if kernels == "native" else _reference
    rng = np.random.default_rng(0)
    H, W, gw, gh = 48, 64, 8, 6
    (cur_n, cur_p), (ifr_n, ifr_p) = _planes(rng, H, W), _planes(rng, H, W)
    cur, ifr = (cur_n, ifr_n) if kernels == "native" else (cur_p, ifr_p)
    disp, traced = np.zeros((2, gh, gw), np.int32), np.zeros((2, gh, gw), np.float32)
    d = np.zeros((2, gh, gw), np.float32)
    flags = np.zeros((gh, gw), np.uint8)
    calls = [
        lambda: k.trace_cells(traced[:, :3], None, H, W, d, d, flags, gw, np.empty((2, gh, gw), np.float32)),
        lambda: k.trace_cells(traced, None, H, W, d, d, flags, gw, np.empty((2, 3, gw), np.float32)),
        lambda: k.trace_cells(traced, None, H, W + 9, d, d, flags, gw, np.empty((2, gh, gw), np.float32)),
        lambda: k.trace_residual(cur, ifr, disp, H, W, gw, np.empty((3, H, W - 1), np.int16)),
        lambda: k.trace_residual(cur, ifr, disp[:, :2], H, W, gw, np.empty((3, H, W), np.int16)),
        lambda: k.trace_residual(cur, ifr, disp, H, W, gw, np.empty((3, 8, 7), np.float32), 1, 8, 8),
        lambda: k.trace_residual(cur, ifr, disp, H, W, gw, np.empty((3, 8, 8), np.float32), 1, 0, 8),
        lambda: k.trace_residual(cur, ifr, disp, H + 2, W, gw, np.empty((3, H + 2, W), np.int16)),
        lambda: k.area_bins(np.zeros((3, H, W - 1), np.int16), 3, H, W, np.empty((3, 8, 8), np.float32), 8, 8),
        lambda: k.area_bins(np.zeros((3, H, W), np.int16), 3, H, W, np.empty((3, 8, 8), np.float32), 9, 8),
        lambda: k.area_bins(np.zeros((3, H, W), np.int16), 0, H, W, np.empty((3, 8, 8), np.float32), 8, 8),
    ]
    for i, call in enumerate(calls):
        with pytest.raises((ValueError, TypeError)):
            call()
            pytest.fail(f"call {i} was accepted")


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "square.mp4"
    moving_square_clip(path, "h264", size=(320, 240), frames=60, motion=(3, -2), gop=30, bframes=2)
    return path


def _read(path, **options):
    with bs.open(path, **options) as reader:
        return list(reader)


def test_binned_residual_is_the_resized_full_one_on_real_video(square):
    full = _read(square, accumulate=True, trace="block", rgb=None)
    binned = _read(square, accumulate=True, trace="block", rgb=None, residual_size=(112, 112))
    assert len(full) == len(binned) == 60
    for a, b in zip(full, binned):
        assert b.residual.dtype == np.float32 and b.residual.shape == (3, 112, 112)
        np.testing.assert_allclose(b.residual, preprocess.resize(a.residual, (112, 112)), atol=2e-3)
        np.testing.assert_array_equal(a.mv, b.mv)
    assert any(np.abs(a.residual).max() > 0 for a in full)


def test_block_trace_is_exact_one_step_from_the_i_frame_and_close_after(square):
    pixel = _read(square, accumulate=True, trace="pixel", rgb=None, residual=False)
    block = _read(square, accumulate=True, trace="block", rgb=None, residual=False)
    frame = _read(square, rgb=None, residual=False)
    assert [f.kind for f in pixel] == [f.kind for f in block] == [f.kind for f in frame]
    first_p = next(i for i, f in enumerate(pixel) if f.kind == "P")
    # one step from the I-frame: the encoder's own (quarter-pel) vectors where a cell has one, the
    # pixel trace's whole-pixel ones rounded as it rounds them (floor(v + 0.5))
    inter = ~frame[first_p].intra
    assert inter.mean() > 0.5
    np.testing.assert_array_equal(block[first_p].mv[:, inter], frame[first_p].mv[:, inter])
    assert (block[first_p].mv % 1 != 0).any()  # the square moves by quarter pixels too
    np.testing.assert_array_equal(np.floor(block[first_p].mv + 0.5), pixel[first_p].mv)
    near = np.mean([np.mean(np.all(np.abs(p.mv - b.mv) <= 1, axis=0)) for p, b in zip(pixel, block)])
    assert near > 0.9  # cells move as one: only cells straddling a motion boundary differ by more


def test_block_trace_adds_half_pel_vectors_without_drift():
    """Half-pel jitter (+-0.5 px, what an encoder finds in a still, noisy picture) and slow motion
    add up exactly along a cell's trace; rounding each step (floor(v + 0.5)) made +0.5 a whole pixel
    and -0.5 nothing, a drift down and to the right of half a pixel per frame."""
    H, W, gw, gh = 64, 96, 12, 8
    flags = np.ones((gh, gw), np.uint8)
    for k in (native, _reference) if native is not None else (_reference,):
        disp = np.zeros((2, gh, gw), np.float32)
        rng = np.random.default_rng(1)
        for _ in range(40):
            d = rng.choice(np.float32([-0.5, 0.5]), (2, gh, gw))
            out = np.empty_like(disp)
            k.trace_cells(disp, None, H, W, d, d, flags, gw, out)
            disp = out
        # every step's vector is a multiple of 0.5: the traced sum is exact and centred on zero
        assert np.all(disp % 0.5 == 0)
        assert abs(float(disp.mean())) < 0.5
        slow = np.zeros((2, gh, gw), np.float32)
        for _ in range(10):  # content moving 0.5 px per frame to the right: d = dst - src = +0.5
            out = np.empty_like(slow)
            k.trace_cells(slow, None, H, W, np.full((2, gh, gw), 0.5, np.float32),
                          np.zeros((2, gh, gw), np.float32), flags, gw, out)
            slow = out
        # cells away from the left and top edges trace back exactly 5 px (clamping aside)
        np.testing.assert_array_equal(slow[:, 2:, 2:], np.full((2, gh - 2, gw - 2), -5.0, np.float32))


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_half_pel_motion_adds_up_to_its_true_displacement_both_ways(tmp_path, codec):
    """Real encoders' half-pel vectors for content panning half a pixel per frame, left and right:
    the cell trace after 24 P-frames says 12 px both ways (rounding each step said 24 one way, 0 the
    other)."""
    traced = {}
    for dx2 in (1, -1):
        path = tmp_path / f"pan{dx2}.mp4"
        half_pel_pan_clip(path, codec, dx2=dx2, frames=25)
        frames = _read(path, accumulate=True, trace="block", rgb=None, residual=False)
        assert [f.kind for f in frames] == ["I"] + ["P"] * 24
        inner = frames[-1].mv[0][2:-2, 2:-2]  # away from the edges, where content enters
        traced[dx2] = float(np.median(inner))
    assert traced[1] == pytest.approx(12.0, abs=1.0) and traced[-1] == pytest.approx(-12.0, abs=1.0), traced


def test_declined_frames_get_no_residual_and_accepted_ones_do(square):
    seen = []

    def wants(kind, size):
        seen.append((kind, size))
        return len(seen) % 5 == 0

    frames = _read(square, accumulate=True, trace="block", rgb=None, residual_size=(112, 112), wants=wants)
    assert len(seen) == len(frames) and all(size == (240, 320) for _, size in seen)
    assert [f.residual is not None for f in frames] == [(i + 1) % 5 == 0 for i in range(len(frames))]
    assert [k for k, _ in seen] == [f.kind for f in frames]
    # a declined B-frame is not even read (nothing is predicted from it); anchors always are, and
    # what is read equals what a full read gives
    everything = _read(square, accumulate=True, trace="block", rgb=None, residual_size=(112, 112))
    kinds = [f.kind for f in frames]
    assert "B" in kinds
    for i, (f, full) in enumerate(zip(frames, everything)):
        declined_b = f.kind == "B" and (i + 1) % 5 != 0
        assert (f.mv is None and f.intra is None) == declined_b
        if not declined_b:
            np.testing.assert_array_equal(f.mv, full.mv)
            np.testing.assert_array_equal(f.intra, full.intra)
        if f.residual is not None:
            np.testing.assert_array_equal(f.residual, full.residual)


def test_reader_options_are_checked(square):
    from edgekit.errors import ConfigError

    for bad in ({"trace": "cells"}, {"residual_size": (0, 112)}, {"residual_size": 112},
                {"wants": "yes"}):
        with pytest.raises(ConfigError):
            bs.open(square, **bad)


def test_consumed_only_inputs_equal_the_everything_computed_inputs(square):
    """What the Recognizer feeds its backend when only sampled frames get a residual equals what it
    feeds when every frame's residual is computed (same trace, same selection)."""
    rec = edgekit.Recognizer.default(window_frames=24, stride_frames=12)
    options = {k: v for k, v in rec._reader_options.items()}
    everything = _read(square, **options)
    plan = sampling.CausalPlan(rec._residual_specs, 24, 12)
    consumed = _read(square, **options, wants=plan.arrive)
    assert sum(f.residual is not None for f in consumed) < len(consumed) / 2  # the point of the path
    n = 0
    for end in range(1, len(consumed) + 1):
        if sampling.window_due(end, 24, 12):
            hw = (consumed[0].height, consumed[0].width)
            a = rec.prepare_inputs(everything[end - 24:end], hw, {})
            b = rec.prepare_inputs(consumed[end - 24:end], hw, {})
            for name in a:
                np.testing.assert_array_equal(a[name], b[name])
            n += 1
    assert n == 4


def test_windows_cover_the_whole_clip_with_true_durations(square):
    with edgekit.Recognizer.default(window_frames=24, stride_frames=24) as rec:
        pred = rec.recognize(square)  # 60 frames: windows end at 24, 48, and a tail window at 60
        run = rec.windows(square)
        windows = list(run)
    assert [round(w.end_s, 2) for w in pred.windows] == [0.96, 1.92, 2.4]
    assert pred.duration_s == pytest.approx(60 / 25) and pred.frames == 60
    assert all(w.latency_ms >= 0 for w in windows) and run.reader.stats.frames == 60


@pytest.mark.parametrize("options", [{}, {"accumulate": True}, {"accumulate": True, "trace": "block"}])
def test_420_layout_holds_the_same_residual_in_half_the_memory(square, options):
    """Offline all-frames mode: Y full size, U/V half size, the same values as the (3, H, W) layout."""
    full = _read(square, rgb=None, **options)
    half = _read(square, rgb=None, residual_layout="420", **options)
    assert len(full) == len(half) == 60
    for a, b in zip(full, half):
        assert isinstance(b.residual, bs.YUV420) and b.residual.y.shape == (240, 320)
        assert b.residual.u.shape == b.residual.v.shape == (120, 160)
        assert b.residual.y.base is b.residual.u.base  # one buffer: H*W + 2 * H/2 * W/2 values
        np.testing.assert_array_equal(b.residual.to_444(), a.residual)
        np.testing.assert_array_equal(b.residual.u, a.residual[1, ::2, ::2])
    assert sum(b.residual.y.base.nbytes for b in half) * 2 == sum(a.residual.nbytes for a in full)
    with pytest.raises(edgekit.errors.ConfigError):
        bs.open(square, residual_layout="422")


@needs_native
@pytest.mark.parametrize("shape,crop", [((2, 90, 160), preprocess.FULL), ((2, 32, 43), (0.0, 0.0, 1.0, 340 / 344)),
                                        ((3, 60, 80), (0.1, 0.2, 0.5, 0.6)), ((2, 5, 7), preprocess.FULL),
                                        ((3, 97, 131), (0.25, 0.0, 0.75, 1.0))])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_native_resize_is_the_numpy_integral(shape, crop, dtype):
    """preprocess.resize runs the native area_bins (motion-vector grids, residuals, I-frames) and
    gives what its numpy integral gives, crops included."""
    rng = np.random.default_rng(sum(shape))
    low = 0 if dtype == np.uint8 else -255
    x = rng.normal(0, 40, shape) if dtype == np.float32 else rng.integers(low, 256, shape)
    x = x.astype(dtype)
    np.testing.assert_allclose(preprocess.resize(x, (112, 96), crop), preprocess.resize_numpy(x, (112, 96), crop),
                               atol=5e-3, rtol=1e-4)
    with pytest.raises(ValueError):
        preprocess.resize(x, (8, 8), (0.5, 0.0, 0.6, 1.0))  # past the bottom edge
    with pytest.raises(ValueError):
        native.area_bins(x.astype(np.float32), shape[0], shape[1], shape[2], np.empty((shape[0], 8, 8), np.float32),
                         8, 8, 1, True, 0.0, 0.0, float("nan"), 1.0)


def test_the_result_reports_frames_skipped_and_damaged(tmp_path):
    """A stream joined mid-GOP: the frames before its first I-frame are counted in the result."""
    tail, before_keyframe = joined_mid_gop(tmp_path / "live.h264", "h264", frames=48, gop=12, drop=5)
    with edgekit.Recognizer.default(window_frames=12, stride_frames=6) as rec:
        pred = rec.recognize(tail)
    assert pred.skipped_frames == before_keyframe > 0 and pred.damaged_frames == 0
    assert pred.frames == 48 - 5 - before_keyframe
    out = pred.to_dict()
    assert out["skipped_frames"] == before_keyframe and out["damaged_frames"] == 0


def test_residual_step_2_samples_every_other_row_and_column(square, tmp_path):
    """The opt-in step 2 of the binned cell-trace residual: native and reference agree, it applies
    only where an output cell spans 4 x 4 source pixels, and it stays close to the exact average."""
    rng = np.random.default_rng(5)
    H, W, gw, gh = 97, 131, 17, 13
    (cur_n, cur_p), (ifr_n, ifr_p) = _planes(rng, H, W), _planes(rng, H, W)
    disp = rng.integers(-12, 13, (2, gh, gw)).astype(np.int32)
    for threads in (1, 3):
        got, want = np.empty((3, 20, 24), np.float32), np.empty((3, 20, 24), np.float32)
        native.trace_residual(cur_n, ifr_n, disp, H, W, gw, got, threads, 20, 24, False, 2)
        _reference.trace_residual(cur_p, ifr_p, disp, H, W, gw, want, 1, 20, 24, False, 2)
        np.testing.assert_allclose(got, want, atol=5e-3, rtol=1e-4)
    with pytest.raises(ValueError):
        native.trace_residual(cur_n, ifr_n, disp, H, W, gw, got, 1, 20, 24, False, 3)
    from edgekit.bitstream.reader import residual_step
    assert residual_step(720, 1280, (112, 112)) == 1 and residual_step(720, 1280, (112, 112), 2) == 2
    assert residual_step(256, 340, (112, 112), 2) == 1  # cells under 4 x 4 pixels: every pixel
    big = tmp_path / "big.mp4"
    moving_square_clip(big, "h264", size=(640, 480), frames=24, motion=(3, -2), gop=12)
    exact = _read(big, accumulate=True, trace="block", rgb=None, residual_size=(112, 112))
    sampled = _read(big, accumulate=True, trace="block", rgb=None, residual_size=(112, 112), residual_step=2)
    diffs = [np.abs(a.residual - b.residual).mean() for a, b in zip(exact, sampled)]
    assert max(diffs) > 0 and max(diffs) < 2.0  # a mean change of under 2 grey levels per cell


def test_inference_takes_half_the_cores_unless_told():
    """Decoding runs beside inference (a decode-ahead thread with FFmpeg's slice threads), so a
    Recognizer gives its backend half the cores by default; threads= and a profile still decide."""
    import os

    cores = len(os.sched_getaffinity(0))
    with edgekit.Recognizer.default() as rec:
        assert rec.selection.options["threads"] == max(1, cores // 2) == rec.backend.threads
    with edgekit.Recognizer.default(threads=2) as rec:
        assert rec.backend.threads == 2


def test_pictures_no_window_reads_are_not_even_decoded(square):
    """Non-reference B-frames at positions the plan says no window reads are never decoded; the
    Recognizer's windows are bit-identical to decoding everything."""
    with edgekit.Recognizer.default(window_frames=24, stride_frames=12) as rec:
        stats, all_stats = _skipping_equals_decoding_everything(rec, square)
    assert stats.undecoded_frames > 10 and all_stats.undecoded_frames == 0
    assert stats.frames == all_stats.frames == 60
    assert stats.packets + stats.undecoded_frames == all_stats.packets


def _skipping_equals_decoding_everything(rec, path):
    """Runs ``rec`` over ``path`` as planned, then with the plan calling no frame unused (every
    picture decoded); asserts the windows are bit-identical; returns both readers' stats."""
    run = rec.windows(path)
    skipped = list(run)
    original = sampling.CausalPlan.surely_unused
    try:
        sampling.CausalPlan.surely_unused = lambda self, p, kinds=None, margin=1: False
        run_all = rec.windows(path)
        everything = list(run_all)
    finally:
        sampling.CausalPlan.surely_unused = original
    assert len(skipped) == len(everything) >= 1
    for a, b in zip(skipped, everything):
        np.testing.assert_array_equal(a.scores, b.scores)
    return run.reader.stats, run_all.reader.stats


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_undecoded_pictures_keep_their_place_and_the_rest_decode_the_same(tmp_path, codec):
    """With every non-reference picture declared unused: the same frames in the same order and
    times, the undecoded ones B-frames without data, every decoded one as in a full read."""
    path = tmp_path / f"b.{'mp4' if codec == 'h264' else 'avi'}"
    moving_square_clip(path, codec, size=(160, 128), frames=36, motion=(2, 1), gop=12, bframes=2)
    options = dict(accumulate=True, trace="block", rgb=None, residual_size=(32, 32))
    full = _read(path, **options)
    sparse = _read(path, **options, wants=lambda kind, size: True, unused=lambda position, kinds: True)
    assert [f.pts for f in sparse] == [f.pts for f in full] and [f.kind for f in sparse] == [f.kind for f in full]
    undecoded = [f for f in sparse if f.mv is None]
    assert undecoded and all(f.kind == "B" and f.residual is None for f in undecoded)
    for a, b in zip(sparse, full):
        if a.mv is not None:
            np.testing.assert_array_equal(a.mv, b.mv)
            np.testing.assert_array_equal(a.residual, b.residual)
    from edgekit.errors import ConfigError
    with pytest.raises(ConfigError):
        bs.open(path, unused=lambda p, kinds: True)  # unused needs wants: nothing would count the frames


def test_the_plan_never_calls_unused_a_frame_a_window_reads():
    """With I-frames alone between P/B frames (no two in a row where a window looks), no frame any
    window reads is ever called surely unused."""
    from edgekit import sampling
    from edgekit.spec import InputSpec

    rng = np.random.default_rng(7)
    specs = [InputSpec("x", "mv_residual", (1, 3, 5, 8, 8)), InputSpec("y", "mv", (1, 2, 4, 8, 8), layout="BCTHW")]
    for _ in range(200):
        n, length = int(rng.integers(1, 200)), int(rng.integers(2, 60))
        stride = int(rng.integers(1, length + 1))
        kinds = ["I" if i == 0 or (rng.random() < 0.1) else ("B" if rng.random() < 0.6 else "P") for i in range(n)]
        kinds = [k if not (i and k == "I" and kinds[i - 1] == "I") else "P" for i, k in enumerate(kinds)]
        known = bool(rng.random() < 0.5)
        plan, oracle = sampling.CausalPlan(specs, length, stride), sampling.CausalPlan(specs, length, stride)
        plan.expect(n if known else None)
        oracle.expect(n if known else None)
        used = [plan.arrive(k, (96, 128)) for k in kinds]
        assert not any(used[p] and oracle.surely_unused(p) for p in range(n))
        # the picture types of every frame before it known (a reader reads them from the headers)
        assert not any(used[p] and oracle.surely_unused(p, dict(enumerate(kinds[:p]))) for p in range(n))


def _gop12_kinds(n: int) -> list[str]:
    """Frame types of ``n`` frames in display order: GOPs of 12, two B-frames per P-frame."""
    return ["I" if i % 12 == 0 else ("P" if i % 3 == 0 else "B") for i in range(n)]


def test_known_picture_types_leave_only_the_frames_windows_read():
    """With the types of the pictures before it known, a B-frame right after a span's target is
    called unused unless the target is an I-frame (the rule takes the first P/B frame at or after
    it): fewer frames kept than without types, and every kept one but the first few is read."""
    from edgekit.spec import InputSpec

    spec = InputSpec("mv", "mv", (1, 3, 2, 8, 8))
    kinds = _gop12_kinds(240)
    plan = sampling.CausalPlan([spec], 48, 24)
    used = [plan.arrive(k, (96, 128)) for k in kinds]
    oracle = sampling.CausalPlan([spec], 48, 24)
    blind = [p for p in range(240) if kinds[p] == "B" and not oracle.surely_unused(p)]
    typed = [p for p in range(240) if kinds[p] == "B" and not oracle.surely_unused(p, dict(enumerate(kinds[:p])))]
    assert set(typed) < set(blind)
    assert all(used[p] for p in typed if p > 1)
    # a target on an I-frame: the frame after it is still kept
    target = 24 + 24  # window 1 (frames 24..71), span 2's centre, on an I-frame
    assert kinds[target] == "I" and not oracle.surely_unused(target + 1, dict(enumerate(kinds[:target + 1])))


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_picture_types_read_from_headers_equal_the_decoders(tmp_path, codec):
    """The skipper's header parse (H.264 slice_type / nal_ref_idc, MPEG-4 vop_coding_type) gives,
    packet by packet, the type and reference flag of the picture the decoder then returns."""
    import av

    path = tmp_path / f"k.{'mp4' if codec == 'h264' else 'avi'}"
    moving_square_clip(path, codec, size=(160, 128), frames=40, motion=(2, 1), gop=12, bframes=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        skipper = reader_module._Skipper.for_stream(stream, lambda p, kinds: False)
        parsed, decoded = {}, {}
        for packet in container.demux(stream):
            if packet.size:
                parsed[packet.pts] = skipper.parse(bytes(packet))
            for frame in packet.decode():
                decoded[frame.pts] = reader_module._KINDS[int(frame.pict_type)]
    assert len(parsed) == len(decoded) == 40
    assert {pts: kind for pts, (_, kind) in parsed.items()} == decoded
    assert {pts for pts, (nonref, _) in parsed.items() if nonref} == {pts for pts, k in decoded.items() if k == "B"}
    assert set(decoded.values()) == {"I", "P", "B"}


def test_slice_type_parse_reads_exp_golomb_codes():
    """first_mb_in_slice and slice_type as Exp-Golomb codes, emulation prevention removed; a
    header too short to hold them is unknown."""
    # NAL header 0x41 (ref, non-IDR), first_mb 0 ("1"), slice_type 5 ("00110"): P
    assert reader_module._h264_slice_kind(bytes([0x41, 0b10011000, 0])) == "P"
    assert reader_module._h264_slice_kind(bytes([0x01, 0b10011100, 0])) == "B"    # slice_type 6
    assert reader_module._h264_slice_kind(bytes([0x41, 0b10001000, 0])) == "I"    # slice_type 7 ("0001000")
    # first_mb 3 ("00100") then slice_type 0 ("1"): P
    assert reader_module._h264_slice_kind(bytes([0x41, 0b00100100])) == "P"
    assert reader_module._h264_slice_kind(bytes([0x41])) is None
    assert reader_module._h264_slice_kind(bytes([0x41, 0, 0, 0])) is None
    assert reader_module._h264_picture(iter([bytes([0x65, 0x88])])) == (False, "I")  # IDR
    assert reader_module._h264_picture(iter([bytes([0x41, 0x98]), bytes([0x41, 0x88])])) == (False, None)  # P + I


def test_picture_type_parsers_take_any_bytes():
    """Damaged or hostile packets: the header parsers return an answer (or None) for any bytes, never
    raise and never loop (lengths of 0 or past the end, start codes at the end, truncated headers)."""
    rng = np.random.default_rng(3)
    samples = [b"", b"\x00", b"\x00\x00\x01", b"\x00\x00\x00\x00", b"\x00\x00\x01\xb6", b"\xff" * 9]
    samples += [rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes() for _ in range(3000)]
    samples += [b"\x00\x00\x00\x00" + s for s in samples[:200]] + [b"\x00\x00\x01" + s for s in samples[:200]]
    for data in samples:
        for size in (1, 2, 4):
            nonref, kind = reader_module._h264_picture(reader_module._length_prefixed_nals(data, size))
            assert isinstance(nonref, bool) and kind in (None, "I", "P", "B")
        nonref, kind = reader_module._h264_picture(reader_module._annexb_nals(data))
        assert isinstance(nonref, bool) and kind in (None, "I", "P", "B")
        nonref, kind = reader_module._mpeg4_vop(data)
        assert isinstance(nonref, bool) and kind in (None, "I", "P", "B")


def test_reference_inputs_take_p_frames_and_leave_every_b_frame_undecoded():
    """A "reference" input (modality mv_ref: edge-mv-ref) samples P-frames only; with the picture types
    known, every B-frame but a span's last frame is called unused, and the plan never calls a frame
    a window reads unused."""
    from edgekit.spec import InputSpec

    assert sampling.eligible("P", "reference") and not sampling.eligible("B", "reference")
    assert not sampling.eligible("I", "reference")
    spec = InputSpec("mv_ref", "mv_ref", (1, 3, 2, 8, 8))
    assert spec.frames == "reference"
    kinds = _gop12_kinds(240)
    chosen = sampling.select_frames(kinds[:48], spec, train=False)
    assert all(kinds[i] == "P" for i in chosen)
    plan, oracle = sampling.CausalPlan([spec], 48, 24), sampling.CausalPlan([spec], 48, 24)
    used = [plan.arrive(k, (96, 128)) for k in kinds]
    kept_b = [p for p in range(240) if kinds[p] == "B" and not oracle.surely_unused(p, dict(enumerate(kinds[:p + 1])))]
    assert kept_b == [1]  # only the first frames, kept before any window is planned
    assert not any(used[p] for p in range(240) if kinds[p] == "B")  # no window reads a B-frame
    assert sum(used) >= 240 // 12  # and the windows do read their P-frames (about one per 8 frames)


def test_a_reference_frame_model_decodes_no_b_frame(square, tmp_path):
    """A package whose input is mv_ref (P-frames only, as edge-mv-ref): on an x264 clip with two
    B-frames per anchor its reader decodes the reference pictures and no B-frame (but the first
    frames', kept before any window is planned, and a span's last frame where no P-frame stands
    between its centre and its end), and its windows equal those of decoding every picture; a
    package on mv (P/B frames) decodes the B-frames its windows read."""
    from onnx_models import mv_tsn_package

    kinds = [f.kind for f in _read(square, rgb=None, residual=False)]
    counts, read_b = {}, {}
    for modality in ("mv_ref", "mv"):
        with edgekit.Recognizer(mv_tsn_package(tmp_path, modality=modality), threads=1) as rec:
            plan = sampling.CausalPlan(rec._planned_specs, rec.window_frames, rec.stride_frames)
            plan.expect(len(kinds))
            used = [plan.arrive(k, (240, 320)) for k in kinds]
            read_b[modality] = {p for p, k in enumerate(kinds) if k == "B" and used[p]}
            stats, _ = _skipping_equals_decoding_everything(rec, square)
        counts[modality] = (stats.packets, stats.kinds)
    packets, by_kind = counts["mv_ref"]
    references = by_kind["I"] + by_kind["P"]
    assert by_kind["B"] >= 30 and kinds[1] == "B"
    # decoded: the references, the B-frames the rule reads (only where a span holds no P-frame from
    # its centre to its end: a span's last frame is the fallback) and frame 1 (kept before planning)
    assert packets == references + len(read_b["mv_ref"] | {1})
    assert len(read_b["mv_ref"]) <= 4 < len(read_b["mv"])
    assert counts["mv"][0] == references + len(read_b["mv"] | {1})  # the P/B rule reads B-frames
