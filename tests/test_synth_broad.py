"""The broad presets and the held-out renderer: real encoded clips whose decoded motion vectors agree
with their class, parameters that cover the promised ranges, determinism, and old presets unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgekit
from edgekit.errors import ConfigError
from training.__main__ import main as training_main
from training.datasets import open_dataset
from training.synth import CLASS_NAMES, load_ground_truth, resolve_config
from training.synth import appearance, broad
from training.synth.classes import FIXED_CLASS_NAMES
from training.synth.generate import clip_rng, generate, plan_jobs, write_clip
from training.synth.heldout.clip import draw_encoding as heldout_encoding
from training.synth.motion import Canvas

# sha256 of clips of the tiny preset (seed 0) made before the broad presets existed (PyAV 18.1.0,
# libavcodec 62.28.102, OpenCV 5.0.0, numpy 2.4.6): the standard presets must keep making these bytes
OLD_TINY_SHA256 = {
    ("mpeg4", "move_left_00000"): ("403ee52b83bf999d52b0bf50994e8b59b9123d1192117e9335d2a57f910c0748",
                                   "895191afcd7007df64813af0696e92e75db7d6dff082defb3601308efc2239a5"),
    ("mpeg4", "static_00001"): ("e7fafadca965eab9d6d7f519a792bf3ce032ccbede59028a2acf57b769caa219",
                                "1d17dd46eaae0f08734860d9e0f8869efd6c25dc882248820effe5ef8af8dc81"),
    ("h264", "wave_00002"): ("acb24a6bc014f6319218e86b5466c74562afd69b822bd310ee2502794fd8e725",
                             "883b6fb810cb96514d8bc9ab74d12e3629de4b9315d2322db6c23f9d8b82eb03"),
}
OLD_CONFIG_KEYS = {"preset", "codec", "seed", "clips_per_class", "width_px", "height_px", "frames", "fps"}


@pytest.fixture(scope="module")
def broad_tiny(tmp_path_factory):
    """broad-tiny, 3 clips per class (51 clips, 160x120 to 320x240, 24 frames), seed 3."""
    out = tmp_path_factory.mktemp("broad") / "broad-tiny"
    generate(resolve_config("broad-tiny", seed=3, clips_per_class=3), out, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """The held-out renderer at the broad-tiny size (192x144 to 320x180), 2 clips per class, seed 5."""
    out = tmp_path_factory.mktemp("heldout") / "heldout"
    generate(resolve_config("broad-tiny", renderer="heldout", seed=5, clips_per_class=2, frames=30), out,
             workers=2, progress=False)
    return out


def _clips(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def decoded_motion(out: Path, clip: dict) -> dict:
    """Decoded motion vectors of one clip (edgekit.open on the real file), per P/B frame: all
    inter-coded cells, and the cells the labelled object covers (ground-truth mask on the 8x8 grid)."""
    truth = load_ground_truth(out / "flow" / clip["flow"])
    truth_dx = [float(truth.flow_px[t, 0][truth.actor_mask[t]].mean()) if truth.actor_mask[t].any() else 0.0
                for t in range(len(truth.flow_px))]
    frames, anchor = [], 0
    with edgekit.open(str(out / "videos" / clip["clip"]), residual=False, rgb=None) as reader:
        for f in reader:
            if f.kind == "I":
                anchor = f.index
                continue
            gh, gw = f.mv.shape[1:]
            cover = cv2.resize(truth.actor_mask[f.index].astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
            # a P-frame's vectors span the frames since the previous I/P frame: the true motion summed over them
            span_dx = sum(truth_dx[anchor + 1:f.index + 1]) if f.kind == "P" else None
            frames.append({"mv": f.mv, "inter": ~f.intra, "actor": (cover > 0.5) & ~f.intra, "span_dx": span_dx})
            if f.kind == "P":
                anchor = f.index
    return {"frames": frames, "truth": truth}


def pooled(motions: list[dict]) -> dict:
    """Statistics pooled over the frames of several clips of one class: mean dx, dy of all inter
    cells and of the object's cells, and the object's divergence and curl (sums of r x v and r . v
    about the object's centre per frame, in cells x px)."""
    every = [f for m in motions for f in m["frames"]]
    inter_dx = np.concatenate([f["mv"][0][f["inter"]] for f in every])
    inter_dy = np.concatenate([f["mv"][1][f["inter"]] for f in every])
    actor_dx = np.concatenate([f["mv"][0][f["actor"]] for f in every])
    actor_dy = np.concatenate([f["mv"][1][f["actor"]] for f in every])
    divergence = curl = 0.0
    for f in every:
        if f["actor"].sum() < 3:
            continue
        ys, xs = np.nonzero(f["actor"])
        rx, ry = xs - xs.mean(), ys - ys.mean()
        u, v = f["mv"][0][f["actor"]], f["mv"][1][f["actor"]]
        divergence += float(np.sum(rx * u + ry * v))
        curl += float(np.sum(rx * v - ry * u))  # > 0: clockwise as displayed (y down)
    return {"dx": float(inter_dx.mean()), "dy": float(inter_dy.mean()), "actor_cells": int(actor_dx.size),
            "actor_dx": float(actor_dx.mean()) if actor_dx.size else 0.0,
            "actor_dy": float(actor_dy.mean()) if actor_dy.size else 0.0, "divergence": divergence, "curl": curl}


def assert_motion_matches_class(out: Path, classes: tuple[str, ...]) -> None:
    clips = _clips(out)
    stats, waves = {}, []
    for label in classes:
        motions = [decoded_motion(out, c) for c in clips if c["label"] == label]
        stats[label] = pooled(motions)
        if label == "wave":
            waves = motions
    s = stats
    assert s["move_left"]["actor_dx"] < -0.3 < 0.3 < s["move_right"]["actor_dx"], (s["move_left"], s["move_right"])
    assert s["move_up"]["actor_dy"] < -0.3 < 0.3 < s["move_down"]["actor_dy"], (s["move_up"], s["move_down"])
    for label in ("move_left", "move_right"):
        assert abs(s[label]["actor_dx"]) > 2 * abs(s[label]["actor_dy"]), (label, s[label])
    assert s["rotate_cw"]["curl"] > 0 > s["rotate_ccw"]["curl"], (s["rotate_cw"], s["rotate_ccw"])
    for label in ("rotate_cw", "rotate_ccw"):
        assert abs(s[label]["curl"]) > 2 * abs(s[label]["divergence"]), (label, s[label])
    assert s["approach"]["divergence"] > 0 > s["recede"]["divergence"], (s["approach"], s["recede"])
    for label in ("approach", "recede"):
        assert abs(s[label]["divergence"]) > 2 * abs(s[label]["curl"]), (label, s[label])
    assert s["scene_left"]["dx"] < -0.3 < 0.3 < s["scene_right"]["dx"], (s["scene_left"], s["scene_right"])
    assert abs(s["static"]["dx"]) < 0.1 and abs(s["static"]["dy"]) < 0.1, s["static"]
    # wave: on P-frames, the object's decoded dx follows its true back-and-forth motion
    used = [f for m in waves for f in m["frames"] if f["span_dx"] is not None and f["actor"].sum() >= 2
            and abs(f["span_dx"]) > 0.5]
    decoded = np.array([f["mv"][0][f["actor"]].mean() for f in used])
    truth = np.array([f["span_dx"] for f in used])
    assert len(used) >= 6 and decoded.max() > 0.3 and decoded.min() < -0.3, decoded
    # the sign is the class's property; the size is the encoder's: x264 ultrafast finds 3 px of a fast
    # wave's 13 px spanned over a B-frame (seed 3, wave_00000), so the magnitudes agree by rank only
    ranks = [np.argsort(np.argsort(x)) for x in (decoded, truth)]
    assert np.mean(np.sign(decoded) == np.sign(truth)) > 0.75 and np.corrcoef(*ranks)[0, 1] > 0.5


# -- old presets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("codec, name", sorted(OLD_TINY_SHA256))
def test_standard_presets_make_the_same_bytes_as_before(codec, name, tmp_path):
    config = resolve_config("tiny", codec=codec, seed=0)
    job = next(j for j in plan_jobs(config) if j.name == name)
    meta = write_clip(job, tmp_path)
    video, flow = OLD_TINY_SHA256[(codec, name)]
    assert hashlib.sha256(job.video_path(tmp_path).read_bytes()).hexdigest() == video
    assert hashlib.sha256(job.flow_path(tmp_path).read_bytes()).hexdigest() == flow
    assert "encoder" not in meta and "variety" not in meta and meta["codec"] == codec


def test_standard_settings_and_manifest_keys_are_unchanged():
    for preset in ("tiny", "small", "full"):
        config = resolve_config(preset)
        assert set(config.to_dict()) == OLD_CONFIG_KEYS and config.variety == "standard"
        assert (config.codec, config.fps, config.renderer, config.per_clip_encoding) == ("mpeg4", 25, "synth", False)
    assert resolve_config(**resolve_config("tiny", seed=4).to_dict()) == resolve_config("tiny", seed=4)


# -- the broad presets -----------------------------------------------------------------------------

def test_broad_clips_decode_with_drawn_sizes_rates_and_encoders(broad_tiny):
    clips = _clips(broad_tiny)
    assert [c["label"] for c in clips] == [label for label in CLASS_NAMES for _ in range(3)]
    for clip in clips[::3]:  # every third clip: the decoded stream is what the metadata says
        with edgekit.open(str(broad_tiny / "videos" / clip["clip"]), residual=False, rgb=None) as reader:
            frames = list(reader)
            info = reader.info
        assert (info.width, info.height) == (clip["width_px"], clip["height_px"])
        assert len(frames) == clip["frames"] == 24
        assert info.fps == pytest.approx(clip["fps"], rel=0.01)
        assert clip["codec"] == clip["encoder"]["codec"]
        if clip["encoder"]["bframes"] == 0:
            assert "B" not in {f.kind for f in frames}
    assert {c["variety"] for c in clips} == {"broad"} and {c["renderer"] for c in clips} == {"synth"}
    assert len({(c["width_px"], c["height_px"]) for c in clips}) >= 3 and len({c["fps"] for c in clips}) >= 5
    assert {c["codec"] for c in clips} == {"mpeg4", "h264"}
    assert all(160 <= c["width_px"] <= 320 for c in clips)


def test_broad_motion_vectors_agree_with_each_class(broad_tiny):
    assert_motion_matches_class(broad_tiny, FIXED_CLASS_NAMES)


def test_broad_encoding_draws_cover_the_promised_ranges():
    config = resolve_config("broad-small")
    drawn = [broad.draw_encoding(np.random.default_rng(i), config) for i in range(600)]
    sizes = Counter(size for size, _ in drawn)
    assert min(sizes) == (160, 120) and max(sizes) == (1280, 720) and len(sizes) == len(broad.SIZES_PX)
    encodings = [e for _, e in drawn]
    assert {e.fps for e in encodings} == set(range(12, 31))
    h264 = [e for e in encodings if e.settings.codec == "h264"]
    mpeg4 = [e for e in encodings if e.settings.codec == "mpeg4"]
    assert 0.45 < len(h264) / len(encodings) < 0.75 and mpeg4
    assert {e.profile for e in h264} == {"baseline", "main", "high"}
    assert {e.settings.bframes for e in h264} == {0, 1, 2, 3}
    assert all(e.settings.bframes == 0 for e in h264 if e.profile == "baseline")
    assert {e.settings.crf for e in h264} == set(range(18, 36))
    gops = [e.settings.gop for e in encodings]
    assert 12 <= min(gops) < 15 and 200 < max(gops) <= 250
    assert {e.settings.scene_cut for e in encodings} == {True, False}
    assert {e.settings.qscale for e in mpeg4} == set(range(2, 13)) and {e.settings.bframes for e in mpeg4} == {0}


def test_broad_motion_and_scene_draws_cover_the_promised_ranges():
    canvas = Canvas(256, 256, 24)  # unit = 1: px/frame as drawn
    speeds = [broad.MOTIONS["move_right"](np.random.default_rng(i), canvas).params["speed_px_per_frame"]
              for i in range(300)]
    assert min(speeds) < 0.8 and max(speeds) > 5.0 and min(speeds) >= broad.MIN_SPEED_PX
    starts = Counter(broad.MOTIONS["move_left"](np.random.default_rng(i), canvas).params["start_third_x"]
                     for i in range(300))
    assert set(starts) == {"left", "middle", "right"}
    spins = [abs(broad.MOTIONS["rotate_cw"](np.random.default_rng(i), canvas).params["angular_speed_deg_per_frame"])
             for i in range(300)]
    assert min(spins) < 1.2 and max(spins) > 8.0
    assert {broad.MOTIONS["approach"](np.random.default_rng(i), canvas).params["scale_law"] for i in range(50)} == \
        {"geometric", "linear"}

    small = Canvas(96, 72, 6)
    plans = {label: [broad.plan_broad_scene(label, np.random.default_rng(i), small).metadata for i in range(40)]
             for label in ("move_right", "rotate_cw", "scene_left", "static")}
    every = [m for ms in plans.values() for m in ms]
    assert {m["broad"]["background"] for m in every} == set(appearance.BACKGROUND_FAMILIES)
    looks = [look for m in every for look in m["broad"]["actor_looks"]]
    assert {look["texture"] for look in looks} == set(appearance.PATTERN_FAMILIES)
    assert {look["shape"] for look in looks} == set(appearance.SHAPES)
    assert {look["shape"] for m in plans["rotate_cw"] for look in m["broad"]["actor_looks"]} <= \
        set(appearance.ROTATION_SAFE_SHAPES)
    noise = [m["noise_sigma"] for m in every]
    assert min(noise) < 1.0 and max(noise) > 7.0
    assert max(m["still_objects"] for m in every) == 4 and max(m["distractors"] for m in every) == 4
    assert any(m["broad"]["exposure_step"] for m in every) and max(m["gain_end"] for m in every) > 1.3
    assert any(any(m["broad"]["camera_drift_px_per_frame"]) for m in plans["move_right"])
    assert max(m["camera_jitter_sigma_px"] for m in plans["move_right"]) > 0.2
    shaken = [broad.plan_broad_scene("move_up", np.random.default_rng(i), small).metadata["camera_jitter_sigma_px"]
              for i in range(200)]
    assert 0.25 < np.mean(np.array(shaken) > 0) < 0.55  # SHAKE_SHARE of the clips, no more
    assert min(x for x in shaken if x > 0) >= 0.1 * small.unit and max(shaken) <= 1.0 * small.unit
    for m in plans["static"]:  # nothing may move in a static clip
        assert m["camera_jitter_sigma_px"] == 0 and m["broad"]["distractor_max_speed_px_per_frame"] == 0
        assert not any(m["broad"]["camera_drift_px_per_frame"])
    assert not any(any(m["broad"]["camera_drift_px_per_frame"]) for m in plans["scene_left"])


def test_broad_sensor_draws_cover_their_ranges():
    small = Canvas(96, 72, 6)
    sensors = [broad.plan_broad_scene(label, np.random.default_rng(i), small, sensor=True).metadata["broad"]["sensor"]
               for i in range(150) for label in ("move_right", "static")]
    for key, share in (("vignette", broad.VIGNETTE_SHARE), ("shot_k", broad.SHOT_SHARE), ("row_sigma", broad.ROW_SHARE)):
        values = np.array([s[key] for s in sensors])
        assert share - 0.12 < np.mean(values > 0) < share + 0.12, key
    assert max(s["vignette"] for s in sensors) > 0.5 * broad.VIGNETTE_MAX
    shots = [s["shot_k"] for s in sensors if s["shot_k"]]
    assert min(shots) >= broad.SHOT_K_RANGE[0] and min(shots) < 0.05 and max(shots) > 0.5
    rows = [s["row_sigma"] for s in sensors if s["row_sigma"]]
    assert min(rows) >= broad.ROW_SIGMA_RANGE[0] and max(rows) <= broad.ROW_SIGMA_RANGE[1]
    statics = [s for s in sensors[1::2]]  # static clips get sensors like the rest: no cue to the class
    assert any(s["shot_k"] for s in statics) and any(s["row_sigma"] for s in statics)


def test_broad_sensor_is_drawn_last_and_only_when_asked():
    small = Canvas(96, 72, 6)
    for i, label in enumerate(("move_right", "static", "scene_left", "approach")):
        plain = broad.plan_broad_scene(label, np.random.default_rng(i), small)
        with_sensor = broad.plan_broad_scene(label, np.random.default_rng(i), small, sensor=True)
        assert plain.sensor is None and "sensor" not in plain.metadata["broad"]
        assert with_sensor.sensor is not None
        # everything else is the clip made without it: same draws, same noise, same layers
        drawn = dict(with_sensor.metadata, broad={k: v for k, v in with_sensor.metadata["broad"].items()
                                                   if k != "sensor"})
        assert drawn == plain.metadata
        assert with_sensor.noise_seed == plain.noise_seed
        np.testing.assert_array_equal(with_sensor.gain, plain.gain)
        np.testing.assert_array_equal(with_sensor.background, plain.background)


def test_sensor_setting_is_checked_and_kept_out_of_old_manifests():
    from training.synth.config import ConfigError, resolve_config

    assert "sensor" not in resolve_config("broad-tiny").to_dict()  # folders made before it still match
    assert resolve_config("broad-tiny", sensor=True).to_dict()["sensor"] is True
    with pytest.raises(ConfigError, match="broad presets"):
        resolve_config("small", sensor=True)
    with pytest.raises(ConfigError, match="broad presets"):
        resolve_config(None, renderer="heldout", sensor=True)
    with pytest.raises(ConfigError, match="true or false"):
        resolve_config("broad-tiny", sensor=1)


def test_render_applies_shot_row_and_vignette_sensor_effects():
    from training.synth.render import render
    from training.synth.scene import Sensor

    small = Canvas(160, 120, 3)
    plan = broad.plan_broad_scene("static", np.random.default_rng(3), small)
    flat = dataclasses.replace(plan, background=np.full_like(plan.background, 128.0), layers=(),
                               gain=np.ones_like(plan.gain), noise_sigma=0.0)
    clean = render(dataclasses.replace(flat, sensor=None)).frames.astype(np.float32)
    assert np.all(clean == 128)
    shot = render(dataclasses.replace(flat, sensor=Sensor(0.0, 0.5, 0.0, 1))).frames.astype(np.float32)
    assert np.std(shot - 128) == pytest.approx(np.sqrt(0.5 * 128), rel=0.05)  # variance k * I
    dark = dataclasses.replace(flat, background=np.full_like(plan.background, 32.0))
    shot_dark = render(dataclasses.replace(dark, sensor=Sensor(0.0, 0.5, 0.0, 1))).frames.astype(np.float32)
    assert np.std(shot_dark - 32) == pytest.approx(np.sqrt(0.5 * 32), rel=0.05)  # brighter is noisier
    rows = render(dataclasses.replace(flat, sensor=Sensor(0.0, 0.0, 2.0, 1))).frames.astype(np.float32)
    assert np.ptp(rows, axis=(2, 3)).max() <= 1  # one offset per row (8-bit rounding aside)
    assert np.std(rows.mean(axis=(2, 3)) - 128) == pytest.approx(2.0, rel=0.2)
    assert not np.array_equal(rows[0], rows[1])  # a new offset every frame
    vignette = render(dataclasses.replace(flat, sensor=Sensor(0.5, 0.0, 0.0, 1))).frames.astype(np.float32)
    assert vignette[0, 60, 80, 0] == 128 and vignette[0, 0, 0, 0] == pytest.approx(64, abs=1)
    assert np.array_equal(vignette[0], vignette[2])  # fixed in the image


def test_broad_static_ground_truth_is_still_and_pan_flow_matches(broad_tiny):
    for clip in _clips(broad_tiny):
        truth = load_ground_truth(broad_tiny / "flow" / clip["flow"])
        if clip["label"] == "static":
            assert np.abs(truth.flow_px).max() < 1e-3
        if clip["label"] == "scene_right":
            content_dx = clip["motion"]["content_velocity_px_per_frame"][0]
            jitter = clip["camera_jitter_sigma_px"]
            assert np.median(truth.flow_px[1:, 0]) == pytest.approx(content_dx, abs=0.1 + 3 * jitter)


# -- the held-out renderer ---------------------------------------------------------------------------

def test_heldout_makes_the_12_fixed_classes_in_ucf_layout_all_in_test(heldout):
    assert (heldout / "classInd.txt").read_text().split() == [str(x) for pair in enumerate(FIXED_CLASS_NAMES, 1)
                                                             for x in pair]
    test = open_dataset(heldout, split="test")
    assert test.classes == FIXED_CLASS_NAMES and test.class_counts() == {c: 2 for c in FIXED_CLASS_NAMES}
    assert (heldout / "trainlist01.txt").read_text() == "" and (heldout / "vallist01.txt").read_text() == ""
    manifest = json.loads((heldout / "synth.json").read_text())
    assert manifest["generator"] == "training.synth.heldout" and manifest["renderer"] == "heldout"
    clips = _clips(heldout)
    assert {c["renderer"] for c in clips} == {"heldout"} and all("heldout" in c for c in clips)
    for clip in clips[::4]:
        with edgekit.open(str(heldout / "videos" / clip["clip"]), residual=False, rgb=None) as reader:
            assert sum(1 for _ in reader) == 30
            assert (reader.info.width, reader.info.height) == (clip["width_px"], clip["height_px"])


def test_heldout_motion_vectors_agree_with_each_class(heldout):
    assert_motion_matches_class(heldout, FIXED_CLASS_NAMES)


def test_heldout_ground_truth_matches_its_paths(heldout):
    for clip in _clips(heldout):
        truth = load_ground_truth(heldout / "flow" / clip["flow"])
        if clip["label"] == "static":
            assert np.abs(truth.flow_px).max() < 1e-3
        elif clip["label"].startswith("scene"):  # background flow = minus the camera step, mean over the clip
            mean_dx = clip["motion"]["mean_content_speed_px_per_frame"]
            assert truth.flow_px[1:, 0].mean() == pytest.approx(mean_dx, abs=0.1 + 0.3 * abs(mean_dx))
        elif clip["label"] == "move_right":
            speed = clip["motion"]["mean_speed_px_per_frame"]
            inside = truth.actor_mask[1:]
            assert truth.flow_px[1:, 0][inside].mean() == pytest.approx(speed, rel=0.35)


def test_heldout_encoding_draws_cover_its_ranges():
    config = resolve_config(None, renderer="heldout")
    drawn = [heldout_encoding(np.random.default_rng(i), config) for i in range(300)]
    assert {size for size, _ in drawn} == {(192, 144), (256, 192), (320, 180), (400, 224), (424, 240), (480, 272),
                                           (512, 384), (576, 324), (640, 480)}
    encodings = [e for _, e in drawn]
    assert {e.fps for e in encodings} == {10, 12, 15, 20, 24, 25, 30}
    assert {e.settings.codec for e in encodings} == {"h264", "mpeg4"}
    assert {e.profile for e in encodings if e.settings.codec == "h264"} == {"baseline", "main", "high"}


# -- determinism and settings ------------------------------------------------------------------------

@pytest.mark.parametrize("preset, renderer, label", [("broad-tiny", "synth", "wave"), ("broad-tiny", "heldout", "recede")])
def test_same_seed_same_bytes_other_seed_other_bytes(preset, renderer, label, tmp_path):
    def made(seed: int, folder: str) -> tuple[bytes, bytes]:
        config = resolve_config(preset, renderer=renderer, seed=seed, clips_per_class=1, frames=12)
        job = next(j for j in plan_jobs(config) if j.label == label)
        write_clip(job, tmp_path / folder)
        return job.video_path(tmp_path / folder).read_bytes(), job.flow_path(tmp_path / folder).read_bytes()

    first = made(11, "a")
    assert made(11, "b") == first
    assert made(12, "c")[0] != first[0]
    draws = [broad.draw_encoding(clip_rng(11, 8), resolve_config("broad-small")) for _ in range(2)]
    assert draws[0] == draws[1]


def test_broad_and_heldout_settings_are_validated(capsys, tmp_path):
    config = resolve_config("broad-small", seed=2)
    assert (config.codec, config.fps, config.per_clip_encoding) == ("mixed", 0, True)
    assert resolve_config(None, renderer="heldout").preset == "heldout"
    assert resolve_config(None, renderer="heldout").to_dict()["renderer"] == "heldout"
    with pytest.raises(ConfigError, match="each clip draws its own"):
        resolve_config("broad-tiny", codec="h264")
    with pytest.raises(ConfigError, match="each clip draws its own"):
        resolve_config("tiny", renderer="heldout", fps=25)
    with pytest.raises(ConfigError, match="unknown renderer"):
        resolve_config("tiny", renderer="photoreal")
    assert training_main(["synth", "--preset", "broad-tiny", "--codec", "h264", "--out", str(tmp_path / "x")]) == 2
    assert "each clip draws its own" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        training_main(["synth", "--help"])
    helped = capsys.readouterr().out
    assert "--renderer heldout" in helped and "broad-small" in helped


# -- class subsets -------------------------------------------------------------------------------------

def test_class_subset_makes_the_full_runs_clips_for_those_classes(tmp_path):
    full = resolve_config("tiny", seed=0, clips_per_class=2, frames=8)
    motion = resolve_config("tiny", seed=0, clips_per_class=2, frames=8, classes="motion")
    picked = resolve_config("tiny", seed=0, clips_per_class=2, frames=8, classes=" static, wave ")
    assert motion.class_names == tuple(c for c in CLASS_NAMES if not c.endswith("_up_right"))
    assert len(motion.class_names) == 15 and picked.class_names == ("wave", "static")  # label order
    assert motion.to_dict()["classes"] == "motion" and "classes" not in full.to_dict()
    by_name = {j.name: j for j in plan_jobs(full)}
    subset_jobs = plan_jobs(picked)
    assert [j.name for j in subset_jobs] == ["wave_00000", "wave_00001", "static_00000", "static_00001"]
    assert all(j.index == by_name[j.name].index and j.split == by_name[j.name].split for j in subset_jobs)
    generate(picked, tmp_path / "subset", workers=1, progress=False)
    job = by_name["static_00001"]
    write_clip(job, tmp_path / "full")
    assert (tmp_path / "subset/videos/static/static_00001.mp4").read_bytes() == job.video_path(
        tmp_path / "full").read_bytes()
    assert (tmp_path / "subset/classInd.txt").read_text() == "1 wave\n2 static\n"
    assert {s.label_name for s in open_dataset(tmp_path / "subset", split="train")} == {"wave", "static"}
    assert json.loads((tmp_path / "subset/synth.json").read_text())["classes"] == ["wave", "static"]


def test_class_subsets_are_validated(capsys, tmp_path):
    with pytest.raises(ConfigError, match="unknown class"):
        resolve_config("tiny", classes="move_left,jump")
    with pytest.raises(ConfigError, match="at least 2 classes"):
        resolve_config("tiny", classes="static")
    with pytest.raises(ConfigError, match="unknown class.*red_up_right"):
        resolve_config(None, renderer="heldout", classes="static,red_up_right")
    with pytest.raises(ConfigError, match="12 fixed classes only"):
        resolve_config(None, renderer="heldout", classes="motion")
    assert resolve_config(None, renderer="heldout").class_names == FIXED_CLASS_NAMES
    assert resolve_config(None, renderer="heldout", classes="fixed").class_names == FIXED_CLASS_NAMES
    assert training_main(["synth", "--preset", "tiny", "--classes", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown class(es) ['nope']" in capsys.readouterr().err


def test_synth_cli_sensor_flag(tmp_path):
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "edgekit.cli", "synth", "--preset", "tiny", "--sensor",
                          "--out", str(tmp_path / "tiny")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "broad presets" in bad.stderr, bad.stderr
    assert not (tmp_path / "tiny").exists()
    out = tmp_path / "sensor"
    ok = subprocess.run([sys.executable, "-m", "edgekit.cli", "synth", "--preset", "broad-tiny", "--sensor",
                         "--classes", "static,move_left", "--clips-per-class", "2", "--frames", "6", "--workers", "1",
                         "--no-progress", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(set(m["broad"]["sensor"]) == {"vignette", "shot_k", "row_sigma"} for m in lines)
    assert json.loads((out / "synth.json").read_text())["sensor"] is True
