"""Every model exports to static ONNX that ONNX Runtime and OpenVINO run with torch's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.spec import InputSpec
from training.models import (PORTABLE_OPS, ExportError, build_model, export_onnx, list_models, onnx_operators,
                             spec_inputs)
from training.models.common import segment_spec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NUM_CLASSES = 5
# default input sizes everywhere; fewer segments / frames where the default costs > ~6 GFLOPs
EXPORT_CFG = {
    "coviar": {"segments": 1},
    "coviar-i-r50": {"segments": 1},
    "dmc": {"segments": 1},
    "iptsn": {"segments": 1, "frames": 2},
    "iptsn-i": {"segments": 1},
    "iptsn-p": {"frames": 4},
    "iptsn-flow": {"frames": 2},
    "mfcd": {"frames": 4},
    "costvol-r18": {"frames": 2},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4 * scale)


@pytest.fixture(scope="module")
def openvino_core():
    ov = pytest.importorskip("openvino")
    return ov.Core()


@pytest.mark.parametrize("name", list_models())
def test_onnx_export_runs_identically_in_onnxruntime_and_openvino(name, tmp_path, openvino_core):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES, **EXPORT_CFG.get(name, {})).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")

    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == [s.name for s in model.input_specs]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert onnx_operators(path) <= PORTABLE_OPS
    stored = json.loads({p.key: p.value for p in proto.metadata_props}["edgekit.input_specs"])
    assert tuple(InputSpec.from_dict(d) for d in stored) == model.input_specs

    inputs = spec_inputs(model, seed=1)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    assert expected.shape == (1, NUM_CLASSES) and expected.std() > 0
    feeds = {spec.name: x.numpy() for spec, x in zip(model.input_specs, inputs)}

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _assert_close(session.run(["logits"], feeds)[0], expected)

    # f32: OpenVINO's CPU plugin otherwise computes in bf16 on CPUs with AVX512-BF16 / AMX
    compiled = openvino_core.compile_model(openvino_core.read_model(str(path)), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    _assert_close(compiled(feeds)[compiled.output(0)], expected)


class _GridSampleModel(nn.Module):
    """A model using GridSample, which TensorRT cannot run in INT8 / before 8.5."""

    def __init__(self):
        super().__init__()
        self.input_specs = (segment_spec("mv", 1, 8),)
        self.fc = nn.Linear(2, 3)

    def forward(self, mv: torch.Tensor) -> torch.Tensor:
        x = mv[:, 0]
        grid = x.permute(0, 2, 3, 1).clamp(-1, 1)
        return self.fc(nn.functional.grid_sample(x, grid, align_corners=False).mean(dim=(2, 3)))


def test_export_rejects_operators_outside_the_portable_set(tmp_path):
    path = tmp_path / "grid.onnx"
    with pytest.raises(ExportError, match="GridSample"):
        export_onnx(_GridSampleModel(), path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_export_rejects_forward_names_that_differ_from_specs(tmp_path):
    model = _GridSampleModel()
    model.input_specs = (segment_spec("residual", 1, 8),)
    with pytest.raises(ExportError, match="does not match the input specs"):
        export_onnx(model, tmp_path / "bad.onnx")


def test_export_restores_training_mode(tmp_path):
    model = build_model("edge-mvr", 3).train()
    export_onnx(model, tmp_path / "edge.onnx")
    assert model.training
