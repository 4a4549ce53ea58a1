"""Checkpoint -> FP32 ONNX -> ORT pre-processing -> static INT8 QDQ -> report.

INT8 settings (why):
- QDQ format: the explicit-quantization form that ONNX Runtime, OpenVINO and TensorRT all consume.
- Weights int8, symmetric, per output channel: the accuracy of per-channel with the simplicity of
  zero-point 0.
- Activations int8, **symmetric** (zero-point 0): TensorRT's explicit quantization requires it;
  ORT and OpenVINO run it as well.
- Calibration on real cached side data of the training split (MinMax by default; Percentile and
  Entropy available), so ranges are those the device will see.
- Post-pass (:mod:`quantize.graph`): every consumer of a quantized tensor gets its own Q -> DQ
  pair. Exact, and without it ONNX Runtime on x86 runs every residual block's conv1 and downsample
  Conv in float (11 of edge-mvr's 20 Convs) and INT8 is slower than FP32. The report lists what ORT
  actually runs (``ort_int8_ops``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError
from edgekit.spec import InputSpec


def export_fp32(checkpoint, path: Path) -> tuple[dict, list[InputSpec]]:
    from training.checkpoint import build_from_checkpoint
    from training.models import export_onnx

    model, meta = build_from_checkpoint(checkpoint)
    export_onnx(model, str(path))
    return meta, [InputSpec.from_dict(d) for d in meta["input_specs"]]


def quantize_int8(fp32: Path, out: Path, reader, method: str = "minmax", plain_out: Path | None = None) -> dict:
    """Static INT8 QDQ of ``fp32`` into ``out``, calibrated on ``reader`` (an ORT
    ``CalibrationDataReader``); returns what the post-pass changed. ``plain_out``: also write the
    quantizer's output before the post-pass there (for comparisons). Raises :class:`ConfigError` for
    an unknown ``method``, ``RuntimeError`` if a Q/DQ zero point is not int8 0 (TensorRT needs it)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from quantize.graph import unshare_quantized_tensors, zero_point_violations

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ConfigError(f"calibration method must be one of {sorted(methods)}, got {method!r}")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
        qdq = Path(tmp) / "qdq.onnx"
        quantize_static(str(pre), str(qdq), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method],
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        model = onnx.load(str(qdq))
        if plain_out is not None:
            shutil.copyfile(qdq, plain_out)
    changes = {"unshared_pairs": unshare_quantized_tensors(model)}
    bad = zero_point_violations(model)
    if bad:
        raise RuntimeError("quantized model breaks TensorRT's zero-point-0 rule: " + "; ".join(bad[:5]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return changes


def float_nodes(path: Path) -> list[str]:
    """Compute nodes of a QDQ model that still run in float: their inputs are not all dequantized
    (graph inputs and constants aside). Q/DQ nodes themselves are not counted."""
    import onnx

    model = onnx.load(str(path))
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    consts = {i.name for i in model.graph.initializer}
    left = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        dyn = [i for i in n.input if i and i not in consts]
        if dyn and not all(i in dq_outputs for i in dyn):
            left.append(f"{n.op_type}:{n.name}")
    return left


def session(path: Path, backend: str, threads: int | None = None):
    """A callable(inputs) -> logits for the ONNX at ``path`` through targets.<backend>."""
    from targets import load_backend

    opts = {"threads": threads} if (threads and backend == "cpu") else {}
    return load_backend(backend, path, **opts)


def accuracy(backend, samples) -> float:
    hits = [int(np.argmax(backend.run(x)["logits"])) == y for x, y in samples]
    return float(np.mean(hits)) if hits else float("nan")


def latency_ms(backend, x: dict, runs: int = 50, warmup: int = 5) -> dict:
    for _ in range(warmup):
        backend.run(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.run(x)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)), "runs": runs}


