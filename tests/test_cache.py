"""Side-data cache and flow teachers, on a small synthetic dataset encoded for real."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from edgekit.synthetic import render_frames
from edgekit.errors import ConfigError
from training.cache import (CachedClips, CacheSpec, build_cache, cache_location, cache_statistics, extract_clip,
                            is_complete, load_index)
from training.flow import make_teacher


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    from training.__main__ import main

    assert main(["synth", "--preset", "tiny", "--clips-per-class", "4", "--out", str(root), "--json"]) == 0
    return root


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    folder = build_cache(dataset, out, CacheSpec(size=64, flow="gt"), workers=2, shard_clips=4, progress=False)
    return folder


def test_cache_holds_every_clip_with_aligned_arrays(cache):
    meta = json.loads((cache / "spec.json").read_text())
    shards = [json.loads(p.read_text()) for p in sorted(cache.glob("shard-*.json"))]
    clips = [c for s in shards for c in s["clips"]]
    assert len(clips) == meta["clips"] and not any(s["failures"] for s in shards)
    for s in shards:
        motion = np.load(cache / f"shard-{s['shard']:05d}.motion.npy", mmap_mode="r")
        flow = np.load(cache / f"shard-{s['shard']:05d}.flow.npy", mmap_mode="r")
        assert motion.shape[1:] == (5, 64, 64) and motion.dtype == np.float16
        assert len(flow) == len(motion) == sum(c["motion_count"] for c in s["clips"])
        assert all("I" not in c["kinds"] and len(c["gop"]) == c["motion_count"] for c in s["clips"])


def test_items_have_the_shapes_each_model_family_needs(cache):
    ds = CachedClips(cache, "train", streams=("mv_residual", "iframe", "flow", "gop_clip", "mv_residual_clip"),
                     segments=3, clip_length=8)
    item = ds[0]
    assert tuple(item["mv_residual"].shape) == (3, 5, 64, 64)
    assert tuple(item["iframe"].shape) == (3, 3, 64, 64)
    assert tuple(item["flow"].shape) == (3, 2, 64, 64)
    assert tuple(item["gop_clip"].shape) == (3, 8, 64, 64)
    assert tuple(item["mv_residual_clip"].shape) == (5, 8, 64, 64)
    assert 0 <= int(item["label"]) < len(ds.classes)


def test_training_sampling_is_deterministic_per_seed_and_epoch(cache):
    a = CachedClips(cache, "train", seed=3)
    b = CachedClips(cache, "train", seed=3)
    np.testing.assert_array_equal(a.arrays(2)["mv_residual"], b.arrays(2)["mv_residual"])
    b.set_epoch(1)
    assert any(not np.array_equal(a.arrays(i)["mv_residual"], b.arrays(i)["mv_residual"]) for i in range(len(a)))
    test = CachedClips(cache, "test")
    np.testing.assert_array_equal(test.arrays(0)["mv_residual"], test.arrays(0)["mv_residual"])


def test_ground_truth_flow_and_mvs_agree_on_a_move_right_clip(cache):
    ds = CachedClips(cache, "train", streams=("mv", "flow"), train=False)
    i = next(k for k, c in enumerate(ds.clips) if ds.classes[c["label"]] == "move_right")
    item = ds.arrays(i)
    mv_dx, flow_dx = item["mv"][:, 0], item["flow"][:, 0]
    moving = np.abs(flow_dx) > 0.02  # normalised units: model pixels x FLOW_SCALE
    assert moving.sum() >= 20
    assert np.median(flow_dx[moving]) > 0 and np.median(mv_dx[moving]) > 0


def test_cell_means_average_the_source_cells_of_a_stored_picture():
    from training.cache.dataset import cell_means

    planes = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    out = cell_means(planes, (16, 16), 8)  # 2x2 cells of 8 source px, each 2x2 stored px
    for c in range(2):
        for r0, c0 in ((0, 0), (0, 2), (2, 0), (2, 2)):
            block = planes[c, r0:r0 + 2, c0:c0 + 2]
            assert np.allclose(out[c, r0:r0 + 2, c0:c0 + 2], block.mean())
    assert np.allclose(cell_means(planes, (16, 16), 4), planes)  # one stored pixel per cell: as stored
    assert np.allclose(cell_means(planes, (64, 64), 8), planes)  # a stored pixel spans 2x2 cells
    ragged = cell_means(planes, (12, 20), 8)  # a 2x3 grid; the last row and column of cells are cut
    assert np.allclose(ragged[:, 0, 0], planes[:, :3, :2].mean(axis=(1, 2)))  # rows 0-2 (centres < 8 px)


def test_flow_cells_reads_the_flow_as_cell_means_and_leaves_the_vectors(cache):
    from training.cache.dataset import cell_means

    plain = CachedClips(cache, "test", streams=("mv", "flow"), train=False)
    cells = CachedClips(cache, "test", streams=("mv", "flow"), train=False, flow_cells=16)
    clip = plain.clips[0]
    a, b = plain.arrays(0), cells.arrays(0)
    np.testing.assert_array_equal(a["mv"], b["mv"])
    assert not np.array_equal(a["flow"], b["flow"])
    for k in range(len(a["flow"])):  # each segment's flow (any normalisation is linear, so means commute)
        assert np.allclose(b["flow"][k], cell_means(a["flow"][k], clip["frame_hw"], 16), atol=1e-5)


def test_build_resumes_and_a_changed_spec_builds_a_new_cache(dataset, cache):
    last = sorted(cache.glob("shard-*.json"))[-1]
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.json")}
    os.remove(last)  # as if interrupted before the last shard was complete
    (cache / "shard-99999.motion.npy.part").write_bytes(b"half written")
    assert not is_complete(cache)
    again = build_cache(dataset, cache.parent, CacheSpec(size=64, flow="gt"), workers=1, shard_clips=4, progress=False)
    assert again == cache and last.exists() and is_complete(cache)
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.json")}
    assert {k for k in after if after[k] != before.get(k)} == {last.name}  # only the missing shard rebuilt
    assert CacheSpec(size=64, flow="gt").key() != CacheSpec(size=64, flow="gt", representation="frame").key()


def test_extract_clip_frame_representation_differs_from_accumulated(dataset):
    video = next((dataset / "videos" / "move_right").glob("*.mp4"))
    acc = extract_clip(video, CacheSpec(size=32))
    per_frame = extract_clip(video, CacheSpec(size=32, representation="frame"))
    assert acc["kinds"] == per_frame["kinds"]
    # accumulated motion grows along the GOP; per-frame motion does not
    late = [k for k, g in enumerate(acc["gop"]) if g == 0][-1]
    assert np.abs(acc["motion"][late, 0]).sum() > 2 * np.abs(per_frame["motion"][late, 0]).sum()


@pytest.mark.parametrize("method,tolerance", [("farneback", 0.6), ("dis", 0.6), ("dis-ultrafast", 1.0), ("tvl1", 0.6)])
def test_flow_teachers_follow_the_mv_sign_convention(method, tolerance):
    frames = [img for _, img in render_frames(size=(96, 64), frames=2, motion=(3, -2), square=32, seed=1)]
    flow = make_teacher(method)(frames[0], frames[1])
    assert flow.shape == (2, 64, 96) and flow.dtype == np.float32
    inner = flow[:, 22:34, 42:54]  # inside the moving square
    # DIS's ULTRAFAST preset (flow at 1/4 scale, no variational refinement) falls short on this
    # 96x64 picture: 2.2 px of 3
    assert np.median(inner[0]) == pytest.approx(3, abs=tolerance)
    assert np.median(inner[1]) == pytest.approx(-2, abs=tolerance)


def test_a_dataset_with_empty_splits_still_caches_what_it_has(tmp_path):
    from training.__main__ import main

    assert main(["synth", "--preset", "tiny", "--clips-per-class", "1", "--out", str(tmp_path / "d"), "--json"]) == 0
    folder = build_cache(tmp_path / "d", tmp_path / "c", CacheSpec(size=32), workers=1, progress=False)
    assert cache_statistics(folder).clips == {"train": 17}


def test_for_specs_keys_items_by_model_input_names(cache):
    from edgekit.spec import InputSpec

    specs = [InputSpec("motion", "mv_residual", (1, 2, 5, 64, 64)), InputSpec("frames", "iframe", (1, 2, 3, 64, 64))]
    item = CachedClips.for_specs(cache, "test", specs)[0]
    assert set(item) == {"motion", "frames", "label"}
    assert tuple(item["motion"].shape) == (2, 5, 64, 64) and tuple(item["frames"].shape) == (2, 3, 64, 64)


def test_the_cache_publishes_its_index_and_statistics(cache):
    stats = cache_statistics(cache)
    train = load_index(cache, "train")
    assert stats.clips == {"train": 34, "val": 17, "test": 17}  # 17 classes x (2, 1, 1)
    assert len(train) == stats.clips["train"] and all(c["split"] == "train" and "shard" in c for c in train)
    frames = sorted(c["motion_count"] + c["iframe_count"] for c in train)
    assert stats.median_frames_per_clip["train"] == int(np.median(frames))
    assert stats.motion_frames["train"] == sum(c["motion_count"] for c in train)
    assert stats.failures == () and stats.size_bytes > 0 and is_complete(cache)


def test_the_cache_key_follows_the_datasets_content(dataset, tmp_path):
    spec = CacheSpec(size=64)
    key = cache_location(dataset, tmp_path, spec)
    assert cache_location(dataset, tmp_path, spec) == key  # stable: the same data finds its cache again
    copy = shutil.copytree(dataset, tmp_path / "copy")  # same videos, another dataset folder
    assert cache_location(copy, tmp_path, spec) != key
    before = cache_location(copy, tmp_path, spec)
    video = next((copy / "videos").rglob("*.mp4"))
    with open(video, "ab") as f:
        f.write(b"\0")  # one video re-encoded: another size
    after = cache_location(copy, tmp_path, spec)
    assert after != before
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place: another mtime
    assert cache_location(copy, tmp_path, spec) not in (before, after)
    assert cache_location(dataset, tmp_path, CacheSpec(size=32)) != key


def test_a_missing_dataset_is_refused_with_its_name(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset folder .*missing-set does not exist"):
        build_cache(tmp_path / "missing-set", tmp_path / "cache", CacheSpec(size=32), progress=False)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name, on, bad", [("max_vector", 0.1, 1.5), ("min_gain", 1.0, 300.0)])
def test_later_reader_options_keep_old_cache_keys_and_ride_in_the_config(name, on, bad):
    """Fields added to CacheSpec after caches existed: at their default (0, off) the key is the one
    caches had before; set, another key. The config's [data] section carries them the same way."""
    from training.config import DataSection

    assert CacheSpec().key() == CacheSpec(**{name: 0.0}).key()
    assert CacheSpec(**{name: on}).key() != CacheSpec().key()
    with pytest.raises(ConfigError, match=name):
        CacheSpec(**{name: bad})
    assert name not in DataSection().to_dict()
    assert DataSection(**{name: on}).to_dict()[name] == on
    with pytest.raises(ConfigError):
        DataSection(**{name: -1.0})
