"""OpenVINO backend: Intel CPUs, integrated/discrete GPUs and NPUs, from the ONNX or from OpenVINO IR.

``load`` reads the model with ``openvino.Core().read_model`` (ONNX bytes or path, or IR ``.xml`` +
``.bin``) and compiles it for one device with the LATENCY performance hint. Compiled blobs are cached
(``CACHE_DIR``) so the second start on a device skips compilation: by default under
``$EDGEKIT_CACHE_DIR/openvino``, else ``~/.cache/edgekit/openvino``.

``save_ir`` / ``ir_bytes`` serialize a model to IR (``openvino.convert_model`` + ``save_model``,
weights kept as in the ONNX) so a package can carry it and devices skip the ONNX frontend.

OpenVINO is an optional dependency (``pip install 'edgekit[openvino]'``), imported lazily.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError, MissingDependencyError
from targets.backend import ModelSource, TensorInfo, check_inputs, read_model_source
from targets.onnx_info import onnx_precision

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")
_QUANTIZED_ELEMENT_TYPES = frozenset({"i8", "u8", "i4", "u4"})


def _openvino():
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino", "openvino") from None
    return openvino


def default_cache_dir() -> Path:
    """Where compiled blobs go: ``$EDGEKIT_CACHE_DIR/openvino``, else ``~/.cache/edgekit/openvino``."""
    root = os.environ.get("EDGEKIT_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "edgekit") / "openvino"


def _reason(err: Exception) -> str:
    """The informative line of an OpenVINO exception (its first lines are C++ source locations)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception from ")]
    return (useful or lines or [type(err).__name__])[0]


def _tensor_info(port) -> TensorInfo:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorInfo(port.get_any_name(), shape, port.get_element_type().to_dtype().name)


def model_precision(model) -> str:
    """"int8" if an ``openvino.Model`` holds quantization (FakeQuantize, int8/int4 weights), else "fp32"."""
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            return "int8"
        if kind == "Constant" and op.get_output_element_type(0).get_type_name() in _QUANTIZED_ELEMENT_TYPES:
            # integer weights dequantized in the graph (Constant -> Convert -> Subtract/Multiply)
            if any(target.get_node().get_type_name() == "Convert" for target in op.output(0).get_target_inputs()):
                return "int8"
    return "fp32"


def _resolve_device(core, device: str) -> str:
    """Canonical device string (``"cpu"`` -> ``"CPU"``); ConfigError if it is not available here."""
    base, colon, rest = str(device).strip().partition(":")  # AUTO:GPU,CPU names AUTO's candidates
    kind, dot, index = base.partition(".")
    kind = kind.upper()
    if kind not in DEVICES or (colon and kind != "AUTO") or (dot and kind == "AUTO"):
        raise ConfigError(f"unknown OpenVINO device {device!r}; expected one of {list(DEVICES)} "
                          "(optionally with an index, e.g. GPU.1, or AUTO:GPU,CPU)")
    available = list(core.available_devices)
    if kind == "AUTO":
        if not available:
            raise ConfigError("OpenVINO finds no device for AUTO; available devices: []")
        wanted = [name.strip().upper() for name in rest.split(",") if name.strip()]
        canonical = "AUTO" + (":" + ",".join(wanted) if wanted else "")
    else:
        wanted = [kind + dot + index]
        canonical = wanted[0]
    for name in wanted:
        # "GPU" means the only or first GPU; with one GPU, listed as "GPU", "GPU.0" is valid too
        ok = name in available or any(a.split(".")[0] == name for a in available) or (
            name.endswith(".0") and name[:-2] in available)
        if not ok:
            raise ConfigError(f"OpenVINO device {name!r} is not available here; available devices: {available}")
    return canonical


