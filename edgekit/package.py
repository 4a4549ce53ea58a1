"""Deployment packages (``.edgepkg``): one model, ready for one target device, verified on load.

A package is a zip holding::

    manifest.json          format version, model name, labels, input specs, outputs, preprocessing,
                           fusion, target, precision, producer versions, SHA-256 + size of every member
    model.onnx             the FP32 or INT8 QDQ ONNX
    openvino/model.xml     optional OpenVINO IR of the same model (openvino packages)
    openvino/model.bin

``write_package`` builds one from a quantization ``MODEL_DIR`` (``model.json`` + ``fp32.onnx`` /
``int8.onnx``); ``load_package`` refuses anything it cannot trust (not a zip, no manifest, a newer
format, a member whose checksum or size differs, a member the manifest does not list, specs that
do not match the ONNX) with a :class:`PackageError` naming the cause::

    package = load_package("dmc-cpu.edgepkg")
    package.manifest.labels, package.manifest.inputs    # a typed edgekit.manifest.Manifest
    with package.backend() as backend:                  # the target's backend, from the package's bytes
        logits = backend.run({"mv_residual": x})["logits"]

Runtime side: numpy, the standard library and ONNX Runtime only.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit._fileio import atomic_output
from edgekit._versions import producer_versions
from edgekit.errors import ConfigError, PackageError
from edgekit.manifest import PRECISIONS, Manifest, ManifestError, Target
from edgekit.spec import InputSpec

FORMAT_VERSION = 1
SUPPORTED_FORMATS = (1,)
MANIFEST = "manifest.json"
MODEL_MEMBER = "model.onnx"
IR_XML, IR_BIN = "openvino/model.xml", "openvino/model.bin"
_MANIFEST_MAX_BYTES = 16 << 20  # a manifest is a few kB; refuse to inflate anything absurd
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same inputs, same member bytes


@dataclass(frozen=True, repr=False)
class Package:
    """A verified package: its typed :class:`~edgekit.manifest.Manifest`, plus its members' bytes
    (read once, at load). The manifest's fields are also readable here (``package.labels``,
    ``package.inputs``, ``package.target``, ...)."""

    path: Path
    manifest: Manifest
    size_bytes: int = 0
    _data: Mapping[str, bytes] = field(default_factory=dict, compare=False)

    def __getattr__(self, name):  # model, labels, inputs, outputs, precision, target, members, ...
        manifest = self.__dict__.get("manifest")
        if manifest is not None and name in Manifest.__dataclass_fields__:
            return getattr(manifest, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Package({str(self.path)!r}, model={m.model!r}, {m.precision}, {len(m.labels)} labels, "
                f"inputs={[f'{s.name}{list(s.shape)}' for s in m.inputs]}, "
                f"target={m.target.backend}/{m.target.device})")

    def read(self, member: str) -> bytes:
        """The verified bytes of ``member`` (e.g. ``"model.onnx"``). Raises :class:`PackageError`."""
        if member not in self._data:
            raise PackageError(f"{self.path} has no member {member!r}; members: {sorted(self._data)}")
        return self._data[member]

    @property
    def onnx_bytes(self) -> bytes:
        return self._data[MODEL_MEMBER]

    @property
    def has_ir(self) -> bool:
        return IR_XML in self._data

    @property
    def ir(self) -> tuple[bytes, bytes] | None:
        """(model.xml, model.bin) bytes of the OpenVINO IR, or None when the package carries none."""
        return (self._data[IR_XML], self._data[IR_BIN]) if self.has_ir else None

    def select(self, device: str | None = None, backend: str | None = None, threads: int | None = None):
        """Where this package runs for these words (``targets.backend.Selection``): what the user
        names wins, the package's own target fills in the rest (see ``select_backend``)."""
        from targets.backend import select_backend

        target = self.manifest.target
        return select_backend(device if device is not None else target.device, backend,
                              default=(target.backend, "cpu"), threads=threads)

    def backend(self, device: str | None = None, backend: str | None = None, *, threads: int | None = None,
                **options):
        """Load the package's model and return the backend (a ``targets.Backend``).

        ``device`` names hardware ("cpu", "gpu", "npu" or a device profile), ``backend`` the runtime
        ("onnxruntime", "openvino", "tensorrt"); both default to the package's target. ``options``
        go to the backend (``graph_optimization``, ``cache_dir``, ...). An OpenVINO load of a
        package carrying IR reads the IR (no ONNX frontend). Raises :class:`ConfigError` /
        :class:`MissingDependencyError` from ``targets``.
        """
        from targets import load_backend

        selection = self.select(device, backend, threads)
        options = {**selection.options, **options}
        if selection.backend == "openvino" and self.has_ir:
            xml, weights = self.ir
            return load_backend(selection.backend, xml, weights=weights, **options)
        return load_backend(selection.backend, self.onnx_bytes, **options)


