"""Deployment packages (``.edgepkg``): one model, ready for one target device, verified on load.

A package (format 2) is a zip holding::

    integrity.json         the integrity record: format version, SHA-256 + size of manifest.json,
                           SHA-256 + size of every other member (canonical JSON, sorted keys)
    integrity.sig          optional: Ed25519 signature over integrity.json's bytes (signed packages)
    manifest.json          format version, model name, labels, input specs, outputs, preprocessing,
                           fusion, target, precision, producer versions, SHA-256 + size of every member
    model.onnx             the FP32 or INT8 QDQ ONNX, self-contained (no external data)
    openvino/model.xml     optional OpenVINO IR of the same model (openvino packages)
    openvino/model.bin

``load_package`` verifies in this order, and uses nothing before it is verified:

1. the zip's member names: no duplicates, nothing but integrity.json, manifest.json and the members
   the integrity record lists;
2. integrity.json (read through a 1 MiB cap, strict JSON, typed), and, when ``trusted_keys`` are
   given, its signature (integrity.sig) against them;
3. manifest.json: its bytes must have the SHA-256 and size the integrity record gives, *before* it
   is parsed (a changed label or preprocessing value is refused: "manifest.json was modified");
   then parsed strictly and every field validated (:mod:`edgekit.manifest`), and its member list
   must equal the integrity record's;
4. every member, inflated in 1 MiB chunks through a byte budget: reading stops with a
   :class:`PackageError` as soon as a member inflates past the size its record gives or the whole
   package past ``max_bytes``; the zip header's declared sizes are never trusted; each member is
   hashed while it is read;
5. model.onnx: refused if any tensor stores its data outside the file (ONNX external data; the file
   it names is never opened), then its inputs, outputs, label count and precision are checked
   against the manifest with ONNX Runtime.

What the digest guarantees: an unsigned integrity.json detects damage and naive tampering (an edited
manifest, a swapped model); someone who rewrites the whole zip can recompute it. Only a signature
checked against a key you trust stops a deliberate attacker. ``Package.integrity_sha256`` (the
SHA-256 of integrity.json) names the exact package contents, e.g. to pin it in a deployment.

Signed packages (optional extra ``edgekit[sign]``, the ``cryptography`` library): ``write_package(...,
sign_key="key.pem")`` adds ``integrity.sig``, an Ed25519 signature over the bytes of integrity.json
(which covers the manifest and every member). ``load_package(path, trusted_keys=["key.pub.pem"])``
then verifies it right after reading integrity.json, before the manifest is read, and refuses
unsigned packages, format-1 packages and packages signed by any other key. Without
``trusted_keys`` the signature is not checked. Make a key with
``openssl genpkey -algorithm ed25519 -out key.pem`` and its public half with
``openssl pkey -in key.pem -pubout -out key.pub.pem``.

Format-1 packages (no integrity.json; the manifest lists the member checksums) still load, but
their manifest is not covered by any checksum: ``package inspect`` says so, and
``load_package(path, require_integrity=True)`` refuses them. Re-export to protect them.

``write_package`` builds one from a quantization ``MODEL_DIR`` (``model.json`` + ``fp32.onnx`` /
``int8.onnx``); ``load_package`` refuses anything it cannot trust (not a zip, no manifest, a newer
format, a modified manifest, a member whose checksum or size differs, a member nobody lists, a
member that inflates past its size, external data, specs that do not match the ONNX) with a
:class:`PackageError` naming the cause::

    package = load_package("dmc-cpu.edgepkg")
    package.manifest.labels, package.manifest.inputs    # a typed edgekit.manifest.Manifest
    with package.backend() as backend:                  # the target's backend, from the package's bytes
        logits = backend.run({"mv_residual": x})["logits"]

Runtime side: numpy, the standard library and ONNX Runtime only.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgekit._fileio import atomic_output
from edgekit._versions import producer_versions
from edgekit.errors import ConfigError, MissingDependencyError, PackageError
from edgekit.manifest import PRECISIONS, Manifest, ManifestError, Member, Target, parse_json, parse_members

FORMAT_VERSION = 2
SUPPORTED_FORMATS = (1, 2)
MANIFEST = "manifest.json"
INTEGRITY = "integrity.json"
SIGNATURE = "integrity.sig"
MODEL_MEMBER = "model.onnx"
IR_XML, IR_BIN = "openvino/model.xml", "openvino/model.bin"
DEFAULT_MAX_BYTES = 512 << 20  # inflated bytes of a whole package; pass max_bytes= for larger models
UNPROTECTED = "manifest not integrity-protected (format 1); re-export to protect it"
_MANIFEST_MAX_BYTES = 4 << 20   # a manifest is a few kB (100,000 labels fit); refuse to inflate anything absurd
_INTEGRITY_MAX_BYTES = 1 << 20  # 64 member records at most
_CHUNK_BYTES = 1 << 20          # inflate at most this much at a time
_MAX_ZIP_ENTRIES, _MAX_DIRECTORY_BYTES = 256, 1 << 20  # a package has a handful of members
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
    integrity_sha256: str | None = None  # SHA-256 of integrity.json (format 2); None: manifest unprotected
    signed_by: str | None = None  # id of the trusted key whose signature was verified at load; None: not verified
    has_signature: bool = False   # the package carries integrity.sig (verified only when signed_by is set)

    @property
    def manifest_protected(self) -> bool:
        """True when the manifest is covered by the integrity record (format 2)."""
        return self.integrity_sha256 is not None

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
        selection = select_backend(device if device is not None else target.device, backend,
                                   default=(target.backend, "cpu"), threads=threads)
        recorded = target.profile.get("tensorrt") if device is None else None
        if selection.backend == "tensorrt" and recorded:
            from targets.profiles import tensorrt_options

            # the build settings the package was exported with (export may override the profile's)
            selection.options.update(tensorrt_options(dict(recorded)))
        return selection

    def backend(self, device: str | None = None, backend: str | None = None, *, threads: int | None = None,
                selection=None, **options):
        """Load the package's model and return the backend (a ``targets.Backend``).

        ``device`` names hardware ("cpu", "gpu", "npu" or a device profile), ``backend`` the runtime
        ("onnxruntime", "openvino", "tensorrt"); both default to the package's target. ``options``
        go to the backend (``graph_optimization``, ``cache_dir``, ...). An OpenVINO load of a
        package carrying IR reads the IR (no ONNX frontend). ``selection``: a :meth:`select` result
        already made (then ``device``, ``backend`` and ``threads`` are not used). Raises
        :class:`ConfigError` / :class:`MissingDependencyError` from ``targets``.
        """
        from targets import load_backend

        selection = selection or self.select(device, backend, threads)
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


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_package` wrote: the package ``path``; ``notes``, one line each worth telling
    the user (``"warning: ..."``: what the package asks of the device that its profile says it lacks,
    ONNX operators not verified for TensorRT, an INT8 model whose accuracy nobody checked; ``"note:
    ..."``: the TensorRT-ready rewrite); ``int8_guard``: the INT8 accuracy guard's measurement
    (an ``edgekit.int8_guard.Int8GuardReport``) when it measured one, else None."""

    path: Path
    notes: tuple[str, ...] = ()
    int8_guard: object | None = None


