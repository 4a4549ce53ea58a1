"""``edgekit profile``: the package measured on the path users run, on small synthetic clips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgekit.bitstream as bs
from edgekit.errors import ConfigError
from edgekit.profile import STAGES, SyntheticClip, profile, summarize
from edgekit.synthetic import make_clip

CLIP = "320x240@25"  # 2.4 s: 60 frames, windows at 48 and a tail window at 60
CLIP_SECONDS = 2.4
FRAMES = 60


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", "profile", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def report():
    return profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=2)


def test_report_has_every_section(report):
    assert set(report) >= {"package", "selection", "source", "settings", "cold_start_ms", "stages_ms", "throughput",
                           "streams", "resources", "environment", "method"}
    assert report["package"]["model"] == "edge-mvr" and len(report["package"]["sha256"]) == 64
    assert report["selection"]["backend"] == "onnxruntime"
    assert report["source"]["synthetic"] == CLIP and report["source"]["codec"] == "h264"
    assert report["source"]["frames_per_pass"] == FRAMES
    assert all(report["cold_start_ms"][k] > 0 for k in ("package_load", "backend_load", "first_inference",
                                                         "first_window"))
    assert report["cold_start_ms"]["first_window"] >= report["cold_start_ms"]["first_inference"]
    versions = report["environment"]["versions"]
    assert versions["edgekit"] and versions["onnxruntime"] and versions["av"] and versions["python"]
    assert report["environment"]["cpu"]["usable_cores"] >= 1
    resources = report["resources"]
    assert resources["peak_rss_mb"] >= resources["rss_after_load_mb"] > 0
    assert resources["threads_python"] >= 1 and resources["threads_os"] >= resources["threads_python"]
    assert 0 < resources["cpu_per_core"] <= 1.5  # getrusage ticks can overshoot a short phase a little
    json.dumps(report)  # JSON-ready


def test_percentiles_are_ordered_and_counts_match(report):
    windows = report["throughput"]["windows"]
    assert windows == 2 * 2  # two passes of two windows each
    for stage in STAGES:
        s = report["stages_ms"][stage]
        assert s["count"] == windows
        assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"], (stage, s)


def test_stage_sums_match_the_window_totals(report):
    totals = report["stage_totals_ms"]
    parts = totals["decode"] + totals["kernels"] + totals["preprocess"] + totals["inference"]
    assert parts == pytest.approx(totals["window"], abs=0.01)
    assert 0 < totals["kernels"] <= totals["decode"] + totals["kernels"]
    assert report["stages_ms"]["kernels"]["min"] > 0
    assert totals["window"] <= report["throughput"]["wall_s"] * 1000


def test_frames_per_second_is_frames_over_wall(report):
    t = report["throughput"]
    assert t["frames"] == 2 * FRAMES
    assert t["frames_per_s"] == pytest.approx(t["frames"] / t["wall_s"], rel=1e-4)
    assert t["windows_per_s"] == pytest.approx(t["windows"] / t["wall_s"], rel=1e-4)
    assert t["realtime_factor"] == pytest.approx(t["frames"] / 25.0 / t["wall_s"], rel=1e-3)


def test_summarize_clips_outliers_for_mean_only():
    values = [10.0, 10.5, 9.5, 10.0, 10.2, 9.8, 1000.0]
    s = summarize(values)
    assert s["count"] == 7 and s["clipped"] == 1 and s["max"] == 1000.0
    assert s["mean"] == pytest.approx(10.0, abs=0.01)
    assert summarize([])["count"] == 0


def test_kernel_ms_grows_while_reading(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, "right", frames=24)
    with bs.open(clip) as reader:
        assert reader.stats.kernel_ms == 0.0
        seen = []
        for _ in reader:
            seen.append(reader.stats.kernel_ms)
    assert seen[-1] > seen[0] > 0 and seen == sorted(seen)


def test_cli_two_streams_each_read_every_frame():
    r = _cli("--synthetic", CLIP, "--synthetic-seconds", CLIP_SECONDS, "--runs", 2, "--streams", 2, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    streams = report["streams"]
    assert streams["count"] == 2 and len(streams["per_stream"]) == 2
    for stream in streams["per_stream"]:
        assert stream["frames_per_pass"] == [FRAMES, FRAMES] and stream["complete_passes"] == 2
        assert stream["frames_per_s"] == pytest.approx(stream["frames"] / stream["wall_s"], rel=1e-4)
        assert stream["kept_up"] == (stream["frames_per_s"] >= 25.0)
    assert report["throughput"]["frames"] == 4 * FRAMES
    assert report["stages_ms"]["inference"]["count"] == 2 * 2 * 2  # windows of both streams
    assert report["resources"]["threads_python"] >= 3  # the caller and two stream threads


def test_cli_text_output_shows_the_stage_table(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, "right", frames=50)
    r = _cli("--source", clip, "--runs", 1, "--warmup", 0)
    assert r.returncode == 0, r.stderr
    for fragment in ("cold start (ms)", "side-data kernels", "inference", "p99", "frames/s", "peak RSS"):
        assert fragment in r.stdout


def test_seconds_stops_a_pass_at_the_deadline():
    report = profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, seconds=0.2, warmup=0)
    assert report["throughput"]["wall_s"] >= 0.2 and report["throughput"]["windows"] >= 1


@pytest.mark.parametrize("args, fragment", [
    (["--synthetic", "640x"], "WxH@FPS"),
    (["--runs", "0"], "--runs must be"),
    (["--streams", "0"], "--streams must be"),
    (["--warmup", "x"], "--warmup must be"),
    (["--seconds", "-1"], "--seconds must be"),
    (["--runs", "2", "--seconds", "1"], "not both"),
    (["--source", "a.mp4", "--synthetic", "320x240@25"], "not both"),
    (["--synthetic", "321x240@25"], "even size"),
    (["--source", "rtsp://camera/stream"], "--seconds"),
])
def test_bad_arguments_exit_2_with_one_line(args, fragment):
    r = _cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("edgekit: error:") and r.stderr.count("\n") == 1, r.stderr
    assert fragment in r.stderr


def test_api_refuses_bad_options():
    with pytest.raises(ConfigError):
        profile(runs=0)
    with pytest.raises(ConfigError):
        profile(source="-")
    with pytest.raises(ConfigError):
        SyntheticClip.parse("640x480@0")
