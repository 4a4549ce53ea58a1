"""Motion-correct augmentation (training.augment): flips negate the motion and swap mirrored labels,
crops scale motion with the picture, all-off is bit-identical, draws repeat by seed. Hand-built arrays
of known structure, then a real cache of FFmpeg-encoded synthetic clips and a real one-epoch training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import ConfigError
from edgekit.modality import MODALITIES, MV_SCALE
from edgekit.spec import InputSpec
from training.augment import CHANNEL_GROUPS, SYNTH_MIRRORS, Augmenter, TemporalView, crop_resize, mirror_table
from training.config import AugmentSection, load_config
from training.synth.classes import CLASS_NAMES

SIZE = 32
MV_RESIDUAL = InputSpec("segments", "mv_residual", (1, 3, 5, SIZE, SIZE))
FLOW = InputSpec("flow", "flow", (1, 3, 2, SIZE, SIZE))
CLIP = InputSpec("clip", "mv_residual", (1, 5, 4, SIZE, SIZE), layout="BCTHW")


def _label(name: str) -> int:
    return CLASS_NAMES.index(name)


def _rightward_item() -> dict[str, np.ndarray]:
    """An object in the left half moving right by 2 px per frame: dx = +2 px (normalised), dy = 0 there,
    a residual on its edge; the same motion as teacher flow."""
    mv_residual = np.zeros((3, 5, SIZE, SIZE), np.float32)
    mv_residual[:, 0, 8:16, 4:12] = 2.0 * MV_SCALE
    mv_residual[:, 2:, 8:16, 11] = 0.5
    flow = mv_residual[:, :2].copy()
    return {"segments": mv_residual, "flow": flow}


def _augmenter(**options) -> Augmenter:
    return Augmenter(AugmentSection(**options), CLASS_NAMES)


def test_a_horizontal_flip_of_rightward_motion_is_leftward_motion_and_move_right_becomes_move_left():
    item = _rightward_item()
    out, label = _augmenter(hflip=1.0).apply(item, (MV_RESIDUAL, FLOW), _label("move_right"),
                                             np.random.default_rng(0))
    assert CLASS_NAMES[label] == "move_left"
    x = out["segments"]
    np.testing.assert_array_equal(x[:, 0], -item["segments"][:, 0, :, ::-1])     # dx negated and mirrored
    np.testing.assert_array_equal(x[:, 1:], item["segments"][:, 1:, :, ::-1])    # dy, residual: mirrored only
    assert x[0, 0, 8:16, 20:28].min() == x[0, 0, 8:16, 20:28].max() == -2.0 * MV_SCALE  # now in the right half
    np.testing.assert_array_equal(out["flow"][:, 0], -item["flow"][:, 0, :, ::-1])  # the teacher's flow too
    assert x.flags.c_contiguous and x.dtype == np.float32
    np.testing.assert_array_equal(item["segments"], _rightward_item()["segments"])  # input untouched


def test_a_vertical_flip_negates_dy_and_swaps_up_and_down():
    item = {"segments": np.random.default_rng(1).normal(size=(3, 5, SIZE, SIZE)).astype(np.float32)}
    out, label = _augmenter(vflip=1.0).apply(item, (MV_RESIDUAL,), _label("move_up"), np.random.default_rng(0))
    assert CLASS_NAMES[label] == "move_down"
    np.testing.assert_array_equal(out["segments"][:, 1], -item["segments"][:, 1, ::-1, :])
    np.testing.assert_array_equal(out["segments"][:, 0], item["segments"][:, 0, ::-1, :])
    _, label = _augmenter(vflip=1.0, hflip=1.0).apply(item, (MV_RESIDUAL,), _label("rotate_cw"),
                                                      np.random.default_rng(0))
    assert CLASS_NAMES[label] == "rotate_cw"  # each flip reverses the sense of rotation: twice, none


@pytest.mark.parametrize("name,flip", [("red_up_right", "hflip"), ("blue_up_right", "vflip"), ("bounce", "vflip")])
def test_a_class_without_a_mirror_image_is_left_unflipped(name, flip):
    item = _rightward_item()
    out, label = _augmenter(**{flip: 1.0}).apply(item, (MV_RESIDUAL, FLOW), _label(name), np.random.default_rng(0))
    assert label == _label(name)
    for key in item:
        np.testing.assert_array_equal(out[key], item[key])


def test_symmetric_classes_keep_their_label_when_flipped():
    item = _rightward_item()
    for name in ("approach", "recede", "static", "wave", "move_up", "meet", "part", "bounce"):
        out, label = _augmenter(hflip=1.0).apply(item, (MV_RESIDUAL,), _label(name), np.random.default_rng(0))
        assert label == _label(name) and not np.array_equal(out["segments"], item["segments"])


def test_a_crop_scales_motion_with_the_picture():
    item = {"segments": np.zeros((3, 5, SIZE, SIZE), np.float32), "clip": np.zeros((5, 4, SIZE, SIZE), np.float32)}
    item["segments"][:, 0], item["segments"][:, 1] = 1.5 * MV_SCALE, -0.5 * MV_SCALE  # a uniform pan
    item["segments"][:, 2:] = 0.25
    item["clip"][0], item["clip"][1] = 1.5 * MV_SCALE, -0.5 * MV_SCALE
    out, _ = _augmenter(crop_scale=[0.5, 0.5]).apply(item, (MV_RESIDUAL, CLIP), 0, np.random.default_rng(0))
    # half the side resized back: the picture and its motion are twice as large; the residual is not motion
    np.testing.assert_allclose(out["segments"][:, 0], 3.0 * MV_SCALE, rtol=1e-6)
    np.testing.assert_allclose(out["segments"][:, 1], -1.0 * MV_SCALE, rtol=1e-6)
    np.testing.assert_allclose(out["segments"][:, 2:], 0.25, rtol=1e-6)
    np.testing.assert_allclose(out["clip"][0], 3.0 * MV_SCALE, rtol=1e-6)


def test_a_crop_magnifies_a_known_square():
    planes = np.zeros((3, 5, SIZE, SIZE), np.float32)
    planes[:, 2, 12:20, 12:20] = 1.0  # an 8 px residual square in the centre
    out = crop_resize(planes, (0.25, 0.25, 0.5, 0.5))  # the central 16 px, resized back to 32
    expected = np.zeros((SIZE, SIZE), np.float32)
    expected[8:24, 8:24] = 1.0  # twice as large, still centred
    np.testing.assert_array_equal(out[:, 2], np.broadcast_to(expected, (3, SIZE, SIZE)))
    assert out.shape == planes.shape and not out[:, [0, 1, 3, 4]].any()


def test_mv_noise_is_in_pixels_on_motion_vector_channels_only():
    item = {"segments": np.zeros((3, 5, 64, 64), np.float32), "flow": np.zeros((3, 2, 64, 64), np.float32)}
    specs = (InputSpec("segments", "mv_residual", (1, 3, 5, 64, 64)), InputSpec("flow", "flow", (1, 3, 2, 64, 64)))
    out, _ = _augmenter(mv_noise_px=2.0).apply(item, specs, 0, np.random.default_rng(0))
    noise_px = out["segments"][:, :2] / MV_SCALE
    assert noise_px.std() == pytest.approx(2.0, rel=0.02) and abs(noise_px.mean()) < 0.05  # 4 standard errors
    assert not out["segments"][:, 2:].any() and not out["flow"].any()


def test_residual_dropout_zeroes_whole_segments_of_residual_and_nothing_else():
    rng = np.random.default_rng(2)
    item = {"segments": rng.normal(size=(64, 5, 8, 8)).astype(np.float32)}
    spec = InputSpec("segments", "mv_residual", (1, 64, 5, 8, 8))
    out, _ = _augmenter(residual_dropout=0.5).apply(item, (spec,), 0, np.random.default_rng(0))
    dropped = ~out["segments"][:, 2:].any(axis=(1, 2, 3))
    assert 16 < dropped.sum() < 48  # about half of 64 segments
    np.testing.assert_array_equal(out["segments"][~dropped], item["segments"][~dropped])
    np.testing.assert_array_equal(out["segments"][:, :2], item["segments"][:, :2])


def test_the_temporal_view_stays_inside_the_clip_and_strides_3d_runs():
    aug = _augmenter(window_jitter_frames=3, clip_stride_max=3)
    views = [aug.temporal_view(24, np.random.default_rng(k)) for k in range(200)]
    assert {v.start for v in views} == {0, 1, 2, 3} and {v.end for v in views} == {21, 22, 23, 24}
    assert {v.clip_stride for v in views} == {1, 2, 3}
    view = TemporalView(2, 22, clip_stride=3, clip_offset=1)
    assert view.positions(CLIP).tolist() == [3, 6, 9, 12, 15, 18, 21]
    assert view.positions(MV_RESIDUAL).tolist() == list(range(2, 22))  # TSN spans are not strided
    short = {(v.start, v.end) for v in (aug.temporal_view(5, np.random.default_rng(k)) for k in range(50))}
    assert short == {(0, 5), (1, 5), (0, 4), (1, 4)}  # under a quarter of 5 frames at each end: one
    assert TemporalView(0, 6, clip_stride=3).positions(CLIP).tolist() == [0, 1, 2, 3, 4, 5]  # 4 steps need 6


def test_the_synthetic_mirror_tables_cover_every_class_and_are_their_own_inverse():
    for flip, table in SYNTH_MIRRORS.items():
        assert set(table) == set(CLASS_NAMES), flip
        for name, mirror in table.items():
            assert mirror is None or table[mirror] == name, (flip, name)
    assert set(CHANNEL_GROUPS) == set(MODALITIES)
    subset = ["move_left", "static", "rotate_cw"]  # move_right and rotate_ccw absent: nothing to swap to
    assert mirror_table("hflip", subset).tolist() == [-1, 1, -1]


def test_other_classes_need_an_explicit_mirror_map():
    classes = ["wave_hand", "walk_left", "walk_right", "wave_flag"]
    with pytest.raises(ConfigError, match=r"augment.hflip needs each class's mirror image.*augment.hflip_labels ="):
        Augmenter(AugmentSection(hflip=0.5), classes)
    Augmenter(AugmentSection(vflip=0.0, hflip=0.0), classes)  # no flip, no map needed
    labels = {"wave_hand": "wave_hand", "walk_left": "walk_right", "walk_right": "walk_left", "wave_flag": ""}
    aug = Augmenter(AugmentSection(hflip=1.0, hflip_labels=labels), classes)
    assert aug.mirrors["hflip"].tolist() == [0, 2, 1, -1]
    with pytest.raises(ConfigError, match=r"gives no mirror image for 'wave_flag'"):
        mirror_table("hflip", classes, {k: v for k, v in labels.items() if k != "wave_flag"})
    with pytest.raises(ConfigError, match=r"'walk_rigth' is not a class of this dataset; did you mean 'walk_right'"):
        mirror_table("hflip", classes, {**labels, "walk_left": "walk_rigth"})
    with pytest.raises(ConfigError, match=r"'wave_hand' mirrors to 'walk_left' but 'walk_left' mirrors to"):
        mirror_table("hflip", classes, {**labels, "wave_hand": "walk_left"})


def test_the_augment_section_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match=r"^unknown key 'augment.hflips'; did you mean 'augment.hflip'\?$"):
        load_config(None, ["augment.hflips=0.5"])
    with pytest.raises(ConfigError, match=r"augment.crop_scale must be \[low, high\] with low <= high"):
        load_config(None, ["augment.crop_scale=[1.0, 0.5]"])
    cfg = load_config(None, ["augment.hflip=0.5", 'augment.hflip_labels={a = "b", b = "a"}'])
    assert cfg.augment.hflip == 0.5 and dict(cfg.augment.hflip_labels) == {"a": "b", "b": "a"}


# -- a real cache of encoded synthetic clips -------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from training.__main__ import main

    out = tmp_path_factory.mktemp("augment") / "synth"
    assert main(["synth", "--preset", "tiny", "--clips-per-class", "3", "--size", "64x48", "--frames", "12",
                 "--seed", "0", "--workers", "1", "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory):
    from training.cache import CacheSpec, build_cache

    return build_cache(dataset, tmp_path_factory.mktemp("cache"), CacheSpec(size=SIZE), workers=1, progress=False)


def _clips(cache, augment=None, seed=0, split="train", train=None):
    from training.cache import CachedClips

    return CachedClips.for_specs(cache, split, (MV_RESIDUAL, CLIP), train=train, seed=seed, augment=augment)


def test_all_off_is_bit_identical_and_validation_is_never_augmented(cache):
    plain, off = _clips(cache), _clips(cache, AugmentSection())
    assert off.augmenter is None
    for i in range(len(plain)):
        a, b = plain.item(i), off.item(i)
        assert a[1] == b[1] and all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    on = AugmentSection(hflip=1.0, crop_scale=(0.7, 0.9), mv_noise_px=1.0, window_jitter_frames=2)
    val, val_on = _clips(cache, split="val"), _clips(cache, on, split="val")
    assert val_on.augmenter is None
    assert all(np.array_equal(val.arrays(i)["segments"], val_on.arrays(i)["segments"]) for i in range(len(val)))


def test_a_real_move_right_clip_flipped_moves_left_with_the_label_swapped_in_the_batch(cache):
    plain, flipped = _clips(cache), _clips(cache, AugmentSection(hflip=1.0))
    i = next(k for k, c in enumerate(plain.clips) if plain.classes[c["label"]] == "move_right")
    x, label = plain.item(i)
    y = flipped[i]  # what the DataLoader hands the loss
    assert flipped.classes[int(y["label"])] == "move_left" and plain.classes[label] == "move_right"
    dx, dx_flipped = x["segments"][:, 0], y["segments"][:, 0].numpy()
    moving = np.abs(dx) > 0.5 * MV_SCALE  # over half a model pixel
    assert moving.sum() >= 20 and np.median(dx[moving]) > 0
    np.testing.assert_array_equal(dx_flipped, -dx[:, :, ::-1])  # the same sampled frames, mirrored, negated
    assert np.median(dx_flipped[moving[:, :, ::-1]]) < 0


def test_augmented_items_repeat_by_seed_and_epoch(cache):
    on = AugmentSection(hflip=0.5, vflip=0.5, crop_scale=(0.6, 1.0), window_jitter_frames=2, clip_stride_max=2,
                        mv_noise_px=0.5, residual_dropout=0.3)
    a, b, c = _clips(cache, on, seed=1), _clips(cache, on, seed=1), _clips(cache, on, seed=1)
    c.set_epoch(1)
    for i in range(len(a)):
        (xa, la), (xb, lb) = a.item(i), b.item(i)
        assert la == lb and all(np.array_equal(xa[k], xb[k]) for k in xa)
    assert any(not np.array_equal(a.arrays(i)["segments"], c.arrays(i)["segments"]) for i in range(len(a)))
    labels = [a.item(i)[1] for i in range(len(a))]
    assert labels != [clip["label"] for clip in a.clips]  # some flips swapped a label
    import pickle  # what a spawned DataLoader worker receives (no artifact is written)

    copy = pickle.loads(pickle.dumps(a))
    assert all(np.array_equal(copy.arrays(i)["clip"], a.arrays(i)["clip"]) for i in range(len(a)))


def test_a_short_training_run_with_augmentation_runs(dataset, tmp_path, one_torch_thread):
    from training.train import train

    sets = [f"data.dataset='{dataset}'", f"data.cache='{tmp_path / 'cache'}'", f"train.out='{tmp_path / 'run'}'",
            "data.workers=0", "model.size=32", "train.epochs=1", "train.batch_size=8", "train.max_steps_per_epoch=2",
            "augment.hflip=0.5", "augment.vflip=0.5", "augment.crop_scale=[0.8, 1.0]", "augment.mv_noise_px=0.5",
            "augment.residual_dropout=0.2", "augment.window_jitter_frames=1"]
    summary = train(load_config(None, sets), progress=False, log=None)
    assert summary["epochs"] == 1 and np.isfinite(summary["last"]["train_loss"])
    saved = json.loads((tmp_path / "run" / "last.json").read_text())["config"]
    assert saved["augment"]["hflip"] == 0.5 and saved["augment"]["crop_scale"] == [0.8, 1.0]
