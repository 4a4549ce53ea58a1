"""Static INT8 QDQ quantization of an FP32 ONNX model, calibrated on real inputs, then the post-pass.

Settings (why):
- QDQ format: the explicit-quantization form that ONNX Runtime, OpenVINO and TensorRT all consume.
- Weights int8, symmetric, per output channel: the accuracy of per-channel with the simplicity of
  zero-point 0.
- Activations int8, **symmetric** (zero-point 0): TensorRT's explicit quantization requires it;
  ORT and OpenVINO run it as well.
- Calibration on real cached side data of the training split (MinMax by default; Percentile and
  Entropy available), so ranges are those the device will see (:mod:`quantize.calibration`).
- Post-pass (:mod:`quantize.graph`): every consumer of a quantized tensor gets its own Q -> DQ
  pair. Exact, and without it ONNX Runtime on x86 runs every residual block's conv1 and downsample
  Conv in float (11 of edge-mvr's 20 Convs) and INT8 is slower than FP32.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgekit._fileio import atomic_output
from edgekit.errors import ConfigError

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize_int8(fp32: Path, out: Path, reader, method: str = "minmax", plain_out: Path | None = None) -> dict:
    """Static INT8 QDQ of ``fp32`` into ``out`` (atomically), calibrated on ``reader`` (an ORT
    ``CalibrationDataReader``); returns what the post-pass changed. ``plain_out``: also write the
    quantizer's output before the post-pass there (for comparisons). Raises :class:`ConfigError` for
    an unknown ``method``, ``RuntimeError`` if a Q/DQ zero point is not int8 0 (TensorRT needs it)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from quantize.graph import unshare_quantized_tensors, zero_point_violations

    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration method must be one of {sorted(CALIBRATION_METHODS)}, got {method!r}")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
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
            with atomic_output(plain_out, suffix=".onnx") as plain:
                shutil.copyfile(qdq, plain)
    changes = {"unshared_pairs": unshare_quantized_tensors(model)}
    bad = zero_point_violations(model)
    if bad:
        raise RuntimeError("quantized model breaks TensorRT's zero-point-0 rule: " + "; ".join(bad[:5]))
    onnx.checker.check_model(model)
    with atomic_output(out, suffix=".onnx") as tmp_out:
        onnx.save(model, str(tmp_out))
    return changes
