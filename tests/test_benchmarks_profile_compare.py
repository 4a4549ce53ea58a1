"""benchmarks/profile_compare.py is a thin caller of ``edgekit profile --compare rgb-flow``: it runs the
command on a clip and checks the speed-up targets against the command's own figures."""

from __future__ import annotations

import pytest

from benchscripts import run_benchmark
from edgekit.synthetic import make_clip

pytest.importorskip("torch")
pytest.importorskip("cv2")


def test_targets_are_read_from_the_command(tmp_path):
    clip = tmp_path / "small.mp4"
    make_clip(clip, "right", codec="mpeg4", size=(96, 64), frames=30)
    report = run_benchmark("profile_compare.py", "--source", clip, "--runs", "1", timeout=300)
    assert report["command"][:2] == ["edgekit", "profile"] and "--compare" in report["command"]
    section = report["profile"]["compare"]
    assert section["frames"] == 30 and section["frame_size"] == [64, 96]
    assert report["speedup"] == section["speedup"]
    for method, least in (("tvl1", 100.0), ("farneback", 10.0)):
        target = report["targets"][method]
        assert target["target"] == least and target["speedup"] == section["speedup"][method]
        assert target["met"] == (target["speedup"] >= least)
    assert report["met"] == all(t["met"] for t in report["targets"].values())
    assert report["ms_per_source_s"]["package"] == section["package"]["end_to_end_ms_per_source_s"]
