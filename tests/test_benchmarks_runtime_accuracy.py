"""benchmarks/runtime_accuracy.py runs end to end on 3 test clips of the synthetic split the default
model was evaluated on, with this tree only (variants current, pixel, allres and pixel-oldsel: no checkout of 357d452
needed), and prints one JSON object whose accuracies follow from the per-clip predictions it lists."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchscripts import load_benchmark, run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "runtime_accuracy.py"
VARIANTS = ["current", "pixel", "allres", "pixel-oldsel"]
CLIPS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("runtime_accuracy")
    return run_benchmark("runtime_accuracy.py", "--variants", ",".join(VARIANTS), "--clips", str(CLIPS),
                         "--workers", "1",
                         "--workdir", str(workdir), "--keep-jsonl", timeout=300), workdir


@pytest.fixture(scope="module")
def report(run):
    return run[0]


def load_script():
    return load_benchmark("runtime_accuracy.py")


def test_structure_settings_and_environment(report):
    assert set(report) >= {"benchmark", "command", "settings", "env", "generation", "results", "comparisons",
                           "per_clip", "elapsed_s"}
    settings = report["settings"]
    assert list(settings["variants"]) == VARIANTS
    assert (settings["preset"], settings["codec"], settings["seed"], settings["split"]) == ("small", "mpeg4", 0, "test")
    assert settings["clips"] == CLIPS and settings["clips_in_split"] == 300  # 20 clips of each of the default's 15 classes and settings["frames"] == 48
    assert "stratified" in settings["subset"]
    assert settings["window_frames"] == 48 and settings["stride_frames"] == 24
    assert report["generation"]["clips_generated"] + report["generation"]["clips_reused"] == CLIPS
    env = report["env"]
    assert env["av"] and env["numpy"] and env["cpu_count"] >= 1
    for variant in VARIANTS:  # both children imported this tree's edgekit
        assert Path(env["variants"][variant]["edgekit_file"]).parent == SCRIPT.parents[1] / "edgekit"
    assert env["variants"]["current"]["reader_options"]["trace"] == "block"
    assert env["variants"]["pixel"]["reader_options"]["trace"] == "pixel"


def test_clips_are_a_stratified_prefix_of_the_test_split(report):
    clips = report["per_clip"]
    assert len(clips) == CLIPS
    labels = [c["label"] for c in clips]
    assert len(set(labels)) == CLIPS  # one clip of each class in turn
    for c in clips:
        assert c["clip"].startswith(c["label"] + "/")
        assert int(c["clip"].rsplit("_", 1)[1].split(".")[0]) >= 80  # clip numbers 80-99 are the test split
        assert set(c["pred"]) == set(c["score"]) == set(VARIANTS)
        assert all(0 < score <= 1 for score in c["score"].values())


def test_accuracies_follow_from_the_listed_predictions(report):
    clips = report["per_clip"]
    for variant in VARIANTS:
        result = report["results"][variant]
        right = [c for c in clips if c["pred"][variant] == c["label"]]
        assert 0 <= result["top1"] <= 1
        assert result["correct"] == len(right) and result["clips"] == len(clips)
        assert result["top1"] == pytest.approx(len(right) / len(clips), abs=1e-6)
        for label, acc in result["per_class_top1"].items():
            assert 0 <= acc <= 1
            of_class = [c for c in clips if c["label"] == label]
            assert acc == pytest.approx(sum(c["pred"][variant] == label for c in of_class)
                                        / len(of_class), abs=1e-4)
        assert set(result["per_class_top1"]) == {c["label"] for c in clips}
        wrong = Counter((c["label"], c["pred"][variant]) for c in clips
                        if c["pred"][variant] != c["label"])
        assert {(x["label"], x["predicted"]): x["clips"] for x in result["confusions"]} == dict(wrong)


def test_comparison_follows_from_the_listed_predictions(report):
    clips = report["per_clip"]
    comparison = report["comparisons"]["current vs pixel"]
    changed = [c["clip"] for c in clips if c["pred"]["current"] != c["pred"]["pixel"]]
    assert 0 <= comparison["agreement"] <= 1
    assert comparison["agreement"] == pytest.approx(1 - len(changed) / len(clips), abs=1e-6)
    assert [c["clip"] for c in comparison["changed_clips"]] == changed
    points = 100 * (report["results"]["current"]["top1"] - report["results"]["pixel"]["top1"])
    assert comparison["points"] == pytest.approx(points, abs=1e-3)


def test_each_variant_printed_its_clips_as_json_lines(run):
    report, workdir = run
    for variant in VARIANTS:
        lines = (workdir / f"{variant}-{CLIPS}.jsonl").read_text().splitlines()
        header, rows = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
        assert header["variant"] == variant and len(header["labels"]) == 15  # the default's motion classes
        assert [r["clip"] for r in rows] == [c["clip"] for c in report["per_clip"]]
        assert [r["pred"] for r in rows] == [c["pred"][variant] for c in report["per_clip"]]
        assert [r["score"] for r in rows] == [c["score"][variant] for c in report["per_clip"]]
        for r in rows:  # 48-frame clips: exactly one window of the default (48 frames), no tail window
            assert r["windows"] == 1 and r["frames"] == 48 and r["top2"][0][1] == r["score"]
            # the best real label, which is the prediction unless its score is under the 'none' threshold
            assert r["top2"][0][0] == r["pred"] or (r["pred"] == "none" and r["top2"][0][0] in header["labels"])


def test_figures_on_made_up_predictions():
    script = load_script()
    clips = [{"clip": f"{lab}/{lab}_{i:05d}.mp4", "label": lab} for lab in ("a", "b") for i in (80, 81)]
    assert [c["clip"] for c in script.stratified(clips, 3)] == ["a/a_00080.mp4", "b/b_00080.mp4", "a/a_00081.mp4"]
    x = {c["clip"]: c["label"] for c in clips}
    y = dict(x, **{"b/b_00081.mp4": "a"})
    acc = script.accuracy_of(clips, y, ["a", "b"])
    assert (acc["top1"], acc["correct"], acc["per_class_top1"]) == (0.75, 3, {"a": 1.0, "b": 0.5})
    assert acc["confusions"] == [{"label": "b", "predicted": "a", "clips": 1}]
    cmp = script.compare(clips, {"x": x, "y": y}, "x", "y")
    assert (cmp["agreement"], cmp["changed"], cmp["points"], cmp["right_in_x_only"]) == (0.75, 1, 25.0, 1)


@pytest.mark.parametrize("argv, words", [
    (["--variants", "current,nonsense"], ["nonsense", "pixel"]),
    (["--variants", "before"], ["--before-tree"]),
])
def test_bad_arguments_are_refused_in_one_line(argv, words):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert all(w in proc.stderr for w in words)
