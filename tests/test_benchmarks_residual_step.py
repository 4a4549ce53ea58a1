"""benchmarks/residual_step.py at a tiny scale: one JSON object whose figures follow from the
per-clip predictions it lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchscripts import run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "residual_step.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("residual_step")
    return run_benchmark("residual_step.py", "--size", "640x480", "--clips-per-class", "1", "--frames", "24",
                         "--workdir", str(workdir), timeout=300)


def test_accuracies_and_agreement_follow_from_the_predictions(report):
    preds = report["predictions"]
    assert report["clips"] == len(preds) >= 17  # one clip per class at least
    for step in ("step1", "step2"):
        right = sum(p["truth"] == p[step] for p in preds.values())
        assert report["accuracy"][step] == pytest.approx(right / len(preds), abs=1e-4)
    changed = sorted(c for c, p in preds.items() if p["step1"] != p["step2"])
    assert sorted(report["clips_changed"]) == changed
    assert report["clip_agreement"] == pytest.approx(1 - len(changed) / len(preds), abs=1e-4)
    assert 0 <= report["window_agreement"] <= 1 and report["windows"] >= report["clips"]


def test_settings_and_timing_are_recorded(report):
    assert report["settings"]["size"] == "640x480" and report["settings"]["codec"] == "h264"
    assert report["seconds"]["step1"] > 0 and report["seconds"]["step2"] > 0
    # the seconds are rounded in the report, the speed-up is not
    assert report["seconds"]["step2_speedup"] == pytest.approx(report["seconds"]["step1"] / report["seconds"]["step2"],
                                                               rel=0.1)
    assert report["env"]["cpu_count"] >= 1