class OpenVINOBackend:
    """A model compiled by OpenVINO for one device. Build it with :func:`load` or ``load_backend("openvino", ...)``."""

    name = "openvino"

    def __init__(self, compiled, device: str, precision: str, cache_dir: Path | None):
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.inputs = tuple(_tensor_info(port) for port in compiled.inputs)
        self.outputs = tuple(_tensor_info(port) for port in compiled.outputs)
        self.input_names = tuple(info.name for info in self.inputs)
        self.output_names = tuple(info.name for info in self.outputs)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for ``inputs`` by name. Raises :class:`ConfigError` on bad inputs."""
        if self._request is None:
            raise ConfigError("this openvino backend is closed; "
                              "load the model again with load_backend('openvino', ...)")
        check_inputs(inputs, self.inputs)
        results = self._request.infer({name: inputs[name] for name in self.input_names})  # copies outputs
        return {info.name: results[port] for info, port in zip(self.outputs, self._compiled.outputs)}

    def profiling_info(self) -> list[dict]:
        """Per-layer performance counters of the last inference (a backend loaded with
        ``profiling=True``): [{"name", "type", "exec_type", "status", "real_us", "cpu_us"}]. Layers
        fused away or not run are included with their status ("OPTIMIZED_OUT", "NOT_RUN")."""
        if self._request is None:
            raise ConfigError("this openvino backend is closed; "
                              "load the model again with load_backend('openvino', ...)")
        try:
            counters = self._request.get_profiling_info()
        except RuntimeError as err:
            raise ConfigError(f"OpenVINO has no performance counters for this model: {_reason(err)} "
                              "(load it with profiling=True)") from None
        return [{"name": c.node_name, "type": c.node_type, "exec_type": c.exec_type,
                 "status": getattr(c.status, "name", str(c.status)).rsplit(".", 1)[-1],
                 "real_us": c.real_time.total_seconds() * 1e6, "cpu_us": c.cpu_time.total_seconds() * 1e6}
                for c in counters]

    def close(self) -> None:
        self._request = None
        self._compiled = None

    def __enter__(self) -> "OpenVINOBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._request is None else f"device={self.device!r}"
        return f"OpenVINOBackend(precision={self.precision!r}, inputs={self.input_names}, {state})"


def _read(core, ov, model: ModelSource, weights: bytes | None):
    """(openvino.Model, precision) from ONNX bytes/path, an IR .xml path, or IR bytes + ``weights``."""
    data, path = read_model_source(model)
    if weights is not None and path is not None:
        raise ConfigError("weights= goes with IR .xml bytes; for an .xml path the .bin is read beside it")
    is_ir = weights is not None or (path is not None and path.suffix.lower() == ".xml")
    try:
        if weights is not None:
            read = core.read_model(data, ov.Tensor(np.frombuffer(bytes(weights), dtype=np.uint8)))
        else:
            read = core.read_model(str(path) if path else data)
    except RuntimeError as err:
        where = path or ("IR bytes" if is_ir else "bytes")
        raise ConfigError(f"OpenVINO cannot read the model ({where}): {_reason(err)}") from None
    if not is_ir:
        try:
            return read, onnx_precision(data)
        except ConfigError:  # another format OpenVINO reads by itself (e.g. IR without weights)
            pass
    return read, model_precision(read)


def _cache_config(ov, cache: bool, cache_dir: str | os.PathLike | None) -> tuple[dict, Path | None]:
    if not cache:
        return {}, None
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if cache_dir is not None:
            raise ConfigError(f"cannot create the OpenVINO cache directory {folder}: {err.strerror or err}") from None
        # the default cache is a speed-up only: a read-only home must not stop inference
        warnings.warn(f"OpenVINO model cache disabled: cannot create {folder} ({err.strerror or err}); "
                      "set EDGEKIT_CACHE_DIR to a writable folder", stacklevel=3)
        return {}, None
    return {ov.properties.cache_dir(): str(folder)}, folder


def load(model: ModelSource, *, device: str = "CPU", cache_dir: str | os.PathLike | None = None,
         cache: bool = True, threads: int | None = None, inference_precision: str | None = None,
         weights: bytes | None = None, profiling: bool = False) -> OpenVINOBackend:
    """Compile a model with OpenVINO for ``device`` (LATENCY hint).

    ``model``: ONNX bytes or path, an IR ``.xml`` path (``.bin`` beside it), or IR xml bytes with
    ``weights`` = the ``.bin`` bytes. ``device``: "CPU" (default), "GPU", "GPU.1", "NPU", "AUTO" or
    "AUTO:GPU,CPU". ``cache_dir``: compiled-blob cache (default :func:`default_cache_dir`);
    ``cache=False`` disables it. ``threads``: CPU inference threads (default: OpenVINO's choice).
    ``inference_precision``: "f32", "bf16" or "f16"; on CPU the default is "f32", so results match
    the ONNX (OpenVINO would otherwise pick bf16 on CPUs that have it). ``profiling``: compile with
    performance counters (``PERF_COUNT``) so :meth:`OpenVINOBackend.profiling_info` reports per-layer
    times of the last inference.

    Raises :class:`MissingDependencyError` without OpenVINO, :class:`ConfigError` for a device that is
    not available (the message lists ``Core().available_devices``), a bad option, or an unreadable model.
    """
    ov = _openvino()
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r}")
    if inference_precision is not None and inference_precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"inference_precision must be one of {list(INFERENCE_PRECISIONS)}, "
                          f"got {inference_precision!r}")
    core = ov.Core()
    device = _resolve_device(core, device)
    read, precision = _read(core, ov, model, weights)
    props = ov.properties
    config, folder = _cache_config(ov, cache, cache_dir)
    config[props.hint.performance_mode()] = props.hint.PerformanceMode.LATENCY
    on_cpu = device.split(".")[0] == "CPU"
    if threads is not None and on_cpu:
        config[props.inference_num_threads()] = threads
    if inference_precision is not None or on_cpu:
        config[props.hint.inference_precision()] = getattr(ov.Type, inference_precision or "f32")
    if profiling:
        config[props.enable_profiling()] = True
    try:
        compiled = core.compile_model(read, device, config)
    except RuntimeError as err:
        raise ConfigError(f"OpenVINO cannot compile the model for {device}: {_reason(err)}") from None
    try:
        executed_by = ",".join(compiled.get_property("EXECUTION_DEVICES"))
    except RuntimeError:  # some plugins do not report it; the requested device is the best answer
        executed_by = device
    return OpenVINOBackend(compiled, executed_by or device, precision, folder)


def save_ir(model: ModelSource, xml_path: str | os.PathLike) -> tuple[Path, Path]:
    """Serialize an ONNX model (bytes or path) to OpenVINO IR: ``xml_path`` and the ``.bin`` beside it.

    Converted with ``openvino.convert_model`` (which folds the shape arithmetic the ONNX frontend
    keeps) and saved with weights as in the ONNX (``compress_to_fp16=False``). Both files are written
    under temporary names and renamed when complete. Returns (xml path, bin path).
    Raises :class:`MissingDependencyError` without OpenVINO, :class:`ConfigError` for an unreadable model.
    """
    ov = _openvino()
    xml_path = Path(xml_path)
    if xml_path.suffix.lower() != ".xml":
        raise ConfigError(f"an OpenVINO IR path must end in .xml, got {xml_path}")
    data, path = read_model_source(model)
    onnx_precision(data)  # a clear error for something that is not ONNX at all
    try:
        converted = ov.convert_model(str(path) if path else io.BytesIO(data))
    except Exception as err:  # the converter raises its own exception types
        raise ConfigError(f"OpenVINO cannot convert the model ({path or 'bytes'}): {_reason(err)}") from None
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    bin_path = xml_path.with_suffix(".bin")
    staging = Path(tempfile.mkdtemp(prefix=f".{xml_path.stem}-ir-", dir=xml_path.parent))
    try:
        ov.save_model(converted, str(staging / xml_path.name), compress_to_fp16=False)
        os.replace(staging / bin_path.name, bin_path)  # weights first: an .xml only exists complete
        os.replace(staging / xml_path.name, xml_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml_path, bin_path


def ir_bytes(model: ModelSource) -> tuple[bytes, bytes]:
    """(model.xml bytes, model.bin bytes) of the OpenVINO IR of an ONNX model (see :func:`save_ir`)."""
    with tempfile.TemporaryDirectory(prefix="edgekit-ir-") as folder:
        xml_path, bin_path = save_ir(model, Path(folder) / "model.xml")
        return xml_path.read_bytes(), bin_path.read_bytes()
