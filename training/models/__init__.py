"""edgekit model zoo: compressed-domain video recognition architectures behind one registry.

Example::

    from training.models import build_model, list_models, export_onnx
    model = build_model("edge-mvr", num_classes=10).eval()
    model.input_specs[0].name, model.input_specs[0].shape   # ('mv_residual', (1, 3, 5, 112, 112))
    logits = model(mv_residual=batch)                        # (B, 10)
    export_onnx(model, "edge.onnx")  # static shapes from the specs, input names = spec names
    model_input_specs("edge-mvr", size=96)                  # the specs, without building the model

One file per architecture family: ``resnet`` (2D backbones), ``resnet2d3d`` (IP-TSN 2D-3D),
``mfnet3d`` (MFCD-Net), ``tsn`` (segment classifiers), ``coviar``, ``dmc``, ``iptsn``, ``off``,
``costvol``, ``edge``; ``flops`` counts parameters and multiply-accumulates; ``export`` writes ONNX.
Every built model has ``input_specs`` (a tuple of :class:`edgekit.spec.InputSpec`), takes exactly
those tensors as named ``forward`` arguments and returns logits (B, num_classes).
"""

from __future__ import annotations

# importing the family modules registers their models
from . import coviar, costvol, dmc, edge, iptsn, mfnet3d, off  # noqa: F401
from .export import PORTABLE_OPS, ExportError, export_onnx, onnx_operators
from .flops import count_macs, count_model, count_params, spec_inputs
from .registry import build_model, list_models, model_entry, model_input_specs

__all__ = [
    "PORTABLE_OPS",
    "ExportError",
    "build_model",
    "count_macs",
    "count_model",
    "count_params",
    "export_onnx",
    "list_models",
    "model_entry",
    "model_input_specs",
    "onnx_operators",
    "spec_inputs",
]
