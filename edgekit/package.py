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
    with package.backend() as backend:           # the target's backend, from the package's bytes
        logits = backend.run({"mv_residual": x})["logits"]

Runtime side: numpy, the standard library and ONNX Runtime only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from edgekit.errors import ConfigError, PackageError
from edgekit.spec import InputSpec

FORMAT_VERSION = 1
SUPPORTED_FORMATS = (1,)
MANIFEST = "manifest.json"
MODEL_MEMBER = "model.onnx"
IR_XML, IR_BIN = "openvino/model.xml", "openvino/model.bin"
PRECISIONS = ("int8", "fp32")
# export device (the name users pass as --device) -> the targets backend that runs it
TARGETS = {"cpu": "cpu", "openvino": "openvino"}
_MANIFEST_MAX_BYTES = 16 << 20  # a manifest is a few kB; refuse to inflate anything absurd
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same inputs, same member bytes


@dataclass(frozen=True)
class Package:
    """A verified package: the manifest's fields, plus its members' bytes (read once, at load).

    ``inputs`` are :class:`InputSpec` (shape batch-first, e.g. (1, 3, 5, 112, 112)); ``target`` is
    ``{"device": "cpu" | "openvino", "backend": <targets backend name>}``; ``members`` maps each
    member but the manifest to ``{"sha256": hex, "bytes": size}``; ``manifest`` is the manifest
    exactly as stored.
    """

    path: Path
    format_version: int
    model: str
    labels: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    preprocessing: dict
    fusion: dict
    target: dict
    precision: str
    producer: dict
    members: dict
    metrics: dict = field(default_factory=dict)
    size_bytes: int = 0
    manifest: dict = field(default_factory=dict, repr=False, compare=False)
    _data: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

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

    def backend(self, device: str | None = None, *, backend_device: str | None = None, **options):
        """Load the package's model on a ``targets`` backend and return it (a ``targets.Backend``).

        ``device``: "cpu" or "openvino" (default: the package's target); the ONNX in every package
        runs on either. ``backend_device``: the backend's own device string, e.g. "GPU" or "AUTO"
        for OpenVINO (default: the backend's, "CPU"). ``options`` go to the backend (``threads``,
        ``cache_dir``, ...). An openvino package with IR is loaded from the IR (no ONNX frontend).
        Raises :class:`ConfigError` / :class:`MissingDependencyError` from ``targets.load_backend``.
        """
        from targets import load_backend

        name = TARGETS.get(device, device) if device else self.target["backend"]
        if backend_device is not None:
            options["device"] = backend_device
        if name == "openvino" and self.has_ir:
            xml, weights = self.ir
            return load_backend(name, xml, weights=weights, **options)
        return load_backend(name, self.onnx_bytes, **options)


def _member_record(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _producer(source: dict) -> dict:
    import edgekit

    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds pin the creation time
    if epoch and epoch.isdigit():
        created = datetime.fromtimestamp(int(epoch), timezone.utc)
    else:
        created = datetime.now(timezone.utc)
    return {"edgekit": edgekit.__version__, "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime"),
            "openvino": _version("openvino"), "python": platform.python_version(),
            "created": created.isoformat(timespec="seconds"), "source": source}


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


def _read_model_dir(model_dir: Path) -> dict:
    meta_path = model_dir / "model.json"
    if not model_dir.is_dir():
        raise ConfigError(f"model directory not found: {model_dir}")
    if not meta_path.is_file():
        raise ConfigError(f"{model_dir} has no model.json; pass a directory written by quantization")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {meta_path}: {err}") from None
    problem = _check_fields(meta, ("model", "labels", "inputs", "outputs", "preprocessing", "fusion"))
    if problem:
        raise ConfigError(f"{meta_path}: {problem}")
    return meta


