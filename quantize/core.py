"""Checkpoint -> FP32 ONNX -> static INT8 QDQ -> evaluation -> report, into one output folder.

The steps live in their own modules: :mod:`quantize.export` (FP32 ONNX and ``model.json``),
:mod:`quantize.int8` (quantization settings and the post-pass), :mod:`quantize.calibration` (real
side data), :mod:`quantize.evaluate` (top-1 and latency per backend) and :mod:`quantize.report`;
the scores' temperature and "none" threshold are fitted by :mod:`edgekit.calibration`
(:func:`calibrate_scores`). This module only runs them in order and publishes the folder whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_folder, atomic_write
from edgekit.calibration import choose_threshold, false_event_rate, fit
from edgekit.fusion import softmax
from edgekit.manifest import Calibration
from quantize.export import export_fp32, model_description
from quantize.int8 import DEFAULT_CALIB_CLIPS, DEFAULT_METHOD, CalibrationSettings
from quantize.report import build_report, report_markdown

__all__ = ["calibrate_scores", "quantize_checkpoint", "report_markdown"]

MAX_FALSE_EVENT_RATE = 0.05  # the threshold's rule: at most 5 % of static clips reported as an event
MIN_STATIC_CLIPS = 20  # fewer cannot measure a 5 % rate (one false event would be over it)


def calibrate_scores(model_path: Path, samples: list[tuple[dict, int]], labels: list[str],
                     split: str = "val") -> Calibration | None:
    """Temperature and "none" threshold of the ONNX model at ``model_path`` (the INT8 one: what a
    package ships) over ``samples`` ((inputs, label index) of the cache's ``split``; one clip is one
    window). The threshold is the lowest under which at most :data:`MAX_FALSE_EVENT_RATE` of the
    split's ``static`` clips are reported as an event, when it has at least :data:`MIN_STATIC_CLIPS`
    of them; else 0 (``edgekit calibrate`` sets it, with noise-only clips beside the static ones).
    None when there are no samples."""
    from quantize.evaluate import load_session

    if not samples:
        return None
    with load_session(model_path, "cpu") as backend:
        logits = np.stack([np.asarray(backend.run(x)["logits"][0], np.float64) for x, _ in samples])
    truth = np.array([y for _, y in samples])
    fitted = fit(logits, truth)
    scores = softmax(logits, fitted.temperature)
    negatives = {"static": scores[truth == labels.index("static")]} if "static" in labels else {}
    negatives = {name: s for name, s in negatives.items() if len(s)}
    enough = sum(map(len, negatives.values())) >= MIN_STATIC_CLIPS
    threshold = choose_threshold(negatives, labels, MAX_FALSE_EVENT_RATE) if enough else 0.0
    return Calibration(temperature=round(fitted.temperature, 6), threshold=threshold, split=split,
                       clips=fitted.clips, nll_before=round(fitted.nll_before, 6), nll_after=round(fitted.nll_after, 6),
                       ece_before=round(fitted.ece_before, 6), ece_after=round(fitted.ece_after, 6),
                       rule=f"max_false_event_rate={MAX_FALSE_EVENT_RATE:g}" if enough else
                       f"fixed: fewer than {MIN_STATIC_CLIPS} static {split} clips; set it with edgekit calibrate",
                       false_event_rate={name: round(false_event_rate(s, labels, threshold), 6)
                                         for name, s in negatives.items()})


def quantize_checkpoint(checkpoint, out_dir, *, calib=None, calib_clips: int = DEFAULT_CALIB_CLIPS,
                        method: str = DEFAULT_METHOD, settings: CalibrationSettings | None = None,
                        eval_split: str = "test", eval_clips: int | None = None, latency_runs: int = 50,
                        backends=("cpu", "openvino"), progress=print) -> dict:
    """Write ``out_dir`` (model.json, fp32.onnx, int8.onnx, report.json, report.md); returns the report.
    INT8 is calibrated on ``calib_clips`` training clips with ``settings`` (default: ``method`` with
    :class:`quantize.int8.CalibrationSettings`' defaults). Raises ConfigError for a bad setting.

    The folder appears whole or not at all: it is written beside ``out_dir`` under a temporary name
    (every file fsync'ed) and renamed over it at the end."""
    from quantize.calibration import CacheCalibrationReader, cache_inputs
    from quantize.evaluate import evaluate_models
    from quantize.graph import float_nodes, ort_optimized_ops
    from quantize.int8 import quantize_int8
    from training.cache import find_cache

    settings = settings if settings is not None else CalibrationSettings(method=method)
    with atomic_folder(Path(out_dir)) as folder:
        fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
        progress("exporting FP32 ONNX")
        meta, specs = export_fp32(checkpoint, fp32)
        cache = find_cache(calib or meta["cache"])
        progress(f"calibrating INT8 ({settings.method}) on {calib_clips} training clips of {cache}")
        post = quantize_int8(fp32, int8, CacheCalibrationReader(cache, specs, calib_clips), settings=settings)
        progress(f"evaluating on the {eval_split} split")
        samples = list(cache_inputs(cache, specs, eval_split, eval_clips))
        results = evaluate_models({"fp32": fp32, "int8": int8}, samples, backends, latency_runs)
        report = build_report(
            checkpoint=checkpoint, meta=meta,
            calibration={"clips": calib_clips, "method": settings.method, "split": "train", "cache": str(cache),
                         "settings": settings.to_dict()},
            size_bytes={"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
            evaluation={"split": eval_split, "clips": len(samples)}, results=results,
            float_nodes=float_nodes(int8), post_pass=post, ort_int8_ops=ort_optimized_ops(int8))
        progress("calibrating scores (temperature, 'none' threshold) on the val split")
        val_samples = list(cache_inputs(cache, specs, "val"))
        calibration = calibrate_scores(int8, val_samples, list(meta["classes"]))
        description = model_description(meta, specs, cache, report["top1"], calibration)
        atomic_write(folder / "model.json", json.dumps(description, indent=1))
        atomic_write(folder / "report.json", json.dumps(report, indent=1))
        atomic_write(folder / "report.md", report_markdown(report))
    return report