def _member_record(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def onnx_mismatch(onnx: bytes, inputs, outputs, labels, precision: str) -> str | None:
    """Why ``onnx`` does not match the given specs, labels and precision, or None when it does.

    Checked with ONNX Runtime (the runtime dependency): graph input names, static shapes and dtypes
    equal the :class:`InputSpec`, output names equal ``outputs``, the first output's last dimension
    equals the number of labels, and the graph is quantized iff ``precision == "int8"``.
    """
    import onnxruntime as ort

    from targets.cpu import ort_tensor_info
    from targets.onnx_info import onnx_precision

    try:
        found_precision = onnx_precision(onnx)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])
    except ConfigError as err:
        return str(err)
    except Exception as err:  # onnxruntime's own exception types
        return f"ONNX Runtime cannot load it: {(str(err).strip().splitlines() or [type(err).__name__])[0]}"
    graph_inputs = {info.name: info for info in map(ort_tensor_info, session.get_inputs())}
    spec_names = [spec.name for spec in inputs]
    if sorted(graph_inputs) != sorted(spec_names):
        return f"inputs {spec_names} do not match the ONNX graph inputs {sorted(graph_inputs)}"
    for spec in inputs:
        info = graph_inputs[spec.name]
        if info.shape != tuple(spec.shape):
            return f"input {spec.name!r} has shape {tuple(spec.shape)}, the ONNX graph says {info.shape}"
        if info.dtype != spec.dtype:
            return f"input {spec.name!r} is {spec.dtype}, the ONNX graph says {info.dtype}"
    graph_outputs = list(map(ort_tensor_info, session.get_outputs()))
    if [o.name for o in graph_outputs] != list(outputs):
        return f"outputs {list(outputs)} do not match the ONNX graph outputs {[o.name for o in graph_outputs]}"
    classes = graph_outputs[0].shape[-1] if graph_outputs[0].shape else None
    if classes is not None and classes != len(labels):
        return f"{len(labels)} labels but the ONNX output {graph_outputs[0].name!r} has {classes} classes"
    if found_precision != precision:
        return f"precision is {precision!r} but the ONNX graph is {found_precision}"
    return None


# --------------------------------------------------------------------------------------------- write


def _read_model_dir(model_dir: Path) -> tuple[dict, Manifest]:
    meta_path = model_dir / "model.json"
    if not model_dir.is_dir():
        raise ConfigError(f"model directory not found: {model_dir}")
    if not meta_path.is_file():
        raise ConfigError(f"{model_dir} has no model.json; pass a directory written by quantization")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return meta, Manifest.from_dict(meta, require_package_fields=False)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {meta_path}: {err}") from None
    except ManifestError as err:
        raise ConfigError(f"{meta_path}: {err}") from None


def write_package(model_dir: str | os.PathLike, out_path: str | os.PathLike, *, device: str = "cpu",
                  backend: str | None = None, precision: str = "int8", include_ir: bool | None = None) -> Path:
    """Write a ``.edgepkg`` for ``device`` from a quantization ``MODEL_DIR``.

    ``device`` names hardware ("cpu", "gpu", "npu") or a device profile ("intel-cpu", "x86-cpu",
    "generic-arm64", "jetson-orin-nano", or a profile ``.toml``); ``backend`` the runtime
    ("onnxruntime", "openvino", "tensorrt"; default: the profile's, else ONNX Runtime on the CPU).
    The manifest's ``target`` records both, and the profile's settings when one is used. Takes
    ``MODEL_DIR/{precision}.onnx`` and ``model.json`` and checks that they agree (inputs, outputs,
    labels, precision). ``include_ir`` (default: True for OpenVINO) adds the OpenVINO IR, which needs
    OpenVINO installed. The zip is written to a temporary name, fsync'ed and renamed, so
    ``out_path`` is either the complete package or untouched. Returns ``out_path``.

    Raises :class:`ConfigError` on a bad argument or MODEL_DIR, :class:`MissingDependencyError` when
    the IR is asked for without OpenVINO.
    """
    from targets.backend import select_backend
    from targets.profiles import load_profile

    selection = select_backend(device, backend)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if include_ir is None:
        include_ir = selection.backend == "openvino"
    if include_ir and selection.backend != "openvino":
        raise ConfigError("include_ir=True needs backend 'openvino' (the IR is an OpenVINO artefact)")
    model_dir, out_path = Path(model_dir), Path(out_path)
    meta, model = _read_model_dir(model_dir)
    onnx_path = model_dir / f"{precision}.onnx"
    if not onnx_path.is_file():
        present = sorted(p.name for p in model_dir.glob("*.onnx"))
        hint = f"; pass --precision {present[0][:-5]}" if present and present[0][:-5] in PRECISIONS else ""
        raise ConfigError(f"{model_dir} has no {onnx_path.name} (found: {present or 'no ONNX'}){hint}")
    onnx = onnx_path.read_bytes()
    problem = onnx_mismatch(onnx, model.inputs, model.outputs, model.labels, precision)
    if problem:
        raise ConfigError(f"{model_dir / 'model.json'} does not match {onnx_path.name}: {problem}")

    data = {MODEL_MEMBER: onnx}
    if include_ir:
        from targets.openvino import ir_bytes

        data[IR_XML], data[IR_BIN] = ir_bytes(onnx)
    profile = asdict(load_profile(selection.profile)) if selection.profile else {}
    target = Target(device=selection.profile or selection.device, backend=selection.backend, profile=profile)
    manifest = {**model.to_dict(), "format_version": FORMAT_VERSION, "target": target.to_dict(),
                "precision": precision,
                "producer": producer_versions(source=meta.get("producer", {})),
                "metrics": meta.get("metrics", {}),
                "members": {name: _member_record(data[name]) for name in sorted(data)}}
    _write_zip(out_path, [(MANIFEST, json.dumps(manifest, indent=1).encode())] + [(n, data[n]) for n in sorted(data)])
    return out_path


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


