"""quantize's pieces without a model: the report from backend results, latency statistics, and an
output folder that appears whole or not at all."""

from __future__ import annotations

import pytest

from edgekit._fileio import atomic_folder
from quantize.evaluate import BackendResult
from quantize.report import build_report, report_markdown
from targets.timing import LatencyStats, measure_latency


def test_latency_stats_summarise_times_in_ms():
    stats = LatencyStats.from_times([4.0, 1.0, 2.0, 3.0, 10.0], threads=2)
    assert (stats.median, stats.mean, stats.min, stats.runs, stats.threads) == (3.0, 4.0, 1.0, 5, 2)
    assert stats.p10 == pytest.approx(1.4) and stats.p90 == pytest.approx(7.6)
    assert stats.to_dict() == {"median": 3.0, "mean": 4.0, "p10": 1.4, "p90": 7.6, "min": 1.0, "runs": 5, "threads": 2}


def test_measure_latency_warms_up_then_times_every_call():
    calls = []
    stats = measure_latency(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and stats.runs == 7 and 0 <= stats.min <= stats.median <= stats.p90


def _report(results):
    meta = {"model": "edge-mvr", "classes": ["a", "b"]}
    return build_report(checkpoint="best.json", meta=meta, calibration={"clips": 8, "method": "minmax"},
                        size_bytes={"fp32": 4_000_000, "int8": 1_000_000}, evaluation={"split": "test", "clips": 20},
                        results=results, float_nodes=[], post_pass={"unshared_pairs": 3}, ort_int8_ops={"QLinearConv": 20})


def test_report_has_top1_latency_and_speedup_per_backend():
    fast, slow = LatencyStats.from_times([1.0, 1.0, 1.0], 1), LatencyStats.from_times([3.0, 3.0, 3.0], 1)
    report = _report({"cpu_fp32": BackendResult(0.9, slow), "cpu_int8": BackendResult(0.85, fast),
                      "openvino_fp32": BackendResult(error="openvino is not installed")})
    assert report["top1"] == {"cpu_fp32": 0.9, "cpu_int8": 0.85}
    assert report["latency_ms"]["cpu_int8"]["median"] == 1.0 and report["latency_ms"]["cpu_int8"]["threads"] == 1
    assert report["latency_ms"]["openvino_fp32"] == {"error": "openvino is not installed"}
    assert report["int8_speedup_cpu"] == 3.0 and report["int8_top1_drop_points"] == pytest.approx(5.0)
    page = report_markdown(report)
    assert "| top-1 (cpu) | 90.0 % | 85.0 % |" in page and "| ms per clip (cpu, 1 threads) | 3.00 | 1.00 |" in page
    assert "openvino" not in page


def test_output_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "report.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as folder:
        (folder / "report.json").write_text("half")
        raise RuntimeError("calibration failed")
    assert (out / "report.json").read_text() == "old"
    with atomic_folder(out) as folder:
        (folder / "report.json").write_text("new")
    assert (out / "report.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
