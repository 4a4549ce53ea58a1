"""Synthetic motion benchmark: generated once per module on the ``tiny`` preset, then checked for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edgekit.errors import ConfigError
from training.__main__ import main as training_main
from training.datasets import open_dataset
from training.synth import CLASS_NAMES, PRESETS, load_ground_truth, resolve_config
from training.synth.generate import generate, plan_jobs, write_clip

FIXED_CLASSES = ("move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "approach",
                 "recede", "wave", "scene_left", "scene_right", "static")
TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny benchmark, generated once with two worker processes."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    config = resolve_config("tiny", seed=7)
    report = generate(config, out, workers=2, progress=False)
    return out, config, report


def _first(out: Path, label: str) -> tuple[Path, Path, dict]:
    """Video, ground-truth file and metadata of the first clip of class ``label``."""
    name = f"{label}_00000"
    truth = load_ground_truth(out / "flow" / label / f"{name}.npz")
    return out / "videos" / label / f"{name}.mp4", out / "flow" / label / f"{name}.npz", truth


def _interior(mask: np.ndarray) -> np.ndarray:
    """Cells of a (T, h, w) bool mask whose 3x3 neighbourhood is inside too (no boundary blending)."""
    kernel = np.ones((3, 3), np.uint8)
    return np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in mask]).astype(bool)


def test_tiny_preset_writes_every_class_in_ucf_layout(tiny):
    out, config, report = tiny
    assert set(FIXED_CLASSES) <= set(CLASS_NAMES)
    assert report.clips_total == report.clips_written == TINY.clips_per_class * len(CLASS_NAMES)
    assert (out / "classInd.txt").read_text().splitlines()[:2] == ["1 move_left", "2 move_right"]
    videos = sorted(p.relative_to(out / "videos").as_posix() for p in (out / "videos").rglob("*.mp4"))
    assert len(videos) == report.clips_total and not list(out.rglob(".*partial*"))
    counts = {split: open_dataset(out, split=split).class_counts() for split in ("train", "val", "test")}
    assert counts["train"] == {c: 3 for c in CLASS_NAMES}
    assert counts["val"] == counts["test"] == {c: 1 for c in CLASS_NAMES}
    train_line = (out / "trainlist01.txt").read_text().splitlines()[0]
    assert train_line == "move_left/move_left_00000.mp4 1"
    assert (out / "testlist01.txt").read_text().splitlines()[0] == "move_left/move_left_00004.mp4"
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [m["clip"] for m in lines] == [j.video_relative for j in plan_jobs(config)]
    assert lines[0]["label"] == "move_left" and lines[0]["seed"] == 7
    assert lines[0]["motion"]["speed_px_per_frame"] > 0 and lines[0]["split"] == "train"


def test_mpeg4_clips_decode_with_size_length_and_gop_12(tiny):
    out, config, _ = tiny
    video, _, _ = _first(out, "wave")
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        frames = list(container.decode(video=0))
    assert (frames[0].width, frames[0].height) == (TINY.width_px, TINY.height_px) == (128, 96)
    assert len(frames) == TINY.frames == 24
    kinds = "".join(av.video.frame.PictureType(f.pict_type).name for f in frames)
    assert kinds == ("I" + "P" * 11) * 2


def test_h264_clip_has_b_frames(tmp_path):
    config = resolve_config("tiny", codec="h264")
    job = plan_jobs(config)[len(plan_jobs(config)) // 2]
    write_clip(job, tmp_path)
    with av.open(str(job.video_path(tmp_path))) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        kinds = [av.video.frame.PictureType(f.pict_type).name for f in container.decode(video=0)]
    assert len(kinds) == TINY.frames and kinds[0] == "I" and kinds.count("B") >= 4


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tiny, tmp_path):
    out, config, _ = tiny
    job = next(j for j in plan_jobs(config) if j.label == "meet")
    write_clip(job, tmp_path)  # in this process, while the fixture used 2 worker processes
    assert job.video_path(tmp_path).read_bytes() == job.video_path(out).read_bytes()
    assert job.flow_path(tmp_path).read_bytes() == job.flow_path(out).read_bytes()
    assert plan_jobs(config) == plan_jobs(resolve_config("tiny", seed=7))
    other = next(j for j in plan_jobs(resolve_config("tiny", seed=8)) if j.label == "meet")
    write_clip(other, tmp_path / "seed8")
    assert other.video_path(tmp_path / "seed8").read_bytes() != job.video_path(out).read_bytes()


def test_rerun_skips_finished_clips_and_redoes_missing_ones(tiny):
    out, config, _ = tiny
    lists = {name: (out / name).read_bytes() for name in ("trainlist01.txt", "testlist01.txt", "metadata.jsonl")}
    victim = out / "videos/static/static_00002.mp4"
    original = victim.read_bytes()
    victim.unlink()
    (victim.parent / ".static_00003.mp4.999.part").write_bytes(b"interrupted")
    report = generate(config, out, workers=1, progress=False)
    assert (report.clips_written, report.clips_skipped) == (1, report.clips_total - 1)
    assert victim.read_bytes() == original
    assert not (victim.parent / ".static_00003.mp4.999.part").exists()
    assert {name: (out / name).read_bytes() for name in lists} == lists
    with pytest.raises(ConfigError, match="other settings \\(seed differ\\)"):
        generate(resolve_config("tiny", seed=8), out, workers=1, progress=False)


def test_move_right_flow_is_the_recorded_velocity_inside_the_object(tiny):
    out, _, _ = tiny
    _, _, truth = _first(out, "move_right")
    assert truth.stride_px == 4 and truth.flow_px.shape == (TINY.frames, 2, 24, 32)
    assert not truth.flow_px[0].any()
    inside = _interior(truth.actor_mask)[1:]
    vx, vy = truth.metadata["motion"]["velocity_px_per_frame"]
    dx, dy = np.median(truth.flow_px[1:, 0][inside]), np.median(truth.flow_px[1:, 1][inside])
    assert dx > 0
    jitter = 3 * truth.metadata["camera_jitter_sigma_px"]
    assert abs(dx - vx) < 0.05 + jitter / 4 and abs(dy - vy) < 0.05 + jitter / 4
    assert abs(truth.metadata["motion"]["speed_px_per_frame"] - np.hypot(vx, vy)) < 1e-9


def test_scene_static_and_rotation_flow_have_the_right_sign(tiny):
    out, _, _ = tiny
    _, _, scene = _first(out, "scene_left")
    content_dx = scene.metadata["motion"]["content_velocity_px_per_frame"][0]
    assert np.median(scene.flow_px[1:, 0]) < 0
    assert abs(np.median(scene.flow_px[1:, 0]) - content_dx) < 0.1
    _, _, static = _first(out, "static")
    assert np.abs(static.flow_px).max() < 1e-3
    for label, sign in (("rotate_cw", 1), ("rotate_ccw", -1)):
        _, _, truth = _first(out, label)
        # curl = d(dy)/dx - d(dx)/dy > 0 for clockwise as displayed (image y points down)
        curl = np.gradient(truth.flow_px[:, 1], axis=2) - np.gradient(truth.flow_px[:, 0], axis=1)
        omega = np.radians(truth.metadata["motion"]["angular_speed_deg_per_frame"])
        measured = np.median(curl[1:][_interior(truth.actor_mask)[1:]]) / truth.stride_px
        assert np.sign(measured) == sign and abs(measured - 2 * omega) < 0.25 * abs(2 * omega)


def test_flow_warps_the_previous_decoded_frame_onto_the_current_one(tiny):
    out, _, _ = tiny
    video, _, truth = _first(out, "move_down")
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]
    h, w = frames[0].shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    errors = {1: [], 0: [], -1: []}  # absolute errors on the object's pixels, all frames pooled
    for t in range(1, len(frames)):
        flow = cv2.resize(truth.flow_px[t].transpose(1, 2, 0), (w, h), interpolation=cv2.INTER_NEAREST)
        mask = cv2.resize(truth.actor_mask[t].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        for sign in errors:  # content at p in frame t came from p - flow(p) in frame t-1
            warped = cv2.remap(frames[t - 1], xs - sign * flow[..., 0], ys - sign * flow[..., 1], cv2.INTER_LINEAR)
            errors[sign].append(np.abs(warped - frames[t])[mask])
    mean = {sign: np.concatenate(e).mean() for sign, e in errors.items()}
    assert mean[1] < 0.7 * mean[0] < mean[-1]


def test_encoder_motion_vectors_agree_with_ground_truth(tiny):
    out, _, _ = tiny
    video, _, truth = _first(out, "scene_right")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        dx = []
        for frame in container.decode(stream):
            vectors = frame.side_data.get("MOTION_VECTORS") if frame.side_data else None
            if vectors is not None:
                v = vectors.to_ndarray()
                dx.append(-v["motion_x"][v["source"] < 0] / v["motion_scale"][v["source"] < 0])  # dst - src
    assert np.median(np.concatenate(dx)) == pytest.approx(np.median(truth.flow_px[1:, 0]), abs=0.5)


def test_cli_reports_json_and_rejects_bad_input(tiny, capsys):
    out, _, report = tiny
    assert training_main(["synth", "--preset", "tiny", "--seed", "7", "--out", str(out), "--workers", "1",
                          "--json", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["clips_skipped"] == report.clips_total and printed["config"]["seed"] == 7
    assert training_main(["synth", "--preset", "tiny", "--out", str(out / "x"), "--size", "130x96"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        training_main(["synth", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_toml_config_is_overridden_by_flags(tmp_path):
    from training.synth.config import load_toml_overrides

    path = tmp_path / "synth.toml"
    path.write_text('[synth]\npreset = "tiny"\nsize = "160x120"\nseed = 3\ncodec = "h264"\n')
    settings = load_toml_overrides(path)
    config = resolve_config(settings.pop("preset"), **{**settings, "seed": 5})
    assert (config.width_px, config.height_px, config.seed, config.codec, config.frames) == (160, 120, 5, "h264", 24)
    path.write_text("[synth]\nspeed = 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_toml_overrides(path)


def _processes_with(marker: str) -> list[int]:
    """PIDs of this user's processes whose environment holds ``marker`` (a run's workers inherit it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:  # gone, or not ours
                pass
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc to find the worker processes")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_no_worker_processes_and_keeps_finished_clips(how, tmp_path):
    """A run stopped by SIGTERM shuts its pool down; one killed outright (SIGKILL: no cleanup at all)
    has workers that notice their parent is gone. Either way no worker goes on rendering, and a rerun
    keeps the clips already written."""
    import signal
    import uuid

    marker = f"EDGEKIT_TEST_RUN={uuid.uuid4().hex}"
    out = tmp_path / "synth"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen([sys.executable, "-m", "training", "synth", "--preset", "tiny", "--clips-per-class",
                             "30", "--workers", "2", "--no-progress", "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("videos/*/*.mp4"))) < 3:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be stopped"
    assert len(_processes_with(marker)) >= 3  # the run and its two workers
    proc.send_signal(getattr(signal, how))
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _processes_with(marker):
        time.sleep(0.2)
    assert _processes_with(marker) == []
    assert proc.returncode == (130 if how == "SIGTERM" else -signal.SIGKILL)
    made = sorted(out.glob("videos/*/*.mp4"))
    assert len(made) >= 3
    for video in made:  # every clip that got its name is whole: a rerun skips it (resume)
        flow = out / "flow" / video.parent.name / (video.stem + ".npz")
        assert load_ground_truth(flow).flow_px.shape[0] == 24
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 24
