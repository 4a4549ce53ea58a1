"""edgekit.sampling and edgekit.preprocess: the frame choice and tensor preparation shared by
training and the runtime, checked on real decoded side data."""

from __future__ import annotations

import av
import numpy as np
import pytest

import edgekit.bitstream as bs
from edgekit import preprocess as pp
from edgekit import sampling
from edgekit.spec import MV_SCALE, InputSpec
from media import moving_square_clip, object_cells


def test_segment_positions_test_mode_takes_span_centres():
    assert sampling.segment_positions(30, 3, train=False).tolist() == [5, 15, 25]
    assert sampling.segment_positions(2, 3, train=False).tolist() == [0, 1, 1]  # short clips repeat


def test_segment_positions_train_mode_draws_one_per_span_deterministically():
    a = sampling.segment_positions(100, 4, train=True, rng=np.random.default_rng(7))
    b = sampling.segment_positions(100, 4, train=True, rng=np.random.default_rng(7))
    assert a.tolist() == b.tolist()
    assert all(25 * i <= p < 25 * (i + 1) for i, p in enumerate(a))


def test_select_frames_uses_p_frames_for_motion_and_i_frames_for_rgb():
    kinds = ("I" + "P" * 11) * 3
    mv = sampling.select_frames(kinds, InputSpec("x", "mv_residual", (1, 3, 5, 8, 8)), train=False)
    assert all(kinds[i] == "P" for i in mv) and len(set(mv.tolist())) == 3
    # no I-frame after a span's centre: the span's last frame, whose GOP's I-frame RGB the input reads
    rgb = sampling.select_frames(kinds, InputSpec("x", "iframe", (1, 3, 3, 8, 8)), train=False)
    assert [i // 12 for i in rgb] == [0, 1, 2]
    assert sampling.select_frames("IPPPIPPPIPPP", InputSpec("x", "iframe", (1, 3, 3, 8, 8)), train=False).tolist() \
        == [3, 7, 11]  # targets 2, 6, 10 have no I-frame at or after them in their span: its last frame


def test_select_frames_is_causal_the_plan_marks_every_frame_a_window_uses():
    """A live reader learns on arrival whether a frame will be used (CausalPlan); every frame the
    selection rule picks in every window of the stream was marked when it arrived."""
    rng = np.random.default_rng(1)
    specs = [InputSpec("x", "mv_residual", (1, 3, 5, 8, 8)), InputSpec("y", "mv_residual", (1, 5, 4, 8, 8), layout="BCTHW"),
             InputSpec("z", "residual", (1, 8, 3, 8, 8))]
    marked_total = 0
    for _ in range(200):
        n, length = int(rng.integers(1, 160)), int(rng.integers(2, 60))
        stride = int(rng.integers(1, length + 1))
        kinds = ["I" if i == 0 or rng.random() < 0.08 else ("B" if rng.random() < 0.4 else "P") for i in range(n)]
        plan = sampling.CausalPlan(specs, length, stride)
        known = rng.random() < 0.5
        plan.expect(n if known else None)
        marked = [plan.arrive(k, (96, 128)) for k in kinds]
        marked_total += sum(marked)
        for start, end in sampling.windows(n, length, stride):  # the tail too, when n was known
            if end - start < length or not sampling.window_due(end, length, stride):
                if not known:
                    continue
            for spec in specs:
                chosen = sampling.select_frames(kinds[start:end], spec, train=False)
                assert all(marked[start + i] for i in chosen)
    assert marked_total > 0


def test_a_frame_decides_its_own_use_without_looking_ahead():
    spec = InputSpec("x", "mv_residual", (1, 3, 5, 8, 8))
    base = list("IPPPPPPPPPPPPPPPPPPPPPPP")  # 24 frames: spans of 8, centres 4, 12, 20
    chosen = sampling.select_frames(base, spec, train=False).tolist()
    assert chosen == [4, 12, 20]
    later = base[:13] + ["I"] * 11  # what comes after frame 12 cannot change frames up to 12
    assert sampling.select_frames(later, spec, train=False).tolist()[:2] == [4, 12]


def test_select_frames_for_clips_a_centred_run_and_the_centre_gop():
    kinds = ("I" + "P" * 11) * 3
    run = sampling.select_frames(kinds, InputSpec("x", "mv_residual", (1, 5, 4, 8, 8), layout="BCTHW"), train=False)
    assert run.tolist() == [16, 17, 18, 19]  # 4 consecutive P frames at the centre of the 33 P frames
    gop = sampling.select_frames(kinds, InputSpec("x", "gop_clip", (1, 3, 14, 8, 8), layout="BCTHW"), train=False)
    assert gop.tolist() == list(range(12, 24)) + [23, 23]  # the middle GOP, I-frame first, last frame repeated


def test_windows_are_what_the_runtime_emits_frame_by_frame():
    for n, length, stride in [(100, 50, 25), (20, 50, 25), (110, 50, 50), (130, 50, 50), (48, 48, 24)]:
        emitted, last_end = [], 0
        for count in range(1, n + 1):
            if sampling.window_due(count, length, stride):
                emitted.append((count - length, count))
                last_end = count
        if sampling.tail_due(n, last_end, length):
            emitted.append((max(n - length, 0), n))
        assert sampling.windows(n, length, stride) == emitted


def test_windows_cover_the_stream():
    assert sampling.windows(100, 50, 25) == [(0, 50), (25, 75), (50, 100)]
    assert sampling.windows(20, 50, 25) == [(0, 20)]
    assert sampling.windows(110, 50, 50) == [(0, 50), (50, 100), (60, 110)]  # every frame is covered
    assert sampling.windows(130, 50, 50) == [(0, 50), (50, 100), (80, 130)]
    assert sampling.windows(250, 48, 24)[-1] == (202, 250)  # a 10-frame tail gets its own window


def _brute_area(x, start, length, n_out):
    s, n, out = length / n_out, len(x), []
    for i in range(n_out):
        a, b = start + i * s, start + (i + 1) * s
        w = np.clip(np.minimum(b, np.arange(n) + 1) - np.maximum(a, np.arange(n)), 0, None)
        out.append((w * x).sum() / w.sum())
    return np.array(out)


@pytest.mark.parametrize("start,length,n_out", [(0, 37, 10), (3.3, 20.5, 7), (0, 37, 100), (0.5, 2, 5)])
def test_area_resize_equals_brute_force_overlap_average(start, length, n_out):
    x = np.random.default_rng(0).random(37).astype(np.float32)
    np.testing.assert_allclose(pp._area_axis(x[None], 1, start, length, n_out)[0],
                               _brute_area(x, start, length, n_out), atol=1e-5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("pp") / "clip.mp4"
    meta = moving_square_clip(path, "mpeg4", size=(320, 240), frames=24, motion=(4, -2))
    with bs.open(path) as r:
        return path, meta, list(r)


def test_mv_input_is_in_model_pixels(clip):
    _, meta, frames = clip
    f = frames[5]
    x = pp.mv_input(f.mv, (240, 320), (112, 112), scale=1.0)
    rows, cols = object_cells(meta, 5, f.mv.shape[1:], inset=16)
    # the square's cells, mapped to the 112x112 grid
    ys = slice(rows.start * 8 * 112 // 240 + 2, rows.stop * 8 * 112 // 240 - 2)
    xs = slice(cols.start * 8 * 112 // 320 + 2, cols.stop * 8 * 112 // 320 - 2)
    assert np.median(x[0][ys, xs]) == pytest.approx(4 * 112 / 320, abs=0.05)
    assert np.median(x[1][ys, xs]) == pytest.approx(-2 * 112 / 240, abs=0.05)


def test_crop_applies_alike_to_mv_grid_and_residual(clip):
    _, _, frames = clip
    f = frames[7]
    crop = (0.25, 0.25, 0.5, 0.5)
    spec = InputSpec("x", "mv_residual", (1, 1, 5, 56, 56))
    full = pp.frame_input(InputSpec("x", "mv_residual", (1, 1, 5, 112, 112)), f, (240, 320))
    part = pp.frame_input(spec, f, (240, 320), crop=crop)
    # the centre half at half the output size == the centre of the full-frame input at full size,
    # scaled: vectors double relative to the output grid when the crop halves the field of view
    np.testing.assert_allclose(part[2:], full[2:, 28:84, 28:84], atol=1e-4)
    np.testing.assert_allclose(part[:2], full[:2, 28:84, 28:84], atol=1e-4)


def test_residual_rgb_matches_decoded_rgb_difference(clip):
    path, _, frames = clip
    with av.open(str(path)) as c:
        rgb = [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]
    f = frames[3]  # per-frame residual; the background is static so prediction is co-located
    want = np.moveaxis(rgb[3] - rgb[2], -1, 0)[:, :40, :40]
    got = pp.residual_rgb(f.residual)[:, :40, :40]
    assert np.abs(got - want).mean() < 2.0


@pytest.mark.parametrize("modality,layout,shape", [
    ("mv_residual", "BSCHW", (1, 3, 5, 112, 112)),
    ("mv", "BSCHW", (1, 3, 2, 64, 64)),
    ("residual", "BSCHW", (1, 3, 3, 64, 64)),
    ("iframe", "BSCHW", (1, 2, 3, 96, 96)),
    ("gop_clip", "BCTHW", (1, 3, 4, 56, 56)),
])
def test_prepare_builds_the_declared_shape_from_real_frames(clip, modality, layout, shape):
    _, _, frames = clip
    spec = InputSpec("x", modality, shape, layout=layout)
    kinds = [f.kind for f in frames]
    chosen = [frames[i] for i in sampling.select_frames(kinds, spec, train=False)]
    iframes = {f.gop_index: f.rgb for f in frames if f.kind == "I"}
    x = pp.prepare(spec, chosen, (240, 320), iframes)
    assert x.shape == shape and x.dtype == np.float32 and np.isfinite(x).all()
    if modality == "mv_residual":
        assert np.abs(x[0, :, 0]).max() > 4 * 112 / 320 * MV_SCALE * 0.9  # the motion is there