# ---------------------------------------------------------------------------------------------- load


def load_package(path: str | os.PathLike) -> Package:
    """Open and verify a ``.edgepkg``; every member's bytes are checked and kept in memory.

    Raises :class:`PackageError` (one line, naming the cause) when the file is missing or not a zip,
    has no valid manifest, is of an unknown or newer format, has a member whose SHA-256 or size differs
    from the manifest (tampered or damaged), a member the manifest does not list, or specs, labels or
    precision that do not match its ONNX.
    """
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"package not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = _read_manifest(path, archive)
            data = _read_members(path, archive, manifest.members)
    except zipfile.BadZipFile as err:
        raise PackageError(f"{path} is not an edgekit package (not a valid zip file: {err})") from None
    except OSError as err:
        raise PackageError(f"cannot read package {path}: {err.strerror or err}") from None
    if (IR_XML in data) != (IR_BIN in data):
        raise PackageError(f"{path} carries only half of the OpenVINO IR ({IR_XML} and {IR_BIN} go together)")
    problem = onnx_mismatch(data[MODEL_MEMBER], manifest.inputs, manifest.outputs, manifest.labels,
                            manifest.precision)
    if problem:
        raise PackageError(f"{path}: manifest does not match {MODEL_MEMBER}: {problem}")
    return Package(path=path, manifest=manifest, size_bytes=path.stat().st_size, _data=data)


def _read_manifest(path: Path, archive: zipfile.ZipFile) -> Manifest:
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise PackageError(f"{path} has duplicate member names; it was not written by edgekit")
    if MANIFEST not in names:
        raise PackageError(f"{path} has no {MANIFEST}; it is not an edgekit package or it was damaged")
    if archive.getinfo(MANIFEST).file_size > _MANIFEST_MAX_BYTES:
        raise PackageError(f"{path}: {MANIFEST} is implausibly large; refusing to read it")
    try:
        raw = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zlib.error, zipfile.BadZipFile) as err:
        raise PackageError(f"{path}: {MANIFEST} is damaged ({err})") from None
    if not isinstance(raw, dict):
        raise PackageError(f"{path}: {MANIFEST} is not a JSON object")
    version = raw.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackageError(f"{path}: {MANIFEST} has no integer format_version; it is not an edgekit package")
    if version > max(SUPPORTED_FORMATS):
        raise PackageError(f"package format {version} is newer than this edgekit (supports "
                           f"{', '.join(map(str, SUPPORTED_FORMATS))}); upgrade edgekit")
    if version not in SUPPORTED_FORMATS:
        raise PackageError(f"unknown package format {version} (this edgekit supports "
                           f"{', '.join(map(str, SUPPORTED_FORMATS))})")
    try:
        manifest = Manifest.from_dict(raw)
    except ManifestError as err:
        raise PackageError(f"{path}: invalid {MANIFEST}: {err}") from None
    if MODEL_MEMBER not in manifest.members:
        raise PackageError(f"{path}: invalid {MANIFEST}: 'members' must list at least {MODEL_MEMBER}")
    return manifest


def _read_members(path: Path, archive: zipfile.ZipFile, members) -> dict[str, bytes]:
    listed = set(members) | {MANIFEST}
    for name in archive.namelist():
        if name not in listed:
            raise PackageError(f"{path}: member {name!r} is not listed in the manifest; the package was modified")
    data = {}
    for name, record in sorted(members.items()):
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise PackageError(f"{path}: member {name!r} listed in the manifest is missing") from None
        if info.file_size != record.bytes:  # checked before inflating: also stops zip bombs
            raise PackageError(f"{path}: member {name!r} has {info.file_size} bytes, the manifest says "
                               f"{record.bytes}; the package was tampered with or damaged")
        try:
            content = archive.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise PackageError(f"{path}: member {name!r} is damaged ({err})") from None
        if hashlib.sha256(content).hexdigest() != record.sha256 or len(content) != record.bytes:
            raise PackageError(f"{path}: member {name!r} failed its SHA-256 check; "
                               "the package was tampered with or damaged")
        data[name] = content
    return data
