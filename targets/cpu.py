"""CPU backend: ONNX Runtime's ``CPUExecutionProvider`` (x86-64 and ARM64 CPUs).

Runs the FP32 or the INT8 QDQ ONNX as is; ONNX Runtime fuses QDQ pairs into integer kernels
(``graph_optimization="all"``, the default). Sequential execution with ``threads`` intra-op threads:
one inference at a time, as a camera pipeline runs it, with latency rather than throughput in mind.

INT8 on x86: MLAS's integer kernels are uint8 x int8 (VNNI), so ORT converts the model's int8
activations to uint8 itself; ``session.qdqisint8allowed`` stays unset (int8 x int8 convolutions fall
back to a path ~15x slower). Every Conv fuses to QLinearConv only if each quantized tensor feeds one
node, which ``quantize.graph.unshare_quantized_tensors`` ensures for the models edgekit quantizes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError
from targets.backend import ModelSource, TensorInfo, check_inputs, read_model_source
from targets.onnx_info import onnx_precision

GRAPH_OPTIMIZATIONS = ("all", "extended", "basic", "disable")

# ONNX Runtime's type strings -> numpy dtype names
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
               "tensor(uint16)": "uint16", "tensor(int32)": "int32", "tensor(uint32)": "uint32",
               "tensor(int64)": "int64", "tensor(uint64)": "uint64", "tensor(bool)": "bool"}


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity, where the OS has one); at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once); at least 1."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows): logical CPUs
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))  # no topology information (containers, non-Linux): count logical CPUs
    return max(1, len(cores))


def ort_tensor_info(node_arg) -> TensorInfo:
    """A :class:`TensorInfo` from an ONNX Runtime ``NodeArg`` (symbolic dimensions become ``None``)."""
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (node_arg.shape or ()))
    return TensorInfo(node_arg.name, shape, _ORT_DTYPES.get(node_arg.type, node_arg.type))


class CPUBackend:
    """An ONNX Runtime session on the CPU. Build it with :func:`load` or ``load_backend("cpu", ...)``."""

    name = "onnxruntime"
    device = "CPU"

    def __init__(self, session, precision: str, threads: int):
        self._session = session
        self.precision = precision
        self.threads = threads
        self.inputs = tuple(ort_tensor_info(a) for a in session.get_inputs())
        self.outputs = tuple(ort_tensor_info(a) for a in session.get_outputs())
        self.input_names = tuple(info.name for info in self.inputs)
        self.output_names = tuple(info.name for info in self.outputs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for ``inputs`` by name. Raises :class:`ConfigError` on bad inputs."""
        if self._session is None:
            raise ConfigError("this cpu backend is closed; load the model again with load_backend('cpu', ...)")
        check_inputs(inputs, self.inputs)
        values = self._session.run(list(self.output_names), {name: inputs[name] for name in self.input_names})
        return dict(zip(self.output_names, values))

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "CPUBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._session is None else f"{self.threads} threads"
        return f"CPUBackend(precision={self.precision!r}, inputs={self.input_names}, {state})"


def session_options(threads: int, graph_optimization: str = "all"):
    """The ``onnxruntime.SessionOptions`` :func:`load` uses (also for tools that inspect the optimized
    graph, such as ``quantize.graph.ort_optimized_ops``)."""
    import onnxruntime as ort

    level = ort.GraphOptimizationLevel
    levels = {"all": level.ORT_ENABLE_ALL, "extended": level.ORT_ENABLE_EXTENDED, "basic": level.ORT_ENABLE_BASIC,
              "disable": level.ORT_DISABLE_ALL}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = levels[graph_optimization]
    options.log_severity_level = 3  # errors only: graph-optimizer notices are not the user's concern
    # Between inferences the worker threads sleep instead of spinning: a video pipeline decodes
    # between two windows, and spinning workers would take the cores the decoder needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load(model: ModelSource, *, threads: int | None = None, graph_optimization: str = "all",
         device: str = "CPU") -> CPUBackend:
    """Load an ONNX model (bytes or path) into ONNX Runtime on the CPU.

    ``threads``: intra-op threads (default: the physical cores available to this process).
    ``graph_optimization``: "all" (default), "extended", "basic" or "disable".
    ``device``: must be "CPU" (accepted so every backend takes the same ``device`` option).

    Raises :class:`ConfigError` on a bad option or a model ONNX Runtime cannot load.
    """
    import onnxruntime as ort

    if str(device).upper() != "CPU":
        raise ConfigError(f"the cpu backend runs on device 'CPU' only, not {device!r}; "
                          "use backend 'openvino' for Intel GPU/NPU")
    if threads is None:
        threads = physical_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    if graph_optimization not in GRAPH_OPTIMIZATIONS:
        raise ConfigError(f"graph_optimization must be one of {list(GRAPH_OPTIMIZATIONS)}, got {graph_optimization!r}")
    data, path = read_model_source(model)
    precision = onnx_precision(data)
    options = session_options(threads, graph_optimization)
    try:
        # from a path ONNX Runtime finds external weights beside the file; otherwise from memory
        session = ort.InferenceSession(str(path) if path else data, sess_options=options,
                                       providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own pybind exception types (Fail, InvalidGraph, ...)
        where = path or "bytes"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"ONNX Runtime cannot load the model ({where}): {reason}") from None
    return CPUBackend(session, precision, threads)
