"""quantize.int8's calibration settings on a real ONNX model through real ONNX Runtime: what each
method does to an activation range (an outlier clip kept by MinMax, clipped by Percentile and
Entropy, damped by the moving average), histograms that span every clip even when a later one is
larger, the uint8 diagnostic, bad settings refused in one line, and the quantize CLI's flags."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgekit.errors import ConfigError  # noqa: E402
from quantize.graph import zero_point_violations  # noqa: E402
from quantize.int8 import DEFAULT_CALIB_CLIPS, DEFAULT_METHOD, CalibrationSettings, quantize_int8  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (1, 2, 16, 16)
OUTLIER = 60.0  # one pixel of one calibration clip; the others are standard normal (|x| < 5)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    from onnx_models import conv_classifier_onnx

    return conv_classifier_onnx(tmp_path_factory.mktemp("calib") / "fp32.onnx", SHAPE)


def _clips(n: int, seed: int = 0, outlier_at: int | None = None, scale: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    clips = [{"mv": (scale * rng.standard_normal(SHAPE)).astype(np.float32)} for _ in range(n)]
    if outlier_at is not None:
        clips[outlier_at]["mv"][0, 0, 3, 3] = OUTLIER
    return clips


class _Reader:
    def __init__(self, items):
        self._it = iter(items)

    def get_next(self):
        return next(self._it, None)


def _input_scale(path) -> float:
    """The scale of the QuantizeLinear that quantizes the graph input ``mv``."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "mv")
    return float(inits[node.input[1]])


def _quantize(fp32, tmp_path, clips, **settings) -> float:
    """The input's INT8 scale under ``settings``, every layer quantized (the input's range is the
    one these tests watch; by default the first layer and its input stay in float)."""
    out = tmp_path / f"int8-{len(list(tmp_path.iterdir()))}.onnx"
    quantize_int8(fp32, out, _Reader(clips), settings=CalibrationSettings(**{"float_ends": False, **settings}))
    return _input_scale(out)


def test_percentile_clips_an_outlier_that_minmax_keeps(fp32, tmp_path):
    clips = _clips(40, outlier_at=20)
    minmax = _quantize(fp32, tmp_path, clips, method="minmax")
    percentile = _quantize(fp32, tmp_path, clips, method="percentile", percentile=99.99)
    assert minmax == pytest.approx(OUTLIER / 127, rel=1e-3)  # symmetric int8: the largest |x| maps to 127
    assert percentile < OUTLIER / 127 / 5  # 1 of 40 * 512 values is past the 99.99th percentile of |x|
    assert percentile > 2.0 / 127  # ... and the bulk of the normal values are kept


def test_entropy_searches_ranges_below_the_extremes(fp32, tmp_path):
    clips = _clips(40, outlier_at=20)
    # with ORT's own defaults (128 bins, 128 quantized bins) Entropy has one candidate: MinMax's range
    assert _quantize(fp32, tmp_path, clips, method="entropy") < OUTLIER / 127 / 2


def test_moving_average_damps_a_single_outlier_clip(fp32, tmp_path):
    clips = _clips(40, outlier_at=20)
    assert _quantize(fp32, tmp_path, clips, method="minmax", moving_average=True) < OUTLIER / 127 / 2


def test_histograms_span_every_clip_when_a_later_one_is_larger(fp32, tmp_path):
    # the first 16-clip chunk is 100x smaller than the rest: a histogram sized on it would need ~200k bins
    clips = _clips(16, seed=1, scale=0.01) + _clips(16, seed=2)
    largest = max(float(np.abs(c["mv"]).max()) for c in clips)
    scale = _quantize(fp32, tmp_path, clips, method="percentile", percentile=100.0)
    assert scale == pytest.approx(largest / 127, rel=2e-3)  # the whole range, to one of 2048 bins


