"""Checkpoint -> FP32 ONNX, and the model description (``model.json``) a package is built from.

The model description says what the runtime needs beside the ONNX file: labels, input specs, the
preprocessing that rebuilds training's inputs from a stream, fusion, and who produced it.
"""

from __future__ import annotations

from pathlib import Path

from edgekit._fileio import atomic_output
from edgekit._versions import producer_versions
from edgekit.spec import InputSpec

DEFAULT_WINDOW_FRAMES = 48  # a cache without training clips: the synthetic benchmark's clip length


def export_fp32(checkpoint, path: Path) -> tuple[dict, list[InputSpec]]:
    """Write the checkpoint's model as static-shape FP32 ONNX to ``path`` (atomically); returns the
    checkpoint's metadata and the model's input specs."""
    from training.checkpoint import build_from_checkpoint
    from training.models import export_onnx

    model, meta = build_from_checkpoint(checkpoint)
    with atomic_output(path, suffix=".onnx") as tmp:
        export_onnx(model, tmp)
    return meta, [InputSpec.from_dict(d) for d in meta["input_specs"]]


def preprocessing_of(meta: dict, specs: list[InputSpec], cache) -> dict:
    """What the runtime needs to rebuild training's inputs from a stream: the window is the clip
    length the model was trained on (median frames per training clip of the cache)."""
    from training.cache import cache_statistics

    frames = cache_statistics(cache).median_frames_per_clip.get("train", DEFAULT_WINDOW_FRAMES)
    return {"representation": specs[0].representation, "segments": max(s.segments for s in specs),
            "size": list(specs[0].size), "window_frames": frames, "stride_frames": max(frames // 2, 1),
            "cache_spec": meta.get("cache_spec", {})}


def model_description(meta: dict, specs: list[InputSpec], cache, top1: dict[str, float],
                      calibration=None) -> dict:
    """The ``model.json`` of a quantize output folder; ``top1``: accuracy per ``<backend>_<precision>``;
    ``calibration``: an ``edgekit.manifest.Calibration`` (temperature and "none" threshold) that
    ``edgekit export`` carries into the package's manifest, or None."""
    return {
        "model": meta["model"], "labels": meta["classes"], "inputs": meta["input_specs"], "outputs": ["logits"],
        "preprocessing": preprocessing_of(meta, specs, cache), "fusion": {"softmax": True},
        "producer": producer_versions(),
        "metrics": {"val_top1": meta.get("best_top1"), **{f"top1_{k}": v for k, v in top1.items()}},
        **({"calibration": calibration.to_dict()} if calibration is not None else {}),
    }
