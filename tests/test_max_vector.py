"""``max_vector``: vectors longer than a fraction of the picture's shorter side are dropped (read as
intra) before anything is traced, in the reader, the training cache and the Recognizer. Real FFmpeg
encodes of a texture panning 20 px per frame (192x144: 10 % of the shorter side is 14.4 px)."""

import numpy as np
import pytest

import edgekit
import edgekit.bitstream as bs
from edgekit.errors import ConfigError, PackageError
from edgekit.package import load_package
from edgekit.recognizer import DEFAULT_PACKAGES
from media import half_pel_pan_clip
from onnx_models import default_with_cache_spec


@pytest.fixture(scope="module", params=["mpeg4", "h264"])
def fast_pan(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("fastpan") / f"pan-{request.param}.mp4"
    half_pel_pan_clip(path, codec=request.param, dx2=40, frames=12, gop=250)  # content moves +20 px per frame
    return path


def _p_frames(path, **options):
    with bs.open(path, residual=False, rgb=None, **options) as reader:
        frames = [f for f in reader if f.kind == "P"]
        return frames, reader.stats


def test_vectors_longer_than_the_limit_read_as_intra(fast_pan):
    kept, kept_stats = _p_frames(fast_pan)
    assert np.median([np.median(f.mv[0]) for f in kept]) == 20.0  # the encoder found the pan
    assert np.mean([f.intra.mean() for f in kept]) < 0.1
    assert kept_stats.dropped_vectors == 0
    dropped, stats = _p_frames(fast_pan, max_vector=0.1)  # 14.4 px
    assert np.mean([np.hypot(f.mv[0], f.mv[1]) > 14.4 for f in kept]) > 0.8
    for f, g in zip(kept, dropped):
        far = np.hypot(f.mv[0], f.mv[1]) > 14.4
        assert np.all(g.mv[:, far] == 0) and np.all(g.intra[far])
        assert np.array_equal(g.mv[:, ~far], f.mv[:, ~far]) and np.array_equal(g.intra[~far], f.intra[~far])
    assert stats.dropped_vectors == sum(int((np.hypot(f.mv[0], f.mv[1]) > 14.4).sum()) for f in kept)
    loose, loose_stats = _p_frames(fast_pan, max_vector=0.2)  # 28.8 px: the pan is kept
    assert loose_stats.dropped_vectors == 0
    assert all(np.array_equal(f.mv, g.mv) for f, g in zip(kept, loose))


def test_a_dropped_vector_is_not_traced(fast_pan):
    traced, _ = _p_frames(fast_pan, accumulate=True, trace="block")
    third = traced[2].mv[0]
    # 20 px per P-frame since the I-frame where the content was in the I-frame (cells right of 60 px)
    assert np.median(third[:, 8:]) == 60.0
    held, stats = _p_frames(fast_pan, accumulate=True, trace="block", max_vector=0.1)
    assert stats.dropped_vectors > 0
    # a dropped cell keeps its reference's displacement: most of the picture never leaves the I-frame
    assert np.mean(held[2].mv[0] == 0) > 0.5
    assert np.median(held[2].mv[0][:, 8:]) == 0.0


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), True, "0.1"])
def test_a_bad_limit_is_refused(bad, fast_pan):
    with pytest.raises(ConfigError, match="max_vector"):
        bs.open(fast_pan, max_vector=bad)


def test_encoder_motion_takes_the_limit_too():
    from edgekit.bitstream import EncoderMotion, MotionFrame

    grid = np.zeros((2, 12, 16), np.float32)
    grid[0, :, :8] = 30.0   # 30 px: dropped at 0.1 x 96
    grid[0, :, 8:] = 3.0
    frames = [MotionFrame("I", 0.0)] + [MotionFrame.from_grid("P", t / 25, grid) for t in range(1, 4)]
    with bs.open(EncoderMotion(frames, width=128, height=96, fps=25), residual=False, rgb=None,
                 max_vector=0.1) as reader:
        got = [f for f in reader if f.kind == "P"]
        assert reader.stats.dropped_vectors == 3 * 12 * 8
    assert np.all(got[0].mv[0, :, :8] == 0) and np.all(got[0].intra[:, :8])
    assert np.all(got[0].mv[0, :, 8:] == 3.0) and not got[0].intra[:, 8:].any()


def _with_max_vector(tmp_path, value):
    return _with_cache_spec(tmp_path, f"mv-{value}.edgepkg", max_vector=value)


def test_the_recognizer_reads_as_its_package_says(fast_pan, tmp_path):
    def scores(package):
        rec = edgekit.Recognizer(package, threshold=0, topk=64)
        result = rec.recognize(fast_pan)
        assert result.windows
        return dict(result.topk)

    for kind in ("mvr", "mv"):  # both defaults were trained on vectors cut at 0.1 and read them so
        assert load_package(DEFAULT_PACKAGES[kind]).manifest.preprocessing.extra["cache_spec"]["max_vector"] == 0.1
    plain = scores(_with_max_vector(tmp_path, 0.0))  # 0: every vector, as packages before the option
    # the 20 px pan is what the model sees with every vector; with them dropped it sees (mostly) nothing
    assert scores(_with_max_vector(tmp_path, 0.5)) == pytest.approx(plain, abs=1e-6)
    limited = scores(_with_max_vector(tmp_path, 0.1))
    assert limited.keys() == plain.keys()
    assert max(abs(limited[k] - plain[k]) for k in plain) > 0.01
    with pytest.raises(PackageError, match="max_vector"):
        edgekit.Recognizer(_with_max_vector(tmp_path, 2.0))


def _with_cache_spec(tmp_path, name, **fields):
    return default_with_cache_spec(tmp_path / name, "mv", **fields)


def test_a_package_trained_on_rounded_traces_is_flagged(tmp_path):
    import warnings

    from edgekit.errors import CompatibilityWarning

    old = _with_cache_spec(tmp_path, "format1.edgepkg", format_version=1)
    with pytest.warns(CompatibilityWarning, match="cache format 1"):
        edgekit.Recognizer(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped default (format 2) runs without a word
        edgekit.Recognizer.default("mv")
        edgekit.Recognizer(_with_cache_spec(tmp_path, "pixel.edgepkg", format_version=1, trace="pixel"))
