"""The quantization report: one JSON-ready dict (``report.json``) and its markdown table (``report.md``)."""

from __future__ import annotations

from collections.abc import Mapping

from quantize.evaluate import BackendResult


def build_report(*, checkpoint, meta: dict, calibration: dict, size_bytes: dict[str, int], evaluation: dict,
                 results: Mapping[str, BackendResult], float_nodes: list[str], post_pass: dict,
                 ort_int8_ops: dict[str, int]) -> dict:
    """The report of one quantization run. ``results``: per ``<backend>_<precision>``; ``latency_ms``
    holds each one's latency statistics (ms, with ``threads``) or ``{"error": ...}``."""
    report = {"checkpoint": str(checkpoint), "model": meta["model"], "classes": len(meta["classes"]),
              "calibration": calibration, "size_bytes": size_bytes, "eval": evaluation,
              "top1": {k: r.top1 for k, r in results.items() if r.error is None},
              "latency_ms": {k: {"error": r.error} if r.error is not None else r.latency.to_dict()
                             for k, r in results.items()},
              "float_nodes": float_nodes, "post_pass": post_pass, "ort_int8_ops": ort_int8_ops}
    t = report["top1"]
    if "cpu_fp32" in t and "cpu_int8" in t:
        report["int8_top1_drop_points"] = 100 * (t["cpu_fp32"] - t["cpu_int8"])
    lat = report["latency_ms"]
    if "median" in lat.get("cpu_fp32", {}) and "median" in lat.get("cpu_int8", {}):
        report["int8_speedup_cpu"] = lat["cpu_fp32"]["median"] / lat["cpu_int8"]["median"]
    return report


def report_markdown(r: dict) -> str:
    """The report as a short markdown page: size, top-1 and ms per clip, FP32 beside INT8."""
    lines = [f"# Quantization report: {r['model']}", "",
             f"Calibration: {r['calibration']['clips']} training clips ({r['calibration']['method']}); "
             f"evaluation: {r['eval']['clips']} {r['eval']['split']} clips.", "",
             "| | FP32 | INT8 |", "|---|---|---|",
             f"| size | {r['size_bytes']['fp32'] / 1e6:.2f} MB | {r['size_bytes']['int8'] / 1e6:.2f} MB |"]
    for backend in ("cpu", "openvino"):
        t, lat = r["top1"], r["latency_ms"]
        if f"{backend}_fp32" in t and f"{backend}_int8" in t:
            lines.append(f"| top-1 ({backend}) | {100 * t[backend + '_fp32']:.1f} % | {100 * t[backend + '_int8']:.1f} % |")
        if "median" in lat.get(f"{backend}_fp32", {}) and "median" in lat.get(f"{backend}_int8", {}):
            threads = lat[backend + "_fp32"].get("threads")
            where = f"{backend}, {threads} threads" if threads else backend
            lines.append(f"| ms per clip ({where}) | {lat[backend + '_fp32']['median']:.2f} | "
                         f"{lat[backend + '_int8']['median']:.2f} |")
    lines += ["", f"Nodes left in float: {len(r['float_nodes'])}" + (f" ({', '.join(r['float_nodes'])})" if r["float_nodes"] else "")]
    if "ort_int8_ops" in r:
        ops = r["ort_int8_ops"]
        lines.append(f"ONNX Runtime runs the INT8 graph with {ops.get('QLinearConv', 0)} QLinearConv and "
                     f"{ops.get('Conv', 0)} float Conv.")
    return "\n".join(lines) + "\n"
