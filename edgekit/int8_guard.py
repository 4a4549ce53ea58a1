"""The INT8 accuracy guard of ``edgekit export``: FP32 against INT8 on held-out clips, and the fallback
that keeps the most sensitive layers in FP32.

>>> from edgekit.int8_guard import check_int8, fallback_int8
>>> report = check_int8("models/edge-mvr", "data/synth-small-motion", max_drop_points=1.0)
>>> report.fp32_top1, report.int8_top1, report.drop_points, report.agreement, report.passed
>>> report.raise_if_failed()          # AccuracyGuardError naming both top-1s and what to do next
>>> onnx_bytes, report = fallback_int8("models/edge-mvr", "data/synth-small-motion", max_drop_points=1.0)
>>> [(layer.name, layer.sensitivity) for layer in report.kept_fp32]

**Data.** ``data`` is a dataset folder in the UCF-101 layout (what ``edgekit synth`` writes; a clip's
class is its folder), of which the ``split`` split is used (default "test": held out from training
and from calibration, which reads the training split). Its classes must be among the model's labels.

**Path.** Each clip is read exactly as :class:`edgekit.Recognizer` reads it: an FP32 package is
written from the ``MODEL_DIR`` into a temporary folder and loaded by a Recognizer on ONNX Runtime;
its bitstream reader, frame selection and ``edgekit.preprocess`` make each window's inputs, which
are recorded as the Recognizer's own FP32 backend consumes them. The INT8 model then runs through
ONNX Runtime on those very arrays, so FP32 and INT8 see identical tensors. A window's scores are
the package's score output (softmax of the logits when the fusion says so); a clip's scores are
the mean over its windows (``edgekit.fusion.fuse``), as ``Recognizer.recognize`` fuses them.

**Metrics.** ``fp32_top1`` / ``int8_top1``: video-level top-1 (fractions) against the clips'
folders; ``drop_points``: 100 x (FP32 - INT8) counted in clips (negative when INT8 does better);
``agreement``: the fraction of windows whose INT8 top-1 class is the FP32 one. The guard passes
when ``drop_points <= max_drop_points`` and, if ``min_agreement`` is given, ``agreement >=
min_agreement`` (a label-free criterion, useful on small held-out sets where one clip is many
points).

**Fallback.** :func:`fallback_int8` measures, for each quantized compute node (Conv, ConvTranspose,
Gemm, MatMul), how much closer the INT8 outputs come to FP32's when that node alone runs in FP32:
it takes the FP32 model's weights and bias (the INT8 model's dequantized values where the FP32 ones
cannot be matched), and its activation inputs skip their QuantizeLinear -> DequantizeLinear pairs,
back through the weightless ops between it and the previous quantization point (ReLU, pooling,
reshapes: :data:`FLOAT_PATH_OPS`, recomputed in float on a copy; the originals still feed every
other consumer); its output reaches the consumers that are not layers nor such ops (a residual
Add, a Concat) unquantized. Without the walk the input would be no more precise: a ReLU of a
dequantized tensor is already on its quantization grid. The price: the op that makes a kept layer's
float input (the layer before it, or a residual Add) then outputs float too, so ONNX Runtime runs
it in float, on int8-grid inputs and weights (for edge-mvr, keeping one Conv in FP32 turns 20
QLinearConv into 18 or 19). The sensitivity is the normalised mean squared error of
the score output against FP32 that this removes (``err(INT8) - err(INT8 with that node in FP32)``;
``err = mean((y - y_fp32)^2) / var(y_fp32)``), measured on up to :data:`SENSITIVITY_WINDOWS`
held-out windows. The nodes are ranked by it and kept in FP32 one by one, most sensitive first,
each step re-measured on every held-out window, until the guard passes. Everything else keeps its
symmetric zero-point-0 int8 Q/DQ (``quantize.graph.zero_point_violations`` stays empty), inputs
and outputs are unchanged, and ONNX Runtime and OpenVINO load the result. A quantization point next to
no compute node (the logits' own Q/DQ after the last layer's reshape) is never removed. Graph surgery needs the ``onnx`` package (extra ``train``).

Runtime dependencies for the check: numpy, PyAV, ONNX Runtime (no torch).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgekit._onnxgraph import consumers, unique_name
from edgekit.errors import AccuracyGuardError, ConfigError, MissingDependencyError, SourceError

DEFAULT_MAX_DROP_POINTS = 1.0
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})  # the layers the fallback may keep in FP32
# weightless ops between a layer and the previous quantization point that ORT runs on quantized data or
# that merely pool it: a layer in FP32 gets its input recomputed through them from float (see _float_source)
FLOAT_PATH_OPS = frozenset({"Relu", "LeakyRelu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool",
                            "GlobalMaxPool", "ReduceMean", "Reshape", "Flatten", "Transpose", "Squeeze",
                            "Unsqueeze", "Identity"})
SENSITIVITY_WINDOWS = 256  # held-out windows the per-layer ranking is measured on (every greedy step uses all)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KeptLayer:
    """A compute node the fallback runs in FP32: its ONNX node ``name``, ``op_type``, and its
    ``sensitivity`` (the normalised output MSE against FP32 removed when it alone is in FP32)."""

    name: str
    op_type: str
    sensitivity: float

    def to_dict(self) -> dict:
        return {"name": self.name, "op_type": self.op_type, "sensitivity": self.sensitivity}


@dataclass(frozen=True)
class Int8GuardReport:
    """FP32 against INT8 on held-out clips (see the module docstring for the metrics).

    ``fp32_top1`` / ``int8_top1``: video-level top-1 fractions (0-1); ``drop_points``: 100 x their
    difference (positive: INT8 is worse); ``agreement``: fraction of windows with the FP32 top-1;
    ``passed``: within ``max_drop_points`` (and ``min_agreement`` when given); ``clips`` /
    ``windows``: how many were evaluated, from the ``split`` split of ``data``; ``kept_fp32``: the
    layers a fallback keeps in FP32, most sensitive first (empty for the plain check);
    ``quantized_layers``: the INT8 model's quantized compute nodes, counted by the fallback (0 from
    :func:`check_int8`); ``elapsed_s``: wall time of the call.
    """

    fp32_top1: float
    int8_top1: float
    drop_points: float
    agreement: float
    passed: bool
    max_drop_points: float
    clips: int
    windows: int
    split: str
    data: str
    min_agreement: float | None = None
    kept_fp32: tuple[KeptLayer, ...] = ()
    quantized_layers: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {"fp32_top1": self.fp32_top1, "int8_top1": self.int8_top1, "drop_points": self.drop_points,
                "agreement": self.agreement, "passed": self.passed, "max_drop_points": self.max_drop_points,
                "min_agreement": self.min_agreement, "clips": self.clips, "windows": self.windows,
                "split": self.split, "data": self.data, "kept_fp32": [k.to_dict() for k in self.kept_fp32],
                "quantized_layers": self.quantized_layers, "elapsed_s": round(self.elapsed_s, 3)}

    def __str__(self) -> str:
        kept = (f"; {len(self.kept_fp32)} of {self.quantized_layers} layers kept in FP32 "
                f"({', '.join(k.name for k in self.kept_fp32)})" if self.kept_fp32 else "")
        return (f"INT8 guard {'passed' if self.passed else 'FAILED'}: top-1 FP32 {100 * self.fp32_top1:.1f} %, "
                f"INT8 {100 * self.int8_top1:.1f} % ({self.drop_points:+.1f} points lost, at most "
                f"{self.max_drop_points:g}), window agreement {100 * self.agreement:.1f} %, on {self.clips} "
                f"{self.split} clips ({self.windows} windows) of {self.data}{kept}")

    def raise_if_failed(self) -> "Int8GuardReport":
        """Return ``self`` if the guard passed, else raise :class:`AccuracyGuardError` (message: both
        top-1s, the drop, the limit, and what to do next)."""
        if not self.passed:
            raise AccuracyGuardError(_refusal(self), self)
        return self


def _refusal(report: Int8GuardReport, *, after_fallback: bool = False) -> str:
    agreement = (f"window agreement {100 * report.agreement:.1f} % (at least {100 * report.min_agreement:.1f} % "
                 "required)" if report.min_agreement is not None else
                 f"window agreement {100 * report.agreement:.1f} %")
    what = (f"INT8 top-1 {100 * report.int8_top1:.1f} % against FP32 {100 * report.fp32_top1:.1f} % on "
            f"{report.clips} {report.split} clips of {report.data}: {report.drop_points:.1f} points lost, at "
            f"most {report.max_drop_points:g} allowed; {agreement}")
    if after_fallback:
        return (f"the INT8 accuracy guard refuses even with all {report.quantized_layers} quantized layers in "
                f"FP32: {what}; re-quantize with more calibration clips (edgekit quantize --calib-clips N) or "
                "another --method, allow more with --max-int8-drop P, or export FP32 (--precision fp32)")
    return (f"the INT8 accuracy guard refuses: {what}; export with --fallback to keep the most sensitive "
            "layers in FP32, re-quantize with more calibration clips (edgekit quantize --calib-clips N), or "
            "allow more with --max-int8-drop P")


# ------------------------------------------------------------------------------------- held-out data


@dataclass(frozen=True)
class HeldOut:
    """The held-out windows, prepared once. ``inputs``: per window, {input name: array as the
    package's spec says}; ``window_clip``: (W,) int, the clip of each window; ``clip_labels``: (N,)
    int, each clip's class as an index into the model's labels; ``fp32_outputs``: (W, K) float32,
    the FP32 score output; ``softmax``: whether scores are the softmax of that output."""

    inputs: tuple[dict, ...] = field(repr=False)
    window_clip: np.ndarray
    clip_labels: np.ndarray
    fp32_outputs: np.ndarray = field(repr=False)
    output_name: str
    softmax: bool
    threads: int
    split: str
    data: str


@dataclass(frozen=True)
class _Scores:
    """One model on the held-out windows: raw outputs (W, K) and video-level predictions (N,)."""

    outputs: np.ndarray
    video_top: np.ndarray
    window_top: np.ndarray


class _RecordingBackend:
    """The Recognizer's own backend, unchanged, remembering each window's inputs and output."""

    def __init__(self, backend, output_name: str):
        self._backend, self._output_name = backend, output_name
        self.inputs: list[dict] = []
        self.outputs: list[np.ndarray] = []

    def run(self, inputs):
        outputs = self._backend.run(inputs)
        self.inputs.append({name: np.array(x, copy=True) for name, x in inputs.items()})
        self.outputs.append(np.asarray(outputs[self._output_name], np.float32).reshape(-1).copy())
        return outputs

    def close(self) -> None:
        self._backend.close()


def _check_options(max_drop_points, min_agreement, clips) -> None:
    if (isinstance(max_drop_points, bool) or not isinstance(max_drop_points, (int, float))
            or not 0 <= max_drop_points <= 100):
        raise ConfigError(f"max_drop_points is in top-1 points between 0 and 100 (1.0 = one point), "
                          f"got {max_drop_points!r}")
    if min_agreement is not None and (isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float))
                                      or not 0 <= min_agreement <= 1):
        raise ConfigError(f"min_agreement is a fraction of windows between 0 and 1, got {min_agreement!r}")
    if clips is not None and (isinstance(clips, bool) or not isinstance(clips, int) or clips < 1):
        raise ConfigError(f"clips must be a whole number >= 1, got {clips!r}")


def _model_files(model_dir) -> tuple[Path, Path]:
    model_dir = Path(model_dir)
    if not (model_dir / "model.json").is_file():
        raise ConfigError(f"{model_dir} is not a quantization MODEL_DIR (no model.json); pass the folder "
                          "edgekit quantize wrote")
    fp32, int8 = model_dir / "fp32.onnx", model_dir / "int8.onnx"
    for path, why in ((int8, "the INT8 model to check"), (fp32, "the FP32 reference")):
        if not path.is_file():
            raise ConfigError(f"{model_dir} has no {path.name} ({why}); the guard compares the fp32.onnx and "
                              "int8.onnx that edgekit quantize writes")
    return fp32, int8


def _dataset_clips(data, split: str, labels: Sequence[str], limit: int | None) -> list[tuple[str, int]]:
    """(path, label index) of the clips of ``split``; ``limit`` clips taken round-robin over classes."""
    from training.datasets import open_dataset  # file listing only: no torch

    samples = list(open_dataset(data, layout="auto", split=split))
    if not samples:
        raise SourceError(f"{data}: the {split} split holds no clips")
    missing = sorted({s.label_name for s in samples} - set(labels))
    if missing:
        raise ConfigError(f"{data}: class(es) {missing[:5]} of the {split} split are not among the model's "
                          f"{len(labels)} labels; pass the dataset the model was trained on")
    if limit is not None and limit < len(samples):
        by_class: dict[str, list] = {}
        for sample in samples:
            by_class.setdefault(sample.label_name, []).append(sample)
        queues = list(by_class.values())
        chosen = []
        while len(chosen) < limit:
            for queue in queues:
                if queue and len(chosen) < limit:
                    chosen.append(queue.pop(0))
        samples = chosen
    index = {label: i for i, label in enumerate(labels)}
    return [(str(s.path), index[s.label_name]) for s in samples]


def prepare_held_out(model_dir, data, *, split: str = "test", clips: int | None = None,
                     threads: int | None = None, progress: Progress | None = None) -> HeldOut:
    """Read the held-out clips once through the Recognizer's path (see the module docstring) and run
    the FP32 model on them. Raises ``ConfigError`` (a MODEL_DIR without fp32.onnx / int8.onnx, a
    model.json that does not match them, classes the model does not know, a bad split),
    ``SourceError`` (a missing dataset, an empty split, a clip that cannot be read)."""
    from edgekit.package import write_package
    from edgekit.recognizer import Recognizer

    _check_options(0.0, None, clips)
    _model_files(model_dir)
    if data is None:
        raise ConfigError("the INT8 guard needs held-out clips: pass a dataset folder (--guard-data DIR)")
    say = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="edgekit-int8-guard-") as tmp:
        package = write_package(model_dir, Path(tmp) / "fp32.edgepkg", device="cpu", backend="onnxruntime",
                                precision="fp32")
        recognizer = Recognizer(package, device="cpu", backend="onnxruntime", threads=threads)
    manifest = recognizer.package.manifest
    recorder = _RecordingBackend(recognizer.backend, manifest.score_output)
    recognizer.backend = recorder
    window_clip = []
    with recognizer:
        chosen = _dataset_clips(data, split, manifest.labels, clips)
        say(f"reading {len(chosen)} {split} clips of {data} through the Recognizer (FP32)")
        for clip_index, (path, _label) in enumerate(chosen):
            before = len(recorder.inputs)
            for _window in recognizer.windows(path):
                pass
            if len(recorder.inputs) == before:
                raise SourceError(f"{path}: no window to recognize (fewer frames than the model reads?)")
            window_clip += [clip_index] * (len(recorder.inputs) - before)
    return HeldOut(inputs=tuple(recorder.inputs), window_clip=np.asarray(window_clip, np.int64),
                   clip_labels=np.asarray([label for _, label in chosen], np.int64),
                   fp32_outputs=np.stack(recorder.outputs), output_name=manifest.score_output,
                   softmax=manifest.fusion.scores == "softmax",
                   threads=int(recognizer.selection.options.get("threads", 1)), split=split, data=os.fspath(data))


def _video_scores(held: HeldOut, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(video top-1 class per clip (N,), window top-1 class (W,)) from raw outputs (W, K)."""
    from edgekit.fusion import fuse, softmax

    scores = softmax(outputs) if held.softmax else outputs.astype(np.float64)
    video = [int(np.argmax(fuse(scores[held.window_clip == c]))) for c in range(len(held.clip_labels))]
    return np.asarray(video, np.int64), np.argmax(scores, axis=1)


def _run_model(onnx_bytes: bytes, held: HeldOut, windows: Sequence[int] | None = None) -> np.ndarray:
    """Raw score outputs (W, K) float32 of ``onnx_bytes`` through ONNX Runtime (``targets.cpu``) on the
    held-out inputs (or on the ``windows`` among them)."""
    from targets import load_backend

    picked = range(len(held.inputs)) if windows is None else windows
    with load_backend("cpu", onnx_bytes, threads=held.threads) as backend:
        return np.stack([np.asarray(backend.run(held.inputs[i])[held.output_name], np.float32).reshape(-1)
                         for i in picked])


def _scores(onnx_bytes: bytes, held: HeldOut) -> _Scores:
    outputs = _run_model(onnx_bytes, held)
    video, window = _video_scores(held, outputs)
    return _Scores(outputs, video, window)


def _report(held: HeldOut, int8: _Scores, *, max_drop_points: float, min_agreement: float | None,
            kept: tuple[KeptLayer, ...] = (), quantized_layers: int = 0, started: float) -> Int8GuardReport:
    fp32_video, fp32_window = _video_scores(held, held.fp32_outputs)
    clips = len(held.clip_labels)
    fp32_correct = int(np.sum(fp32_video == held.clip_labels))
    int8_correct = int(np.sum(int8.video_top == held.clip_labels))
    drop_points = 100.0 * (fp32_correct - int8_correct) / clips  # from counts: exact for whole clips
    agreement = float(np.mean(int8.window_top == fp32_window))
    passed = drop_points <= max_drop_points and (min_agreement is None or agreement >= min_agreement)
    return Int8GuardReport(fp32_top1=fp32_correct / clips, int8_top1=int8_correct / clips, drop_points=drop_points,
                           agreement=agreement, passed=passed, max_drop_points=float(max_drop_points),
                           clips=clips, windows=len(held.inputs), split=held.split, data=held.data,
                           min_agreement=min_agreement, kept_fp32=kept, quantized_layers=quantized_layers,
                           elapsed_s=time.perf_counter() - started)


def check_int8(model_dir, data, *, max_drop_points: float = DEFAULT_MAX_DROP_POINTS, split: str = "test",
               clips: int | None = None, threads: int | None = None, min_agreement: float | None = None,
               progress: Progress | None = None, held_out: HeldOut | None = None) -> Int8GuardReport:
    """Evaluate ``MODEL_DIR/int8.onnx`` against ``MODEL_DIR/fp32.onnx`` on the ``split`` clips of
    ``data`` (a UCF-101-layout dataset; ``clips``: at most this many, spread over the classes) and
    return an :class:`Int8GuardReport`; ``report.passed`` says whether INT8 loses at most
    ``max_drop_points`` top-1 points (and agrees with FP32 on at least ``min_agreement`` of the
    windows, when given). It does not raise for a failing model: ``report.raise_if_failed()`` does.
    ``threads``: ONNX Runtime threads (default: the Recognizer's). ``progress``: called with a line
    per step. ``held_out``: windows already prepared by :func:`prepare_held_out` (then ``data``,
    ``split``, ``clips`` and ``threads`` are not used).

    Raises ``ConfigError`` / ``SourceError`` as :func:`prepare_held_out` does, ``ConfigError`` for a
    bad option or an INT8 model ONNX Runtime cannot load.
    """
    started = time.perf_counter()
    _check_options(max_drop_points, min_agreement, clips)
    _, int8_path = _model_files(model_dir)
    held = held_out or prepare_held_out(model_dir, data, split=split, clips=clips, threads=threads, progress=progress)
    (progress or (lambda message: None))(f"running INT8 on {len(held.inputs)} windows")
    return check_onnx(int8_path.read_bytes(), held, max_drop_points=max_drop_points, min_agreement=min_agreement,
                      started=started)


def check_onnx(int8_bytes: bytes, held: HeldOut, *, max_drop_points: float = DEFAULT_MAX_DROP_POINTS,
               min_agreement: float | None = None, started: float | None = None) -> Int8GuardReport:
    """:func:`check_int8` on a model in memory against the FP32 outputs ``held`` holds (see
    :func:`fallback_onnx`)."""
    _check_options(max_drop_points, min_agreement, None)
    return _report(held, _scores(int8_bytes, held), max_drop_points=max_drop_points, min_agreement=min_agreement,
                   started=time.perf_counter() if started is None else started)


# ------------------------------------------------------------------------------------------ fallback


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx (needed by the INT8 fallback's graph surgery)", "train") from None
    return onnx


def quantized_compute_nodes(model) -> list:
    """The compute nodes (:data:`COMPUTE_OPS`) of an ONNX QDQ model that read a DequantizeLinear output."""
    dq_outputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [n for n in model.graph.node
            if n.op_type in COMPUTE_OPS and not n.domain and any(i in dq_outputs for i in n.input)]


def _layer_name(node) -> str:
    return node.name or node.output[0]


class _FloatLayers:
    """Builds variants of an INT8 QDQ model in which chosen compute nodes run in FP32."""

    def __init__(self, int8_bytes: bytes, fp32_bytes: bytes):
        onnx = _onnx()
        self._int8 = onnx.load_from_string(int8_bytes)
        fp32 = onnx.load_from_string(fp32_bytes)
        self._fp32_inits = {i.name: i for i in fp32.graph.initializer}
        self._fp32_nodes = {n.name: n for n in fp32.graph.node if n.name}
        self.layers = [_layer_name(n) for n in quantized_compute_nodes(self._int8)]
        self.op_types = {_layer_name(n): n.op_type for n in quantized_compute_nodes(self._int8)}

    def model_bytes(self, layers: Sequence[str]) -> bytes:
        """The INT8 model with ``layers`` (names from :attr:`layers`) in FP32, serialised."""
        onnx = _onnx()
        model = onnx.ModelProto()
        model.CopyFrom(self._int8)
        graph = model.graph
        producers = {out: node for node in graph.node for out in node.output}
        inits = {i.name: i for i in graph.initializer}
        wanted = set(layers)
        taken = {n for node in graph.node for n in [*node.input, *node.output, node.name]} | set(inits)
        nodes = []
        for node in graph.node:
            if _layer_name(node) in wanted and node.op_type in COMPUTE_OPS:
                clones: list = []  # float copies of the ops between the node and its float source
                for slot, name in enumerate(node.input):
                    dq = producers.get(name)
                    if dq is None or dq.op_type != "DequantizeLinear":
                        continue
                    if dq.input[0] in inits:  # weights or bias: a float initializer of its own
                        array = self._float_constant(node, slot, dq, inits)
                        new_name = unique_name(taken, f"{dq.input[0]}_fp32")
                        graph.initializer.append(onnx.numpy_helper.from_array(array, new_name))
                        node.input[slot] = new_name
                    else:
                        node.input[slot] = _float_source(name, producers, inits, taken, clones)
                nodes += clones
            kept = onnx.NodeProto()
            kept.CopyFrom(node)  # a copy: the repeated field is cleared below
            nodes.append(kept)
        del graph.node[:]
        graph.node.extend(nodes)
        _float_outputs([n for n in graph.node if _layer_name(n) in wanted and n.op_type in COMPUTE_OPS], graph)
        _drop_dead_nodes(graph)
        return model.SerializeToString()

    def _float_constant(self, node, slot: int, dq, inits) -> np.ndarray:
        """FP32 weights/bias for ``node``'s input ``slot``: the FP32 model's tensor (found by the
        quantizer's name, ``X_quantized`` -> ``X``, or by the same node's same input slot), else the
        dequantized INT8 values."""
        numpy_helper = _onnx().numpy_helper
        quantized = numpy_helper.to_array(inits[dq.input[0]])
        candidates = []
        if dq.input[0].endswith("_quantized"):
            candidates.append(dq.input[0][: -len("_quantized")])
        twin = self._fp32_nodes.get(node.name)
        if twin is not None and twin.op_type == node.op_type and slot < len(twin.input):
            candidates.append(twin.input[slot])
        for name in candidates:
            tensor = self._fp32_inits.get(name)
            if tensor is not None and tuple(tensor.dims) == quantized.shape:
                array = numpy_helper.to_array(tensor)
                if array.dtype == np.float32:
                    return array
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zero = (numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32)
                if len(dq.input) > 2 and dq.input[2] else np.zeros_like(scale))
        if scale.size > 1:  # per channel, along the DQ's axis
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            shape = [1] * quantized.ndim
            shape[axis % quantized.ndim] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return ((quantized.astype(np.float32) - zero) * scale).astype(np.float32)


def _activation_qdq(name: str, producers, inits):
    """The QuantizeLinear of a tensor made by Q -> DQ of an activation (not of a constant), or None."""
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits:
        return None
    q = producers.get(dq.input[0])
    return q if q is not None and q.op_type == "QuantizeLinear" else None


def _float_source(name: str, producers, inits, taken: set, clones: list) -> str:
    """The full-precision version of activation ``name`` (a DQ output): the float tensor its Q
    quantized, itself recomputed from float inputs when it comes out of a weightless op
    (:data:`FLOAT_PATH_OPS`) that reads a quantized tensor: that op is cloned (appended to
    ``clones`` in order), the original left for its other consumers."""
    q = _activation_qdq(name, producers, inits)
    if q is None:
        return name
    tensor = q.input[0]
    op = producers.get(tensor)
    if (op is None or op.op_type not in FLOAT_PATH_OPS or op.domain or len(op.output) != 1
            or _activation_qdq(op.input[0], producers, inits) is None):
        return tensor
    onnx = _onnx()
    source = _float_source(op.input[0], producers, inits, taken, clones)
    clone = onnx.helper.make_node(op.op_type, [source, *op.input[1:]], [unique_name(taken, f"{tensor}_fp32")],
                                  name=unique_name(taken, f"{op.name or op.op_type}_fp32"))
    clone.attribute.extend(op.attribute)
    clones.append(clone)
    return clone.output[0]


def _float_outputs(layers, graph) -> None:
    """Consumers of each layer's quantized output that are neither a layer nor a
    :data:`FLOAT_PATH_OPS` op (a residual Add, a Concat, ...) read its float output instead."""
    users = consumers(graph)
    keep_quantized = COMPUTE_OPS | FLOAT_PATH_OPS | {"QuantizeLinear", "DequantizeLinear"}
    for layer in layers:
        for q in [n for n in users.get(layer.output[0], []) if n.op_type == "QuantizeLinear"]:
            for dq in [n for n in users.get(q.output[0], []) if n.op_type == "DequantizeLinear"]:
                for user in users.get(dq.output[0], []):
                    if user.op_type not in keep_quantized:
                        for slot, name in enumerate(user.input):
                            if name == dq.output[0]:
                                user.input[slot] = layer.output[0]


def _drop_dead_nodes(graph) -> None:
    """Remove nodes nothing reads any more (the Q/DQ pairs and ops a kept layer no longer goes
    through), then initializers nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if not any(out in used for out in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | outputs
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _normalised_error(outputs: np.ndarray, reference: np.ndarray) -> float:
    """mean((outputs - reference)^2) / var(reference): 0 for identical outputs, ~1 for noise of FP32's size."""
    return float(np.mean((outputs.astype(np.float64) - reference) ** 2) / max(float(np.var(reference)), 1e-12))


def fallback_int8(model_dir, data, *, max_drop_points: float = DEFAULT_MAX_DROP_POINTS, split: str = "test",
                  clips: int | None = None, threads: int | None = None, min_agreement: float | None = None,
                  progress: Progress | None = None,
                  held_out: HeldOut | None = None) -> tuple[bytes, Int8GuardReport]:
    """The INT8 model of ``model_dir`` with its most sensitive layers kept in FP32, just enough of them
    for the guard to pass on the held-out clips (see the module docstring): ``(onnx_bytes, report)``,
    the report's ``kept_fp32`` naming each kept layer with its measured sensitivity and its top-1s
    those of the returned model. When INT8 already passes, the INT8 model unchanged and
    ``kept_fp32 == ()``. Options as :func:`check_int8`.

    Raises :class:`AccuracyGuardError` when even every quantized compute node in FP32 does not pass,
    :class:`MissingDependencyError` without the ``onnx`` package (extra ``train``), and what
    :func:`check_int8` raises.
    """
    started = time.perf_counter()
    _check_options(max_drop_points, min_agreement, clips)
    fp32_path, int8_path = _model_files(model_dir)
    _onnx()  # a missing dependency fails before the clips are read
    held = held_out or prepare_held_out(model_dir, data, split=split, clips=clips, threads=threads, progress=progress)
    return fallback_onnx(fp32_path.read_bytes(), int8_path.read_bytes(), held, max_drop_points=max_drop_points,
                         min_agreement=min_agreement, progress=progress, started=started)


def fallback_onnx(fp32_bytes: bytes, int8_bytes: bytes, held: HeldOut, *,
                  max_drop_points: float = DEFAULT_MAX_DROP_POINTS, min_agreement: float | None = None,
                  progress: Progress | None = None, started: float | None = None,
                  plain: Int8GuardReport | None = None) -> tuple[bytes, Int8GuardReport]:
    """:func:`fallback_int8` on models in memory: ``int8_bytes`` (a QDQ model of ``fp32_bytes``)
    with its most sensitive layers kept in FP32 until the guard passes on ``held`` (windows
    prepared by :func:`prepare_held_out`, or built by the caller: ``held.fp32_outputs`` must be
    ``fp32_bytes``' outputs on ``held.inputs``). ``plain``: :func:`check_onnx`'s report of
    ``int8_bytes`` on ``held`` with the same limits, when the caller has it (else measured here).
    Returns and raises as :func:`fallback_int8`."""
    started = time.perf_counter() if started is None else started
    say = progress or (lambda message: None)
    _check_options(max_drop_points, min_agreement, None)
    _onnx()
    variants = _FloatLayers(int8_bytes, fp32_bytes)
    if plain is None:
        say(f"running INT8 on {len(held.inputs)} windows")
        plain = check_onnx(int8_bytes, held, max_drop_points=max_drop_points, min_agreement=min_agreement,
                           started=started)
    report = replace(plain, quantized_layers=len(variants.layers))
    if report.passed:
        return int8_bytes, report

    # rank: how much closer to FP32 each layer alone in FP32 brings the outputs
    count = min(len(held.inputs), SENSITIVITY_WINDOWS)
    sample = np.unique(np.linspace(0, len(held.inputs) - 1, count).round().astype(int))
    reference = held.fp32_outputs[sample].astype(np.float64)
    base_error = _normalised_error(_run_model(int8_bytes, held, sample), reference)
    sensitivity = {}
    for i, layer in enumerate(variants.layers, start=1):
        say(f"sensitivity {i}/{len(variants.layers)}: {layer}")
        outputs = _run_model(variants.model_bytes([layer]), held, sample)
        sensitivity[layer] = base_error - _normalised_error(outputs, reference)
    ranked = sorted(variants.layers, key=lambda layer: -sensitivity[layer])

    kept: list[KeptLayer] = []
    for layer in ranked:  # greedy: most sensitive first, re-measured on every held-out window
        kept.append(KeptLayer(layer, variants.op_types[layer], sensitivity[layer]))
        candidate = variants.model_bytes([k.name for k in kept])
        report = _report(held, _scores(candidate, held), max_drop_points=max_drop_points,
                         min_agreement=min_agreement, kept=tuple(kept), quantized_layers=len(variants.layers),
                         started=started)
        say(f"{len(kept)} layer(s) in FP32 (+{layer}): INT8 top-1 {100 * report.int8_top1:.1f} %, "
            f"{report.drop_points:+.1f} points lost")
        if report.passed:
            return candidate, report
    raise AccuracyGuardError(_refusal(report, after_fallback=True), report)
