"""What edgekit needs to know about an ONNX file without importing ``onnx``: its operators, its precision,
and whether any tensor keeps its data outside the file (external data, which a package refuses).

The runtime depends on numpy and ONNX Runtime only, so this module reads the few ONNX protobuf fields
it needs (``ModelProto.graph`` -> ``GraphProto.node`` -> ``NodeProto.op_type``, and subgraphs held in
node attributes) straight from the protobuf wire format. Tensors (initializers) are read only for
their name and data location, their data is skipped by length, so scanning a large model costs one pass
over its bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from edgekit.errors import ConfigError

# Operators whose presence makes a graph a quantized (INT8) one: QDQ pairs, QOperator (QLinear*) ops,
# integer kernels, and ONNX Runtime's contrib quantized ops (QGemm, QAttention, ...).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                           "ConvInteger", "MatMulInteger", "QGemm", "QAttention", "QEmbedLayerNormalization",
                           "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# Field numbers of onnx.proto (ONNX IR v10), the only ones read here.
_MODEL_GRAPH = 7          # ModelProto.graph
_MODEL_TRAINING_INFO = 20  # ModelProto.training_info
_MODEL_FUNCTIONS = 25     # ModelProto.functions
_GRAPH_NODE = 1           # GraphProto.node
_GRAPH_INITIALIZER = 5    # GraphProto.initializer
_GRAPH_SPARSE_INITIALIZER = 15  # GraphProto.sparse_initializer
_NODE_OP_TYPE = 4         # NodeProto.op_type
_NODE_ATTRIBUTE = 5       # NodeProto.attribute
_ATTRIBUTE_TENSOR = 5     # AttributeProto.t
_ATTRIBUTE_GRAPH = 6      # AttributeProto.g
_ATTRIBUTE_TENSORS = 10   # AttributeProto.tensors
_ATTRIBUTE_GRAPHS = 11    # AttributeProto.graphs
_ATTRIBUTE_SPARSE_TENSOR = 22   # AttributeProto.sparse_tensor
_ATTRIBUTE_SPARSE_TENSORS = 23  # AttributeProto.sparse_tensors
_TENSOR_NAME = 8          # TensorProto.name
_TENSOR_EXTERNAL_DATA = 13  # TensorProto.external_data (StringStringEntryProto key=1, value=2)
_TENSOR_DATA_LOCATION = 14  # TensorProto.data_location; EXTERNAL = 1
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2  # SparseTensorProto.values / .indices
_TRAINING_INITIALIZATION, _TRAINING_ALGORITHM = 1, 2  # TrainingInfoProto graphs
_FUNCTION_NODE = 7        # FunctionProto.node
_EXTERNAL = 1


@dataclass(frozen=True)
class ExternalTensor:
    """A tensor whose data the model says lives outside its own bytes: ``name`` and the recorded
    ``location`` (a path relative to the model file, or "" when none is recorded)."""

    name: str
    location: str


@dataclass(frozen=True)
class OnnxScan:
    """What one pass over an ONNX file found: ``operators`` of the main graph and its control-flow
    subgraphs, and every tensor stored as external data (``external_tensors``), wherever it sits:
    initializers, sparse initializers, Constant/attribute tensors, subgraphs, functions and training
    graphs."""

    operators: frozenset[str]
    external_tensors: tuple[ExternalTensor, ...]


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) of one protobuf message; LEN values as memoryview slices."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _I64:
            value, pos = 0, pos + 8
        elif wire == _I32:
            value, pos = 0, pos + 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end or number == 0:
            raise ValueError("truncated or malformed protobuf")
        yield number, wire, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", "replace")


def _external_tensor(tensor: memoryview) -> ExternalTensor | None:
    name, location, external = "", "", False
    for number, wire, value in _fields(tensor):
        if number == _TENSOR_NAME and wire == _LEN:
            name = _text(value)
        elif number == _TENSOR_DATA_LOCATION and wire == _VARINT:
            external = external or value == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and wire == _LEN:
            external = True
            entry = dict((key, _text(text)) for key, kind, text in _fields(value) if kind == _LEN)
            if entry.get(1) == "location":
                location = entry.get(2, "")
    return ExternalTensor(name, location) if external else None


def _scan(model: memoryview) -> tuple[set[str], list[ExternalTensor], bool]:
    """Walk the model with an explicit stack (a crafted model nesting subgraphs thousands deep
    cannot exhaust Python's recursion limit). Nodes reached from ModelProto.graph count towards
    the operators; functions and training graphs are scanned for external data only."""
    ops: set[str] = set()
    external: list[ExternalTensor] = []
    has_graph = False
    stack: list[tuple[str, memoryview, bool]] = []  # popped from the end: children pushed in reverse
    children: list[tuple[str, memoryview, bool]] = []
    for number, wire, value in _fields(model):
        if wire != _LEN:
            continue
        if number == _MODEL_GRAPH:
            has_graph = True
            children.append(("graph", value, True))
        elif number == _MODEL_TRAINING_INFO:
            children.append(("training", value, False))
        elif number == _MODEL_FUNCTIONS:
            children.append(("function", value, False))
    stack.extend(reversed(children))
    while stack:
        kind, buf, count_ops = stack.pop()
        if kind == "tensor":
            found = _external_tensor(buf)
            if found is not None:
                external.append(found)
            continue
        children = []
        for number, wire, value in _fields(buf):
            if wire != _LEN:
                continue
            if kind == "graph":
                if number == _GRAPH_NODE:
                    children.append(("node", value, count_ops))
                elif number == _GRAPH_INITIALIZER:
                    children.append(("tensor", value, False))
                elif number == _GRAPH_SPARSE_INITIALIZER:
                    children.append(("sparse", value, False))
            elif kind == "node":
                if number == _NODE_OP_TYPE and count_ops:
                    ops.add(_text(value))
                elif number == _NODE_ATTRIBUTE:
                    children.append(("attribute", value, count_ops))
            elif kind == "attribute":
                if number in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS):
                    children.append(("graph", value, count_ops))
                elif number in (_ATTRIBUTE_TENSOR, _ATTRIBUTE_TENSORS):
                    children.append(("tensor", value, False))
                elif number in (_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS):
                    children.append(("sparse", value, False))
            elif kind == "sparse" and number in (_SPARSE_VALUES, _SPARSE_INDICES):
                children.append(("tensor", value, False))
            elif kind == "training" and number in (_TRAINING_INITIALIZATION, _TRAINING_ALGORITHM):
                children.append(("graph", value, False))
            elif kind == "function" and number == _FUNCTION_NODE:
                children.append(("node", value, False))
        stack.extend(reversed(children))
    return ops, external, has_graph


def scan_onnx(model: bytes | str | os.PathLike) -> OnnxScan:
    """Operators and external-data tensors of an ONNX model, its bytes or its path, in one pass;
    external data is only recorded, never opened.

    Raises :class:`ConfigError` if ``model`` is not a parseable ONNX protobuf or holds no graph,
    ``OSError`` if a path cannot be read.
    """
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            model = f.read()
    try:
        ops, external, has_graph = _scan(memoryview(model))
    except ValueError as err:
        raise ConfigError(f"not an ONNX model ({err}); pass the bytes or path of an .onnx file") from None
    if not has_graph or not ops:
        raise ConfigError("not an ONNX model (no graph found); pass the bytes or path of an .onnx file")
    return OnnxScan(frozenset(ops), tuple(external))


def onnx_operators(model: bytes | str | os.PathLike) -> frozenset[str]:
    """Operator types used in an ONNX model, its bytes or its path (main graph and control-flow
    subgraphs).

    Raises :class:`ConfigError` if ``model`` is not a parseable ONNX protobuf or holds no graph,
    ``OSError`` if a path cannot be read.
    """
    return scan_onnx(model).operators


def onnx_external_data(model: bytes | str | os.PathLike) -> tuple[ExternalTensor, ...]:
    """Tensors of the model stored as external data (``data_location == EXTERNAL`` or an
    ``external_data`` entry), in any graph, subgraph, function or attribute. Empty for a
    self-contained model. The files they name are never opened. Raises as :func:`scan_onnx`."""
    return scan_onnx(model).external_tensors


def onnx_precision(model: bytes | str | os.PathLike) -> str:
    """``"int8"`` if the graph holds quantized operators (QDQ, QLinear*, integer kernels), else ``"fp32"``."""
    ops = onnx_operators(model)
    return "int8" if any(op in QUANTIZED_OPS or op.startswith("QLinear") for op in ops) else "fp32"