def _check_fields(meta, required) -> str | None:
    """Why the model.json / manifest fields are malformed, or None."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    missing = [key for key in required if key not in meta]
    if missing:
        return f"missing key(s) {missing}"
    if not isinstance(meta["model"], str) or not meta["model"]:
        return "'model' must be a non-empty string"
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        return "'labels' must be a non-empty list of strings"
    if len(set(labels)) != len(labels):
        return "'labels' has duplicates"
    outputs = meta["outputs"]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(x, str) for x in outputs):
        return "'outputs' must be a non-empty list of strings"
    for key in ("preprocessing", "fusion", "producer", "metrics"):
        if key in meta and not isinstance(meta[key], dict):
            return f"{key!r} must be an object"
    if not isinstance(meta["inputs"], list) or not meta["inputs"]:
        return "'inputs' must be a non-empty list of input specs"
    try:
        [InputSpec.from_dict(d) for d in meta["inputs"]]
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        return f"bad input spec: {err}"
    return None


def write_package(model_dir: str | os.PathLike, out_path: str | os.PathLike, *, device: str = "cpu",
                  precision: str = "int8", include_ir: bool | None = None) -> Path:
    """Write a ``.edgepkg`` for ``device`` ("cpu" or "openvino") from a quantization ``MODEL_DIR``.

    Takes ``MODEL_DIR/{precision}.onnx`` and ``model.json``; checks that they agree (inputs, outputs,
    labels, precision). ``include_ir`` (default: True for "openvino") adds the OpenVINO IR, which needs
    OpenVINO installed. The zip is written to a temporary name and renamed, so ``out_path`` is
    either the complete package or untouched. Returns ``out_path``.

    Raises :class:`ConfigError` on a bad argument or MODEL_DIR, :class:`MissingDependencyError` when
    the IR is asked for without OpenVINO.
    """
    if device not in TARGETS:
        raise ConfigError(f"unknown export device {device!r}; expected one of {list(TARGETS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if include_ir is None:
        include_ir = device == "openvino"
    if include_ir and device != "openvino":
        raise ConfigError("include_ir=True needs device='openvino' (the IR is an OpenVINO artefact)")
    model_dir, out_path = Path(model_dir), Path(out_path)
    meta = _read_model_dir(model_dir)
    onnx_path = model_dir / f"{precision}.onnx"
    if not onnx_path.is_file():
        present = sorted(p.name for p in model_dir.glob("*.onnx"))
        hint = f"; pass --precision {present[0][:-5]}" if present and present[0][:-5] in PRECISIONS else ""
        raise ConfigError(f"{model_dir} has no {onnx_path.name} (found: {present or 'no ONNX'}){hint}")
    onnx = onnx_path.read_bytes()
    problem = onnx_mismatch(onnx, [InputSpec.from_dict(d) for d in meta["inputs"]], meta["outputs"],
                            meta["labels"], precision)
    if problem:
        raise ConfigError(f"{model_dir / 'model.json'} does not match {onnx_path.name}: {problem}")

    data = {MODEL_MEMBER: onnx}
    if include_ir:
        from targets.openvino import ir_bytes

        data[IR_XML], data[IR_BIN] = ir_bytes(onnx)
    members = {name: _member_record(data[name]) for name in sorted(data)}
    manifest = {"format_version": FORMAT_VERSION, "model": meta["model"], "labels": meta["labels"],
                "inputs": [InputSpec.from_dict(d).to_dict() for d in meta["inputs"]], "outputs": meta["outputs"],
                "preprocessing": meta["preprocessing"], "fusion": meta["fusion"],
                "target": {"device": device, "backend": TARGETS[device]}, "precision": precision,
                "producer": _producer(meta.get("producer", {})), "metrics": meta.get("metrics", {}),
                "members": members}
    _write_zip(out_path, [(MANIFEST, json.dumps(manifest, indent=1).encode())] + [(n, data[n]) for n in sorted(data)])
    return out_path


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w") as archive:
                for name, data in members:
                    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must never expose a package not yet on disk
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
            data = _read_members(path, archive, manifest["members"])
    except zipfile.BadZipFile as err:
        raise PackageError(f"{path} is not an edgekit package (not a valid zip file: {err})") from None
    except OSError as err:
        raise PackageError(f"cannot read package {path}: {err.strerror or err}") from None
    if (IR_XML in data) != (IR_BIN in data):
        raise PackageError(f"{path} carries only half of the OpenVINO IR ({IR_XML} and {IR_BIN} go together)")
    inputs = tuple(InputSpec.from_dict(d) for d in manifest["inputs"])
    problem = onnx_mismatch(data[MODEL_MEMBER], inputs, manifest["outputs"], manifest["labels"], manifest["precision"])
    if problem:
        raise PackageError(f"{path}: manifest does not match {MODEL_MEMBER}: {problem}")
    return Package(path=path, format_version=manifest["format_version"], model=manifest["model"],
                   labels=tuple(manifest["labels"]), inputs=inputs, outputs=tuple(manifest["outputs"]),
                   preprocessing=manifest["preprocessing"], fusion=manifest["fusion"], target=manifest["target"],
                   precision=manifest["precision"], producer=manifest["producer"], members=manifest["members"],
                   metrics=manifest.get("metrics", {}), size_bytes=path.stat().st_size, manifest=manifest,
                   _data=data)


def _read_manifest(path: Path, archive: zipfile.ZipFile) -> dict:
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise PackageError(f"{path} has duplicate member names; it was not written by edgekit")
    if MANIFEST not in names:
        raise PackageError(f"{path} has no {MANIFEST}; it is not an edgekit package or it was damaged")
    if archive.getinfo(MANIFEST).file_size > _MANIFEST_MAX_BYTES:
        raise PackageError(f"{path}: {MANIFEST} is implausibly large; refusing to read it")
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zlib.error, zipfile.BadZipFile) as err:
        raise PackageError(f"{path}: {MANIFEST} is damaged ({err})") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{path}: {MANIFEST} is not a JSON object")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackageError(f"{path}: {MANIFEST} has no integer format_version; it is not an edgekit package")
    if version > max(SUPPORTED_FORMATS):
        raise PackageError(f"package format {version} is newer than this edgekit (supports "
                           f"{', '.join(map(str, SUPPORTED_FORMATS))}); upgrade edgekit")
    if version not in SUPPORTED_FORMATS:
        raise PackageError(f"unknown package format {version} (this edgekit supports "
                           f"{', '.join(map(str, SUPPORTED_FORMATS))})")
    problem = _check_fields(manifest, ("model", "labels", "inputs", "outputs", "preprocessing", "fusion",
                                       "target", "precision", "producer", "members"))
    if problem is None:
        problem = _check_manifest_extras(manifest)
    if problem:
        raise PackageError(f"{path}: invalid {MANIFEST}: {problem}")
    return manifest


def _check_manifest_extras(manifest: dict) -> str | None:
    target = manifest["target"]
    if not isinstance(target, dict) or not all(isinstance(target.get(k), str) for k in ("backend", "device")):
        return "'target' must be an object with string 'backend' and 'device'"
    if manifest["precision"] not in PRECISIONS:
        return f"'precision' must be one of {list(PRECISIONS)}"
    members = manifest["members"]
    if not isinstance(members, dict) or MODEL_MEMBER not in members:
        return f"'members' must be an object listing at least {MODEL_MEMBER}"
    for name, record in members.items():
        if (not isinstance(record, dict) or not isinstance(record.get("sha256"), str)
                or isinstance(record.get("bytes"), bool) or not isinstance(record.get("bytes"), int)):
            return f"member {name!r} needs a 'sha256' string and a 'bytes' integer"
    return None


def _read_members(path: Path, archive: zipfile.ZipFile, members: dict) -> dict[str, bytes]:
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
        if info.file_size != record["bytes"]:  # checked before inflating: also stops zip bombs
            raise PackageError(f"{path}: member {name!r} has {info.file_size} bytes, the manifest says "
                               f"{record['bytes']}; the package was tampered with or damaged")
        try:
            content = archive.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise PackageError(f"{path}: member {name!r} is damaged ({err})") from None
        if hashlib.sha256(content).hexdigest() != record["sha256"].lower() or len(content) != record["bytes"]:
            raise PackageError(f"{path}: member {name!r} failed its SHA-256 check; "
                               "the package was tampered with or damaged")
        data[name] = content
    return data


# ----------------------------------------------------------------------------------------------- CLI

EXPORT_EXAMPLES = """examples:
  edgekit export runs/dmc-int8 --device cpu -o dmc-cpu.edgepkg
  edgekit export runs/dmc-int8 --device openvino -o dmc-intel.edgepkg      # ONNX + OpenVINO IR
  edgekit export runs/dmc-int8 --device openvino --no-ir --precision fp32 -o dmc-fp32.edgepkg --json"""

INSPECT_EXAMPLES = """examples:
  edgekit package inspect dmc-cpu.edgepkg                # model, labels, inputs, target, checksums
  edgekit package inspect dmc-cpu.edgepkg --json         # the same as one JSON object
  edgekit package inspect dmc-cpu.edgepkg --verify-only  # exit 0 if every checksum matches, else 2"""


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgekit export MODEL_DIR --device cpu|openvino [--precision] -o NAME.edgepkg``."""
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="directory written by quantization "
                        "(model.json, int8.onnx and/or fp32.onnx)")
    parser.add_argument("--device", required=True, choices=list(TARGETS), help="target the package is for")
    parser.add_argument("--precision", default="int8", choices=list(PRECISIONS), help="model to package (default int8)")
    parser.add_argument("-o", "--output", required=True, metavar="NAME.edgepkg", help="package file to write")
    parser.add_argument("--no-ir", action="store_true", help="openvino: leave the OpenVINO IR out (ONNX only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edgekit package inspect PKG [--json] [--verify-only]``."""
    parser.add_argument("package", metavar="PKG", help="an .edgepkg file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verify-only", action="store_true", help="only verify format and checksums")


