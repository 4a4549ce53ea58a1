"""Static-shape ONNX export of any registered model, restricted to operators every target runs.

``export_onnx(model, path)`` traces the model at the static shapes of its ``input_specs`` (batch 1),
names the ONNX inputs after the specs and the single output ``logits``, stores the specs as JSON in
the model's metadata (``edgekit.input_specs``), and then checks the graph: ONNX checker, every
dimension static, and every operator in :data:`PORTABLE_OPS`.

:data:`PORTABLE_OPS` is the set of ONNX operators supported by all three edgekit targets: ONNX
Runtime (CPU EP), OpenVINO's ONNX frontend, and TensorRT's ONNX parser. The TensorRT side was checked
against onnx-tensorrt ``docs/operators.md`` for TensorRT 8.4/8.5 and 10.x (see docs/models.md).
Deliberately absent: ``GridSample`` (TensorRT: 4D and FP32/FP16 only, none before 8.5), ``NonZero``
and ``Unique`` (data-dependent shapes; unsupported by TensorRT 8.x), ``Loop``/``If``/``Scan``,
``Resize`` (not needed), and the shape-arithmetic ops ``Shape``/``Gather``/``ConstantOfShape``
(a static graph has none; their presence would mean a dynamic shape leaked into the trace).

The exporter is torch's TorchScript-based one (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which edgekit does not depend on. What it leaves behind (shape arithmetic around
``F.pad``, ``Shape`` of statically shaped tensors, ``Identity`` aliases of shared weights) is folded
by :func:`simplify`.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from edgekit._fileio import atomic_output
from edgekit.errors import EdgekitError, MissingDependencyError

PORTABLE_OPS = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Div",
    "Exp", "Flatten", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu", "MatMul", "Max", "MaxPool",
    "Min", "Mul", "Neg", "Pad", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Sigmoid",
    "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})

OUTPUT_NAME = "logits"
METADATA_SPECS = "edgekit.input_specs"
METADATA_MODEL = "edgekit.model_name"
FOLD_MAX_ELEMENTS = 4096  # fold only shape-sized constants, never duplicate weights


class ExportError(EdgekitError):
    """A model cannot be exported to a static, portable ONNX graph; the message names the cause."""


def _onnx():
    """The ``onnx`` package, or a :class:`MissingDependencyError` naming the ``train`` extra."""
    try:
        import onnx
    except ModuleNotFoundError as err:
        raise MissingDependencyError("onnx", "train") from err
    return onnx


def export_onnx(model: nn.Module, path: str | os.PathLike, *, opset: int = 17, check: bool = True,
                seed: int = 0) -> Path:
    """Export ``model`` to ``path`` as a static-shape ONNX graph and return the path.

    Inputs are named after ``model.input_specs`` (shapes taken from them, batch 1), the output is
    ``logits`` (1, num_classes). The model is traced in eval mode (BatchNorm folded, dropout off)
    and its train/eval state is restored afterwards. The file is written to a temporary name and
    renamed when complete, so a failed export leaves nothing behind.

    Raises :class:`ExportError` if the forward signature does not match the specs, or (with
    ``check=True``) if the graph uses an operator outside :data:`PORTABLE_OPS` or a dynamic shape.
    """
    from .flops import spec_inputs

    onnx = _onnx()
    path = Path(path)
    names = _check_forward_signature(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer notes
            torch.onnx.export(model, spec_inputs(model, device=device, seed=seed), buffer, input_names=names,
                              output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True,
                              dynamo=False, training=torch.onnx.TrainingMode.EVAL)
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    simplify(proto)
    _add_metadata(proto, model)
    if check:
        verify(proto, model.input_specs, getattr(model, "default_cfg", {}).get("num_classes"))
    with atomic_output(path, suffix=".onnx") as tmp:
        onnx.save(proto, str(tmp))
    return path


def onnx_operators(model) -> frozenset[str]:
    """Operator types used anywhere in an ONNX model (a path, its bytes or a ``ModelProto``),
    subgraphs included: :func:`targets.onnx_info.onnx_operators`, which reads them without ``onnx``."""
    from targets.onnx_info import onnx_operators as operators_of

    if hasattr(model, "SerializeToString"):  # a ModelProto
        model = model.SerializeToString()
    return operators_of(model)


def verify(proto, specs, num_classes: int | None = None) -> None:
    """Raise :class:`ExportError` unless ``proto`` is valid, static, portable and matches ``specs``."""
    onnx = _onnx()

    onnx.checker.check_model(proto)
    unsupported = onnx_operators(proto) - PORTABLE_OPS
    if unsupported:
        raise ExportError(f"operators outside the portable set (ORT/OpenVINO/TensorRT): {sorted(unsupported)}")
    graph_inputs = {i.name: i for i in proto.graph.input}
    for spec in specs:
        shape = _static_shape(graph_inputs[spec.name])
        if shape != spec.shape:
            raise ExportError(f"input {spec.name!r} exported as {shape}, spec says {spec.shape}")
    outputs = list(proto.graph.output)
    if [o.name for o in outputs] != [OUTPUT_NAME]:
        raise ExportError(f"expected one output {OUTPUT_NAME!r}, got {[o.name for o in outputs]}")
    out_shape = _static_shape(outputs[0])
    if None in out_shape or out_shape[0] != 1 or (num_classes is not None and out_shape != (1, num_classes)):
        raise ExportError(f"output {OUTPUT_NAME!r} has shape {out_shape}, expected (1, num_classes)")


def simplify(proto, max_passes: int = 4) -> None:
    """Fold constant subgraphs, drop Identity aliases of weights and state the output shape, in place.

    A node whose inputs are all (small) constants, or a ``Shape`` of a statically shaped tensor, is
    evaluated with the ONNX reference evaluator and replaced by an initializer. Folding lets shape
    inference see more static shapes, so passes repeat until nothing changes.
    """
    onnx = _onnx()
    for _ in range(max_passes):
        if not _fold_once(proto):
            break
    inferred = onnx.shape_inference.infer_shapes(_weightless_copy(proto)).graph.output
    for output, inferred_output in zip(proto.graph.output, inferred):
        if all(d.HasField("dim_value") for d in inferred_output.type.tensor_type.shape.dim):
            output.type.CopyFrom(inferred_output.type)


def _static_shape(value_info) -> tuple:
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim)


def _weightless_copy(proto):
    """The graph with large initializers turned into typed inputs: cheap to shape-infer."""
    from onnx import helper

    graph = proto.graph
    small, large = [], []
    for init in graph.initializer:
        (small if _numel(init.dims) <= FOLD_MAX_ELEMENTS else large).append(init)
    inputs = list(graph.input) + [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in large]
    light = helper.make_graph(list(graph.node), graph.name, inputs, list(graph.output), initializer=small)
    return helper.make_model(light, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _fold_once(proto) -> bool:
    """One folding pass; True if anything changed."""
    import numpy as np

    onnx = _onnx()
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    static_shapes = {}
    inferred = onnx.shape_inference.infer_shapes(_weightless_copy(proto)).graph
    for info in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        shape = _static_shape(info)
        if shape and None not in shape:
            static_shapes[info.name] = shape
    initializers = {init.name for init in graph.initializer}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer
                 if _numel(init.dims) <= FOLD_MAX_ELEMENTS}
    alias: dict[str, str] = {}
    folded: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        renamed = [alias.get(name, name) for name in node.input]
        del node.input[:]
        node.input.extend(renamed)
        inputs = [name for name in node.input if name]
        values = None
        if node.op_type == "Identity" and inputs[0] in initializers:
            alias[node.output[0]] = inputs[0]
            continue
        if node.op_type == "Shape" and inputs[0] in static_shapes:
            shape = np.array(static_shapes[inputs[0]], dtype=np.int64)
            attrs = {a.name: a.i for a in node.attribute}
            values = [shape[attrs.get("start", 0): attrs.get("end", len(shape))]]
        elif all(name in constants for name in inputs) and not node.op_type.startswith("Random"):
            values = ReferenceEvaluator(node).run(None, {name: constants[name] for name in inputs})
        if values is None or any(np.asarray(v).size > FOLD_MAX_ELEMENTS for v in values):
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            constants[name] = folded[name] = np.asarray(value)
    if not folded and not alias:
        return False
    for output in graph.output:  # an aliased graph output keeps its name through an Identity
        if output.name in alias:
            kept.append(onnx.helper.make_node("Identity", [alias[output.name]], [output.name]))
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    new_initializers = [init for init in graph.initializer if init.name in used]
    new_initializers += [numpy_helper.from_array(value, name) for name, value in folded.items() if name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(new_initializers)
    return True


def _check_forward_signature(model: nn.Module) -> list[str]:
    specs = getattr(model, "input_specs", None)
    if not specs:
        raise ExportError(f"{type(model).__name__} has no input_specs; build it with training.models.build_model")
    names = [spec.name for spec in specs]
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if [p.name for p in params] != names:
        raise ExportError(f"forward({', '.join(p.name for p in params)}) does not match the input specs {names}")
    return names


def _add_metadata(proto, model: nn.Module) -> None:
    entries = {METADATA_SPECS: json.dumps([spec.to_dict() for spec in model.input_specs]),
               METADATA_MODEL: getattr(model, "model_name", type(model).__name__)}
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "edgekit.training.models"