def write_package(model_dir: str | os.PathLike, out_path: str | os.PathLike, *, device: str = "cpu",
                  backend: str | None = None, precision: str = "int8", include_ir: bool | None = None,
                  sign_key: str | os.PathLike | bytes | None = None, tensorrt: Mapping | None = None) -> Path:
    """:func:`export_package` without the INT8 accuracy guard (``max_int8_drop=None``); returns the
    package's path. Raises as :func:`export_package`."""
    return export_package(model_dir, out_path, device=device, backend=backend, precision=precision,
                          include_ir=include_ir, sign_key=sign_key, tensorrt=tensorrt, max_int8_drop=None).path


def export_package(model_dir: str | os.PathLike, out_path: str | os.PathLike, *, device: str = "cpu",
                   backend: str | None = None, precision: str = "int8", include_ir: bool | None = None,
                   sign_key: str | os.PathLike | bytes | None = None, tensorrt: Mapping | None = None,
                   guard_data: str | os.PathLike | None = None, max_int8_drop: float | None = 1.0,
                   fallback: bool = False, guard_clips: int | None = None, progress=None) -> ExportResult:
    """Write a ``.edgepkg`` for ``device`` from a quantization ``MODEL_DIR`` (``edgekit export``).

    ``device`` names hardware ("cpu", "gpu", "npu") or a device profile (``targets.profiles.
    list_profiles()``: "jetson-orin-nx", "intel-cpu", ..., or a profile ``.toml``); ``backend`` the
    runtime ("onnxruntime", "openvino", "tensorrt"; default: the profile's, else ONNX Runtime on the
    CPU). The manifest's ``target`` records both, and the profile's settings when one is used. Takes
    ``MODEL_DIR/{precision}.onnx`` and ``model.json`` and checks that they agree (inputs, outputs,
    labels, precision). ``include_ir`` (default: True for OpenVINO) adds the OpenVINO IR, which needs
    OpenVINO installed. ``sign_key``: an Ed25519 private key (PEM file or bytes) that signs the
    integrity record (needs ``edgekit[sign]``). The zip is written to a temporary name, fsync'ed and
    renamed, so ``out_path`` is either the complete package or untouched.

    **TensorRT** (``jetson-orin-nano``, ``jetson-orin-nx``, ``jetson-agx-orin``, ``nvidia-gpu`` or
    ``backend="tensorrt"``): the ONNX is made TensorRT-ready and checked without TensorRT
    (``targets.tensorrt_onnx.check_for_tensorrt``: int32 bias dequantization folded into float
    initializers, operators, symmetric int8 Q/DQ, static shapes; a node TensorRT would refuse is an
    error naming it), and the manifest records the engine build settings: the profile's ``[tensorrt]``
    table updated with ``tensorrt`` (``dla_core``, ``gpu_fallback``, ``workspace_mb``,
    ``optimization_level``, ``cuda_graph``). The engine itself is built on the device at first load.

    **INT8 accuracy guard** (``precision="int8"``): with ``guard_data`` (a UCF-101-layout dataset),
    FP32 and INT8 are compared on its test split through the Recognizer's path
    (``edgekit.int8_guard.check_int8``; ``guard_clips``: at most this many clips); without it, on the
    FP32 and INT8 top-1 that ``edgekit quantize`` measured on its test split (``model.json``
    metrics). ``max_int8_drop=None`` turns the guard off. INT8 losing more than ``max_int8_drop`` points refuses the export
    (:class:`AccuracyGuardError`, nothing written). ``fallback=True`` (needs ``guard_data`` and the
    ``onnx`` package) instead keeps the most sensitive layers in FP32, chosen by measurement
    (``fallback_int8``), and packages that model; the manifest's ``metrics.int8_guard`` records the
    figures and the kept layers. ``progress``: called with a line per guard step.

    Raises :class:`ConfigError` on a bad argument, MODEL_DIR or key, :class:`AccuracyGuardError` when
    INT8 loses too much, :class:`MissingDependencyError` when the IR is asked for without OpenVINO, a
    signature without ``cryptography`` or a fallback without ``onnx``.
    """
    from targets.backend import select_backend

    selection = select_backend(device, backend)
    private_key = _private_key(sign_key) if sign_key is not None else None  # a bad key fails before any work
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if max_int8_drop is not None and (isinstance(max_int8_drop, bool) or not isinstance(max_int8_drop, (int, float))
                                      or not max_int8_drop >= 0):
        raise ConfigError(f"max_int8_drop must be a number of points >= 0, got {max_int8_drop!r}")
    if (fallback or guard_data is not None) and (precision != "int8" or max_int8_drop is None):
        raise ConfigError("the INT8 accuracy guard (guard_data, fallback) needs precision int8 and a max_int8_drop")
    if fallback and guard_data is None:
        raise ConfigError("the INT8 fallback needs held-out clips to measure layers on: pass --guard-data DIR")
    notes: list[str] = []
    profile_settings = _target_profile(selection, precision, tensorrt, notes)
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
    external = _external_data_problem(onnx)
    if external:
        raise ConfigError(f"{onnx_path}: {external}; save it with all tensors inside the file "
                          "(onnx.save(model, path, save_as_external_data=False))")
    metrics = dict(meta.get("metrics", {}))
    guard = None
    if precision == "int8" and max_int8_drop is not None:
        onnx, guard = _int8_guard(model_dir, onnx, metrics, notes, guard_data, max_int8_drop, fallback,
                                  guard_clips, progress)
        if guard is not None:
            metrics["int8_guard"] = _guard_record(guard)
    if selection.backend == "tensorrt":
        from targets.tensorrt_onnx import check_for_tensorrt

        try:
            onnx, folded, findings = check_for_tensorrt(onnx)
        except ConfigError as err:
            raise ConfigError(f"{onnx_path}: {err}") from None
        if folded:
            notes.append(f"note: folded {len(folded)} int32 bias DequantizeLinear node(s) into float initializers "
                         "(TensorRT dequantizes int8 only; the arithmetic is unchanged)")
        notes.extend(f"warning: TensorRT: {str(finding)[len('warning: '):]}" for finding in findings)
    problem = onnx_mismatch(onnx, model.inputs, model.outputs, model.labels, precision)
    if problem:
        raise ConfigError(f"{model_dir / 'model.json'} does not match {onnx_path.name}: {problem}")

    data = {MODEL_MEMBER: onnx}
    if include_ir:
        from targets.openvino import ir_bytes

        data[IR_XML], data[IR_BIN] = ir_bytes(onnx)
    target = Target(device=selection.profile or selection.device, backend=selection.backend,
                    profile=profile_settings)
    manifest = {**model.to_dict(), "format_version": FORMAT_VERSION, "target": target.to_dict(),
                "precision": precision,
                "producer": producer_versions(source=meta.get("producer", {})),
                "metrics": metrics,
                "members": {name: _member_record(data[name]) for name in sorted(data)}}
    manifest_bytes = json.dumps(manifest, indent=1).encode()
    integrity = integrity_record(manifest_bytes, data)
    signature = [(SIGNATURE, _signature(integrity, private_key))] if private_key is not None else []
    _write_zip(out_path, [(INTEGRITY, integrity), *signature, (MANIFEST, manifest_bytes)]
               + [(n, data[n]) for n in sorted(data)])
    return ExportResult(out_path, tuple(notes), guard)


