"""benchmarks/int8_calibration.py: its recipes quantize a real ONNX model through the project's
quantizer and are scored by real ONNX Runtime against FP32 (top-1, gap, flips, seconds); the summary
counts what the rows measured; bad arguments are refused in one line. (The script's full run over a
reproduction's rows writes docs/results/int8-calibration.json; it needs trained rows and their cache.)"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchscripts import BENCHMARKS, load_benchmark

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (1, 2, 16, 16)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("int8_calibration.py")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An FP32 ONNX classifier (4 classes) and inputs labelled by its own FP32 argmax."""
    from onnx_models import conv_classifier_onnx

    path = conv_classifier_onnx(tmp_path_factory.mktemp("bench_int8_calibration") / "fp32.onnx", SHAPE)
    rng = np.random.default_rng(0)
    calib = [{"mv": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(32)]
    test = [{"mv": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(40)]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = np.array([int(session.run(None, x)[0].argmax()) for x in test])  # the FP32 model's own classes
    return path, calib, test, labels


def test_recipes_are_scored_against_fp32_on_the_same_clips(bench, model):
    path, calib, test, labels = model
    recipes = (bench.Recipe("minmax-16", 16, (("method", "minmax"),)), bench.Recipe("percentile-32", 32, (("method", "percentile"),)),
               bench.Recipe("uint8-16", 16, (("method", "minmax"), ("activations", "uint8-asymmetric"))))
    fp32_logits, figures, logits = bench.measure_recipes(path, calib, test, labels, recipes)
    assert fp32_logits.shape == (40, 4) and list(figures) == [r.name for r in recipes]
    assert float(np.mean(fp32_logits.argmax(1) == labels)) == 1.0  # the labels are FP32's own classes
    for name, f in figures.items():
        assert f["top1_fp32"] == 1.0 and f["top1_int8"] == float(np.mean(logits[name].argmax(1) == labels))
        assert f["gap_points"] == pytest.approx(100 * (1.0 - f["top1_int8"]), abs=1e-3)
        assert f["flips"] == int(np.sum(logits[name].argmax(1) != fp32_logits.argmax(1)))
        assert f["flips"] <= 4, name  # a small ReLU net keeps its classes under INT8
        assert f["seconds"] >= f["calibration_seconds"] > 0


def test_summary_counts_rows_within_the_limit(bench):
    recipes = (bench.Recipe("minmax-64", 64), bench.Recipe("minmax-256", 256))
    rows = {"a": {"recipes": {"minmax-64": {"gap_points": 1.5, "flips": 8, "seconds": 2.0},
                              "minmax-256": {"gap_points": -0.3, "flips": 5, "seconds": 3.0}}},
            "b": {"recipes": {"minmax-64": {"gap_points": 0.0, "flips": 2, "seconds": 1.0},
                              "minmax-256": {"gap_points": 1.2, "flips": 3, "seconds": 1.5}}}}
    summary = bench.summarize(rows, recipes, limit_points=1.0)
    assert summary["minmax-64"]["rows_within_limit"] == 1 and summary["minmax-64"]["max_abs_gap_points"] == 1.5
    assert summary["minmax-256"]["mean_abs_gap_points"] == pytest.approx(0.75)
    assert summary["minmax-256"]["mean_gap_points"] == pytest.approx(0.45)
    assert summary["minmax-64"]["flips"] == 10 and summary["minmax-256"]["seconds"] == 4.5
    assert summary["minmax-256"]["tensorrt_compatible"] and summary["minmax-256"]["clips"] == 256


def test_every_listed_recipe_is_a_valid_setting_and_only_the_diagnostic_breaks_tensorrt(bench):
    names = [r.name for r in bench.RECIPES]
    assert len(set(names)) == len(names) and "minmax-64" in names
    breaking = [r.name for r in bench.RECIPES if not r.calibration().tensorrt_compatible]
    assert breaking == ["uint8-asym-minmax-256"]


@pytest.mark.parametrize("args, message", [
    (["--recipe", "kl-9"], "unknown recipe 'kl-9'"),
    ([], "no measured rows (*/result.json)"),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, args, message):
    r = subprocess.run([sys.executable, str(BENCHMARKS / "int8_calibration.py"), "--rows-dir", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr.strip().splitlines()[-1]


def test_a_missing_row_names_the_rows_there(tmp_path):
    (tmp_path / "coviar-mv").mkdir()
    (tmp_path / "coviar-mv" / "result.json").write_text(json.dumps({"label": "CoViAR MV"}))
    r = subprocess.run([sys.executable, str(BENCHMARKS / "int8_calibration.py"), "--rows-dir", str(tmp_path),
                        "--row", "off"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no measured row 'off'" in r.stderr and "rows: coviar-mv" in r.stderr
