"""benchmarks/quantize.py --quick runs end to end (random-init edge-mvr, built and quantized on the fly)
and prints one JSON object with every figure; the INT8 model it builds runs fully fused in ONNX Runtime
and follows the FP32 one."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quantize.py"
STATS = {"median", "mean", "p10", "p90", "min", "runs", "threads"}  # targets.timing.LatencyStats


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench_quantize") / "model"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)  # the whole of stdout is one JSON object (progress is on stderr)
    out["_workdir"] = workdir
    return out


def test_quick_run_reports_latency_at_1_and_2_threads(report):
    runs = report["settings"]["runs"]
    backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for backend in backends:
        per_threads = report["latency_ms"][backend]
        assert set(per_threads) == {"1", "2"}, backend
        for threads, r in per_threads.items():
            precisions = ("fp32", "int8", "int8_plain") if backend == "onnxruntime" else ("fp32", "int8")
            for precision in precisions:
                assert set(r[precision]) == STATS and r[precision]["runs"] == runs
                assert r[precision]["threads"] == int(threads)
                assert 0 < r[precision]["min"] <= r[precision]["p10"] <= r[precision]["median"] <= r[precision]["p90"]
            assert r["speedup_median"] == pytest.approx(r["fp32"]["median"] / r["int8"]["median"], rel=2e-3)
            key = f"{backend}_{threads}_thread{'s' if threads != '1' else ''}"
            assert report["speedup_int8_vs_fp32"][key] == {s: r[f"speedup_{s}"] for s in ("median", "p10", "min")}
    if "openvino" not in backends:
        assert "skipped" in report["latency_ms"]["openvino"]
    assert set(report["target"]) == {"int8_speedup_ge", "onnxruntime_1_thread_met", "onnxruntime_2_threads_met"}
    for threads, r in report["latency_ms"]["onnxruntime"].items():
        key = f"onnxruntime_{threads}_thread{'s' if threads != '1' else ''}_met"
        met = min(r["speedup_median"], r["speedup_p10"]) >= report["target"]["int8_speedup_ge"]
        assert report["target"][key] == met


def test_the_built_model_and_its_graphs(report):
    model = report["model"]
    assert model["source"] == "built" and model["model"] == "edge-mvr" and model["params"] > 0
    assert 0 < model["size_bytes"]["int8"] < model["size_bytes"]["fp32"] / 3
    assert {"fp32.onnx", "int8.onnx", "int8_plain.onnx", "model.json"} <= {p.name for p in report["_workdir"].iterdir()}
    graph = report["graph"]
    assert graph["int8_zero_points_all_int8_0"] and graph["zero_point_violations"] == []
    convs = graph["int8_file_ops"]["Conv"]
    assert graph["ort_optimized_ops"]["fp32"]["Conv"] == convs
    # every quantized Conv runs as an integer kernel in ONNX Runtime: none left in float between a DQ
    # and a Q; the patch stem, the first layer, stays in float by default (CalibrationSettings.float_ends)
    assert graph["ort_int8_convs"] == {"QLinearConv": convs - 1, "float_Conv": 1}
    # the quantizer's output before the post-pass is kept, timed and inspected beside it
    plain = graph["ort_int8_plain_convs"]
    assert plain["QLinearConv"] + plain["float_Conv"] == convs


def test_int8_logits_follow_fp32(report):
    for backend, agreement in report["agreement"].items():
        assert agreement["inputs"] == report["settings"]["inputs"]
        assert agreement["top1_agreement"] >= 0.75, (backend, agreement)  # most inputs
        assert 0 <= agreement["mean_abs_diff"] <= agreement["max_abs_diff"] < agreement["fp32_logit_range_mean"]


def test_environment_is_recorded(report):
    env = report["environment"]
    assert env["onnxruntime"] and env["numpy"] and env["edgekit"] and env["date"]
    assert isinstance(env["cpu"]["vnni"], bool) and "avx512_vnni" in env["cpu"]["flags"]
    assert len(env["load_average"]["start"]) == 3