def _int8_guard(model_dir: Path, onnx: bytes, metrics: dict, notes: list, guard_data, max_int8_drop: float,
                fallback: bool, guard_clips, progress):
    """(the INT8 ONNX to package, the guard's report or None): measured on ``guard_data``, else the
    top-1s quantize measured; refuses with :class:`AccuracyGuardError` beyond ``max_int8_drop``."""
    from edgekit.errors import AccuracyGuardError

    if guard_data is not None:
        from edgekit.int8_guard import check_int8, fallback_int8

        if fallback:
            return fallback_int8(model_dir, guard_data, max_drop_points=max_int8_drop, clips=guard_clips,
                                 progress=progress)
        return onnx, check_int8(model_dir, guard_data, max_drop_points=max_int8_drop, clips=guard_clips,
                                progress=progress).raise_if_failed()
    fp32 = metrics.get("top1_cpu_fp32", metrics.get("top1_fp32"))
    int8 = metrics.get("top1_cpu_int8", metrics.get("top1_int8"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (fp32, int8)):
        notes.append("warning: INT8 accuracy not checked: model.json has no FP32 and INT8 top-1; pass --guard-data DIR "
                     "to measure them")
        return onnx, None
    drop = 100 * (fp32 - int8)
    if drop > max_int8_drop + 1e-9:
        raise AccuracyGuardError(
            f"the INT8 accuracy guard refuses: INT8 top-1 {100 * int8:.1f} % against FP32 {100 * fp32:.1f} % as "
            f"edgekit quantize measured them: {drop:.1f} points lost, at most {max_int8_drop:g} allowed; export with "
            "--guard-data DIR --fallback to keep the most sensitive layers in FP32, re-quantize with more "
            "calibration clips (edgekit quantize --calib-clips N), or allow more with --max-int8-drop P")
    notes.append(f"note: INT8 guard passed on quantize's figures: top-1 FP32 {100 * fp32:.1f} %, INT8 {100 * int8:.1f} % "
                 f"({drop:+.1f} points lost, at most {max_int8_drop:g})")
    return onnx, None


def _guard_record(report) -> dict:
    """What the manifest keeps of a guard run (``metrics.int8_guard``)."""
    return {"fp32_top1": report.fp32_top1, "int8_top1": report.int8_top1, "drop_points": report.drop_points,
            "max_drop_points": report.max_drop_points, "agreement": report.agreement, "clips": report.clips,
            "split": report.split, "kept_fp32": [layer.name for layer in report.kept_fp32]}


def _target_profile(selection, precision: str, tensorrt: Mapping | None, notes: list) -> dict:
    """The manifest's ``target.profile``: the device profile's settings, for TensorRT with the
    engine build settings updated by ``tensorrt``; what the request asks of the device that it lacks
    is added to ``notes`` (export's own list of lines, see :class:`ExportResult`)."""
    from targets.profiles import DeviceProfile, request_warnings
    from targets.tensorrt import BuildConfig

    settings = dict(selection.profile_settings)
    if tensorrt and selection.backend != "tensorrt":
        raise ConfigError(f"TensorRT build settings ({', '.join(sorted(tensorrt))}) need backend 'tensorrt', "
                          f"not {selection.backend!r}")
    if selection.backend == "tensorrt" and (tensorrt or settings):
        recorded = settings.get("tensorrt", {}) if settings.get("backend") == "tensorrt" else {}
        settings["tensorrt"] = BuildConfig.from_dict({**recorded, **(tensorrt or {})}).to_dict()
        if settings:
            settings["backend"] = "tensorrt"  # what the package runs with, when --backend overrides the profile
    if settings:
        notes.extend(f"warning: {text}" for text in
                     request_warnings(DeviceProfile.from_dict(settings), selection.backend, precision))
    return settings


# ------------------------------------------------------------------------------------------ signing


def _ed25519():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependencyError("cryptography", "sign") from None
    return ed25519, serialization


def _pem(key, what: str) -> bytes:
    if isinstance(key, bytes):
        return key
    try:
        return Path(key).read_bytes()
    except (OSError, TypeError) as err:
        raise ConfigError(f"cannot read the {what} {key!r}: {getattr(err, 'strerror', None) or err}") from None


def _private_key(key):
    """An Ed25519 private key from a PEM file or PEM bytes (unencrypted). Raises ConfigError."""
    ed25519, serialization = _ed25519()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    try:
        loaded = serialization.load_pem_private_key(_pem(key, "signing key"), password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"the signing key is not an unencrypted PEM private key ({err}); make one with "
                          "openssl genpkey -algorithm ed25519 -out key.pem") from None
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise ConfigError("the signing key must be an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return loaded


def _public_key(key):
    """An Ed25519 public key from a PEM file or bytes holding a public key (or a private key, whose
    public half is taken), or a key object. Raises ConfigError."""
    ed25519, serialization = _ed25519()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.public_key()
    pem = _pem(key, "trusted key")
    try:
        loaded = (_private_key(pem).public_key() if b"PRIVATE KEY" in pem
                  else serialization.load_pem_public_key(pem))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"the trusted key {key!r:.80} is not a PEM public key ({err})") from None
    if not isinstance(loaded, ed25519.Ed25519PublicKey):
        raise ConfigError(f"the trusted key {key!r:.80} is not an Ed25519 key")
    return loaded


def key_id(key) -> str:
    """A short name of an Ed25519 key (its public half): the first 16 hex digits of the SHA-256 of
    its raw 32 bytes. Accepts what ``trusted_keys`` accepts."""
    _, serialization = _ed25519()
    raw = _public_key(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _signature(integrity: bytes, private_key) -> bytes:
    record = {"algorithm": "ed25519", "key_id": key_id(private_key), "signature": private_key.sign(integrity).hex()}
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _verify_signature(path: Path, signature: bytes, integrity: bytes, trusted: dict) -> str:
    """The id of the trusted key whose Ed25519 signature over ``integrity`` verifies; else PackageError."""
    from cryptography.exceptions import InvalidSignature

    try:
        record = parse_json(signature, SIGNATURE)
    except ManifestError as err:
        raise PackageError(f"{path}: {err}") from None
    if (not isinstance(record, dict) or set(record) != {"algorithm", "key_id", "signature"}
            or record["algorithm"] != "ed25519" or not isinstance(record["key_id"], str)
            or not isinstance(record["signature"], str)):
        raise PackageError(f"{path}: {SIGNATURE} is not an edgekit Ed25519 signature record")
    key = trusted.get(record["key_id"])
    if key is None:
        raise PackageError(f"{path} is signed by key {record['key_id'][:16]!r}, which is not among the trusted keys "
                           f"({', '.join(sorted(trusted))}); refusing it")
    try:
        key.verify(bytes.fromhex(record["signature"]), integrity)
    except (ValueError, InvalidSignature):
        raise PackageError(f"{path}: the signature by key {record['key_id']!r} does not verify; the package was "
                           "modified after it was signed") from None
    return record["key_id"]


def integrity_record(manifest_bytes: bytes, members: Mapping[str, bytes]) -> bytes:
    """The bytes of ``integrity.json`` for a package: canonical JSON (sorted keys, no spaces) of
    the format version, the SHA-256 and size of ``manifest_bytes`` and of every member."""
    record = {"format_version": FORMAT_VERSION, "algorithm": "sha256", "manifest": _member_record(manifest_bytes),
              "members": {name: _member_record(members[name]) for name in sorted(members)}}
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _external_data_problem(onnx: bytes) -> str | None:
    """Why ``onnx`` cannot go in (or come out of) a package because of external data, or None."""
    from targets.onnx_info import onnx_external_data

    try:
        external = onnx_external_data(onnx)
    except ConfigError as err:
        return str(err)
    if not external:
        return None
    first = external[0]
    where = f" (at {first.location!r})" if first.location else ""
    more = f" and {len(external) - 1} more" if len(external) > 1 else ""
    return (f"tensor {first.name!r}{more} stores its data outside the ONNX file{where}; "
            "a package must carry all its weights, nothing outside it is read")


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


# ---------------------------------------------------------------------------------------------- load


def load_package(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 require_integrity: bool = False, trusted_keys=None) -> Package:
    """Open and verify a ``.edgepkg``; every member's bytes are checked and kept in memory.

    The order of the checks is in the module docstring: the integrity record first, then the
    manifest's bytes against it, then the manifest's fields, then each member inflated through the
    byte budget, then the ONNX. ``max_bytes``: the most bytes the package may inflate to (all
    members and the manifest together; default 512 MiB). ``require_integrity``: refuse format-1
    packages, whose manifest no checksum covers. ``trusted_keys``: Ed25519 public keys (PEM paths,
    PEM bytes or key objects; needs ``edgekit[sign]``); when given, the package must carry a
    signature by one of them over its integrity record, checked before the manifest is read.

    Raises :class:`PackageError` (one line, naming the cause) when the file is missing or not a zip,
    has no valid manifest or integrity record, is of an unknown or newer format, has a modified
    manifest, a member whose SHA-256 or size differs (tampered or damaged), a member nobody lists, a
    member that inflates past its recorded size or the budget, ONNX external data, or specs, labels
    or precision that do not match its ONNX, or, with ``trusted_keys``, no valid signature by a
    trusted key. :class:`ConfigError` for a bad ``max_bytes`` or key, :class:`MissingDependencyError`
    for ``trusted_keys`` without ``cryptography``.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if isinstance(trusted_keys, (str, bytes, os.PathLike)):
        trusted_keys = [trusted_keys]
    trusted = {key_id(key): _public_key(key) for key in trusted_keys} if trusted_keys is not None else None
    if trusted is not None and not trusted:
        raise ConfigError("trusted_keys is empty; pass at least one public key, or None to skip signatures")
    signed_by = None
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"package not found: {path}")
    budget = ByteBudget(max_bytes, path)
    integrity_sha256 = None
    try:
        _check_directory_size(path)
        with zipfile.ZipFile(path) as archive:
            names = _member_names(path, archive)
            if INTEGRITY in names:
                integrity_bytes = inflate_member(archive, INTEGRITY, limit=_INTEGRITY_MAX_BYTES, budget=budget,
                                                 path=path)
                integrity_sha256 = hashlib.sha256(integrity_bytes).hexdigest()
                if trusted is not None:  # before anything the integrity record lists is read
                    if SIGNATURE not in names:
                        raise PackageError(f"{path} is not signed, and trusted keys were given; refusing it")
                    signature = inflate_member(archive, SIGNATURE, limit=4096, budget=budget, path=path)
                    signed_by = _verify_signature(path, signature, integrity_bytes, trusted)
                manifest_record, members = _parse_integrity(path, integrity_bytes)
                _refuse_unlisted(path, names, members, INTEGRITY)
                if MANIFEST not in names:
                    raise PackageError(f"{path} has no {MANIFEST}; the package was damaged or tampered with")
                budget.check_declared([manifest_record, *members.values()])
                manifest_bytes = _verified_member(path, archive, MANIFEST, manifest_record, budget,
                                                  modified=f"{MANIFEST} was modified after export (its size or "
                                                           f"SHA-256 differs from {INTEGRITY})")
                manifest = _parse_manifest(path, manifest_bytes, integrity=True)
                if dict(manifest.members) != members:
                    raise PackageError(f"{path}: the members {MANIFEST} lists differ from {INTEGRITY}; "
                                       "the package was tampered with")
            else:
                if MANIFEST not in names:
                    raise PackageError(f"{path} has no {MANIFEST}; it is not an edgekit package or it was damaged")
                if require_integrity or trusted is not None:
                    why = "trusted keys were given" if trusted is not None else "require_integrity=True"
                    raise PackageError(f"{path}: {UNPROTECTED} ({why})")
                manifest_bytes = inflate_member(archive, MANIFEST, limit=_MANIFEST_MAX_BYTES, budget=budget,
                                                path=path)
                manifest = _parse_manifest(path, manifest_bytes, integrity=False)
                members = dict(manifest.members)
                _refuse_unlisted(path, names, members, MANIFEST)
                budget.check_declared(members.values())
            data = {name: _verified_member(path, archive, name, record, budget)
                    for name, record in sorted(members.items())}
    except zipfile.BadZipFile as err:
        raise PackageError(f"{path} is not an edgekit package (not a valid zip file: {err})") from None
    except NotImplementedError as err:  # e.g. "zip file version 19.0" from zipfile's directory reader
        raise PackageError(f"{path} uses a zip feature edgekit packages never use ({err}); re-export it") from None
    except (ValueError, EOFError, struct.error) as err:  # other malformed zip structures zipfile trips on
        raise PackageError(f"{path} is not an edgekit package (damaged zip structure: {err})") from None
    except OSError as err:
        if err.errno == errno.EINVAL:  # zipfile seeking to an offset a damaged directory gives
            raise PackageError(f"{path} is not an edgekit package (damaged zip structure: an offset points "
                               "outside the file)") from None
        raise PackageError(f"cannot read package {path}: {err.strerror or err}") from None
    if (IR_XML in data) != (IR_BIN in data):
        raise PackageError(f"{path} carries only half of the OpenVINO IR ({IR_XML} and {IR_BIN} go together)")
    external = _external_data_problem(data[MODEL_MEMBER])
    if external:
        raise PackageError(f"{path}: {MODEL_MEMBER}: {external}")
    problem = onnx_mismatch(data[MODEL_MEMBER], manifest.inputs, manifest.outputs, manifest.labels,
                            manifest.precision)
    if problem:
        raise PackageError(f"{path}: manifest does not match {MODEL_MEMBER}: {problem}")
    return Package(path=path, manifest=manifest, size_bytes=path.stat().st_size, _data=data,
                   integrity_sha256=integrity_sha256, signed_by=signed_by,
                   has_signature=integrity_sha256 is not None and SIGNATURE in names)


class ByteBudget:
    """How many inflated bytes a package may still produce (``max_bytes`` in all). Each
    :func:`inflate_member` chunk is taken from it; going over raises :class:`PackageError`."""

    def __init__(self, max_bytes: int, path: Path | str = "package"):
        self.max_bytes, self.left, self.path = max_bytes, max_bytes, path

    def take(self, n: int, member: str) -> None:
        self.left -= n
        if self.left < 0:
            raise PackageError(f"{self.path}: member {member!r} takes the package past {self.max_bytes:,} inflated "
                               "bytes; refusing it (pass max_bytes= to load_package for a larger model)")

    def check_declared(self, records) -> None:
        """Refuse before inflating anything when the recorded sizes alone exceed the budget."""
        declared = sum(record.bytes for record in records)
        if declared > self.left:
            raise PackageError(f"{self.path}: the package records {declared:,} bytes of members, over the "
                               f"{self.max_bytes:,}-byte budget; refusing it (pass max_bytes= to load_package "
                               "for a larger model)")


def inflate_member(archive: zipfile.ZipFile, name: str, *, limit: int, budget: ByteBudget | None = None,
                   path: Path | str = "package", sha256=None) -> bytes:
    """The inflated bytes of member ``name``, read in 1 MiB chunks: at most ``limit`` bytes (and
    what ``budget`` has left), counted as they come out of the decompressor, never trusting the
    sizes the zip header declares. Raises :class:`PackageError` as soon as the count passes
    ``limit`` (after inflating at most ``limit`` + 1 MiB) or the budget, or when the member is
    damaged. ``sha256``: a ``hashlib`` object updated with every chunk."""
    out = io.BytesIO()
    count = 0
    try:
        with archive.open(name) as stream:
            while True:
                chunk = stream.read(_CHUNK_BYTES)
                if not chunk:
                    break
                count += len(chunk)
                if count > limit:
                    raise PackageError(f"{path}: member {name!r} inflates past {limit:,} bytes (refused after "
                                       f"{count:,}); a zip bomb or a damaged package")
                if budget is not None:
                    budget.take(len(chunk), name)
                if sha256 is not None:
                    sha256.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
        raise PackageError(f"{path}: member {name!r} is damaged ({err})") from None
    return out.getvalue()


def _verified_member(path: Path, archive: zipfile.ZipFile, name: str, record: Member, budget: ByteBudget,
                     modified: str | None = None) -> bytes:
    """``name``'s bytes, inflated through the budget up to its recorded size and hashed while read.
    ``modified``: what the refusal says when the bytes differ from the record."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise PackageError(f"{path}: member {name!r} listed in the manifest is missing") from None
    if info.file_size != record.bytes:  # an early refusal only: inflate_member counts what really comes out
        why = modified or f"member {name!r} has {info.file_size} bytes, the record says {record.bytes}"
        raise PackageError(f"{path}: {why}; the package was tampered with or damaged")
    digest = hashlib.sha256()
    content = inflate_member(archive, name, limit=record.bytes, budget=budget, path=path, sha256=digest)
    if digest.hexdigest() != record.sha256 or len(content) != record.bytes:
        raise PackageError(f"{path}: {modified or f'member {name!r} failed its SHA-256 check'}; "
                           "the package was tampered with or damaged")
    return content


def _check_directory_size(path: Path) -> None:
    """Refuse a zip whose central directory announces more entries or bytes than a package can
    have, before ``zipfile`` builds one object per entry (a million tiny entries would)."""
    with open(path, "rb") as fh:
        end = zipfile._EndRecData(fh)  # the stdlib's own end-of-directory reader (zip64 aware)
    if end is None:
        return  # not a zip: ZipFile says so
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > _MAX_ZIP_ENTRIES or size > _MAX_DIRECTORY_BYTES:
        raise PackageError(f"{path}: the zip directory announces {entries:,} entries ({size:,} bytes); an edgekit "
                           "package has a handful; refusing it")


def _member_names(path: Path, archive: zipfile.ZipFile) -> set[str]:
    names = archive.namelist()
    if len(set(names)) != len(names):
        raise PackageError(f"{path} has duplicate member names; it was not written by edgekit")
    for info in archive.infolist():
        # bzip2 and LZMA members inflate without an output bound per call in zipfile: deflate only
        if info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
            raise PackageError(f"{path}: member {info.filename[:80]!r} uses zip compression method "
                               f"{info.compress_type}; edgekit packages use deflate (re-export it)")
    return set(names)


def _refuse_unlisted(path: Path, names: set[str], members: Mapping[str, Member], listed_in: str) -> None:
    own = {MANIFEST, INTEGRITY, SIGNATURE} if listed_in == INTEGRITY else {MANIFEST}
    for name in sorted(names - set(members) - own):
        raise PackageError(f"{path}: member {name!r} is not listed in {listed_in}; the package was modified")
    for name in (MANIFEST, INTEGRITY, SIGNATURE):
        if name in members:
            raise PackageError(f"{path}: {listed_in} lists {name!r} as a member; it was not written by edgekit")
    if MODEL_MEMBER not in members:
        raise PackageError(f"{path}: invalid {listed_in}: 'members' must list at least {MODEL_MEMBER}")


def _check_version(version) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackageError("no integer format_version; it is not an edgekit package")
    supported = ", ".join(map(str, SUPPORTED_FORMATS))
    if version > max(SUPPORTED_FORMATS):
        raise PackageError(f"package format {version} is newer than this edgekit (supports {supported}); "
                           "upgrade edgekit")
    if version not in SUPPORTED_FORMATS:
        raise PackageError(f"unknown package format {version} (this edgekit supports {supported})")


def _json_object(path: Path, data: bytes, member: str) -> dict:
    """``member``'s bytes parsed strictly (see ``edgekit.manifest.parse_json``) into a JSON object."""
    try:
        raw = parse_json(data, member)
    except ManifestError as err:
        raise PackageError(f"{path}: {member} is damaged ({err})") from None
    if not isinstance(raw, dict):
        raise PackageError(f"{path}: {member} is not a JSON object")
    return raw


def _parse_integrity(path: Path, data: bytes) -> tuple[Member, dict[str, Member]]:
    """(manifest record, member records) of integrity.json; refuses anything but a clean record."""
    raw = _json_object(path, data, INTEGRITY)
    try:
        _check_version(raw.get("format_version"))
    except PackageError as err:
        raise PackageError(f"{path}: {INTEGRITY}: {err}" if "newer" not in str(err) else str(err)) from None
    if raw["format_version"] < 2:
        raise PackageError(f"{path}: {INTEGRITY} says format {raw['format_version']}, which has no integrity record")
    if set(raw) != {"format_version", "algorithm", "manifest", "members"} or raw["algorithm"] != "sha256":
        raise PackageError(f"{path}: {INTEGRITY} must hold exactly format_version, algorithm 'sha256', manifest "
                           "and members; the package was damaged or tampered with")
    try:
        manifest_record = parse_members({MANIFEST: raw["manifest"]}, f"{INTEGRITY} manifest")[MANIFEST]
        members = parse_members(raw["members"], f"{INTEGRITY} members")
    except ManifestError as err:
        raise PackageError(f"{path}: invalid {INTEGRITY}: {err}") from None
    if manifest_record.bytes > _MANIFEST_MAX_BYTES:
        raise PackageError(f"{path}: {MANIFEST} is implausibly large ({manifest_record.bytes:,} bytes); "
                           "refusing to read it")
    return manifest_record, members


def _parse_manifest(path: Path, data: bytes, *, integrity: bool) -> Manifest:
    raw = _json_object(path, data, MANIFEST)
    version = raw.get("format_version")
    try:
        _check_version(version)
    except PackageError as err:
        raise PackageError(str(err) if "newer" in str(err) or "unknown" in str(err)
                           else f"{path}: {MANIFEST} has {err}") from None
    if integrity and version != FORMAT_VERSION:
        raise PackageError(f"{path}: {MANIFEST} says format {version} but the package has an {INTEGRITY} "
                           f"(format {FORMAT_VERSION}); the package was tampered with")
    if not integrity and version >= 2:
        raise PackageError(f"{path}: a format-{version} package without {INTEGRITY}: its integrity record was "
                           "removed; the package was tampered with or damaged")
    try:
        return Manifest.from_dict(raw)
    except ManifestError as err:
        raise PackageError(f"{path}: invalid {MANIFEST}: {err}") from None


def rewrite_package(package: Package, out_path: str | os.PathLike, manifest: Manifest, *,
                    sign_key: str | os.PathLike | bytes | None = None) -> Path:
    """Write ``package``'s verified members unchanged (same bytes) with a new ``manifest`` (e.g. one
    with calibration: ``edgekit calibrate``) to ``out_path``, with a fresh integrity record; signed
    with ``sign_key`` when given, else unsigned (a signature of the old record does not cover the new
    one). The manifest must list the same labels, inputs, outputs and precision. Raises
    :class:`ConfigError` when it does not, or for a bad key."""
    old = package.manifest
    private_key = _private_key(sign_key) if sign_key is not None else None
    if (manifest.labels, manifest.inputs, manifest.outputs, manifest.precision) != (
            old.labels, old.inputs, old.outputs, old.precision):
        raise ConfigError("the new manifest must keep the package's labels, inputs, outputs and precision")
    data = dict(package._data)
    manifest_dict = {**manifest.to_dict(), "format_version": FORMAT_VERSION,
                     "members": {name: _member_record(data[name]) for name in sorted(data)}}
    manifest_bytes = json.dumps(manifest_dict, indent=1).encode()
    integrity = integrity_record(manifest_bytes, data)
    signature = [(SIGNATURE, _signature(integrity, private_key))] if private_key is not None else []
    out_path = Path(out_path)
    _write_zip(out_path, [(INTEGRITY, integrity), *signature, (MANIFEST, manifest_bytes)]
               + [(n, data[n]) for n in sorted(data)])
    return out_path
