"""Post-pass on the INT8 QDQ ONNX so that ONNX Runtime's CPU EP fuses every Conv into QLinearConv,
plus checks of the properties the other targets rely on.

Why (found in ORT's optimized graphs, ``SessionOptions.optimized_model_filepath``): on x86, MLAS's
integer kernels are u8 (activations) x s8 (weights): the VNNI instruction ``vpdpbusd`` multiplies
unsigned by signed bytes, and there is no fast s8 x s8 convolution without AVX-VNNI-INT8 (with
``session.qdqisint8allowed=1`` every Conv fuses but runs ~15x slower). So ORT's
``QDQS8ToU8Transformer`` rewrites each int8 ``QuantizeLinear -> DequantizeLinear`` pair to uint8
(zero point 0 -> 128, the same values), and the QDQ Conv selector then refuses any Conv whose input
is still int8. That rewrite only takes a Q with exactly one output edge. In a ResNet, a block's
input feeds two nodes (conv1 and the identity Add, or conv1 and the downsample Conv): its Q feeds
two DQs (ORT first gives each node unit its own DQ), stays int8, and conv1 and the downsample run
in float between a DQ and a Q: 11 of edge-mvr's 20 Convs. ``DedicatedQDQPair=True`` does not help,
because ORT's common-subexpression elimination merges the identical Q nodes back into one.

:func:`unshare_quantized_tensors` gives every consumer its own Q -> DQ pair whose scale and zero
point are initializers of their own (CSE compares inputs by name, so it cannot merge them). When
the shared tensor comes out of an op that ORT runs on the quantized values by dropping its DQ and
Q (MaxPool, the reshaping ops), that op is cloned per consumer instead, so that it keeps a single Q
and still runs in uint8 (otherwise the stem's MaxPool falls back to float and drags layout
Transposes into the first stage). The rewrite is exact: the same float tensor is quantized with
the same parameters once per consumer. Zero points stay int8 0 (TensorRT's explicit-quantization
rule, checked by :func:`zero_point_violations`), and OpenVINO and TensorRT read the graph as before.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgekit._onnxgraph import consumers, unique_name

# Ops ORT's CPU EP runs on quantized data by dropping the DQ before and the Q after them (its
# DropQDQNodesRules) as long as the op has exactly that one Q. Data is input 0; other inputs constant.
PASS_THROUGH_OPS = frozenset({"MaxPool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"})


def _onnx():
    import onnx

    return onnx


def _toposort(graph) -> None:
    """Reorder ``graph.node`` topologically (new nodes are appended after their consumers)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        left = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                left.append(node)
        if len(left) == len(pending):
            missing = sorted({n for node in left for n in node.input if n not in available})
            raise ValueError(f"graph has a cycle or undefined inputs: {', '.join(missing)}")
        pending = left
    del graph.node[:]
    graph.node.extend(ordered)


class _Rewriter:
    """Graph surgery state: initializers by name, names in use, graph outputs."""

    def __init__(self, graph):
        self.graph = graph
        self.inits = {i.name: i for i in graph.initializer}
        self.outputs = {o.name for o in graph.output}
        self.taken = set(self.inits) | {n for node in graph.node for n in [*node.input, *node.output, node.name]}

    def name(self, base: str) -> str:
        return unique_name(self.taken, base)

    def quantized_edges(self, q, users) -> list | None:
        """[(dq, consumer), ...] reached from Q ``q`` through its DQs, or None if ``q`` is not a
        plain constant-parameter Q -> DQ(s) -> nodes fan-out this pass may rewrite."""
        dqs = users.get(q.output[0], [])
        if (q.output[0] in self.outputs or not dqs
                or any(d.op_type != "DequantizeLinear" or d.output[0] in self.outputs for d in dqs)
                or any(n and n not in self.inits for d in (q, *dqs) for n in d.input[1:])):
            return None
        return [(dq, user) for dq in dqs for user in users.get(dq.output[0], [])]

    def new_pair(self, q, dq, source: str, user) -> list:
        """A new Q(``source``) -> DQ pair with private copies of ``q``'s and ``dq``'s parameters, wired
        into one input slot of ``user`` in place of ``dq``'s output. Returns the two nodes."""
        onnx = _onnx()
        copies: dict[str, str] = {}  # scale / zero point -> this pair's own copy (Q and DQ share them)
        for name in [*q.input[1:], *dq.input[1:]]:
            if name and name not in copies:
                copies[name] = self.name(f"{name}_u")
                tensor = onnx.TensorProto()
                tensor.CopyFrom(self.inits[name])
                tensor.name = copies[name]
                self.graph.initializer.append(tensor)
                self.inits[tensor.name] = tensor
        q_out, dq_out = self.name(f"{q.output[0]}_u"), self.name(f"{dq.output[0]}_u")
        new_q = onnx.helper.make_node("QuantizeLinear", [source, *(copies.get(n, n) for n in q.input[1:])], [q_out],
                                      name=self.name(f"{q.name}_u"))
        new_dq = onnx.helper.make_node("DequantizeLinear", [q_out, *(copies.get(n, n) for n in dq.input[1:])],
                                       [dq_out], name=self.name(f"{dq.name}_u"))
        new_q.attribute.extend(q.attribute)
        new_dq.attribute.extend(dq.attribute)
        slot = list(user.input).index(dq.output[0])  # one slot per edge: a node reading it twice has two edges
        user.input[slot] = dq_out
        return [new_q, new_dq]


