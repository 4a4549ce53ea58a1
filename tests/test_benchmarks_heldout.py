"""benchmarks/heldout.py runs end to end on one held-out clip per class (12 clips) with both bundled
defaults and prints one JSON object whose figures follow from the per-clip predictions it lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchscripts import load_benchmark, run_benchmark
from training.synth.classes import FIXED_CLASS_NAMES

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "heldout.py"
KINDS = ("mvr", "mv")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("heldout")
    return run_benchmark("heldout.py", "--clips-per-class", 1, "--workers", 1, "--workdir", workdir,
                         timeout=600), workdir


def test_structure_settings_and_generation(run):
    report, workdir = run
    assert set(report) >= {"benchmark", "command", "settings", "env", "generation", "results", "per_clip", "elapsed_s"}
    settings = report["settings"]
    assert settings["kinds"] == list(KINDS) and settings["classes"] == list(FIXED_CLASS_NAMES)
    assert (settings["clips_per_class"], settings["frames"], settings["renderer"]) == (1, 48, "heldout")
    generation = report["generation"]
    assert generation["clips_generated"] == 12 and generation["config"]["renderer"] == "heldout"
    assert Path(generation["out_dir"]).parent == workdir
    assert report["env"]["av"] and report["env"]["cpu_count"] >= 1


def test_figures_follow_from_the_listed_predictions(run):
    report, _ = run
    clips = report["per_clip"]
    assert sorted(c["label"] for c in clips) == sorted(FIXED_CLASS_NAMES)
    for kind in KINDS:
        result = report["results"][kind]
        assert result["model"] == {"mvr": "edge-mvr", "mv": "edge-mv-ref"}[kind] and result["labels"] == 15
        assert len(result["package_sha256"]) == 64 and 0 <= result["none_share"] <= 1
        preds = {c["clip"]: c["pred"][kind] for c in clips}
        assert set(preds.values()) <= set(FIXED_CLASS_NAMES)  # restricted to the 12 fixed classes
        right = sum(preds[c["clip"]] == c["label"] for c in clips)
        assert result["correct"] == right and result["clips"] == 12
        assert result["top1"] == pytest.approx(right / 12, abs=1e-4)
        for label, row in result["per_class"].items():
            assert row["clips"] == 1 and row["correct"] == int(preds[f"{label}/{label}_00000.mp4"] == label)
        assert sum(x["clips"] for x in result["confusions"]) == 12 - right
        assert sum(x["clips"] for x in result["by_codec"].values()) == 12
        assert sum(x["correct"] for x in result["by_backdrop"].values()) == right
        for slicing in ("by_codec_gop", "by_codec_quality"):  # every clip in exactly one slice
            assert sum(x["clips"] for x in result[slicing].values()) == 12
            assert sum(x["correct"] for x in result[slicing].values()) == right
        assert all(k.split()[0] in ("h264", "mpeg4") for k in result["by_codec_quality"])
        assert all(0 < c["score"][kind] <= 1 for c in clips)


def test_a_rerun_reuses_the_clips(run):
    _, workdir = run
    again = run_benchmark("heldout.py", "--clips-per-class", 1, "--kinds", "mv", "--workdir", workdir, timeout=300)
    assert again["generation"]["clips_reused"] == 12 and again["generation"]["clips_generated"] == 0
    assert list(again["results"]) == ["mv"]


def test_several_draws_pool_their_clips(run):
    single, workdir = run
    report = run_benchmark("heldout.py", "--clips-per-class", 1, "--seed", 0, 1, "--workers", 1, "--workdir", workdir,
                           timeout=600)
    script = load_benchmark("heldout.py")
    assert report["settings"]["seed"] == [0, 1] and [d["seed"] for d in report["draws"]] == [0, 1]
    assert [g["clips_reused"] for g in report["generation"]] == [12, 0]  # draw 0 is the fixture's
    clips = report["per_clip"]
    assert len(clips) == 24 and {c["seed"] for c in clips} == {0, 1}
    assert all(c["clip"].startswith(f"seed{c['seed']}/") for c in clips)
    for kind in KINDS:
        result = report["results"][kind]
        right = sum(c["pred"][kind] == c["label"] for c in clips)
        assert (result["correct"], result["clips"]) == (right, 24)
        assert result["ci95"] == [round(x, 4) for x in script.wilson(right, 24)]
        draws = [d["results"][kind] for d in report["draws"]]
        assert sum(d["correct"] for d in draws) == right and [d["clips"] for d in draws] == [12, 12]
        # draw 0 scores as it does alone (same clips, same package)
        assert draws[0]["correct"] == single["results"][kind]["correct"]
        for d, seed in zip(draws, (0, 1)):
            mine = [c for c in clips if c["seed"] == seed]
            assert d["none_share"] == pytest.approx(sum(c["none"][kind] for c in mine) / 12, abs=1e-4)
        assert sum(r["clips"] for r in result["per_class"].values()) == 24


def test_helpers_on_made_up_predictions():
    script = load_benchmark("heldout.py")
    topk = (("meet", 0.6), ("scene_left", 0.3), ("static", 0.1))
    assert script.restricted_prediction(topk, FIXED_CLASS_NAMES) == ("scene_left", 0.3)
    with pytest.raises(ValueError):
        script.restricted_prediction((("meet", 1.0),), FIXED_CLASS_NAMES)
    clips = [{"clip": "a/1", "label": "a", "codec": "h264"}, {"clip": "a/2", "label": "a", "codec": "mpeg4"},
             {"clip": "b/1", "label": "b", "codec": "h264"}]
    figures = script.accuracy_of(clips, {"a/1": "a", "a/2": "b", "b/1": "b"}, ("a", "b"))
    assert (figures["top1"], figures["correct"]) == (0.6667, 2)
    assert figures["per_class"]["a"] == {"correct": 1, "clips": 2, "top1": 0.5}
    assert figures["confusions"] == [{"label": "a", "predicted": "b", "clips": 1}]
    by_codec = script.sliced(clips, {"a/1": "a", "a/2": "b", "b/1": "b"}, lambda c: c["codec"])
    assert by_codec == {"h264": {"correct": 2, "clips": 2, "top1": 1.0}, "mpeg4": {"correct": 0, "clips": 1, "top1": 0.0}}


@pytest.mark.parametrize("argv, words", [(["--kinds", "mvr,nonsense"], ["nonsense", "mvr, mv"]),
                                         (["--clips-per-class", "0"], ["at least 1"]),
                                         (["--seed", "1", "1"], ["distinct"])])
def test_bad_arguments_are_refused_in_one_line(argv, words):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and all(w in proc.stderr for w in words)
