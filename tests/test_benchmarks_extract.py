"""benchmarks/extract.py --quick runs end to end and prints one JSON object with every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "extract.py"
CORE_VARIANTS = ["floor", "floor_fast_mv", "decode_rgb", "edgekit_mv_only", "edgekit_full_frame",
                 "edgekit_full_accumulated", "edgekit_full_frame_numpy", "edgekit_full_accumulated_numpy"]
RATIOS = ["mv_only_vs_mvextractor", "mv_only_vs_floor", "full_frame_vs_decode_rgb",
          "full_accumulated_vs_decode_rgb", "native_speedup_full_frame", "native_speedup_accumulated"]
TARGETS = ["mv_only_ge_1.0x_mvextractor", "mv_only_ge_0.8x_floor", "full_frame_ge_1.0x_decode_rgb",
           "full_accumulated_ge_1.0x_decode_rgb"]


def run_quick(workdir: Path, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # the whole of stdout is one JSON object (progress is on stderr)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench_clips")  # shared: the second run re-uses the encoded clips


def test_quick_run_reports_every_variant_ratio_and_target(clip_dir):
    report = run_quick(clip_dir)
    env = report["environment"]
    assert env["av"] and env["numpy"] and env["edgekit"] and env["cpu_count"] >= 1
    assert set(report["clips"]) == {"mpeg4_340x256", "h264_640x360_b2"}
    for name, clip in report["clips"].items():
        variants = clip["variants"]
        for v in CORE_VARIANTS:
            assert variants[v]["fps_best"] > 0 and variants[v]["fps_median"] > 0, (name, v)
            assert variants[v]["frames"] == clip["spec"]["frames"], (name, v)
        mvx = variants["mvextractor"]
        assert mvx.get("fps_best", 0) > 0 or mvx["error"]  # measured, or its absence recorded
        assert set(RATIOS) <= set(clip["ratios"]) and set(TARGETS) == set(clip["targets"])
        assert clip["ratios"]["native_speedup_full_frame"] > 0
        assert clip["thread_type"]["edgekit"] == clip["thread_type"]["floor"]  # same threading as edgekit
    assert sum(report["clips"]["h264_640x360_b2"]["frame_kinds"].values()) == 24
    assert report["clips"]["h264_640x360_b2"]["frame_kinds"]["B"] > 0
    assert set(TARGETS) < set(report["targets"])
    memory = report["memory"]
    assert memory["peak_rss_mib"] > 0
    flat = memory["flatness"]
    assert flat["frames"] == flat["clip"]["frames"]
    assert flat["rss_mib_at_10pct"] > 0 and flat["rss_mib_at_100pct"] > 0
    assert flat["rss_delta_mib"] == pytest.approx(flat["rss_mib_at_100pct"] - flat["rss_mib_at_10pct"], abs=0.02)


def test_missing_mvextractor_is_recorded_not_fatal(clip_dir, tmp_path):
    # a package named mvextractor that cannot be imported shadows the installed one, if any
    fake = tmp_path / "shadow" / "mvextractor"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('shadowed by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))}
    report = run_quick(clip_dir, env)
    for clip in report["clips"].values():
        assert "error" in clip["variants"]["mvextractor"]
        assert clip["ratios"]["mv_only_vs_mvextractor"] is None
        assert clip["targets"]["mv_only_ge_1.0x_mvextractor"] is None
        assert clip["variants"]["edgekit_mv_only"]["fps_best"] > 0
    assert report["targets"]["all"] is None


def test_help_shows_an_example():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "example: python benchmarks/extract.py" in proc.stdout
