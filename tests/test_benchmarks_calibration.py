"""benchmarks/calibration.py runs end to end on one test clip of each class of the synthetic split and
two noise-only clips, through the bundled default package, and prints one JSON object whose figures
follow from the per-clip labels it lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchscripts import run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("cv2", reason="making the synthetic clips needs OpenCV (edgekit[train])")
    workdir = tmp_path_factory.mktemp("calibration")
    return run_benchmark("calibration.py", "--default", "mv", "--limit", "1", "--noise-clips", "2",
                         "--workdir", str(workdir), timeout=600)


def test_structure_settings_and_environment(report):
    assert set(report) >= {"benchmark", "command", "settings", "env", "package", "calibration", "test", "tradeoff",
                           "per_clip", "elapsed_s"}
    settings = report["settings"]
    assert (settings["model"], settings["split"], settings["limit_per_class"], settings["noise_clips"]) == (
        "edge-mv-ref", "test", 1, 2)  # the bundled "mv" default
    assert settings["config"]["preset"] == "small" and settings["config"]["seed"] == 0
    assert report["env"]["numpy"] and report["package"]["integrity_sha256"]


def test_figures_follow_from_the_listed_labels(report):
    clips = report["per_clip"]
    labelled = [c for c in clips if c["label"] is not None]
    noise = [c for c in clips if c["label"] is None]
    assert len(labelled) == 15 and len(noise) == 2  # one clip of each of the package's 15 classes
    assert all(len(c["reported"]) == 1 for c in labelled) and all(len(c["reported"]) == 3 for c in noise)
    test = report["test"]
    assert test["clips"] == 15 and test["event_clips"] == 14 and test["windows"] == {"static": 1, "noise": 6}
    events = [lab for c in noise for lab in c["reported"] if lab not in ("static", "none")]
    assert test["false_event_rate"]["noise"]["threshold"] == pytest.approx(len(events) / 6)
    # with one window per clip, the video label is the window label
    right = sum(c["reported"][0] == c["label"] for c in labelled)
    assert test["top1"]["threshold"] == pytest.approx(right / 15)
    assert test["top1"]["no_threshold"] == pytest.approx(sum(c["top_label"][0] == c["label"] for c in labelled) / 15)
    assert test["top1"]["threshold"] <= test["top1"]["no_threshold"]


def test_the_tradeoff_table_includes_the_shipped_threshold_and_is_monotone(report):
    rows = report["tradeoff"]
    threshold = report["calibration"]["threshold"] if report["calibration"] else 0.0
    assert round(threshold, 4) in [row["threshold"] for row in rows]
    assert [row["threshold"] for row in rows] == sorted(row["threshold"] for row in rows)
    for a, b in zip(rows, rows[1:]):  # a higher threshold never adds an event nor a right answer
        assert b["event_top1"] <= a["event_top1"] + 1e-12
        for name in a["false_event_rate"]:
            assert b["false_event_rate"][name] <= a["false_event_rate"][name] + 1e-12


def test_bad_arguments_are_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--limit", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--limit" in proc.stderr