def test_the_default_is_tensorrt_ready_and_the_uint8_diagnostic_is_not(fp32, tmp_path):
    clips = _clips(40, outlier_at=3)  # 20480 values: the one outlier is past the 99.99th percentile
    assert (DEFAULT_METHOD, CalibrationSettings().percentile, DEFAULT_CALIB_CLIPS) == ("percentile", 99.99, 256)
    quantize_int8(fp32, tmp_path / "default.onnx", _Reader(clips))
    default = onnx.load(str(tmp_path / "default.onnx"))
    assert zero_point_violations(default) == [] and CalibrationSettings().float_ends
    # the first layer and its input stay in float; quantized, the default range clips the outlier
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "mv" for n in default.graph.node)
    assert _quantize(fp32, tmp_path, clips) < OUTLIER / 127 / 5
    diagnostic = CalibrationSettings(method="minmax", activations="uint8-asymmetric")
    assert CalibrationSettings().tensorrt_compatible and not diagnostic.tensorrt_compatible
    quantize_int8(fp32, tmp_path / "uint8.onnx", _Reader(clips), settings=diagnostic)
    assert zero_point_violations(onnx.load(str(tmp_path / "uint8.onnx")))  # uint8 zero points: never shipped


def test_every_method_keeps_int8_close_to_fp32(fp32, tmp_path):
    from quantize.evaluate import load_session

    test = _clips(20, seed=5)
    with load_session(fp32, "cpu", threads=1) as backend:
        reference = np.stack([backend.run(x)["logits"][0] for x in test])
    for method in ("minmax", "percentile", "entropy"):
        out = tmp_path / f"{method}.onnx"
        quantize_int8(fp32, out, _Reader(_clips(32, seed=3)), settings=CalibrationSettings(method=method))
        with load_session(out, "cpu", threads=1) as backend:
            logits = np.stack([backend.run(x)["logits"][0] for x in test])
        assert np.abs(logits - reference).max() < 0.1 * np.abs(reference).max(), method


@pytest.mark.parametrize("settings, message", [
    ({"method": "kl"}, "calibration method must be one of"),
    ({"method": "percentile", "percentile": 101.0}, "percentile must be in (50, 100]"),
    ({"method": "entropy", "moving_average": True}, "moving_average applies to the minmax method only"),
    ({"activations": "int4"}, "activations must be one of"),
    ({"method": "entropy", "histogram_bins": 100}, "need histogram_bins >= 2 * quantized_bins"),
])
def test_bad_settings_are_refused_with_what_to_do(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        CalibrationSettings(**settings)


def test_float_ends_keep_the_first_layer_and_the_classifier_in_float(fp32, tmp_path):
    """The first conv (reading the input) and the final linear layer find no Q/DQ pair on their
    weights; the conv between them is INT8; the logits stay close to FP32's."""
    from quantize.evaluate import load_session
    from quantize.int8 import end_layers

    model = onnx.load(str(fp32))
    weighted = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert len(weighted) == 3 and end_layers(model) == [weighted[0], weighted[2]]
    out = tmp_path / "mixed.onnx"
    quantize_int8(fp32, out, _Reader(_clips(32, seed=3)), settings=CalibrationSettings())  # the default
    q = onnx.load(str(out))
    dequantized = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    inits = {t.name for t in q.graph.initializer}
    by_name = {n.name: n for n in q.graph.node}
    for name, quantized in ((weighted[0], False), (weighted[1], True), (weighted[2], False)):
        node = by_name[name]
        assert (node.input[1] in dequantized) is quantized, name  # weight through DequantizeLinear, or float
        assert (node.input[1] in inits) is not quantized, name
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "mv" for n in q.graph.node)  # input stays float
    assert len([n for n in q.graph.node if n.op_type == "DequantizeLinear"]) >= 2
    test = _clips(10, seed=5)
    with load_session(fp32, "cpu", threads=1) as a, load_session(out, "cpu", threads=1) as b:
        ref = np.stack([a.run(x)["logits"][0] for x in test])
        mixed = np.stack([b.run(x)["logits"][0] for x in test])
    assert np.abs(mixed - ref).max() < 0.05 * np.abs(ref).max()


