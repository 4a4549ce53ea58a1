"""`edgekit demo`: both bundled default models on the bundled sample clip, as a newcomer runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from edgekit.package import load_package
from edgekit.recognizer import ASSETS, DEFAULT_PACKAGE, DEFAULT_PACKAGES

TRUTH = json.loads((ASSETS / "demo.json").read_text())["segments"]
# what 'edgekit recognize --json' prints for a prediction: each model's object in the demo holds it
PREDICTION_KEYS = {"source", "label", "score", "top_label", "threshold", "topk", "windows", "latency_ms", "frames",
                   "duration_s", "damaged_frames", "skipped_frames"}
WINDOW_ROW = re.compile(r"^  (\d+\.\d\d)-(\d+\.\d\d) s  ")


def demo(*args):
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "demo", *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_names_the_truth(prediction: dict) -> None:
    """Windows lying inside one event must name it (the defaults were trained for >= 90 % top-1)."""
    inside = [(w, t) for w in prediction["windows"] for t in TRUTH
              if t["start_s"] - 0.05 <= w["start_s"] and w["end_s"] <= t["end_s"] + 0.05]
    assert len(inside) >= len(TRUTH) - 1
    hits = sum(w.get("top_label", w["label"]) == t["label"] for w, t in inside)  # "none" keeps the best label
    assert hits >= len(inside) - 1, [(w["label"], t["label"]) for w, t in inside]
    assert prediction["latency_ms"]["total"] > 0 and prediction["duration_s"] > 9 and prediction["frames"] == 240


def test_default_package_is_bundled_small_and_verified():
    pkg = load_package(DEFAULT_PACKAGE)
    assert DEFAULT_PACKAGE.stat().st_size <= 5_000_000
    assert pkg.precision == "int8" and "move_right" in pkg.labels and "static" in pkg.labels


def test_demo_json_runs_both_defaults_and_each_names_the_truth():
    out = json.loads(demo("--json"))
    assert set(out) == {"truth", "models"} and out["truth"] == TRUTH
    assert list(out["models"]) == ["mvr", "mv"]
    for kind, prediction in out["models"].items():
        assert set(prediction) == PREDICTION_KEYS | {"package"}
        assert prediction["package"] == str(DEFAULT_PACKAGES[kind])
        assert_names_the_truth(prediction)
    # each model read the clip itself: two measurements, not one shared
    assert out["models"]["mvr"]["latency_ms"] != out["models"]["mv"]["latency_ms"]


def test_demo_json_of_one_model_keeps_the_single_model_object():
    for kind in ("mvr", "mv"):
        out = json.loads(demo("--model", kind, "--json"))
        assert set(out) == PREDICTION_KEYS | {"package", "truth"}  # what 'edgekit demo --json' printed before
        assert out["package"] == str(DEFAULT_PACKAGES[kind]) and out["truth"] == TRUTH
        assert_names_the_truth(out)


def test_demo_prints_both_models_side_by_side_within_100_columns():
    text = demo()
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "truth:" in text and "latency" in text and "x real time" in text
    header = next(line for line in lines if line.lstrip().startswith("time span"))
    assert header.split()[-2:] == ["edge-mvr", "edge-mv-ref"]
    rows = [line for line in lines if WINDOW_ROW.match(line)]
    windows = json.loads(demo("--model", "mv", "--json"))["windows"]
    assert len(rows) == len(windows)
    for row, window in zip(rows, windows):
        start_s, end_s = map(float, WINDOW_ROW.match(row).groups())
        assert (start_s, end_s) == (round(window["start_s"], 2), round(window["end_s"], 2))
        # the truth column names the event a window lies inside, or the events it overlaps (a/b)
        truth_cell = row[len("  0.00-0.00 s  "):].split()[0]
        assert set(truth_cell.split("/")) <= {t["label"] for t in TRUTH}, row
    # one latency row per model: total ms, x real time, per-window decode / preprocess / inference
    for model in ("edge-mvr", "edge-mv-ref"):
        latency = [line for line in lines if re.match(rf"^  {model} +\d+ ms +\d+x +[\d.]+ ms", line)]
        assert len(latency) == 1, text


def test_demo_of_one_model_shows_only_it():
    text = demo("--model", "mv", "--threshold", "0")
    assert "edge-mv-ref " in text and "edge-mvr" not in text and "never 'none'" in text
    assert "none (best:" not in text  # threshold 0: every window names its top label


def test_demo_refuses_an_unknown_model_in_one_line():
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "demo", "--model", "rgb"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("edgekit: error: --model must be one of both, mvr, mv") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_recognize_reads_a_raw_h264_stream_on_stdin_with_the_default_model(tmp_path):
    # an encoder's raw Annex-B output, piped; edgekit.synthetic renders differently from the benchmark
    from edgekit.synthetic import make_clip

    for motion, label in (("left", "move_left"), ("up", "move_up")):
        raw = tmp_path / f"{motion}.h264"
        make_clip(raw, motion, codec="h264", size=(340, 256), frames=96)
        r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", "-", "--json", "--threshold", "0"],
                           input=raw.read_bytes(), capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr.decode()
        out = json.loads(r.stdout)
        assert out["label"] == label and len(out["windows"]) == 3
        # the square enters and leaves the picture (4 px per frame over 96 frames): the last window,
        # where it is gone for its final third, may read otherwise ("part" 0.61 for "up")
        assert [w["label"] for w in out["windows"][:2]] == [label, label]


def test_training_assets_installs_both_defaults_and_renders_the_demo_clip(tmp_path):
    from edgekit.recognizer import DEFAULT_PACKAGES
    from training.__main__ import main as training_main

    out = tmp_path / "assets"
    assert training_main(["assets", "--out", str(out), "--package", str(DEFAULT_PACKAGES["mvr"]),
                          "--package-mv", str(DEFAULT_PACKAGES["mv"]), "--classes", "move_right,wave"]) == 0
    assert (out / "default.edgepkg").read_bytes() == DEFAULT_PACKAGES["mvr"].read_bytes()
    assert (out / "default-mv.edgepkg").read_bytes() == DEFAULT_PACKAGES["mv"].read_bytes()
    truth = json.loads((out / "demo.json").read_text())
    assert [s["label"] for s in truth["segments"]] == ["move_right", "wave"] and (out / "demo.mp4").stat().st_size
    broken = tmp_path / "broken.edgepkg"
    broken.write_bytes(DEFAULT_PACKAGES["mv"].read_bytes()[:-100])
    assert training_main(["assets", "--out", str(tmp_path / "x"), "--package-mv", str(broken)]) == 2
    assert not (tmp_path / "x" / "default-mv.edgepkg").exists()
