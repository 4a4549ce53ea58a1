"""benchmarks/dataset.py --quick runs end to end and prints one JSON object with every figure, and the
motion vectors it measures carry the ground-truth motion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dataset.py"
CODECS = ("mpeg4", "h264")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dataset_bench")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # the whole of stdout is one JSON object (progress is on stderr)


def test_environment_and_settings_are_recorded(report):
    env = report["environment"]
    for key in ("date_utc", "python", "numpy", "torch", "av", "opencv", "edgekit", "cpu_model"):
        assert env[key], key
    assert env["cpu_count"] >= 1
    assert report["settings"]["quick"] is True and report["settings"]["workers"] >= 1


def test_generation_and_cache_figures_are_positive(report):
    for codec in CODECS:
        gen = report["generation"][codec]
        assert gen["config"]["codec"] == codec
        assert gen["clips"] == 17 and gen["clips_per_s"] > 0 and gen["seconds"] > 0 and gen["workers"] >= 1
        assert gen["video_bytes"] > 0 and gen["flow_bytes"] > 0
        cache = report["cache"][codec]
        assert cache["clips"] == gen["clips"] and not cache["failures"]
        assert cache["frames"] == gen["frames"] == cache["motion_frames"] + cache["iframes"]
        assert cache["frames_per_s"] > 0 and cache["workers"] >= 1
        assert cache["spec"]["size"] == 112 and cache["spec"]["representation"] == "accumulated"


def test_loader_figures_and_target(report):
    loader = report["loader"]
    assert loader["dataset"]["sample_shape"] == [3, 5, 112, 112]
    dataloaders = loader["dataloader"]
    assert {d["num_workers"] for d in dataloaders.values()} == {0, 2}
    assert 1 in {d["main_torch_threads"] for d in dataloaders.values()}
    variants = [loader["raw_arrays"], loader["torch_getitem"], *dataloaders.values()]
    for variant in variants:
        assert variant["samples_per_s_best"] > 0 and variant["samples_per_s_median"] > 0
        assert variant["samples_per_cpu_s_median"] > 0
    for d in dataloaders.values():
        assert d["batch_shape"] == [32, 3, 5, 112, 112]
    target = loader["target"]
    assert target["best_configuration"].removeprefix("dataloader_") in dataloaders
    assert target["samples_per_s_min"] == 500
    assert isinstance(target["met"], bool)
    assert target["met"] == (target["samples_per_s"] >= 500)
    assert report["targets"]["loader_ge_500_samples_per_s"] == target["met"]


def test_motion_vectors_carry_the_ground_truth_motion(report):
    mv = report["mv_quality"]
    assert mv["notes"]
    assert set(mv["h264"]["frame_kinds"]) == {"I", "P", "B"} and mv["h264"]["frame_kinds"]["B"] > 0
    assert mv["mpeg4"]["frame_kinds"]["B"] == 0
    assert "B_past_ref" in mv["h264"] and "B_future_ref_only" in mv["h264"] and "B_past_ref" not in mv["mpeg4"]
    assert 0 <= mv["h264"]["B_blocks"]["intra_fraction"] < 1
    assert mv["mpeg4"]["P"]["reference_distance_frames"] == {"1": mv["mpeg4"]["frame_kinds"]["P"]}
    for codec in CODECS:
        q = mv[codec]
        assert q["edgekit_vs_ffmpeg_consistency"]["blocks_mismatched"] == 0, codec
        assert q["edgekit_vs_ffmpeg_consistency"]["frame_count_mismatches"] == 0, codec
        assert 0 <= q["P"]["intra_fraction"] < 1
        categories = ["P", "B_past_ref"] if codec == "h264" else ["P"]
        for cat in categories:
            c = q[cat]
            assert c["inter_blocks"] > 0 and c["moving_blocks"] > 100, (codec, cat)
            epe, zero = c["epe_px"]["moving"]["mean"], c["zero_motion_baseline_epe_px"]["moving"]["mean"]
            # the vectors follow the motion: well under the error of predicting no motion
            assert 0 < epe < 0.5 * zero, (codec, cat, epe, zero)
            assert c["epe_px"]["all_inter"]["mean"] < c["zero_motion_baseline_epe_px"]["all_inter"]["mean"]


def test_help_shows_an_example():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "example: python benchmarks/dataset.py" in proc.stdout
    for flag in ("--clips-per-class", "--workdir", "--quick"):
        assert flag in proc.stdout
