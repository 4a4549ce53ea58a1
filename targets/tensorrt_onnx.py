"""The ONNX handed to TensorRT: what TensorRT 10/11 will refuse, checked before a package leaves the
host, and the one exact rewrite our INT8 models need.

TensorRT builds an engine from explicit Q/DQ quantization (``QuantizeLinear`` / ``DequantizeLinear``)
in a strongly typed network. Its ONNX parser takes INT8 Q/DQ with zero points of 0 only, and
``DequantizeLinear`` only on int8 data: ONNX Runtime's ``quantize_static`` stores each Conv/Gemm bias
as int32 behind a ``DequantizeLinear`` (which ONNX Runtime's CPU kernels fuse), and TensorRT stops at
the first one ("only activation types allowed as input to this layer"). :func:`fold_int32_dequantize`
replaces each such node by the float bias it computes (``(q - zero_point) * scale``, exactly what the
node would compute at run time), so the package for a TensorRT device carries the same arithmetic in a
form TensorRT parses.

Runtime dependencies only: the few protobuf fields needed are read and written here, as in
:mod:`targets.onnx_info` (no ``onnx`` package at run time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgekit.errors import ConfigError
from targets.onnx_info import _fields, _LEN, _text, _VARINT, _varint

# The range of default-domain opsets the TensorRT 10.0 ONNX parser documents (onnx-tensorrt
# docs/operators.md: "opset 9 to opset 20"); later opsets may parse but are not verified here.
TENSORRT_OPSETS = (9, 20)

# Operators the ONNX-TensorRT support matrix lists as supported in TensorRT 8.6 through 10.x: what
# our model zoo exports and the usual CNN vocabulary. An operator in neither set is reported as
# unverified (a warning), not refused.
SUPPORTED_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip",
    "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "DepthToSpace", "DequantizeLinear", "Div",
    "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements",
    "GatherND", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
    "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less",
    "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mul", "Neg", "Not", "Or",
    "Pad", "Pow", "PRelu", "QuantizeLinear", "Range", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceProd", "ReduceSum", "Relu", "Reshape", "Resize", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Slice",
    "Softmax", "Softplus", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "TopK",
    "Transpose", "Unsqueeze", "Where",
})
# Listed as not supported by the ONNX-TensorRT parser: a graph holding one cannot be built.
UNSUPPORTED_OPS = frozenset({
    "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear", "Hardmax",
    "MatMulInteger", "MaxRoiPool", "MaxUnpool", "Multinomial", "NegativeLogLikelihoodLoss", "QLinearConv",
    "QLinearMatMul", "RandomNormal", "RandomNormalLike", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
    "SequenceErase", "SequenceInsert", "SequenceLength", "SoftmaxCrossEntropyLoss", "SplitToSequence",
    "StringNormalizer", "TfIdfVectorizer", "Unique",
})

# onnx.proto field numbers (IR v10) and TensorProto data types used below
_MODEL_OPSET_IMPORT, _MODEL_GRAPH = 8, 7
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT = 1, 5, 11
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_DOMAIN = 1, 2, 3, 4, 7
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 2, 1, 1, 2
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_INT32_DATA = 1, 2, 4, 5
_TENSOR_INT64_DATA, _TENSOR_NAME, _TENSOR_RAW_DATA = 7, 8, 9
_FLOAT, _UINT8, _INT8, _INT32, _INT64 = 1, 2, 3, 6, 7
_NUMPY = {_FLOAT: np.float32, _UINT8: np.uint8, _INT8: np.int8, _INT32: np.int32, _INT64: np.int64}
_TYPE_NAMES = {_FLOAT: "float32", _UINT8: "uint8", _INT8: "int8", _INT32: "int32", _INT64: "int64"}


@dataclass(frozen=True)
class Finding:
    """One thing TensorRT would refuse (``severity`` "error") or that nobody verified for it
    ("warning"): the node (name and operator) when one is at fault, and what to do."""

    severity: str
    message: str
    node: str = ""
    op_type: str = ""

    def __str__(self) -> str:
        where = f"node {self.node!r} ({self.op_type}): " if self.node else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass(frozen=True)
class _Node:
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    raw: memoryview


@dataclass(frozen=True)
class _Graph:
    nodes: tuple[_Node, ...]
    initializers: dict  # name -> memoryview of the TensorProto
    inputs: tuple[tuple[str, tuple[int | str | None, ...]], ...]  # graph inputs: name, dims
    opsets: dict  # domain -> version


def _strings(buf: memoryview, number: int) -> list[str]:
    return [_text(value) for n, wire, value in _fields(buf) if n == number and wire == _LEN]


def _parse_node(buf: memoryview) -> _Node:
    fields = {"name": "", "op": "", "domain": ""}
    for number, wire, value in _fields(buf):
        if wire == _LEN and number in (_NODE_NAME, _NODE_OP_TYPE, _NODE_DOMAIN):
            fields[{_NODE_NAME: "name", _NODE_OP_TYPE: "op", _NODE_DOMAIN: "domain"}[number]] = _text(value)
    return _Node(fields["name"], fields["op"], fields["domain"], tuple(_strings(buf, _NODE_INPUT)),
                 tuple(_strings(buf, _NODE_OUTPUT)), buf)


def _input_dims(value_info: memoryview) -> tuple[str, tuple[int | str | None, ...]]:
    name, dims = "", []
    for number, wire, value in _fields(value_info):
        if number == _VALUE_NAME and wire == _LEN:
            name = _text(value)
        elif number == _VALUE_TYPE and wire == _LEN:
            for n1, w1, tensor in _fields(value):
                if n1 != _TYPE_TENSOR or w1 != _LEN:
                    continue
                for n2, w2, shape in _fields(tensor):
                    if n2 != _TENSOR_TYPE_SHAPE or w2 != _LEN:
                        continue
                    for n3, w3, dim in _fields(shape):
                        if n3 != _SHAPE_DIM or w3 != _LEN:
                            continue
                        size: int | str | None = None
                        for n4, w4, v4 in _fields(dim):
                            if n4 == _DIM_VALUE and w4 == _VARINT:
                                size = v4
                            elif n4 == _DIM_PARAM and w4 == _LEN:
                                size = _text(v4)
                        dims.append(size)
    return name, tuple(dims)


def _parse(model: bytes) -> _Graph:
    try:
        buf = memoryview(model)
        graph, opsets = None, {}
        for number, wire, value in _fields(buf):
            if number == _MODEL_GRAPH and wire == _LEN:
                graph = value
            elif number == _MODEL_OPSET_IMPORT and wire == _LEN:
                domain, version = "", 0
                for n, w, v in _fields(value):
                    if n == _OPSET_DOMAIN and w == _LEN:
                        domain = _text(v)
                    elif n == _OPSET_VERSION and w == _VARINT:
                        version = v
                opsets[domain] = version
        if graph is None:
            raise ValueError("no graph")
        nodes, initializers, inputs = [], {}, []
        for number, wire, value in _fields(graph):
            if wire != _LEN:
                continue
            if number == _GRAPH_NODE:
                nodes.append(_parse_node(value))
            elif number == _GRAPH_INITIALIZER:
                initializers[_tensor_name(value)] = value
            elif number == _GRAPH_INPUT:
                inputs.append(_input_dims(value))
    except ValueError as err:
        raise ConfigError(f"not an ONNX model ({err}); pass the bytes or path of an .onnx file") from None
    inputs = [entry for entry in inputs if entry[0] not in initializers]  # IR < 4 lists initializers as inputs
    return _Graph(tuple(nodes), initializers, tuple(inputs), opsets)


def _tensor_name(tensor: memoryview) -> str:
    for number, wire, value in _fields(tensor):
        if number == _TENSOR_NAME and wire == _LEN:
            return _text(value)
    return ""


def _packed_varints(value) -> list[int]:
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(item)
    return out


def tensor_array(tensor: memoryview) -> np.ndarray:
    """A TensorProto's values as a numpy array (float32, int8, uint8, int32, int64 only).
    Raises ``ValueError`` for another data type or a malformed tensor."""
    dims, data_type, raw, ints, floats = [], 0, None, [], b""
    for number, wire, value in _fields(tensor):
        if number == _TENSOR_DIMS:
            dims.extend(_packed_varints(value))
        elif number == _TENSOR_DATA_TYPE and wire == _VARINT:
            data_type = value
        elif number == _TENSOR_RAW_DATA and wire == _LEN:
            raw = bytes(value)
        elif number in (_TENSOR_INT32_DATA, _TENSOR_INT64_DATA):
            ints.extend(_packed_varints(value))
        elif number == _TENSOR_FLOAT_DATA and wire == _LEN:
            floats += bytes(value)
    if data_type not in _NUMPY:
        raise ValueError(f"tensor data type {data_type} is not read here")
    dtype = np.dtype(_NUMPY[data_type]).newbyteorder("<")
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype)
    elif data_type == _FLOAT:
        array = np.frombuffer(floats, dtype="<f4")
    else:  # int8/uint8/int32 live in int32_data, int64 in int64_data, as (sign-extended) varints
        array = np.array([v - (1 << 64) if v >= 1 << 63 else v for v in ints], dtype=np.int64).astype(dtype)
    count = int(np.prod(dims)) if dims else 1
    if array.size != count:
        raise ValueError(f"tensor holds {array.size} values for dims {dims}")
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _tensor_type(tensor: memoryview) -> int:
    for number, wire, value in _fields(tensor):
        if number == _TENSOR_DATA_TYPE and wire == _VARINT:
            return value
    return 0


def tensorrt_findings(model: bytes) -> list[Finding]:
    """What stands between ``model`` (ONNX bytes) and a TensorRT 10/11 engine, without TensorRT:

    - errors: an operator the ONNX-TensorRT parser does not support, a node outside the default
      ONNX domain (ONNX Runtime contrib operators), a graph input with a dynamic or unknown
      dimension (packages are built for static shapes), a Q/DQ zero point that is not int8 0 (TensorRT
      quantizes symmetrically to int8), a ``DequantizeLinear`` of data other than int8 (the int32 bias
      :func:`fold_int32_dequantize` removes);
    - warnings: an operator or opset outside what is verified here.

    Raises :class:`ConfigError` if ``model`` is not ONNX.
    """
    graph = _parse(model)
    findings: list[Finding] = []
    opset = graph.opsets.get("", graph.opsets.get("ai.onnx"))
    if opset is None:
        findings.append(Finding("error", "the model imports no default-domain opset"))
    elif not TENSORRT_OPSETS[0] <= opset <= TENSORRT_OPSETS[1]:
        findings.append(Finding("warning", f"opset {opset} is outside {TENSORRT_OPSETS[0]}-{TENSORRT_OPSETS[1]}, "
                                           "the range the TensorRT 10.0 parser documents"))
    for name, dims in graph.inputs:
        if not dims or any(not isinstance(d, int) or d <= 0 for d in dims):
            shown = tuple(d if isinstance(d, int) else "?" for d in dims)
            findings.append(Finding("error", f"graph input {name!r} has shape {shown}: TensorRT packages are built "
                                             "for static shapes; export the model with fixed input sizes"))
    for node in graph.nodes:
        label = node.name or (node.outputs[0] if node.outputs else "?")
        if node.domain not in ("", "ai.onnx"):
            findings.append(Finding("error", f"operator of domain {node.domain!r} (an ONNX Runtime extension); "
                                             "export with standard ONNX operators only", label, node.op_type))
        elif node.op_type in UNSUPPORTED_OPS:
            findings.append(Finding("error", "not supported by the ONNX-TensorRT parser", label, node.op_type))
        elif node.op_type not in SUPPORTED_OPS:
            findings.append(Finding("warning", "operator not verified against the TensorRT support matrix",
                                    label, node.op_type))
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            findings.extend(_qdq_findings(graph, node, label))
    return findings


def _qdq_findings(graph: _Graph, node: _Node, label: str) -> Iterable[Finding]:
    zero_point = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if node.op_type == "DequantizeLinear" and node.inputs and node.inputs[0] in graph.initializers:
        data_type = _tensor_type(graph.initializers[node.inputs[0]])
        if data_type != _INT8:
            yield Finding("error", f"dequantizes {_TYPE_NAMES.get(data_type, f'type {data_type}')} data "
                                   f"({node.inputs[0]!r}); TensorRT dequantizes int8 only: fold it into a float "
                                   "initializer (edgekit export does this for TensorRT targets)", label, node.op_type)
            return
    if zero_point is None:
        yield Finding("error", "no zero point: by the ONNX spec that quantizes to uint8; TensorRT needs an explicit "
                               "int8 zero point of 0", label, node.op_type)
        return
    if zero_point not in graph.initializers:
        yield Finding("error", f"zero point {zero_point!r} is not an initializer; TensorRT needs a constant int8 0",
                      label, node.op_type)
        return
    tensor = graph.initializers[zero_point]
    try:
        values = tensor_array(tensor)
    except ValueError as err:
        yield Finding("error", f"zero point {zero_point!r} cannot be read ({err})", label, node.op_type)
        return
    if _tensor_type(tensor) != _INT8:
        yield Finding("error", f"zero point is {values.dtype}; TensorRT quantizes to int8 with zero point 0 "
                               "(re-quantize with symmetric int8 activations)", label, node.op_type)
    elif np.any(values != 0):
        yield Finding("error", f"zero point {values.ravel()[:4].tolist()} is not 0: TensorRT's explicit "
                               "quantization is symmetric (re-quantize with symmetric activations)", label, node.op_type)


# -------------------------------------------------------------------------------- the rewrite


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, _LEN) + _encode_varint(len(payload)) + payload


def _float_tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_key(_TENSOR_DIMS, _VARINT) + _encode_varint(int(d)) for d in array.shape)
    return (dims + _key(_TENSOR_DATA_TYPE, _VARINT) + _encode_varint(_FLOAT)
            + _length_delimited(_TENSOR_NAME, name.encode())
            + _length_delimited(_TENSOR_RAW_DATA, np.ascontiguousarray(array, dtype="<f4").tobytes()))


def _axis(node: _Node) -> int:
    for number, wire, value in _fields(node.raw):
        if number == 5 and wire == _LEN:  # NodeProto.attribute
            name, i = "", None
            for n, w, v in _fields(value):
                if n == 1 and w == _LEN:
                    name = _text(v)
                elif n == 3 and w == _VARINT:
                    i = v - (1 << 64) if v >= 1 << 63 else v
            if name == "axis" and i is not None:
                return i
    return 1  # the ONNX default


def fold_int32_dequantize(model: bytes) -> tuple[bytes, tuple[str, ...]]:
    """``model`` with every ``DequantizeLinear`` of an int32 initializer (ONNX Runtime's quantized
    biases) replaced by the float32 initializer it computes, ``(q - zero_point) * scale`` with the
    node's axis; and the names of the replaced nodes. Nothing else changes (other fields are copied
    byte for byte). Returns ``model`` itself and ``()`` when there is nothing to fold.

    Raises :class:`ConfigError` if ``model`` is not ONNX or such a node's tensors cannot be read.
    """
    graph = _parse(model)
    folded: dict[str, bytes] = {}  # node raw bytes -> replacement initializer
    names: list[str] = []
    for node in graph.nodes:
        if node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx") or not node.inputs:
            continue
        data = graph.initializers.get(node.inputs[0])
        if data is None or _tensor_type(data) != _INT32:
            continue
        try:
            q = tensor_array(data).astype(np.float64)
            scale = tensor_array(graph.initializers[node.inputs[1]]).astype(np.float64)
            zp_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
            zero = tensor_array(graph.initializers[zp_name]).astype(np.float64) if zp_name else np.zeros(1)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"cannot fold DequantizeLinear {node.name!r}: {err}") from None
        if scale.size > 1:  # per-axis: broadcast scale and zero point along the node's axis
            shape = [1] * q.ndim
            shape[_axis(node) % q.ndim] = scale.size
            scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.size > 1 else zero)
        values = ((q - zero) * scale).astype(np.float32)
        folded[bytes(node.raw)] = _float_tensor(node.outputs[0], values)
        names.append(node.name or node.outputs[0])
    if not folded:
        return model, ()
    # the folded nodes' int32 data, scales and zero points, unless another node still reads them
    dropped = {name for node in graph.nodes if bytes(node.raw) in folded for name in node.inputs}
    dropped -= {name for node in graph.nodes if bytes(node.raw) not in folded for name in node.inputs}
    out_graph = bytearray()
    model_view = memoryview(model)
    graph_view = next(value for number, wire, value in _fields(model_view) if number == _MODEL_GRAPH and wire == _LEN)
    for number, wire, value in _fields(graph_view):
        if number == _GRAPH_NODE and wire == _LEN and bytes(value) in folded:
            continue
        if number == _GRAPH_INITIALIZER and wire == _LEN and _tensor_name(value) in dropped:
            continue
        out_graph += _reencode(number, wire, value)
    for replacement in folded.values():
        out_graph += _length_delimited(_GRAPH_INITIALIZER, replacement)
    out_model = bytearray()
    for number, wire, value in _fields(model_view):
        out_model += _length_delimited(_MODEL_GRAPH, bytes(out_graph)) if number == _MODEL_GRAPH else \
            _reencode(number, wire, value)
    return bytes(out_model), tuple(names)


def _reencode(number: int, wire: int, value) -> bytes:
    if wire == _LEN:
        return _length_delimited(number, bytes(value))
    if wire == _VARINT:
        return _key(number, wire) + _encode_varint(value)
    raise ConfigError(f"cannot copy protobuf field {number} of wire type {wire}")  # I64/I32 are not used by ONNX


def check_for_tensorrt(model: bytes) -> tuple[bytes, tuple[str, ...], list[Finding]]:
    """The ONNX a TensorRT package carries: int32 dequantization folded (:func:`fold_int32_dequantize`),
    then checked (:func:`tensorrt_findings`). Returns (model bytes, folded node names, warnings).

    Raises :class:`ConfigError` naming every node TensorRT would refuse.
    """
    prepared, folded = fold_int32_dequantize(model)
    findings = tensorrt_findings(prepared)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        listed = "; ".join(str(f)[len("error: "):] for f in errors[:8])
        more = f"; and {len(errors) - 8} more" if len(errors) > 8 else ""
        raise ConfigError(f"TensorRT cannot build this model: {listed}{more}")
    return prepared, folded, [f for f in findings if f.severity == "warning"]
