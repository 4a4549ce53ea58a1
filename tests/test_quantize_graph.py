"""quantize.graph: the post-pass that lets ONNX Runtime fuse every Conv of a symmetric-int8 QDQ ResNet
(each quantized tensor gets one consumer), exact and TensorRT-conforming; and quantize_int8 using it."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit._onnxgraph import consumers  # noqa: E402
from quantize.graph import ort_optimized_ops, unshare_quantized_tensors, zero_point_violations  # noqa: E402

SHAPE = (1, 3, 5, 32, 32)


def _net():
    from torch import nn

    def block(cin, cout, stride):
        conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        down = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        return nn.ModuleDict({"conv1": conv1, "conv2": conv2, **({"down": down} if down else {})})

    class ResidualNet(nn.Module):
        """Stem -> MaxPool -> identity block -> downsampling block -> pool -> fc: every fan-out of a
        ResNet (MaxPool output, block outputs) in a few layers."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(5, 8, 3, 2, 1)
            self.pool = nn.MaxPool2d(3, 2, 1)
            self.blocks = nn.ModuleList([block(8, 8, 1), block(8, 16, 2)])
            self.fc = nn.Linear(16, 4)

        def forward(self, mv_residual):
            b, s, c, h, w = SHAPE
            x = self.pool(torch.relu(self.stem(mv_residual.reshape(b * s, c, h, w))))
            for blk in self.blocks:
                identity = blk["down"](x) if "down" in blk else x
                x = torch.relu(blk["conv2"](torch.relu(blk["conv1"](x))) + identity)
            return self.fc(x.mean(dim=(2, 3))).reshape(b, s, -1).mean(dim=1)

    torch.manual_seed(0)
    return ResidualNet().eval()


def _inputs(n, seed):
    rng = np.random.default_rng(seed)
    return [{"mv_residual": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(n)]


class _Reader:
    def __init__(self, items):
        self._it = iter(items)

    def get_next(self):
        return next(self._it, None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(folder, FP32 path, plain ORT QDQ path, quantize_int8 path, what quantize_int8 returned)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from quantize.int8 import CalibrationSettings, quantize_int8

    folder = tmp_path_factory.mktemp("qgraph")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_net(), (torch.from_numpy(_inputs(1, 0)[0]["mv_residual"]),), buffer,
                          input_names=["mv_residual"], output_names=["logits"], opset_version=17, dynamo=False)
    fp32 = folder / "fp32.onnx"
    fp32.write_bytes(buffer.getvalue())
    reader = type("R", (_Reader, CalibrationDataReader), {})
    plain = folder / "plain.onnx"
    quantize_static(str(fp32), str(plain), reader(_inputs(8, 1)), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    int8 = folder / "int8.onnx"
    # every layer INT8, as the plain ORT model beside it (by default the end layers stay float)
    post = quantize_int8(fp32, int8, reader(_inputs(8, 1)), settings=CalibrationSettings(float_ends=False))
    return folder, fp32, plain, int8, post


def _fan_out(model) -> int:
    """Largest number of nodes reached by one QuantizeLinear through its DQs."""
    users = consumers(model.graph)
    return max(sum(len(users[dq.output[0]]) for dq in users[q.output[0]])
               for q in model.graph.node if q.op_type == "QuantizeLinear")


def _run(path, level, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, x)[0]


def test_unshare_gives_each_quantized_tensor_one_consumer(models):
    _, _, plain, _, _ = models
    model = onnx.load(str(plain))
    assert _fan_out(model) > 1  # the residual fan-outs are there before the pass
    added = unshare_quantized_tensors(model)
    assert added > 0 and _fan_out(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert unshare_quantized_tensors(model) == 0  # idempotent
    assert zero_point_violations(model) == []  # still TensorRT's int8, zero point 0


def test_unshare_is_exact(models, tmp_path):
    _, _, plain, _, _ = models
    model = onnx.load(str(plain))
    unshare_quantized_tensors(model)
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    for x in _inputs(3, 7):  # the unfused QDQ graphs compute bit-identical results
        np.testing.assert_array_equal(_run(plain, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, x),
                                      _run(rewritten, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, x))


def test_onnx_runtime_fuses_every_conv_after_quantize_int8(models):
    _, fp32, _, int8, post = models
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    assert post["unshared_pairs"] > 0
    ops = ort_optimized_ops(int8)
    assert ops.get("QLinearConv") == convs and "Conv" not in ops
    assert ops.get("NhwcMaxPool", 0) + ops.get("MaxPool", 0) >= 1
    assert "MaxPool" not in ops  # the pool runs on uint8 (cloned per consumer), not in float
    assert zero_point_violations(onnx.load(str(int8))) == []


def test_quantized_model_follows_fp32(models):
    _, fp32, _, int8, _ = models
    for x in _inputs(4, 11):
        a = _run(fp32, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, x)
        b = _run(int8, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, x)
        assert np.abs(a - b).max() < 0.1 * np.ptp(a) + 1e-3


def test_zero_point_violations_names_the_offending_node(models):
    from onnx import numpy_helper

    _, _, _, int8, _ = models
    model = onnx.load(str(int8))
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zp = next(i for i in model.graph.initializer if i.name == q.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), zp.name))
    bad = zero_point_violations(model)
    assert bad and all("nonzero zero point" in b for b in bad) and any(q.name in b for b in bad)
