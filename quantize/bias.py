"""Empirical bias correction of a QDQ model: each weighted layer's bias absorbs the mean error that
INT8 rounding and clipping leave in its output.

Rounding a layer's weights and inputs to INT8, and clipping its inputs at a calibrated range, moves
the mean of each output channel a little (the errors of a channel's weights do not cancel over its
inputs, and a clipped ReLU output is smaller on average). Those shifts add up along the network and
move every logit, so clips whose two best classes are close flip. Correction (Nagel et al.,
"Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019, its empirical
variant): over calibration clips, for each Conv, ConvTranspose and Gemm with a bias, in graph order,
measure the mean of every output channel in the quantized model and in the float model on the same
clips, and subtract the difference from the quantized model's bias. Layers are corrected one after
another, each measured with the layers before it already corrected, so a shift is removed once
where it arises and not again downstream.

Only biases change: an INT8 bias (int32 values with scale input scale x weight scale, zero point 0)
keeps its scale and gets new integers, a float bias (a layer kept in float) new floats. No Q/DQ
node, range or weight is touched, so the model stays what TensorRT, OpenVINO and ONNX Runtime
consume (zero points 0). A layer's output is measured in ONNX Runtime by making it a graph output
of a copy of the model, which runs that one layer unfused (float over the dequantized values: the
INT8 kernel's result before requantization, up to float rounding).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from edgekit._onnxgraph import consumers

_CORRECTED = ("Conv", "ConvTranspose", "Gemm")
INT32 = np.iinfo(np.int32)


def _with_outputs(model, tensors: Sequence[str]):
    """A copy of ``model`` that also outputs ``tensors`` (float, shape left to the runtime)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in tensors:
        if name not in present:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return copy


def _channel_means(model, tensors: Sequence[str], inputs: Sequence[dict]) -> dict[str, np.ndarray]:
    """Mean of every channel (axis 1) of each of ``tensors`` over ``inputs``, float64."""
    from targets import load_backend

    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with load_backend("cpu", _with_outputs(model, tensors).SerializeToString(), threads=1) as backend:
        runs = [backend.run(clip) for clip in inputs]
    for outputs in runs:
        for name in tensors:
            value = np.asarray(outputs[name], np.float64)
            if value.ndim < 2:
                raise ValueError(f"bias correction: {name} has shape {value.shape}, expected (N, C, ...)")
            per_channel = np.moveaxis(value, 1, 0).reshape(value.shape[1], -1)
            sums[name] = sums.get(name, 0.0) + per_channel.sum(axis=1)
            counts[name] = counts.get(name, 0) + per_channel.shape[1]
    return {name: sums[name] / counts[name] for name in tensors}


def _bias_slots(model) -> dict[str, tuple]:
    """How each weighted node's bias is stored, by node name: ("int8", values int32 initializer,
    scale) when a DequantizeLinear of int32 values with zero point 0 feeds it, ("float",
    initializer, None) for a float initializer. Nodes without a bias of their own (none, a computed
    one, or one shared with another node) are absent."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    users = consumers(graph)
    producers = {out: n for n in graph.node for out in n.output}
    slots = {}
    for node in graph.node:
        if node.op_type not in _CORRECTED or len(node.input) < 3 or not node.input[2]:
            continue
        bias = node.input[2]
        if len(users[bias]) != 1:
            continue
        if bias in inits:
            slots[node.name] = ("float", inits[bias], None)
            continue
        producer = producers.get(bias)
        if producer is None or producer.op_type != "DequantizeLinear" or len(users[producer.input[0]]) != 1:
            continue
        values, scale = inits.get(producer.input[0]), inits.get(producer.input[1])
        zero = inits.get(producer.input[2]) if len(producer.input) > 2 and producer.input[2] else None
        if values is None or scale is None or numpy_helper.to_array(values).dtype != np.int32:
            continue
        if zero is not None and np.any(numpy_helper.to_array(zero)):
            continue
        slots[node.name] = ("int8", values, scale)
    return slots


def _shift_bias(slot, delta: np.ndarray) -> float:
    """Subtract ``delta`` (per output channel) from the bias in ``slot``; the largest change applied."""
    from onnx import numpy_helper

    kind, values, scale = slot
    if kind == "float":
        old = numpy_helper.to_array(values).astype(np.float64)
        new = (old - delta).astype(np.float32)
        values.CopyFrom(numpy_helper.from_array(new, values.name))
        return float(np.max(np.abs(new - old))) if new.size else 0.0
    q = numpy_helper.to_array(values).astype(np.float64)
    s = np.broadcast_to(numpy_helper.to_array(scale).astype(np.float64), q.shape)
    safe = np.where(s > 0, s, 1.0)
    new_q = np.clip(np.round(q - np.where(s > 0, delta / safe, 0.0)), INT32.min, INT32.max).astype(np.int32)
    values.CopyFrom(numpy_helper.from_array(new_q, values.name))
    return float(np.max(np.abs((new_q - q) * s))) if q.size else 0.0


def correct_biases(reference, model, inputs: Sequence[dict]) -> dict:
    """Correct ``model``'s biases in place (module docstring) so each weighted layer's mean output
    per channel matches ``reference``'s (the float model ``model`` was quantized from, same node
    names) over ``inputs`` (feed dicts). Returns a report: layers corrected, layers skipped (no
    bias of their own, or not in ``reference``), the mean |shift| before correction as a share of
    each layer's mean |output|, the largest bias change, the seconds spent.

    Raises ``ValueError`` when ``inputs`` is empty."""
    if not inputs:
        raise ValueError("bias correction needs at least one calibration clip")
    t0 = time.perf_counter()
    ref_outputs = {n.name: n.output[0] for n in reference.graph.node if n.op_type in _CORRECTED and n.name}
    slots = _bias_slots(model)
    targets, skipped = [], []
    for node in model.graph.node:
        if node.op_type not in _CORRECTED:
            continue
        slot = slots.get(node.name)
        if slot is None or node.name not in ref_outputs:
            skipped.append(node.name)
            continue
        targets.append((node, slot))
    wanted = [ref_outputs[node.name] for node, _ in targets]
    reference_means = _channel_means(reference, wanted, inputs) if wanted else {}
    shifts, largest = [], 0.0
    for (node, slot), ref_name in zip(targets, wanted):
        ref = reference_means[ref_name]
        quantized = _channel_means(model, [node.output[0]], inputs)[node.output[0]]
        if quantized.shape != ref.shape:
            skipped.append(node.name)
            continue
        delta = quantized - ref
        shifts.append(float(np.mean(np.abs(delta)) / max(float(np.mean(np.abs(ref))), 1e-12)))
        largest = max(largest, _shift_bias(slot, delta))
    return {"layers": len(shifts), "skipped": skipped, "clips": len(inputs),
            "mean_relative_shift": round(float(np.mean(shifts)), 6) if shifts else 0.0,
            "max_relative_shift": round(float(np.max(shifts)), 6) if shifts else 0.0,
            "largest_bias_change": round(largest, 6), "seconds": round(time.perf_counter() - t0, 2)}