def test_float_adds_keep_residual_additions_in_float_and_the_convolutions_int8(tmp_path):
    """With float_adds the Add's sum is not rounded to INT8 (no QuantizeLinear of its output: ONNX
    Runtime adds in float, not QLinearAdd), while every Conv still reads INT8 weights; by default
    (False) the sum is quantized."""
    import torch
    from torch import nn

    from onnx_models import export_mv_onnx

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.a, self.b = nn.Conv2d(2, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 3)

        def forward(self, mv):
            x = torch.relu(self.stem(mv.reshape(2, 2, 8, 8)))
            x = torch.relu(x + self.b(torch.relu(self.a(x))))  # a ResNet block's skip connection
            return self.fc(x.mean(dim=(2, 3))).mean(dim=0, keepdim=True)

    torch.manual_seed(0)
    fp32 = export_mv_onnx(Residual().eval(), tmp_path / "residual.onnx", (1, 2, 2, 8, 8))
    rng = np.random.default_rng(0)
    clips = [{"mv": rng.standard_normal((1, 2, 2, 8, 8)).astype(np.float32)} for _ in range(16)]
    for float_adds in (False, True):
        out = tmp_path / f"adds-{float_adds}.onnx"
        quantize_int8(fp32, out, _Reader(clips), settings=CalibrationSettings(float_adds=float_adds))
        q = onnx.load(str(out))
        dequantized = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
        quantized_outputs = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
        adds = [n for n in q.graph.node if n.op_type == "Add"]
        assert len(adds) == 1
        assert (adds[0].output[0] in quantized_outputs) is not float_adds
        middle = [n for n in q.graph.node if n.op_type == "Conv"][1:]  # the stem is a float end
        assert middle and all(n.input[1] in dequantized for n in middle)
    assert CalibrationSettings().float_adds is False


def test_end_layers_skip_a_dense_block_that_rereads_the_input(tmp_path):
    """A conv reading a concatenation of the input with computed features (DMC-Net's generator) is
    not a first layer; a conv reading a reshaped or concatenated view of the input alone is."""
    import torch
    from torch import nn

    from onnx_models import export_mv_onnx
    from quantize.int8 import end_layers

    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)
            self.c = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 3)

        def forward(self, mv):
            x = mv.reshape(2, 2, 8, 8)  # segments into the batch: a view of the input
            h = torch.relu(self.a(torch.cat([x[:, :1], x[:, 1:]], dim=1)))
            h = torch.relu(self.c(torch.relu(self.b(torch.cat([x, h], dim=1)))))
            return self.fc(h.mean(dim=(2, 3))).mean(dim=0, keepdim=True)

    model = onnx.load(str(export_mv_onnx(Dense(), tmp_path / "dense.onnx", (1, 2, 2, 8, 8))))
    weighted = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert len(weighted) == 4
    assert end_layers(model) == [weighted[0], weighted[3]]


def test_quantize_int8_refuses_an_unknown_method_before_reading_the_model(tmp_path):
    with pytest.raises(ConfigError, match="calibration method must be one of"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "int8.onnx", _Reader([]), method="kl")


def test_quantize_cli_names_the_calibration_flags_and_their_defaults():
    from edgekit.cli.training import command_parser

    parser = command_parser("quantize", prog="python -m quantize")
    args = parser.parse_args(["--checkpoint", "c.json", "--out", "m"])
    assert (args.method, args.calib_clips) == (DEFAULT_METHOD, DEFAULT_CALIB_CLIPS)
    assert parser.parse_args(["--checkpoint", "c.json", "--out", "m", "--calib-method", "percentile"]).method \
        == "percentile"
    assert parser.parse_args(["--checkpoint", "c.json", "--out", "m", "--method", "entropy"]).method == "entropy"
    usage = parser.format_help()
    assert "--calib-method" in usage and "--calib-clips" in usage and "--calib-percentile" in usage
    assert "--calib-ends" in usage and args.calib_ends == "float"
    assert parser.parse_args(["--checkpoint", "c.json", "--out", "m", "--calib-ends", "int8"]).calib_ends == "int8"
    assert "--calib-adds" in usage and args.calib_adds == "int8"
    assert parser.parse_args(["--checkpoint", "c.json", "--out", "m", "--calib-adds", "float"]).calib_adds == "float"


def test_quantize_cli_refuses_a_bad_percentile_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "quantize", "--checkpoint", str(tmp_path / "c.json"), "--out",
                        str(tmp_path / "m"), "--calib-method", "percentile", "--calib-percentile", "120"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "error: percentile must be in (50, 100]" in r.stderr
    assert not (tmp_path / "m").exists()
