"""NVIDIA TensorRT backend (Jetson Orin, discrete GPUs), on the TensorRT 10/11 Python API.

    from targets import load_backend

    with load_backend("tensorrt", package_onnx_bytes, dla_core=None) as backend:
        logits = backend.run({"mv_residual": x})["logits"]
        backend.last_timings          # host-to-device, compute and device-to-host milliseconds

What happens at load:

1. The ONNX is the package's, already checked for TensorRT at export (:mod:`targets.tensorrt_onnx`:
   supported operators, symmetric int8 Q/DQ, static shapes, int32 biases folded).
2. An **engine cache** (:class:`EngineCache`) is looked up under a key of everything an engine depends
   on: the ONNX's SHA-256, the TensorRT version, the GPU's name and compute capability, the DLA core
   and the build configuration. A TensorRT or JetPack upgrade, another GPU or another DLA core is
   another key, so the engine is rebuilt instead of failing to deserialize; a cached engine that still
   fails to deserialize (a damaged file) is rebuilt and replaced.
3. A miss builds the engine on this device: a **strongly typed** network
   (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: precisions come from the Q/DQ nodes, as TensorRT
   11 requires; no precision builder flags), parser errors reported node by node, the workspace,
   builder optimization level and DLA settings of :class:`BuildConfig`, and a persistent **timing
   cache** per TensorRT version and GPU. With ``dla_core`` set and ``gpu_fallback`` off, a layer the
   DLA cannot run is an error naming it, never a silent fallback to the GPU.
4. Execution uses device buffers through ``cuda-python`` (no torch), one CUDA stream, and a CUDA
   graph of the engine's launch when ``cuda_graph`` is on (captured after one warm-up launch); CUDA
   events time the three parts of each inference (:attr:`TensorRTBackend.last_timings`).

TensorRT and cuda-python are imported only inside :func:`load` (``pip install 'edgekit[tensorrt]'``;
on Jetson, TensorRT comes with JetPack). The cache keys, the build configuration and the ONNX checks
need neither and are tested without a GPU.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_write
from edgekit.errors import BackendError, ConfigError, MissingDependencyError
from targets.backend import ModelSource, TensorInfo, check_inputs, read_model_source
from targets.onnx_info import onnx_precision

OPTIMIZATION_LEVELS = range(0, 6)  # IBuilderConfig.builder_optimization_level: 0 fastest build, 5 slowest


@dataclass(frozen=True)
class BuildConfig:
    """How an engine is built: the ``[tensorrt]`` table of a device profile, overridable per export.

    ``workspace_mb``: the builder's scratch memory limit (``MemoryPoolType.WORKSPACE``).
    ``optimization_level``: ``builder_optimization_level`` 0-5 (TensorRT's default is 3).
    ``dla_core``: run on this DLA core (Jetson Orin NX / AGX Orin), or None for the GPU.
    ``gpu_fallback``: with a DLA core, let layers the DLA cannot run fall back to the GPU; off, such a
    layer is an error that names it. ``cuda_graph``: replay the engine launch as a CUDA graph.
    ``timing_cache``: keep the builder's kernel timings on disk between builds.
    """

    workspace_mb: int = 1024
    optimization_level: int = 3
    dla_core: int | None = None
    gpu_fallback: bool = True
    cuda_graph: bool = True
    timing_cache: bool = True

    def __post_init__(self):
        for name in ("workspace_mb", "optimization_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"tensorrt {name} must be an integer, got {value!r}")
        if self.workspace_mb < 16:
            raise ConfigError(f"tensorrt workspace_mb must be at least 16, got {self.workspace_mb}")
        if self.optimization_level not in OPTIMIZATION_LEVELS:
            raise ConfigError(f"tensorrt optimization_level must be 0-5, got {self.optimization_level}")
        if self.dla_core is not None and (isinstance(self.dla_core, bool) or not isinstance(self.dla_core, int)
                                          or self.dla_core < 0):
            raise ConfigError(f"tensorrt dla_core must be a DLA core number (0, 1) or none, got {self.dla_core!r}")
        for name in ("gpu_fallback", "cuda_graph", "timing_cache"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"tensorrt {name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "BuildConfig":
        """From a profile's ``[tensorrt]`` table or a manifest's record (``dla_core = -1`` or absent:
        the GPU). Unknown keys are refused."""
        data = dict(data or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown tensorrt setting(s) {unknown}; settings are {known}")
        if data.get("dla_core") == -1:
            data["dla_core"] = None
        return cls(**data)

    def to_dict(self) -> dict:
        """JSON data (``dla_core`` -1 for the GPU, as TOML has no null)."""
        values = asdict(self)
        values["dla_core"] = -1 if self.dla_core is None else self.dla_core
        return values

    def engine_settings(self) -> dict:
        """The settings an engine's bytes depend on (``cuda_graph`` and ``timing_cache`` do not)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("cuda_graph", "timing_cache")}


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on. Engines are not portable across TensorRT versions,
    GPUs (compute capability) or DLA cores, so each combination gets its own cache entry."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build: Mapping = field(default_factory=dict)  # BuildConfig.engine_settings()

    @property
    def digest(self) -> str:
        text = json.dumps({**asdict(self), "build": dict(self.build)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {**asdict(self), "build": dict(self.build), "digest": self.digest}


def default_cache_dir() -> Path:
    """Where engines go: ``$EDGEKIT_CACHE_DIR/tensorrt``, else ``~/.cache/edgekit/tensorrt``."""
    root = os.environ.get("EDGEKIT_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "edgekit") / "tensorrt"


@dataclass(frozen=True)
class CachedEngine:
    """An engine from :meth:`EngineCache.get_or_build`: the deserialized object, its file, whether
    it was built now (and in how many seconds) and, when an older file was replaced, why."""

    engine: object
    path: Path
    built: bool
    build_seconds: float = 0.0
    replaced_because: str | None = None


class EngineCache:
    """Serialized engines on disk, one file per :class:`EngineKey` (``<digest>.engine`` and a
    ``<digest>.json`` saying what the key was), plus timing caches per TensorRT version and GPU.
    Files are written atomically, so a crash mid-write never leaves half an engine."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.digest[:32]}.engine"

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str, compute_capability: str) -> Path:
        tag = hashlib.sha256(f"{tensorrt_version}|{gpu_name}|{compute_capability}".encode()).hexdigest()[:16]
        return self.folder / f"timing-{tag}.cache"

    def read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"cannot read the TensorRT cache file {path}: {err.strerror or err}") from None

    def store(self, key: EngineKey, engine: bytes, build_seconds: float) -> Path:
        try:
            path = atomic_write(self.engine_path(key), engine)
            atomic_write(path.with_suffix(".json"), json.dumps(
                {**key.to_dict(), "bytes": len(engine), "build_seconds": round(build_seconds, 3),
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
        except OSError as err:
            raise ConfigError(f"cannot write the TensorRT engine cache in {self.folder}: {err.strerror or err}; "
                              "set EDGEKIT_CACHE_DIR or pass cache_dir to a writable folder") from None
        return path

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes],
                     deserialize: Callable[[bytes], object], *, rebuild: bool = False) -> CachedEngine:
        """The engine for ``key``: deserialized from the cache, else built (``build()`` returns the
        serialized engine), stored and deserialized. ``deserialize`` returns None or raises for bytes
        it cannot use: a cached file that fails is rebuilt and replaced (``replaced_because``); a fresh
        build that fails is an error. ``rebuild``: ignore the cache."""
        path = self.engine_path(key)
        replaced = None
        cached = None if rebuild else self.read(path)
        if cached is not None:
            engine, reason = _try(deserialize, cached)
            if engine is not None:
                return CachedEngine(engine, path, built=False)
            replaced = f"the cached engine {path.name} could not be deserialized ({reason})"
        elif rebuild and path.exists():
            replaced = "rebuild requested"
        started = time.perf_counter()
        blob = build()
        seconds = time.perf_counter() - started
        engine, reason = _try(deserialize, blob)
        if engine is None:
            raise BackendError(f"TensorRT built an engine it cannot deserialize ({reason})")
        self.store(key, blob, seconds)
        return CachedEngine(engine, path, built=True, build_seconds=seconds, replaced_because=replaced)


def _try(deserialize: Callable[[bytes], object], blob: bytes) -> tuple[object | None, str]:
    try:
        engine = deserialize(blob)
    except Exception as err:  # TensorRT raises its own types (or returns None) for a bad plan
        return None, (str(err).strip().splitlines() or [type(err).__name__])[0]
    return engine, "" if engine is not None else "the runtime returned no engine"


# ------------------------------------------------------------------------------ TensorRT and CUDA


def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError("tensorrt", "tensorrt") from None
    return tensorrt


def _cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (cuda-python 12.6+/13), else the older
    ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart
        return cudart
    except ImportError:
        raise MissingDependencyError("cuda-python", "tensorrt") from None


def _check(cudart, result, call: str):
    """cuda-python calls return ``(error, *values)``: the values, or :class:`BackendError`."""
    result = result if isinstance(result, tuple) else (result,)
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise BackendError(f"CUDA call {call} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else values


class _Logger:
    """Keeps TensorRT's last warnings and errors so an error message can quote them."""

    def __init__(self, trt):
        worst = int(trt.ILogger.Severity.WARNING)  # severities count down: INTERNAL_ERROR 0 ... VERBOSE 4

        class Collect(trt.ILogger):
            def __init__(inner):
                trt.ILogger.__init__(inner)
                inner.messages = collections.deque(maxlen=50)

            def log(inner, severity, message):
                if int(severity) <= worst:
                    inner.messages.append(str(message))

        self.logger = Collect()

    @property
    def messages(self) -> list[str]:
        return list(self.logger.messages)


def parser_errors(parser) -> list[str]:
    """One line per ONNX parser error: the node's index, name and operator, and TensorRT's reason."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        node_name = getattr(error, "node_name", lambda: "")() or ""
        node_op = getattr(error, "node_operator", lambda: "")() or ""
        where = f"node {error.node()}" + (f" {node_name!r}" if node_name else "") + (f" ({node_op})" if node_op else "")
        lines.append(f"{where}: {error.desc()}")
    return lines


def _strongly_typed_network(trt, builder):
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # TensorRT 10+; TensorRT 11 networks are strongly typed by design
        flags |= 1 << int(strongly_typed)
    return builder.create_network(flags)


def build_serialized_engine(trt, logger: _Logger, onnx: bytes, config: BuildConfig,
                            timing_cache_path: Path | None) -> bytes:
    """Parse ``onnx`` into a strongly typed network and build a serialized engine with ``config``.

    Raises :class:`ConfigError` for parser errors (node by node), a DLA core this device lacks, or a
    layer the DLA cannot run with GPU fallback off; :class:`BackendError` when the build fails."""
    builder = trt.Builder(logger.logger)
    network = _strongly_typed_network(trt, builder)
    parser = trt.OnnxParser(network, logger.logger)
    if not parser.parse(onnx):
        lines = parser_errors(parser)
        raise ConfigError("TensorRT's ONNX parser refused the model: " + "; ".join(lines or logger.messages[-3:]))
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    builder_config.builder_optimization_level = config.optimization_level
    if config.dla_core is not None:
        cores = builder.num_DLA_cores
        if config.dla_core >= cores:
            raise ConfigError(f"DLA core {config.dla_core} requested, this device has {cores} DLA core(s)"
                              + ("" if cores else " (Orin Nano and discrete GPUs have none): export without --dla-core"))
        builder_config.default_device_type = trt.DeviceType.DLA
        builder_config.DLA_core = config.dla_core
        gpu_only = [network.get_layer(i).name for i in range(network.num_layers)
                    if not builder_config.can_run_on_DLA(network.get_layer(i))]
        if config.gpu_fallback:
            builder_config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        elif gpu_only:
            shown = ", ".join(repr(n) for n in gpu_only[:8]) + (f" and {len(gpu_only) - 8} more" if len(gpu_only) > 8 else "")
            raise ConfigError(f"{len(gpu_only)} layer(s) cannot run on DLA core {config.dla_core}: {shown}; "
                              "export with GPU fallback on, or without a DLA core")
    timing_cache = None
    if timing_cache_path is not None:
        previous = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
        timing_cache = builder_config.create_timing_cache(previous)
        builder_config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise BackendError("TensorRT could not build the engine: " + ("; ".join(logger.messages[-3:]) or "no reason given"))
    if timing_cache is not None:
        atomic_write(timing_cache_path, bytes(builder_config.get_timing_cache().serialize()))
    return bytes(serialized)


def _gpu(cudart, device_index: int) -> tuple[str, str]:
    props = _check(cudart, cudart.cudaGetDeviceProperties(device_index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"


def _device_index(device: str) -> int:
    """"GPU", "GPU.0", "cuda:1" -> the CUDA device index."""
    text = str(device).strip().lower()
    head, _, index = text.replace(":", ".").partition(".")
    if head not in ("gpu", "cuda") or (index and not index.isdigit()):
        raise ConfigError(f"the tensorrt backend runs on a GPU: device 'GPU', 'GPU.0', 'GPU.1', ..., not {device!r}")
    return int(index or 0)


@dataclass(frozen=True)
class TransferTimings:
    """One inference, in milliseconds, from CUDA events on the backend's stream."""

    host_to_device_ms: float
    compute_ms: float
    device_to_host_ms: float


class TensorRTBackend:
    """A TensorRT engine on one GPU or DLA core. Build it with :func:`load` or
    ``load_backend("tensorrt", ...)``. ``engine_path``, ``built`` and ``build_seconds`` say where the
    engine came from; ``last_timings`` splits the last :meth:`run`."""

    name = "tensorrt"

    def __init__(self, trt, cudart, engine, device: str, precision: str, cached: CachedEngine, config: BuildConfig):
        self._trt, self._cudart, self._engine = trt, cudart, engine
        self.device, self.precision, self.config = device, precision, config
        self.engine_path, self.built = cached.path, cached.built
        self.build_seconds, self.replaced_because = cached.build_seconds, cached.replaced_because
        self.last_timings: TransferTimings | None = None
        self._context = engine.create_execution_context()
        self._stream = _check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._events = [_check(cudart, cudart.cudaEventCreate(), "cudaEventCreate") for _ in range(4)]
        self.inputs, self.outputs, self._buffers, self._host_ptrs = [], [], {}, []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ConfigError(f"tensor {name!r} has a dynamic shape {shape}; packages are built for static shapes")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
            # page-locked host buffers: the copies are truly asynchronous and run at full bus speed
            host_ptr = _check(cudart, cudart.cudaMallocHost(nbytes), "cudaMallocHost")
            self._host_ptrs.append(host_ptr)
            raw = np.ctypeslib.as_array(ctypes.cast(int(host_ptr), ctypes.POINTER(ctypes.c_uint8)), shape=(nbytes,))
            host = raw[:int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
            device_ptr = _check(cudart, cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (host, device_ptr)
            self._context.set_tensor_address(name, int(device_ptr))
            info = TensorInfo(name, shape, dtype.name)
            (self.inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else self.outputs).append(info)
        self.input_names = tuple(t.name for t in self.inputs)
        self.output_names = tuple(t.name for t in self.outputs)
        self._graph_exec = self._capture_graph() if config.cuda_graph else None

    def _launch(self) -> None:
        if not self._context.execute_async_v3(int(self._stream)):
            raise BackendError("TensorRT execute_async_v3 failed")

    def _capture_graph(self):
        cudart = self._cudart
        self._launch()  # one launch first: TensorRT allocates lazily, which a capture must not see
        _check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(cudart, cudart.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        try:
            self._launch()
        finally:
            graph = _check(cudart, cudart.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        try:
            return _check(cudart, cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            cudart.cudaGraphDestroy(graph)  # the executable graph keeps what it needs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(inputs, self.inputs)
        cudart, stream = self._cudart, self._stream
        kinds = cudart.cudaMemcpyKind
        start, uploaded, computed, done = self._events
        _check(cudart, cudart.cudaEventRecord(start, stream), "cudaEventRecord")
        for info in self.inputs:
            host, device_ptr = self._buffers[info.name]
            np.copyto(host, inputs[info.name])
            _check(cudart, cudart.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes,
                                                  kinds.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync")
        _check(cudart, cudart.cudaEventRecord(uploaded, stream), "cudaEventRecord")
        if self._graph_exec is not None:
            _check(cudart, cudart.cudaGraphLaunch(self._graph_exec, stream), "cudaGraphLaunch")
        else:
            self._launch()
        _check(cudart, cudart.cudaEventRecord(computed, stream), "cudaEventRecord")
        for info in self.outputs:
            host, device_ptr = self._buffers[info.name]
            _check(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes,
                                                  kinds.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")
        _check(cudart, cudart.cudaEventRecord(done, stream), "cudaEventRecord")
        _check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        elapsed = [_check(cudart, cudart.cudaEventElapsedTime(a, b), "cudaEventElapsedTime")
                   for a, b in ((start, uploaded), (uploaded, computed), (computed, done))]
        self.last_timings = TransferTimings(*map(float, elapsed))
        return {info.name: self._buffers[info.name][0].copy() for info in self.outputs}

    def close(self) -> None:
        cudart = self._cudart
        if cudart is None:
            return
        for _, device_ptr in self._buffers.values():
            cudart.cudaFree(device_ptr)
        for host_ptr in self._host_ptrs:
            cudart.cudaFreeHost(host_ptr)
        for event in self._events:
            cudart.cudaEventDestroy(event)
        if self._graph_exec is not None:
            cudart.cudaGraphExecDestroy(self._graph_exec)
        cudart.cudaStreamDestroy(self._stream)
        self._buffers, self._host_ptrs, self._context, self._engine, self._cudart = {}, [], None, None, None

    def __enter__(self) -> "TensorRTBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(model: ModelSource, *, device: str = "GPU.0", cache_dir: str | os.PathLike | None = None,
         workspace_mb: int = 1024, optimization_level: int = 3, dla_core: int | None = None,
         gpu_fallback: bool = True, cuda_graph: bool = True, timing_cache: bool = True,
         rebuild: bool = False, threads: int | None = None) -> TensorRTBackend:
    """Load an ONNX model (bytes or path) as a TensorRT engine on ``device`` ("GPU", "GPU.0", ...),
    built on this device at first load and cached (see the module docstring and :class:`BuildConfig`
    for the build options). ``rebuild``: ignore a cached engine. ``threads`` is accepted for the common
    backend options and unused (the GPU runs the model).

    Raises :class:`MissingDependencyError` without TensorRT or cuda-python, :class:`ConfigError` for a
    bad option, a model TensorRT refuses (node by node) or a DLA request the device cannot meet,
    :class:`BackendError` when a CUDA or TensorRT call fails.
    """
    config = BuildConfig(workspace_mb=workspace_mb, optimization_level=optimization_level, dla_core=dla_core,
                         gpu_fallback=gpu_fallback, cuda_graph=cuda_graph, timing_cache=timing_cache)
    index = _device_index(device)
    data, _ = read_model_source(model)
    from targets.tensorrt_onnx import check_for_tensorrt

    data, _, _ = check_for_tensorrt(data)  # already done at export; a plain ONNX path gets it here
    trt, cudart = _tensorrt(), _cudart()
    major = int(str(trt.__version__).split(".")[0])
    if config.dla_core is not None and major >= 11:
        raise ConfigError(f"TensorRT {trt.__version__} has no DLA support on Jetson (TensorRT 10.x has); "
                          "export without --dla-core, or use JetPack's TensorRT 10")
    _check(cudart, cudart.cudaSetDevice(index), "cudaSetDevice")
    gpu_name, capability = _gpu(cudart, index)
    key = EngineKey(hashlib.sha256(data).hexdigest(), str(trt.__version__), gpu_name, capability,
                    {**config.engine_settings(), "device_index": index})
    cache = EngineCache(cache_dir)
    logger = _Logger(trt)
    runtime = trt.Runtime(logger.logger)
    timing_path = cache.timing_cache_path(key.tensorrt_version, gpu_name, capability) if timing_cache else None
    cached = cache.get_or_build(key, lambda: build_serialized_engine(trt, logger, data, config, timing_path),
                                runtime.deserialize_cuda_engine, rebuild=rebuild)
    return TensorRTBackend(trt, cudart, cached.engine, f"GPU.{index}" if dla_core is None else f"DLA.{dla_core}",
                           onnx_precision(data), cached, config)
