"""Static INT8 QDQ quantization of an FP32 ONNX model, calibrated on real inputs, then the post-pass.

Settings (why):
- QDQ format: the explicit-quantization form that ONNX Runtime, OpenVINO and TensorRT all consume.
- Weights int8, symmetric, per output channel: the accuracy of per-channel with the simplicity of
  zero-point 0.
- Activations int8, **symmetric** (zero-point 0): TensorRT's explicit quantization requires it;
  ORT and OpenVINO run it as well. (A ReLU output quantized so keeps 7 of the 8 bits; measured on
  the reproduction's rows by ``benchmarks/int8_calibration.py``, see :class:`CalibrationSettings`.)
- Calibration on real cached side data of the training split (:mod:`quantize.calibration`), so
  ranges are those the device will see: :class:`CalibrationSettings` says how a tensor's range is
  taken from them. Default: the 99.99th percentile of |x| over 256 clips. Over the 20 rows of
  ``edgekit reproduce --preset small`` it changed the fewest test predictions against FP32 of the
  TensorRT-compatible recipes tried (``benchmarks/int8_calibration.py``,
  ``docs/results/int8-calibration.json``); MinMax lets one outlier clip set a range (and more clips
  make that worse), ORT's Entropy flipped the most.
- Post-pass (:mod:`quantize.graph`): every consumer of a quantized tensor gets its own Q -> DQ
  pair. Exact, and without it ONNX Runtime on x86 runs every residual block's conv1 and downsample
  Conv in float (11 of edge-mvr's 20 Convs) and INT8 is slower than FP32.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_output
from edgekit.errors import ConfigError

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
ACTIVATION_TYPES = ("int8-symmetric", "uint8-asymmetric")
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
DEFAULT_CALIB_CLIPS = 256
DEFAULT_BIAS_CORRECTION_CLIPS = 64
HISTOGRAM_CHUNK_CLIPS = 16


@dataclass(frozen=True)
class CalibrationSettings:
    """How each activation tensor's range is taken from the calibration clips.

    ``method``: ``minmax`` (the extremes seen), ``percentile`` (the ``percentile`` % quantile of
    |x| over a ``histogram_bins``-bin histogram, default 2048), ``entropy`` (the range minimising the
    KL divergence of the ``quantized_bins``-bin quantized histogram to the ``histogram_bins``-bin one,
    default 512: its search is quadratic in the bins).
    ``moving_average`` (minmax only): an exponential moving average (``averaging_constant``) of each
    clip's extremes instead of the extremes of all clips. ``activations``: ``int8-symmetric``
    (zero point 0, what TensorRT requires: the default and the only setting a package may ship) or
    ``uint8-asymmetric``, a DIAGNOSTIC only (how much the symmetric rule costs a ReLU output, which
    keeps 7 of 8 bits): its model breaks TensorRT's rule and the zero-point check is skipped.
    ``float_ends`` (default True): the weighted layers at the model's ends (:func:`end_layers`: the
    first one reading each input, the last one before each output) stay in float, the rest INT8;
    TensorRT runs those in FP16. Over the 20 rows of the seed papers' table it flips 15 % fewer
    test clips than quantizing every layer (benchmarks/int8_calibration.py); False quantizes every
    layer. ``float_adds`` (default False): the additions (a ResNet's skip connections) run in
    float: their sums are not rounded to INT8 (the ReLU after them is, where the next layer reads
    it); every Conv and Gemm keeps its INT8 inputs and weights. Over the 20 reproduction rows it
    flips fewer clips (val split 220 -> 196, test 466 -> 435; ``benchmarks/int8_calibration.py``)
    at the same ONNX Runtime speed, but it keeps fewer rows within 1 point of FP32 on the test
    split (15 against 18: net gaps of 3-4 clips either way), and TensorRT's INT8 fusions want the
    residual connections quantized (NVIDIA's Q/DQ placement for ResNets puts Q/DQ on them); so it
    is an option, not the default. ``bias_correction`` (default False): after quantizing, each
    weighted layer's bias absorbs the mean shift INT8 leaves in its output channels, measured on
    the first ``bias_correction_clips`` calibration clips (:mod:`quantize.bias`); only biases
    change, so the model stays TensorRT-compatible.
    Raises :class:`ConfigError` for an unknown method or activation type or an out-of-range value."""

    method: str = DEFAULT_METHOD
    percentile: float = DEFAULT_PERCENTILE
    moving_average: bool = False
    averaging_constant: float = 0.01
    histogram_bins: int | None = None
    quantized_bins: int = 128
    activations: str = "int8-symmetric"
    float_ends: bool = True
    float_adds: bool = False
    bias_correction: bool = False
    bias_correction_clips: int = DEFAULT_BIAS_CORRECTION_CLIPS

    def __post_init__(self):
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration method must be one of {sorted(CALIBRATION_METHODS)}, got {self.method!r}")
        if self.activations not in ACTIVATION_TYPES:
            raise ConfigError(f"activations must be one of {list(ACTIVATION_TYPES)}, got {self.activations!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}; 99.99 or 99.999 are usual")
        if not 0.0 < self.averaging_constant <= 1.0:
            raise ConfigError(f"averaging_constant must be in (0, 1], got {self.averaging_constant}")
        if self.moving_average and self.method != "minmax":
            raise ConfigError("moving_average applies to the minmax method only; drop it or use --calib-method minmax")
        if self.bias_correction_clips < 1:
            raise ConfigError(f"bias_correction_clips must be at least 1, got {self.bias_correction_clips}")
        if self.bins < 2 * self.quantized_bins or self.quantized_bins < 2:
            raise ConfigError(f"need histogram_bins >= 2 * quantized_bins >= 4, got {self.bins} "
                              f"and {self.quantized_bins}")

    @property
    def bins(self) -> int:
        """The histogram's bins: ``histogram_bins``, else 2048 (percentile) or 512 (entropy)."""
        if self.histogram_bins is not None:
            return self.histogram_bins
        return 512 if self.method == "entropy" else 2048

    @property
    def tensorrt_compatible(self) -> bool:
        return self.activations == "int8-symmetric"

    def to_dict(self) -> dict:
        return asdict(self)

    def calibrator_options(self) -> dict:
        """The keyword options of ONNX Runtime's ``create_calibrator`` for these settings."""
        symmetric = self.activations == "int8-symmetric"
        if self.method == "minmax":
            return {"symmetric": symmetric, "moving_average": self.moving_average,
                    "averaging_constant": self.averaging_constant}
        if self.method == "percentile":
            return {"symmetric": symmetric, "num_bins": self.bins, "percentile": self.percentile}
        return {"symmetric": symmetric, "num_bins": self.bins, "num_quantized_bins": self.quantized_bins}


def _calibrate(pre: Path, reader, settings: CalibrationSettings, folder: Path):
    """The activation ranges (ORT ``TensorsData``) of the model at ``pre`` over ``reader``'s inputs.

    Built here rather than by ``quantize_static`` for two reasons. It does not pass histogram sizes
    to its calibrators (its Entropy then has 128 bins and one candidate range: MinMax's). And a
    histogram calibrator holds every activation of what it is given, so it is fed in chunks; its
    histograms would then grow a bin at a time past the first chunk's range (millions of bins when
    a later clip is larger), so each starts empty over the tensor's extremes over all clips, found
    by a MinMax pass first."""
    from onnxruntime.quantization.calibrate import HistogramCollector, create_calibrator

    options = settings.calibrator_options()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # ORT's histogram calibrators print
        if settings.method == "minmax":  # keeps two numbers per tensor and clip
            calibrator = create_calibrator(pre, augmented_model_path=str(folder / "augmented.onnx"),
                                           calibrate_method=_ort_method("minmax"), extra_options=options)
            calibrator.collect_data(reader)
            return calibrator.compute_data()
        inputs = list(iter(reader.get_next, None))
        extremes = create_calibrator(pre, augmented_model_path=str(folder / "extremes.onnx"),
                                     calibrate_method=_ort_method("minmax"), extra_options={"symmetric": False})
        extremes.collect_data(_ListReader(inputs))
        ranges = {name: data.range_value for name, data in extremes.compute_data().data.items()}
        del extremes
        calibrator = create_calibrator(pre, augmented_model_path=str(folder / "augmented.onnx"),
                                       calibrate_method=_ort_method(settings.method), extra_options=options)
        collector = HistogramCollector(method=settings.method, symmetric=options["symmetric"], num_bins=settings.bins,
                                       num_quantized_bins=settings.quantized_bins, percentile=settings.percentile,
                                       scenario="same")
        absolute = settings.method == "percentile" and options["symmetric"]  # a histogram of |x|, else of x
        for name, (lowest, highest) in ranges.items():
            lowest, highest = np.float32(np.min(lowest)), np.float32(np.max(highest))
            bound = np.float32(max(-lowest, highest, 1e-12))
            empty = np.zeros(settings.bins, np.int64)
            if absolute:
                collector.histogram_dict[name] = (empty, np.linspace(0, bound, settings.bins + 1, dtype=np.float32),
                                                  lowest, highest)
            else:
                collector.histogram_dict[name] = (empty, np.linspace(-bound, bound, settings.bins + 1,
                                                                     dtype=np.float32),
                                                  lowest, highest, bound)
        calibrator.collector = collector
        for start in range(0, len(inputs), HISTOGRAM_CHUNK_CLIPS):
            calibrator.collect_data(_ListReader(inputs[start:start + HISTOGRAM_CHUNK_CLIPS]))
        return calibrator.compute_data()


class _ListReader:
    """ONNX Runtime's CalibrationDataReader over a list of input dicts."""

    def __init__(self, inputs: list[dict]):
        self._it = iter(inputs)

    def get_next(self):
        return next(self._it, None)


def quantize_int8(fp32: Path, out: Path, reader, method: str = DEFAULT_METHOD, plain_out: Path | None = None, *,
                  settings: CalibrationSettings | None = None) -> dict:
    """Static INT8 QDQ of ``fp32`` into ``out`` (atomically), calibrated on ``reader`` (an ORT
    ``CalibrationDataReader``); returns what the post-pass changed. ``settings`` (default: ``method``
    with the defaults of :class:`CalibrationSettings`) say how ranges are calibrated. ``plain_out``:
    also write the quantizer's output before the post-pass there (for comparisons). Raises
    :class:`ConfigError` for an unknown ``method``, ``RuntimeError`` if a Q/DQ zero point is not
    int8 0 (TensorRT needs it; not checked for the ``uint8-asymmetric`` diagnostic)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from quantize.graph import unshare_quantized_tensors, zero_point_violations

    settings = settings if settings is not None else CalibrationSettings(method=method)
    symmetric = settings.tensorrt_compatible
    clips = None
    if settings.bias_correction:  # the clips are read twice: kept
        clips = list(iter(reader.get_next, None))
        reader = _ListReader(clips)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
        ranges = Path(tmp) / "ranges.json"  # quantize_static reads the ranges computed by _calibrate from here
        save_tensors_data(_calibrate(pre, reader, settings, Path(tmp)), ranges)
        qdq = Path(tmp) / "qdq.onnx"
        excluded = []
        if settings.float_ends or settings.float_adds:  # the layers kept in float, named in the graph
            graph_model = onnx.load(str(pre))
            if settings.float_ends:
                excluded += end_layers(graph_model)
            if settings.float_adds:
                excluded += [n.name for n in graph_model.graph.node if n.op_type in ("Add", "Sum") and n.name]
        quantize_static(str(pre), str(qdq), None, quant_format=QuantFormat.QDQ, per_channel=True,
                        nodes_to_exclude=excluded,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=_ort_method(settings.method),
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
                        calibration_cache_path=ranges)
        model = onnx.load(str(qdq))
        if plain_out is not None:
            with atomic_output(plain_out, suffix=".onnx") as plain:
                shutil.copyfile(qdq, plain)
        corrected = None
        if clips is not None:
            from quantize.bias import correct_biases

            corrected = correct_biases(onnx.load(str(pre)), model, clips[:settings.bias_correction_clips])
    changes = {"unshared_pairs": unshare_quantized_tensors(model)}
    if corrected is not None:
        changes["bias_correction"] = corrected
    bad = zero_point_violations(model) if symmetric else []
    if bad:
        raise RuntimeError("quantized model breaks TensorRT's zero-point-0 rule: " + "; ".join(bad[:5]))
    onnx.checker.check_model(model)
    with atomic_output(out, suffix=".onnx") as tmp_out:
        onnx.save(model, str(tmp_out))
    return changes


_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# ops that move or reshape values without computing on them: looked through to find the end layers
_PASS_THROUGH = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Slice", "Split",
                 "Concat", "Gather", "Cast", "Pad")


def end_layers(model) -> list[str]:
    """Names of the weighted layers (Conv, Gemm, MatMul) at the model's ends: the first ones that
    read a graph input (directly or through ops that only move values: reshapes, transposes,
    slices, and concatenations of such views) and the last one on each path to a graph output
    (looking back through those ops and through additions and averages of logits). A layer that
    reads a concatenation of the input with computed features (a dense block) is not a first layer.
    Kept in float by ``CalibrationSettings.float_ends``: the layer that reads raw motion vectors,
    residuals or pixels and the classifier are the ones whose INT8 rounding flips the most
    decisions in a small network; TensorRT runs them in FP16."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    producer = {out: node for node in graph.node for out in node.output}
    raw = {value.name for value in graph.input if value.name not in constants}  # views of the inputs
    names: list[str] = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        data = [t for t in node.input if t and t not in constants]
        if node.op_type in _WEIGHTED:
            if data and data[0] in raw:
                names.append(node.name)
        elif node.op_type in _PASS_THROUGH and data:
            # Concat moves every input; the other ops move their first (data) input, the rest are
            # shapes, indices or pads
            moved = data if node.op_type == "Concat" else data[:1]
            if all(t in raw for t in moved):
                raw.update(node.output)

    def backward(tensor: str, seen: set) -> None:
        node = producer.get(tensor)
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        if node.op_type in _WEIGHTED:
            names.append(node.name)
        elif node.op_type in _PASS_THROUGH + ("Add", "Sum", "Mul", "ReduceMean", "Mean", "Softmax", "Div"):
            for name in node.input:
                backward(name, seen)

    for value in graph.output:
        backward(value.name, set())
    if any(not n for n in names):
        raise ValueError("float_ends needs named nodes: the exported graph has an unnamed weighted layer")
    return list(dict.fromkeys(names))


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[method]
