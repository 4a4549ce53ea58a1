"""The temporal shift (TSM) of the edge models: which channels move between segments, that it adds no
parameter (a checkpoint without it loads), and that a shifted model exports to portable ONNX that ONNX
Runtime runs with torch's outputs, in FP32 and quantized to INT8 by the project's quantizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.models import PORTABLE_OPS, build_model, export_onnx, onnx_operators, spec_inputs
from training.models.resnet import TemporalShift

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_shift_takes_one_eighth_of_the_channels_from_each_neighbour():
    segments, channels = 3, 16
    x = torch.arange(segments * channels, dtype=torch.float32).reshape(segments, channels, 1, 1)  # x[s, c] = 16 s + c
    y = TemporalShift(segments, fold_div=8)(x)[:, :, 0, 0]
    # channels 0-1 come from the next segment, 2-3 from the previous one, zeros past either end
    assert y[:, 0:2].tolist() == [[16, 17], [32, 33], [0, 0]]
    assert y[:, 2:4].tolist() == [[0, 0], [2, 3], [18, 19]]
    assert torch.equal(y[:, 4:], x[:, 4:, 0, 0])


def test_clips_in_one_batch_never_exchange_channels():
    shift = TemporalShift(3, fold_div=4)
    x = torch.randn(2 * 3, 8, 2, 2)
    y = shift(x)
    assert torch.equal(y[:3], shift(x[:3])) and torch.equal(y[3:], shift(x[3:]))


@pytest.mark.parametrize("segments, fold_div", [(1, 8), (3, 1)])
def test_a_shift_needs_two_segments_and_a_fold(segments, fold_div):
    with pytest.raises(ValueError, match="at least 2 segments"):
        TemporalShift(segments, fold_div)


@pytest.mark.parametrize("name", ["edge-mv", "edge-mvr", "edge-mv-ref"])
def test_the_shift_adds_no_parameter_and_changes_what_segments_see(name):
    torch.manual_seed(0)
    plain = build_model(name, 5).eval()
    shifted = build_model(name, 5, temporal_shift=True).eval()
    assert shifted.load_state_dict(plain.state_dict(), strict=True).missing_keys == []
    inputs = spec_inputs(plain, seed=1)
    with torch.no_grad():
        a, b = plain(*inputs), shifted(*inputs)
    assert not torch.allclose(a, b)  # the same weights: only what each segment sees of the others differs


def test_a_shifted_edge_model_exports_and_runs_in_onnxruntime_fp32_and_int8(tmp_path):
    from quantize.graph import zero_point_violations
    from quantize.int8 import quantize_int8

    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = build_model("edge-mv", 5, temporal_shift=True).eval()
    path = export_onnx(model, tmp_path / "fp32.onnx")
    assert onnx_operators(path) <= PORTABLE_OPS and {"Slice", "Pad", "Concat"} <= onnx_operators(path)
    inputs = spec_inputs(model, seed=1)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"mv": inputs[0].numpy()}
    np.testing.assert_allclose(session.run(["logits"], feeds)[0], expected, rtol=1e-3, atol=1e-4)

    rng = np.random.default_rng(0)
    clips = [{"mv": rng.standard_normal(model.input_specs[0].shape).astype(np.float32)} for _ in range(8)]

    class Reader:
        def __init__(self):
            self._it = iter(clips)

        def get_next(self):
            return next(self._it, None)

    quantize_int8(path, tmp_path / "int8.onnx", Reader())
    int8 = onnx.load(str(tmp_path / "int8.onnx"))
    assert zero_point_violations(int8) == []
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    out = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
    assert out.shape == (1, 5) and np.isfinite(out).all()
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.9  # INT8 follows FP32
