"""Empirical bias correction (quantize/bias.py) on a real ONNX model through real ONNX Runtime: a
layer whose INT8 weights all round the same way shifts its output mean, the correction removes the
shift on clips it never saw, nothing but biases changes (zero points stay 0 for TensorRT), float
layers are corrected too, and the settings and the quantize CLI take it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import ConfigError  # noqa: E402
from quantize.graph import zero_point_violations  # noqa: E402
from quantize.int8 import CalibrationSettings, quantize_int8  # noqa: E402

SHAPE = (1, 4, 8, 8)
STEP = 0.01  # conv1's INT8 weight step: its largest weight is 127 steps


def _model(path):
    """x (1, 4, 8, 8) -> conv1 3x3 (8 ch) -> ReLU -> conv2 1x1 (8 ch) -> ReLU -> mean -> Gemm (3 classes).
    Each conv1 channel has one weight of 127 steps and 35 of 0.45 step, which INT8 rounds to 0: over
    inputs of mean 1 its output mean falls by about 35 x 0.45 x 0.01 = 0.16."""
    rng = np.random.default_rng(0)
    w1 = np.full((8, 4, 3, 3), 0.45 * STEP, np.float32)
    w1[:, 0, 1, 1] = 127 * STEP
    w1 *= np.where(np.arange(8) % 2, 1.0, -1.0)[:, None, None, None].astype(np.float32)  # half negative
    b1 = np.full(8, 1.5, np.float32)
    w2 = rng.normal(0, 0.4, (8, 8, 1, 1)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 8).astype(np.float32)
    w3 = rng.normal(0, 0.5, (3, 8)).astype(np.float32)
    b3 = np.zeros(3, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(a, n) for n, a in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2),
                                                         ("w3", w3), ("b3", b3))]
    graph = helper.make_graph(nodes, "bias", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, (1, 3))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _clips(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": (1.0 + 0.5 * rng.standard_normal(SHAPE)).astype(np.float32)} for _ in range(n)]


class _Reader:
    def __init__(self, items):
        self._it = iter(items)

    def get_next(self):
        return next(self._it, None)


def _node_output_means(path, node_name, clips):
    """Per-channel mean of ``node_name``'s output over ``clips``, read by making it a graph output."""
    model = onnx.load(str(path))
    tensor = next(n.output[0] for n in model.graph.node if n.name == node_name)
    model.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = np.concatenate([session.run([tensor], c)[0] for c in clips])
    return np.moveaxis(values, 1, 0).reshape(values.shape[1], -1).mean(axis=1)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bias")
    fp32 = _model(folder / "fp32.onnx")
    out = {"fp32": fp32, "reports": {}}
    for name, settings in (("plain", CalibrationSettings(float_ends=False)),
                           ("corrected", CalibrationSettings(float_ends=False, bias_correction=True,
                                                             bias_correction_clips=32)),
                           ("ends", CalibrationSettings(float_ends=True)),
                           ("ends-corrected", CalibrationSettings(float_ends=True, bias_correction=True))):
        out[name] = folder / f"{name}.onnx"
        out["reports"][name] = quantize_int8(fp32, out[name], _Reader(_clips(48, seed=1)), settings=settings)
    return out


def test_rounding_shifts_the_mean_and_the_correction_removes_it_on_unseen_clips(quantized):
    unseen = _clips(64, seed=7)
    reference = _node_output_means(quantized["fp32"], "conv1", unseen)
    plain = _node_output_means(quantized["plain"], "conv1", unseen)
    corrected = _node_output_means(quantized["corrected"], "conv1", unseen)
    signs = np.where(np.arange(8) % 2, 1.0, -1.0)
    # every channel's small weights rounded to 0: the output mean moves towards the sign's opposite
    assert np.all((plain - reference) * signs < -0.1)
    assert np.max(np.abs(corrected - reference)) < 0.02
    # the network's output follows: the logits' mean error shrinks
    logits = {k: _node_output_means(quantized[k], "fc", unseen) for k in ("fp32", "plain", "corrected")}
    assert np.abs(logits["corrected"] - logits["fp32"]).max() < np.abs(logits["plain"] - logits["fp32"]).max()


def test_only_biases_change_and_zero_points_stay_zero(quantized):
    plain, corrected = onnx.load(str(quantized["plain"])), onnx.load(str(quantized["corrected"]))
    before = {t.name: numpy_helper.to_array(t) for t in plain.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}
    assert before.keys() == after.keys()
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed == {"b1_quantized", "b2_quantized", "b3_quantized"}  # the int32 biases, nothing else
    assert after["b1_quantized"].dtype == np.int32
    assert [n.op_type for n in plain.graph.node] == [n.op_type for n in corrected.graph.node]
    assert zero_point_violations(corrected) == []
    report = quantized["reports"]["corrected"]["bias_correction"]
    assert report["layers"] == 3 and report["skipped"] == [] and report["clips"] == 32
    assert report["max_relative_shift"] > 0.05  # conv1's shift, before correction
    assert "bias_correction" not in quantized["reports"]["plain"]


def test_layers_kept_in_float_are_corrected_through_their_float_bias(quantized):
    unseen = _clips(64, seed=9)
    ends, corrected = onnx.load(str(quantized["ends"])), onnx.load(str(quantized["ends-corrected"]))
    floats = {t.name: numpy_helper.to_array(t) for t in ends.graph.initializer if t.name == "b3"}
    assert floats, "the classifier's bias is a float initializer when the ends stay float"
    new_b3 = next(numpy_helper.to_array(t) for t in corrected.graph.initializer if t.name == "b3")
    assert new_b3.dtype == np.float32 and not np.array_equal(new_b3, floats["b3"])
    reference = _node_output_means(quantized["fp32"], "fc", unseen)
    plain = _node_output_means(quantized["ends"], "fc", unseen)
    fixed = _node_output_means(quantized["ends-corrected"], "fc", unseen)
    assert np.abs(fixed - reference).max() < np.abs(plain - reference).max()


def test_bad_clip_count_is_refused():
    with pytest.raises(ConfigError, match="bias_correction_clips"):
        CalibrationSettings(bias_correction=True, bias_correction_clips=0)


def test_quantize_cli_has_the_flag():
    out = subprocess.run([sys.executable, "-m", "quantize", "--help"], capture_output=True, text=True, check=True)
    assert "--bias-correction" in out.stdout
