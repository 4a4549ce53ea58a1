"""benchmarks/encoder_mv.py runs at a tiny scale and prints one JSON object with every figure; its
synthetic MVInfo buffers decode back to the vectors they were made from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchscripts import load_benchmark, run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "encoder_mv.py"


@pytest.fixture(scope="module")
def report():
    return run_benchmark("encoder_mv.py", "--size", "320x240", "--frames", "60", "--gop", "30", "--repeats", "1",
                         timeout=300)


def load_script():
    return load_benchmark("encoder_mv.py")


def test_settings_and_environment_are_recorded(report):
    settings, env = report["settings"], report["env"]
    assert (settings["width"], settings["height"], settings["frames"], settings["repeats"]) == (320, 240, 60, 1)
    assert settings["inference_threads"] == 1 and isinstance(settings["pinned_cpu"], int)
    assert env["av"] and env["numpy"] and env["onnxruntime"] and env["cpu_affinity"] >= 1
    assert Path(env["edgekit_file"]).parent == SCRIPT.parents[1] / "edgekit"  # the tree the test runs in
    assert report["target_fps_per_core"] == 5000


def test_every_measurement_reports_sane_figures(report):
    reader, recognizer = report["reader"], report["recognizer"]
    assert set(reader) == {"per_frame", "accumulated_block_trace", "accumulated_pixel_trace"}
    assert set(recognizer) == {"frame", "accumulated", "accumulated_block_trace"}
    for result in [*reader.values(), *recognizer.values()]:
        assert result["frames"] == 60 and len(result["runs"]) == 1
        assert result["fps_cpu"] > 0 and result["fps_wall"] > 0
        assert result["us_per_frame_cpu"] == pytest.approx(1e6 / result["fps_cpu"], rel=1e-2)
        # the share is rounded to 3 decimals: within half a unit of the last one
        assert result["core_share_at_25fps_percent"] == pytest.approx(25 / result["fps_cpu"] * 100, rel=1e-2, abs=6e-4)
        assert result["meets_target"] == (result["fps_cpu"] >= 5000)
    assert reader["accumulated_pixel_trace"]["options"] == {"accumulate": True, "trace": "pixel", "threads": 1}
    for name, result in recognizer.items():
        assert result["windows"] >= 2  # 60 frames, windows of 48 every 24, plus the tail
        assert set(result["stage_ms_per_window"]) == {"decode", "preprocess", "inference"}
        assert result["reader_accumulate"] == (result["representation"] == "accumulated")
        assert result["reader_options_patched"] == (name == "accumulated_block_trace")
    assert recognizer["accumulated_block_trace"]["reader_trace"] == "block"
    assert report["summary"]["reader_per_frame_fps_per_core"] == reader["per_frame"]["fps_cpu"]


def test_synthetic_mvinfo_buffers_hold_the_vectors_they_were_made_from():
    from edgekit.bitstream.motion import _decode_mvinfo

    module = load_script()
    records = module.synthetic_encoder(40, 320, 240, 25.0, gop=20)
    assert [k for k, _, _ in records].count("I") == 2 and records[0][2] is None
    raw = records[5][2]
    assert len(raw) == 20 * 15 * 4
    mv_x, mv_y = _decode_mvinfo(raw, 20 * 15)
    assert np.abs(mv_x).max() > 1 and np.abs(mv_y).max() >= 1  # moving objects, not only jitter
    assert module.mvinfo_records(mv_x, mv_y) == raw


def test_bad_size_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--size", "720p"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "WxH" in proc.stderr