def _clone_pass_through_producers(rw: _Rewriter) -> int:
    """For each pass-through op (input from a DQ) whose output is quantized by a single Q whose DQs
    reach several consumers: per extra consumer, a clone of the op with its own Q -> DQ."""
    onnx = _onnx()
    graph = rw.graph
    producers = {out: node for node in graph.node for out in node.output}
    users = consumers(graph)
    cloned = 0
    for op in [n for n in graph.node if n.op_type in PASS_THROUGH_OPS and not n.domain]:
        source = producers.get(op.input[0])
        if (source is None or source.op_type != "DequantizeLinear" or len(op.output) != 1
                or any(name and name not in rw.inits for name in op.input[1:])):
            continue
        qs = users.get(op.output[0], [])
        if len(qs) != 1 or qs[0].op_type != "QuantizeLinear" or op.output[0] in rw.outputs:
            continue
        edges = rw.quantized_edges(qs[0], users)
        for dq, user in (edges or [])[1:]:
            clone_out = rw.name(f"{op.output[0]}_u")
            clone = onnx.helper.make_node(op.op_type, list(op.input), [clone_out], name=rw.name(f"{op.name}_u"))
            clone.attribute.extend(op.attribute)
            graph.node.extend([clone, *rw.new_pair(qs[0], dq, clone_out, user)])
            cloned += 1
    return cloned


def unshare_quantized_tensors(model) -> int:
    """Give each consumer of a quantized activation its own QuantizeLinear -> DequantizeLinear pair
    (scale and zero point copied into initializers of their own), in place. Returns the number of
    pairs added (pass-through clones included); 0 leaves the model untouched.

    A Q whose output (through one or several DQs) reaches N > 1 nodes becomes N pairs: the first
    consumer keeps the original pair, each other one gets a new Q of the same float tensor with the
    same parameters (behind a pass-through op: a clone of that op with its own Q and DQ, which makes
    the op's input the shared tensor instead, handled in turn). Weight DQs (no Q) are left alone."""
    graph = model.graph
    rw = _Rewriter(graph)
    added = _clone_pass_through_producers(rw)
    users = consumers(graph)
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        edges = rw.quantized_edges(q, users)
        for dq, user in (edges or [])[1:]:  # the first (DQ, consumer) edge keeps the original pair
            graph.node.extend(rw.new_pair(q, dq, q.input[0], user))
            added += 1
    if added:
        live = consumers(graph)
        for node in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
            if node.output[0] not in live and node.output[0] not in rw.outputs and node.input[0] not in rw.inits:
                graph.node.remove(node)  # its consumers all moved to new pairs
        _toposort(graph)
    return added


def zero_point_violations(model) -> list[str]:
    """Q/DQ nodes that break TensorRT's explicit-quantization rules: a zero point that is not all 0,
    or an 8-bit type other than int8 (uint8 Q/DQ are not accepted). ``[]`` for a conforming model."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    bad = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 3 or not node.input[2]:
            # a Q without zero point outputs uint8; a DQ without one takes its input's type (a Q's
            # output, checked there, or an initializer)
            data = inits.get(node.input[0])
            if node.op_type == "QuantizeLinear" or (data is not None and data.data_type != TensorProto.INT8):
                bad.append(f"{node.op_type}:{node.name}: no zero point and not int8")
            continue
        zp = inits.get(node.input[2])
        if zp is None:
            bad.append(f"{node.op_type}:{node.name}: zero point is not an initializer")
        elif zp.data_type not in (TensorProto.INT8, TensorProto.INT32):
            bad.append(f"{node.op_type}:{node.name}: zero point type {TensorProto.DataType.Name(zp.data_type)}")
        elif np.any(numpy_helper.to_array(zp) != 0):
            bad.append(f"{node.op_type}:{node.name}: nonzero zero point")
    return bad


def float_nodes(path: str | Path) -> list[str]:
    """Compute nodes of a QDQ model that still run in float: their inputs are not all dequantized
    (graph inputs and constants aside). Q/DQ nodes themselves are not counted."""
    model = _onnx().load(str(path))
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    consts = {i.name for i in model.graph.initializer}
    left = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        dynamic = [i for i in n.input if i and i not in consts]
        if dynamic and not all(i in dq_outputs for i in dynamic):
            left.append(f"{n.op_type}:{n.name}")
    return left


def ort_optimized_ops(path: str | Path, threads: int = 1, graph_optimization: str = "all") -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime actually runs for the model at ``path``, with the CPU
    backend's session options (``targets.cpu.session_options``): e.g. how many Convs became
    QLinearConv and how many stayed float."""
    import tempfile

    import onnxruntime as ort

    from targets.cpu import session_options

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        options = session_options(threads, graph_optimization)
        options.optimized_model_filepath = str(out)
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        counts = Counter(n.op_type for n in _onnx().load(str(out)).graph.node)
    return dict(sorted(counts.items()))
