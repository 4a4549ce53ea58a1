"""benchmarks/recognizer.py runs end to end at a tiny scale and prints one JSON object with every
figure; its stage-time adapter reads both the StageTimes of today and the dict of c38edf8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchscripts import load_benchmark, run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recognizer.py"
STAGES = {"decode", "preprocess", "inference", "total"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("recognizer_bench")
    return run_benchmark("recognizer.py", "--sizes", "340x256", "--frames-scale", "0.1", "--repeats", "1",
                         "--workdir", str(workdir), timeout=120)


def load_script():
    return load_benchmark("recognizer.py")


def test_settings_and_environment_are_recorded(report):
    settings, env = report["settings"], report["env"]
    assert settings["sizes"] == ["340x256"] and settings["repeats"] == 1 and settings["frames_scale"] == 0.1
    assert settings["window_frames"] >= 2 and settings["load_s"] > 0
    assert env["av"] and env["numpy"] and env["onnxruntime"] and env["cpu_count"] >= 1
    assert Path(env["edgekit_file"]).parent == SCRIPT.parents[1] / "edgekit"  # the tree the test runs in


def test_tiny_run_reports_sane_figures(report):
    result = report["results"]["340x256"]
    assert result["frames"] == 50 == result["clip"]["frames"]  # 500 frames scaled by 0.1
    assert result["clip"]["codec"] == "mpeg4" and result["clip"]["bytes"] > 0
    assert result["decode_rgb_fps"] > 0 and result["recognizer_fps"] > 0
    assert result["ratio"] == pytest.approx(result["recognizer_fps"] / result["decode_rgb_fps"], abs=2e-3)
    assert result["windows"] >= 1 and result["ratio_paired_median"] > 0
    stages, per_window = result["stage_ms"], result["stage_ms_per_window"]
    assert set(stages) == set(per_window) == STAGES
    assert all(stages[k] > 0 for k in STAGES)
    assert stages["total"] >= stages["decode"] + stages["preprocess"] + stages["inference"] - 0.01
    for k in STAGES:
        assert per_window[k] == pytest.approx(stages[k] / result["windows"], abs=2e-3)
    # recognize()'s own total is inside the wall time the benchmark measured around it
    assert stages["total"] / 1000 <= result["seconds"]["recognizer"]["median"] + 1e-3
    assert 0 < result["peak_rss_mib"] <= report["peak_rss_mib"]


def test_stage_ms_reads_the_stage_times_object_and_the_old_dict():
    from edgekit.recognizer import StageTimes

    stage_ms = load_script().stage_ms
    times = {"decode": 4.0, "preprocess": 2.5, "inference": 1.25, "total": 8.0}
    assert stage_ms(SimpleNamespace(latency_ms=StageTimes(**times))) == times
    assert stage_ms(SimpleNamespace(latency_ms=dict(times))) == times  # c38edf8: a plain dict


def test_unknown_size_is_refused_with_the_known_ones():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "640x360"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "640x360" in proc.stderr and "1920x1080" in proc.stderr


def test_variants_are_timed_in_the_same_rounds(report):
    """The bundled motion-vector-only package and the offline 4:2:0 reader are
    measured beside decode_rgb in every round, each with its own ratio."""
    variants = report["results"]["340x256"]["variants"]
    assert set(variants) == {"mv_only", "offline_420"} == set(report["settings"]["variants"])
    for v in variants.values():
        assert v["fps"] > 0 and len(v["ratio_per_repeat"]) == 1 == len(v["seconds"]["runs"])
        assert v["ratio"] == pytest.approx(v["ratio_paired_median"], abs=2e-3)  # one round: the same figure
    assert variants["mv_only"]["windows"] >= 1 and set(variants["mv_only"]["stage_ms"]) == STAGES
    assert report["settings"]["mv_only_model"]["model"] == "edge-mv-ref"
    assert report["settings"]["mv_only_model"]["source"] == "bundled"  # the shipped mv default, trained
    for v in variants.values():
        assert 0 < v["cores_used"] <= os.cpu_count() + 0.5
    counts = variants["mv_only"]["reader"]
    assert counts["frames"] == sum(counts["kinds"].values()) and counts["packets_decoded"] >= 1


def test_preprocessing_is_also_timed_alone(report):
    alone = report["results"]["340x256"]["preprocess_ms_per_window_alone"]
    assert 0 < alone["min"] <= alone["median"] and alone["repeats"] == 50 and alone["frames"] >= 1