def quantize_checkpoint(checkpoint, out_dir, *, calib=None, calib_clips: int = 128, method: str = "minmax",
                        eval_split: str = "test", eval_clips: int | None = None, latency_runs: int = 50,
                        backends=("cpu", "openvino"), progress=print) -> dict:
    """Write ``out_dir`` (model.json, fp32.onnx, int8.onnx, report.json, report.md); returns the report."""
    from quantize.calibration import CacheCalibrationReader, cache_inputs
    from quantize.graph import ort_optimized_ops

    out = Path(out_dir)
    tmp_out = out.with_name(out.name + ".part")
    if tmp_out.exists():
        shutil.rmtree(tmp_out)
    tmp_out.mkdir(parents=True)
    fp32, int8 = tmp_out / "fp32.onnx", tmp_out / "int8.onnx"
    progress("exporting FP32 ONNX")
    meta, specs = export_fp32(checkpoint, fp32)
    cache = calib or meta["cache"]
    from training.cache import find_cache

    cache = find_cache(cache)
    progress(f"calibrating INT8 on {calib_clips} training clips of {cache}")
    post = quantize_int8(fp32, int8, CacheCalibrationReader(cache, specs, calib_clips), method)
    progress(f"evaluating on the {eval_split} split")
    samples = list(cache_inputs(cache, specs, eval_split, eval_clips))
    report = {"checkpoint": str(checkpoint), "model": meta["model"], "classes": len(meta["classes"]),
              "calibration": {"clips": calib_clips, "method": method, "split": "train", "cache": str(cache)},
              "size_bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
              "eval": {"split": eval_split, "clips": len(samples)}, "top1": {}, "latency_ms": {},
              "float_nodes": float_nodes(int8), "post_pass": post, "ort_int8_ops": ort_optimized_ops(int8)}
    x = samples[0][0]
    for backend_name in backends:
        for precision, path in (("fp32", fp32), ("int8", int8)):
            try:
                be = session(path, backend_name)
            except Exception as err:  # a backend that cannot run here is reported, not fatal
                report["latency_ms"][f"{backend_name}_{precision}"] = {"error": str(err).splitlines()[0]}
                continue
            with be:
                report["top1"][f"{backend_name}_{precision}"] = accuracy(be, samples)
                report["latency_ms"][f"{backend_name}_{precision}"] = {
                    **latency_ms(be, x, latency_runs), "threads": getattr(be, "threads", None)}
    t = report["top1"]
    if "cpu_fp32" in t and "cpu_int8" in t:
        report["int8_top1_drop_points"] = 100 * (t["cpu_fp32"] - t["cpu_int8"])
    lat = report["latency_ms"]
    if "median" in lat.get("cpu_fp32", {}) and "median" in lat.get("cpu_int8", {}):
        report["int8_speedup_cpu"] = lat["cpu_fp32"]["median"] / lat["cpu_int8"]["median"]
    model_json = {
        "model": meta["model"], "labels": meta["classes"], "inputs": meta["input_specs"], "outputs": ["logits"],
        "preprocessing": preprocessing_of(meta, specs, cache), "fusion": {"softmax": True},
        "producer": producer_versions(), "metrics": {"val_top1": meta.get("best_top1"), **{f"top1_{k}": v for k, v in t.items()}},
    }
    (tmp_out / "model.json").write_text(json.dumps(model_json, indent=1))
    (tmp_out / "report.json").write_text(json.dumps(report, indent=1))
    (tmp_out / "report.md").write_text(report_markdown(report))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp_out, out)
    return report


def preprocessing_of(meta: dict, specs: list[InputSpec], cache) -> dict:
    """What the runtime needs to rebuild training's inputs from a stream: the window is the clip
    length the model was trained on (median frames per training clip of the cache)."""
    import json as _json

    counts = []
    for shard in sorted(Path(cache).glob("shard-*.json")):
        for clip in _json.loads(shard.read_text())["clips"]:
            if clip["split"] == "train":
                counts.append(clip["motion_count"] + clip["iframe_count"])
    frames = int(np.median(counts)) if counts else 48
    return {"representation": specs[0].representation, "segments": max(s.segments for s in specs),
            "size": list(specs[0].size), "window_frames": frames, "stride_frames": max(frames // 2, 1),
            "cache_spec": meta.get("cache_spec", {})}


def producer_versions() -> dict:
    import onnx
    import onnxruntime

    import edgekit

    versions = {"edgekit": edgekit.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "python": platform.python_version(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:
        pass
    return versions


def report_markdown(r: dict) -> str:
    lines = [f"# Quantization report: {r['model']}", "",
             f"Calibration: {r['calibration']['clips']} training clips ({r['calibration']['method']}); "
             f"evaluation: {r['eval']['clips']} {r['eval']['split']} clips.", "",
             "| | FP32 | INT8 |", "|---|---|---|",
             f"| size | {r['size_bytes']['fp32'] / 1e6:.2f} MB | {r['size_bytes']['int8'] / 1e6:.2f} MB |"]
    for backend in ("cpu", "openvino"):
        t, lat = r["top1"], r["latency_ms"]
        if f"{backend}_fp32" in t:
            lines.append(f"| top-1 ({backend}) | {100 * t[backend + '_fp32']:.1f} % | {100 * t[backend + '_int8']:.1f} % |")
        if "median" in lat.get(f"{backend}_fp32", {}):
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
