"""Checkpoint -> FP32 ONNX -> static INT8 QDQ -> evaluation -> report, into one output folder.

The steps live in their own modules: :mod:`quantize.export` (FP32 ONNX and ``model.json``),
:mod:`quantize.int8` (quantization settings and the post-pass), :mod:`quantize.calibration` (real
side data), :mod:`quantize.evaluate` (top-1 and latency per backend) and :mod:`quantize.report`.
This module only runs them in order and publishes the folder whole.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit._fileio import atomic_folder, atomic_write
from quantize.export import export_fp32, model_description
from quantize.report import build_report, report_markdown

__all__ = ["quantize_checkpoint", "report_markdown"]


def quantize_checkpoint(checkpoint, out_dir, *, calib=None, calib_clips: int = 128, method: str = "minmax",
                        eval_split: str = "test", eval_clips: int | None = None, latency_runs: int = 50,
                        backends=("cpu", "openvino"), progress=print) -> dict:
    """Write ``out_dir`` (model.json, fp32.onnx, int8.onnx, report.json, report.md); returns the report.

    The folder appears whole or not at all: it is written beside ``out_dir`` under a temporary name
    (every file fsync'ed) and renamed over it at the end."""
    from quantize.calibration import CacheCalibrationReader, cache_inputs
    from quantize.evaluate import evaluate_models
    from quantize.graph import float_nodes, ort_optimized_ops
    from quantize.int8 import quantize_int8
    from training.cache import find_cache

    with atomic_folder(Path(out_dir)) as folder:
        fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
        progress("exporting FP32 ONNX")
        meta, specs = export_fp32(checkpoint, fp32)
        cache = find_cache(calib or meta["cache"])
        progress(f"calibrating INT8 on {calib_clips} training clips of {cache}")
        post = quantize_int8(fp32, int8, CacheCalibrationReader(cache, specs, calib_clips), method)
        progress(f"evaluating on the {eval_split} split")
        samples = list(cache_inputs(cache, specs, eval_split, eval_clips))
        results = evaluate_models({"fp32": fp32, "int8": int8}, samples, backends, latency_runs)
        report = build_report(
            checkpoint=checkpoint, meta=meta,
            calibration={"clips": calib_clips, "method": method, "split": "train", "cache": str(cache)},
            size_bytes={"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
            evaluation={"split": eval_split, "clips": len(samples)}, results=results,
            float_nodes=float_nodes(int8), post_pass=post, ort_int8_ops=ort_optimized_ops(int8))
        atomic_write(folder / "model.json", json.dumps(model_description(meta, specs, cache, report["top1"]), indent=1))
        atomic_write(folder / "report.json", json.dumps(report, indent=1))
        atomic_write(folder / "report.md", report_markdown(report))
    return report
