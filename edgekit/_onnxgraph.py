"""Small helpers over an ONNX ``GraphProto`` shared by the runtime's INT8 guard
(``edgekit.int8_guard``) and the quantizer's post-pass (``quantize.graph``). They read and name
protos only: no ``onnx`` import, so the runtime can hold them."""

from __future__ import annotations

from collections import defaultdict


def consumers(graph) -> dict[str, list]:
    """Tensor name -> consuming nodes, once per input slot (a node reading a tensor twice is listed
    twice); empty names (omitted optional inputs) are left out."""
    users = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                users[name].append(node)
    return users


def unique_name(taken: set[str], base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... the first not in ``taken``; added to ``taken``."""
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name
