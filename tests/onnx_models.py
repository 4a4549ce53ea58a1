"""Tiny REAL models for backend and package tests: a torch conv net exported to ONNX and quantized.

The net follows the edgekit 2D convention: input ``mv_residual`` of shape (1, S, C, H, W) = BSCHW,
segments folded into the batch, conv -> relu -> conv -> global pool -> linear per segment, then the
segment consensus (mean) -> ``logits`` (1, K). Exported with ``torch.onnx.export`` (opset 17, static
shapes) and quantized to INT8 QDQ with ``onnxruntime.quantization.quantize_static`` (symmetric int8
activations, per-channel int8 weights). Built once per test process (memoised) and written to a
``MODEL_DIR`` layout with :func:`make_model_dir`.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
from pathlib import Path

import numpy as np

SHAPE = (1, 3, 5, 32, 32)  # BSCHW: 3 segments of stacked MV (2) + residual (3) at 32x32
LABELS = ("walk", "run", "jump", "wave")
INPUT_NAME = "mv_residual"


def _build_net(seed: int):
    import torch
    from torch import nn

    class TinySegmentNet(nn.Module):
        def __init__(self, num_classes: int):
            super().__init__()
            self.conv1 = nn.Conv2d(5, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(16, num_classes)

        def forward(self, mv_residual):
            b, s, c, h, w = SHAPE
            x = mv_residual.reshape(b * s, c, h, w)
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)  # (B*S, 16)
            x = self.fc(x).reshape(b, s, -1)
            return x.mean(dim=1)  # segment consensus -> (B, K)

    torch.manual_seed(seed)
    return TinySegmentNet(len(LABELS)).eval()


def random_input(seed: int) -> np.ndarray:
    """One float32 input of :data:`SHAPE`, deterministic by seed."""
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


@functools.lru_cache(maxsize=None)
def tiny_model(seed: int = 0):
    """(torch module, FP32 ONNX bytes, INT8 QDQ ONNX bytes), built once per process."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantFormat, QuantType

    net = _build_net(seed)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(random_input(0)),), buffer, input_names=[INPUT_NAME],
                          output_names=["logits"], opset_version=17, do_constant_folding=True, dynamo=False)
    fp32 = buffer.getvalue()
    int8 = quantize_bytes(fp32, first_seed=100, batches=4, quant_format=QuantFormat.QDQ,
                          activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                          extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return net, fp32, int8


def quantize_bytes(fp32: bytes, *, first_seed: int, batches: int, **options) -> bytes:
    """``fp32`` quantized by ONNX Runtime's ``quantize_static`` (per channel, ``options`` as its
    keywords), calibrated on ``batches`` random inputs seeded from ``first_seed``."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: random_input(first_seed + i)} for i in range(batches)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(str(src), str(dst), Calibration(), per_channel=True, **options)
        return dst.read_bytes()


def torch_logits(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The torch model's own output for ``x`` (the reference the backends are checked against)."""
    import torch

    net = tiny_model(seed)[0]
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def model_json(**overrides) -> dict:
    """The ``model.json`` of a MODEL_DIR holding the tiny model."""
    from edgekit.spec import InputSpec

    meta = {
        "model": "tiny-segment-net",
        "labels": list(LABELS),
        "inputs": [InputSpec(INPUT_NAME, "mv_residual", SHAPE).to_dict()],
        "outputs": ["logits"],
        "preprocessing": {"representation": "accumulated", "window_s": 2.0, "stride_s": 1.0, "segments": 3},
        "fusion": {"softmax": True},
        "producer": {"torch": "2.13.0", "quantize": "onnxruntime.quantization QDQ"},
        "metrics": {"top1_fp32": 0.5, "top1_int8": 0.5},
    }
    meta.update(overrides)
    return meta


def make_model_dir(path: Path, *, fp32: bool = True, int8: bool = True, seed: int = 0, **overrides) -> Path:
    """Write a MODEL_DIR (``model.json`` + ``fp32.onnx`` and/or ``int8.onnx``) at ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _, fp32_bytes, int8_bytes = tiny_model(seed)
    (path / "model.json").write_text(json.dumps(model_json(**overrides), indent=1))
    if fp32:
        (path / "fp32.onnx").write_bytes(fp32_bytes)
    if int8:
        (path / "int8.onnx").write_bytes(int8_bytes)
    return path


def export_mv_onnx(net, path: Path, shape: tuple[int, ...]) -> Path:
    """``net`` (in eval mode) as FP32 ONNX at ``path``: input ``mv`` of ``shape``, output ``logits``, opset 17."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(shape),), str(path), input_names=["mv"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    return path


def conv_classifier_onnx(path: Path, shape: tuple[int, ...] = (1, 2, 16, 16), classes: int = 4) -> Path:
    """A small FP32 ONNX classifier (two convs with ReLUs, pooling, a linear layer; input ``mv`` of
    ``shape``, output ``logits``), seeded: the calibration tests' model, written to ``path``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(shape[1], 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
    return export_mv_onnx(net, path, shape)


def mv_tsn_onnx(segments: int, labels: int, size: int, input_name: str = "motion") -> bytes:
    """A seeded TSN over motion vectors as FP32 ONNX bytes: per segment conv -> conv -> pool -> linear,
    then the segment mean; input ``input_name`` (1, segments, 2, size, size), output ``logits``."""
    import torch
    from torch import nn

    class MVNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(16, labels)

        def forward(self, motion):
            x = motion.reshape(segments, 2, size, size)
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
            return (self.fc(x) * 8.0).reshape(1, segments, labels).mean(dim=1)

    torch.manual_seed(7)
    buffer = io.BytesIO()
    torch.onnx.export(MVNet().eval(), (torch.zeros(1, segments, 2, size, size),), buffer, input_names=[input_name],
                      output_names=["logits"], opset_version=17, dynamo=False)
    return buffer.getvalue()


def mv_tsn_package(root: Path, *, representation: str = "accumulated", modality: str = "mv", size: int = 32,
                   window: tuple[int, int] = (16, 8)) -> Path:
    """A real FP32 package of :func:`mv_tsn_onnx` on 3 segments of ``modality`` ("mv": P/B frames,
    "mv_ref": P-frames only), labels left/right/up/down, windows of ``window`` (frames, stride)."""
    from edgekit.package import write_package
    from edgekit.spec import InputSpec

    labels = ["left", "right", "up", "down"]
    spec = InputSpec("motion", modality, (1, 3, 2, size, size), representation=representation)
    model_dir = Path(root) / f"model-{modality}-{representation}"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "fp32.onnx").write_bytes(mv_tsn_onnx(3, len(labels), size))
    (model_dir / "model.json").write_text(json.dumps({
        "model": f"{modality}-tiny-{representation}", "labels": labels, "inputs": [spec.to_dict()],
        "outputs": ["logits"], "preprocessing": {"window_frames": window[0], "stride_frames": window[1]},
        "fusion": {"softmax": True}}))
    return write_package(model_dir, Path(root) / f"{modality}-{representation}.edgepkg", precision="fp32")


def default_with_cache_spec(path: Path, kind: str = "mv", **fields) -> Path:
    """The bundled default package ``kind`` ("mvr" or "mv") rewritten to ``path`` with ``fields``
    set in its ``preprocessing.cache_spec`` (how the Recognizer reads a stream for it)."""
    from dataclasses import replace

    from edgekit.manifest import Preprocessing
    from edgekit.package import load_package, rewrite_package
    from edgekit.recognizer import DEFAULT_PACKAGES

    package = load_package(DEFAULT_PACKAGES[kind])
    pre = package.manifest.preprocessing
    extra = {**dict(pre.extra), "cache_spec": {**dict(pre.extra["cache_spec"]), **fields}}
    manifest = replace(package.manifest, preprocessing=Preprocessing(pre.window_frames, pre.stride_frames, extra))
    return rewrite_package(package, path, manifest)
