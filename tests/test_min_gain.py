"""``min_gain``: a vector stays only where it predicts its 8x8 cell better than no motion does, by a
margin in grey levels per pixel (the cell's mean difference, a brightness change, taken out first);
elsewhere the cell reads as still. In the kernels (numpy and native, bit for bit), the reader, the
training cache and the Recognizer. Real FFmpeg encodes: a still texture under sensor noise and
flicker, where MPEG-4 finds vectors on most cells, and a texture panning 4 px per frame."""

import numpy as np
import pytest

import edgekit
import edgekit.bitstream as bs
from edgekit.bitstream import _reference
from edgekit.bitstream import reader as reader_module
from edgekit.errors import ConfigError, PackageError
from media import half_pel_pan_clip, noisy_still_clip
from onnx_models import default_with_cache_spec


def _kernel_modules():
    mods = [pytest.param(_reference, id="numpy")]
    if reader_module._native is not None:
        mods.append(pytest.param(reader_module._native, id="native"))
    return mods


@pytest.fixture(scope="module", params=["mpeg4", "h264"])
def still(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("still") / f"still-{request.param}.mp4"
    noisy_still_clip(path, codec=request.param)
    return request.param, path


@pytest.fixture(scope="module", params=["mpeg4", "h264"])
def pan(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("pan") / f"pan-{request.param}.mp4"
    half_pel_pan_clip(path, codec=request.param, dx2=8, frames=12)  # content moves +4 px per frame
    return path


def _p_frames(path, **options):
    with bs.open(path, residual=True, rgb=None, **options) as reader:
        frames = [f for f in reader if f.kind == "P"]
        return frames, reader.stats


def _moving(frames) -> float:
    """Share of P-frame cells with a vector of 1 px or more."""
    return float(np.mean([np.mean(np.hypot(f.mv[0], f.mv[1]) >= 1) for f in frames]))


def test_vectors_in_a_still_noisy_picture_read_as_still(still):
    codec, path = still
    kept, kept_stats = _p_frames(path)
    zeroed, stats = _p_frames(path, min_gain=1.0)
    assert kept_stats.still_vectors == 0
    if codec == "mpeg4":  # MPEG-4's motion search fits the noise: most cells get a vector
        assert _moving(kept) > 0.6
        assert _moving(zeroed) < 0.3
    assert _moving(zeroed) <= _moving(kept)
    assert stats.still_vectors == sum(int(((f.mv != 0).any(0) & ((g.mv == 0).all(0))).sum())
                                      for f, g in zip(kept, zeroed))
    for f, g in zip(kept, zeroed):
        assert np.array_equal(f.intra, g.intra)  # still, not intra
        changed = (f.mv != g.mv).any(0)
        assert np.all(g.mv[:, changed] == 0)  # a vector is kept as it is, or set to 0


def test_a_real_pan_keeps_its_vectors(pan):
    kept, _ = _p_frames(pan)
    tested, stats = _p_frames(pan, min_gain=1.0)
    assert np.median([np.median(f.mv[0]) for f in kept]) == 4.0
    assert np.mean([np.mean(f.mv[0] == 4.0) for f in tested]) > 0.95
    assert stats.still_vectors < 0.02 * sum(f.mv[0].size for f in tested)
    traced, _ = _p_frames(pan, accumulate=True, trace="block", min_gain=1.0)
    assert np.median(traced[2].mv[0][:, 6:]) == 12.0  # 4 px per P-frame, traced to the I-frame


def test_a_still_cell_is_predicted_from_the_co_located_pixels(still):
    """The residual follows the vectors the cells were given: a cell set to still has the frame
    difference as its residual (luma, per-frame residuals of a clip without B-frames)."""
    import av

    _, path = still
    with av.open(str(path)) as container:
        luma = [np.frombuffer(f.planes[0], np.uint8).reshape(f.height, f.planes[0].line_size)[:, :f.width]
                .astype(np.int16) for f in container.decode(video=0)]
    with bs.open(path, residual=True, rgb=None, min_gain=1.0) as reader:
        frames = list(reader)
        assert reader.stats.still_vectors > 0
    assert {f.kind for f in frames} <= {"I", "P"}
    checked = 0
    for i, f in enumerate(frames[1:], 1):
        still_cells = (f.mv == 0).all(0) & ~f.intra
        diff = luma[i] - luma[i - 1]
        for cy, cx in zip(*np.nonzero(still_cells)):
            cell = np.s_[cy * 8:cy * 8 + 8, cx * 8:cx * 8 + 8]
            assert np.array_equal(f.residual[0][cell], diff[cell])
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("kernels", _kernel_modules())
def test_the_kernel_on_cells_it_can_be_checked_by_hand(kernels):
    H, W = 16, 20  # a partial column of cells at the right edge (20 = 2 x 8 + 4)
    gh, gw = 2, 3
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (H, W)).astype(np.uint8)
    cur = np.roll(ref, 3, axis=1)  # content moved +3 px: cur[x] = ref[x - 3]
    cur[:, :3] = ref[:, :3]
    flat_ref = np.full((H, W), 100, np.uint8)
    d = np.zeros((2, gh, gw), np.float32)
    d[0] = 3.0
    d[0, 1, 1] = 0.0  # a zero vector: not tested
    flags = np.ones((gh, gw), np.uint8)
    flags[0, 2] = 2  # only a future-reference vector there: left alone when testing the past one
    chroma = np.zeros(((H + 1) // 2, (W + 1) // 2), np.uint8)

    def planes(y):
        if kernels is _reference:
            return (y, chroma, chroma)
        return (y, W, chroma, chroma.shape[1], chroma, chroma.shape[1])

    got = d.copy()
    n = kernels.still_vectors(planes(cur), planes(ref), H, W, got, flags, 1, gw, 1.0)
    assert n == 0 and np.array_equal(got, d)  # the true shift beats no motion everywhere
    got = d.copy()
    # a flat picture: every vector predicts as well as none
    n = kernels.still_vectors(planes(np.full((H, W), 100, np.uint8)), planes(flat_ref), H, W, got, flags, 1, gw, 0.0)
    assert n == 4 and np.all(got[:, flags == 1] == 0) and got[0, 0, 2] == 3.0
    # a brightness change alone (+20 everywhere) is taken out: still zeroed at any margin >= 0
    got = d.copy()
    n = kernels.still_vectors(planes(np.full((H, W), 120, np.uint8)), planes(flat_ref), H, W, got, flags, 1, gw, 0.0)
    assert n == 4


@pytest.mark.parametrize("kernels", _kernel_modules())
def test_the_kernel_refuses_what_does_not_fit(kernels):
    H, W, gh, gw = 16, 16, 2, 2
    y = np.zeros((H, W), np.uint8)
    c = np.zeros((8, 8), np.uint8)
    planes = (y, c, c) if kernels is _reference else (y, W, c, 8, c, 8)
    short = (y[:8], c, c) if kernels is _reference else (y[:8], W, c, 8, c, 8)
    d, flags = np.zeros((2, gh, gw), np.float32), np.ones((gh, gw), np.uint8)
    for args in [(planes, planes, H, W, d, flags, 3, gw, 1.0),           # no such reference
                 (planes, planes, H, W, d, flags, 1, gw, float("nan")),
                 (planes, planes, H, W, d, flags, 1, gw, -1.0),
                 (planes, planes, H, W, d, flags, 1, gw, 256.0),
                 (planes, planes, H, W, d, flags, 1, 3, 1.0),            # gw does not match W
                 (planes, short, H, W, d, flags, 1, gw, 1.0),            # a plane with too few rows
                 (planes, planes, H, W, d[:, :1], flags, 1, gw, 1.0)]:  # a grid shorter than gh x gw
        with pytest.raises((ValueError, TypeError)):
            kernels.still_vectors(*args)
    assert kernels.still_vectors(planes, planes, H, W, d, flags, 1, gw, 1.0) == 0


def test_both_kernels_agree_on_random_pictures_and_fields():
    if reader_module._native is None:
        pytest.skip("native extension not built (pip install -e . builds it)")
    rng = np.random.default_rng(11)
    for H, W in [(37, 53), (64, 96), (90, 130)]:
        gh, gw = (H + 7) // 8, (W + 7) // 8
        ref = rng.integers(0, 256, (H, W + 5)).astype(np.uint8)  # a stride wider than the row
        cur = np.clip(ref.astype(int) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
        cur[:, : W // 2] = np.roll(ref, 2, axis=0)[:, : W // 2]
        ch, cw = (H + 1) // 2, (W + 1) // 2
        c = np.zeros((ch, cw), np.uint8)
        d = rng.normal(0, 3, (2, gh, gw)).astype(np.float32)
        d[:, 0, :3] = [[np.nan, np.inf, -3e38], [2.0, 0.0, 1e9]]
        d[:, 1, 1] = 0.0
        flags = rng.integers(0, 4, (gh, gw), dtype=np.uint8)
        for gain in (0.0, 0.5, 1.0, 3.0):
            out = []
            for k in (_reference, reader_module._native):
                planes_c = (cur[:, :W], c, c) if k is _reference else (cur, W + 5, c, cw, c, cw)
                planes_r = (ref[:, :W], c, c) if k is _reference else (ref, W + 5, c, cw, c, cw)
                got = d.copy()
                n = k.still_vectors(planes_c, planes_r, H, W, got, flags, 1 + (gain > 1), gw, gain)
                out.append((n, got))
            assert out[0][0] == out[1][0]
            np.testing.assert_array_equal(out[0][1], out[1][1])
        assert out[0][0] > 0


@pytest.mark.parametrize("bad", [-0.1, 256.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_margin_is_refused(bad, pan):
    with pytest.raises(ConfigError, match="min_gain"):
        bs.open(pan, min_gain=bad)


def test_it_needs_decoded_pictures(pan):
    with pytest.raises(ConfigError, match="decoded pictures"):
        bs.open(pan, residual=False, rgb=None, min_gain=1.0)  # fast: the IDCT is skipped
    with pytest.raises(ConfigError, match="decoded pictures"):
        bs.open(pan, residual=False, rgb=None, fast=False, min_gain=1.0)  # per-frame: no references kept
    with bs.open(pan, residual=False, rgb=None, accumulate=True, trace="block", fast=False, min_gain=1.0) as r:
        assert [f.kind for f in r].count("P") == 11


def test_encoder_motion_has_no_pictures_to_compare():
    from edgekit.bitstream import EncoderMotion, MotionFrame

    frames = [MotionFrame("I", 0.0), MotionFrame.from_grid("P", 0.04, np.zeros((2, 12, 16), np.float32))]
    with pytest.raises(ConfigError, match="min_gain"):
        bs.open(EncoderMotion(frames, width=128, height=96, fps=25), residual=False, rgb=None, min_gain=1.0)


def _with_cache_spec(tmp_path, kind, name, **fields):
    return default_with_cache_spec(tmp_path / name, kind, **fields)


def test_the_recognizer_reads_as_its_package_says(tmp_path):
    path = tmp_path / "still.mp4"
    noisy_still_clip(path, codec="mpeg4", frames=48)

    def run(package):
        rec = edgekit.Recognizer(package, threshold=0, topk=64)
        return rec, dict(rec.recognize(path).topk)

    plain_rec, plain = run(_with_cache_spec(tmp_path, "mvr", "plain.edgepkg", min_gain=0.0))
    assert "min_gain" not in plain_rec._reader_options
    rec, tested = run(_with_cache_spec(tmp_path, "mvr", "gain.edgepkg", min_gain=1.0))
    assert rec._reader_options["min_gain"] == 1.0
    assert max(abs(tested[k] - plain[k]) for k in plain) > 0.01  # it saw other vectors
    # a motion-vector-only package decodes its pictures in full to compare them
    mv_rec, _ = run(_with_cache_spec(tmp_path, "mv", "mv-gain.edgepkg", min_gain=1.0))
    assert mv_rec._reader_options["fast"] is False and mv_rec._reader_options["residual"] is False
    with pytest.raises(PackageError, match="min_gain"):
        edgekit.Recognizer(_with_cache_spec(tmp_path, "mvr", "bad.edgepkg", min_gain=-3))