def _summary(package: Package) -> dict:
    return {"path": str(package.path), "size_bytes": package.size_bytes, **package.manifest, "checksums": "OK"}


def cli_export(args: argparse.Namespace) -> int:
    """``edgekit export``: write the package, then load it back (which verifies it) and report."""
    out = write_package(args.model_dir, args.output, device=args.device, precision=args.precision,
                        include_ir=False if args.no_ir else None)
    package = load_package(out)
    if args.json:
        print(json.dumps(_summary(package)))
        return 0
    extras = " + OpenVINO IR" if package.has_ir else ""
    print(f"wrote {out}: {package.model}, {package.precision} ONNX{extras}, for {package.target['device']}, "
          f"{_size(package.size_bytes)}, {len(package.labels)} labels")
    return 0


def cli_package_inspect(args: argparse.Namespace) -> int:
    """``edgekit package inspect``: verify the package and describe it."""
    package = load_package(args.package)
    if args.verify_only:
        if args.json:
            print(json.dumps({"path": str(package.path), "ok": True, "format_version": package.format_version,
                              "members": len(package.members)}))
        else:
            count = len(package.members)
            print(f"{package.path}: OK (format {package.format_version}, "
                  f"{count} member{'s' if count != 1 else ''} verified)")
        return 0
    if args.json:
        print(json.dumps(_summary(package)))
        return 0
    labels = ", ".join(package.labels[:10]) + (", ..." if len(package.labels) > 10 else "")
    producer = package.producer
    versions = ", ".join(f"{name} {producer[name]}" for name in ("edgekit", "onnxruntime", "onnx", "openvino", "python")
                         if producer.get(name))
    print(f"{package.path}: edgekit package format {package.format_version}, {_size(package.size_bytes)}")
    print(f"  model        {package.model}")
    print(f"  labels       {len(package.labels)}: {labels}")
    for spec in package.inputs:
        print(f"  input        {spec.name}: {spec.stream} {tuple(spec.shape)} {spec.layout} {spec.dtype} "
              f"({spec.representation})")
    print(f"  outputs      {', '.join(package.outputs)}")
    print(f"  target       {package.target['device']} (backend {package.target['backend']}"
          f"{', OpenVINO IR included' if package.has_ir else ''})")
    print(f"  precision    {package.precision}")
    print(f"  preprocess   {json.dumps(package.preprocessing)}")
    print(f"  fusion       {json.dumps(package.fusion)}")
    print(f"  producer     {versions}; created {producer.get('created', '?')}")
    for name, record in package.members.items():
        print(f"  member       {name}  {_size(record['bytes'])}  sha256 {record['sha256'][:16]}...")
    count = len(package.members)
    print(f"  checksums    OK ({count} member{'s' if count != 1 else ''})")
    return 0


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
