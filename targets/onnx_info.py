"""What edgekit needs to know about an ONNX file without importing ``onnx``: its operators and precision.

The runtime depends on numpy and ONNX Runtime only, so this module reads the few ONNX protobuf fields
it needs (``ModelProto.graph`` -> ``GraphProto.node`` -> ``NodeProto.op_type``, and subgraphs held in
node attributes) straight from the protobuf wire format. Tensors (initializers) are skipped by length,
never decoded, so scanning a large model costs one pass over its bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from edgekit.errors import ConfigError

# Operators whose presence makes a graph a quantized (INT8) one: QDQ pairs, QOperator (QLinear*) ops,
# integer kernels, and ONNX Runtime's contrib quantized ops (QGemm, QAttention, ...).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                           "ConvInteger", "MatMulInteger", "QGemm", "QAttention", "QEmbedLayerNormalization",
                           "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MODEL_GRAPH = 7          # ModelProto.graph
_GRAPH_NODE = 1           # GraphProto.node
_NODE_OP_TYPE = 4         # NodeProto.op_type
_NODE_ATTRIBUTE = 5       # NodeProto.attribute
_ATTRIBUTE_GRAPH = 6      # AttributeProto.g
_ATTRIBUTE_GRAPHS = 11    # AttributeProto.graphs


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


def _graph_ops(graph: memoryview, ops: set[str]) -> None:
    for number, wire, value in _fields(graph):
        if number == _GRAPH_NODE and wire == _LEN:
            for field, kind, node_value in _fields(value):
                if field == _NODE_OP_TYPE and kind == _LEN:
                    ops.add(bytes(node_value).decode("utf-8", "replace"))
                elif field == _NODE_ATTRIBUTE and kind == _LEN:
                    for attr_field, attr_kind, attr_value in _fields(node_value):
                        if attr_field in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS) and attr_kind == _LEN:
                            _graph_ops(attr_value, ops)


def onnx_operators(model: bytes | str | os.PathLike) -> frozenset[str]:
    """Operator types used in an ONNX model, its bytes or its path (main graph and control-flow
    subgraphs).

    Raises :class:`ConfigError` if ``model`` is not a parseable ONNX protobuf or holds no graph,
    ``OSError`` if a path cannot be read.
    """
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            model = f.read()
    ops: set[str] = set()
    has_graph = False
    try:
        for number, wire, value in _fields(memoryview(model)):
            if number == _MODEL_GRAPH and wire == _LEN:
                has_graph = True
                _graph_ops(value, ops)
    except ValueError as err:
        raise ConfigError(f"not an ONNX model ({err}); pass the bytes or path of an .onnx file") from None
    if not has_graph or not ops:
        raise ConfigError("not an ONNX model (no graph found); pass the bytes or path of an .onnx file")
    return frozenset(ops)


def onnx_precision(model: bytes | str | os.PathLike) -> str:
    """``"int8"`` if the graph holds quantized operators (QDQ, QLinear*, integer kernels), else ``"fp32"``."""
    ops = onnx_operators(model)
    return "int8" if any(op in QUANTIZED_OPS or op.startswith("QLinear") for op in ops) else "fp32"
