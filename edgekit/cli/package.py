"""Package commands: ``export`` writes a device package, ``package inspect`` verifies and describes one.

``edgekit export MODEL_DIR --device D --backend B`` is
``edgekit.package.write_package(MODEL_DIR, OUT, device=D, backend=B)``, then a verifying load.
"""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.cli.common import add_command, backend_help, device_help, number_in, positive_int

_UNPROTECTED = "manifest not integrity-protected (format 1); re-export to protect it"  # edgekit.package.UNPROTECTED

EXPORT_EXAMPLES = """examples:
  edgekit export models/edge-mvr --device cpu -o edge-mvr-cpu.edgepkg
  edgekit export models/edge-mvr --device intel-cpu -o edge-mvr-intel.edgepkg   # ONNX + OpenVINO IR
  edgekit export models/edge-mvr --device jetson-orin-nx -o edge-mvr-nx.edgepkg # engine built on the device
  edgekit export models/edge-mvr --device jetson-agx-orin --dla-core 0 --no-gpu-fallback -o dla0.edgepkg
  edgekit export models/edge-mvr --device cpu --guard-data data/synth-small-motion -o checked.edgepkg   # INT8 vs FP32
  edgekit export models/edge-mvr --device cpu --guard-data data/synth-small-motion --fallback -o mixed.edgepkg
  edgekit export models/edge-mvr --device cpu --backend openvino --no-ir --precision fp32 -o fp32.edgepkg --json
  edgekit export models/edge-mvr --device cpu --sign key.pem -o signed.edgepkg  # Ed25519, needs edgekit[sign]"""

INSPECT_EXAMPLES = """examples:
  edgekit package inspect edge-mvr-cpu.edgepkg                # model, labels, inputs, target, checksums, integrity
  edgekit package inspect edge-mvr-cpu.edgepkg --json         # the same as one JSON object
  edgekit package inspect edge-mvr-cpu.edgepkg --verify-only  # exit 0 if every checksum matches, else 2
  edgekit package inspect old.edgepkg --require-integrity     # refuse format-1 packages (manifest unprotected)
  edgekit package inspect signed.edgepkg --trust key.pub.pem  # refuse unless signed by this key"""

def add_commands(subparsers) -> None:
    add_command(subparsers, "export", "Write a device package (.edgepkg) from a quantized model directory.",
                EXPORT_EXAMPLES, add_arguments=_export_arguments).set_defaults(run=export)
    package = add_command(subparsers, "package", "Work with .edgepkg packages.", INSPECT_EXAMPLES)
    package_commands = package.add_subparsers(dest="package_command", required=True, metavar="SUBCOMMAND")
    add_command(package_commands, "inspect", "Show and verify a package: model, labels, inputs, target, checksums.",
                INSPECT_EXAMPLES, add_arguments=_inspect_arguments).set_defaults(run=inspect)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="directory written by quantization (model.json, int8.onnx and/or fp32.onnx)")
    p.add_argument("--device", required=True, metavar="D", help=device_help(None))
    p.add_argument("--backend", metavar="B", help=backend_help("the device's usual runtime"))
    p.add_argument("--precision", default="int8", choices=["int8", "fp32"], help="model to package (default int8)")
    p.add_argument("--no-ir", action="store_true", help="leave the OpenVINO IR out of an OpenVINO package (ONNX only)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.edgepkg", help="package file to write")
    p.add_argument("--sign", metavar="KEY.pem",
                   help="sign the package with this Ed25519 private key (needs edgekit[sign]; "
                        "openssl genpkey -algorithm ed25519 -out key.pem)")
    trt = p.add_argument_group("TensorRT engine build (Jetson / NVIDIA GPU packages; default: the device profile's)")
    trt.add_argument("--dla-core", type=int, metavar="N",
                     help="run on DLA core N (Orin NX, AGX Orin; -1 = the GPU)")
    trt.add_argument("--gpu-fallback", action=argparse.BooleanOptionalAction, default=None,
                     help="let layers the DLA cannot run fall back to the GPU (off: such a layer is an error naming it)")
    trt.add_argument("--workspace-mb", type=int, metavar="MB", help="builder workspace limit")
    trt.add_argument("--opt-level", type=int, metavar="L", help="builder optimization level 0-5 (TensorRT default 3)")
    trt.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                     help="replay inference as a CUDA graph")
    guard = p.add_argument_group("INT8 accuracy guard (precision int8)")
    guard.add_argument("--max-int8-drop", type=number_in("--max-int8-drop", 0, 100, "top-1 points"), default=1.0,
                       metavar="P", help="refuse the export when INT8 loses more than P top-1 points against FP32 "
                       "(default 1), on --guard-data or, without it, on the figures edgekit quantize measured")
    guard.add_argument("--guard-data", metavar="DIR", help="measure FP32 against INT8 on the test split of this "
                       "dataset (UCF-101 layout, as edgekit synth writes), through the Recognizer's own path")
    guard.add_argument("--guard-clips", type=positive_int, metavar="N", help="at most N held-out clips")
    guard.add_argument("--fallback", action="store_true", help="instead of refusing, keep the most sensitive layers "
                       "in FP32 (chosen by measurement on --guard-data) until INT8 is within the limit; needs onnx")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _tensorrt_settings(args: argparse.Namespace) -> dict:
    """The TensorRT build settings given on the command line (the rest come from the profile)."""
    given = {"dla_core": args.dla_core, "gpu_fallback": args.gpu_fallback, "workspace_mb": args.workspace_mb,
             "optimization_level": args.opt_level, "cuda_graph": args.cuda_graph}
    return {key: value for key, value in given.items() if value is not None}


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", metavar="PKG", help="an .edgepkg file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verify-only", action="store_true", help="only verify format and checksums")
    p.add_argument("--require-integrity", action="store_true",
                   help="refuse a format-1 package, whose manifest no checksum covers (exit 2)")
    p.add_argument("--trust", action="append", metavar="KEY.pub.pem",
                   help="refuse the package unless it is signed by this Ed25519 public key (repeatable; "
                        "needs edgekit[sign])")


def manifest_dict(package) -> dict:
    """The package's manifest as plain JSON data, whether ``package.manifest`` is a ``Manifest``
    (with ``to_dict()``) or the dict read from ``manifest.json``."""
    manifest = package.manifest
    return manifest.to_dict() if hasattr(manifest, "to_dict") else dict(manifest)


def export(args: argparse.Namespace) -> int:
    """Write the package, then load it back (which verifies it) and describe it."""
    from edgekit.package import export_package, load_package

    options = {"backend": args.backend} if args.backend is not None else {}
    if args.sign:
        options["sign_key"] = args.sign
    tensorrt = _tensorrt_settings(args)
    if tensorrt:
        options["tensorrt"] = tensorrt
    say = (lambda message: print(message, file=sys.stderr)) if args.guard_data else None
    result = export_package(args.model_dir, args.output, device=args.device, precision=args.precision,
                            include_ir=False if args.no_ir else None, guard_data=args.guard_data,
                            max_int8_drop=args.max_int8_drop, fallback=args.fallback, guard_clips=args.guard_clips,
                            progress=say, **options)
    out = result.path
    package = load_package(out, trusted_keys=[args.sign] if args.sign else None)
    manifest = manifest_dict(package)
    guard = result.int8_guard.to_dict() if result.int8_guard is not None else None
    if args.json:
        print(json.dumps({**_summary(package, manifest), "notes": list(result.notes), "int8_guard": guard}))
        return 0
    for note in result.notes:
        print(f"edgekit: {note}", file=sys.stderr)
    if result.int8_guard is not None:
        print(result.int8_guard)
    ir = " + OpenVINO IR" if package.has_ir else ""
    signed = f", signed by key {package.signed_by}" if package.signed_by else ""
    print(f"wrote {out}: {manifest['model']}, {manifest['precision']} ONNX{ir}, for {_target(manifest)}, "
          f"{_size(package.size_bytes)}, {len(manifest['labels'])} labels{signed}")
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Verify the package (checksums, format, specs against the ONNX) and describe it."""
    from edgekit.package import load_package
    from edgekit.spec import InputSpec

    package = load_package(args.package, require_integrity=args.require_integrity, trusted_keys=args.trust)
    manifest = manifest_dict(package)
    members = manifest["members"]
    verified = f"{len(members)} member{'s' if len(members) != 1 else ''}"
    if args.verify_only:
        if args.json:
            print(json.dumps({"path": str(package.path), "ok": True, "format_version": manifest["format_version"],
                              "members": len(members), "integrity": _integrity(package)}))
        else:
            protection = "manifest integrity-protected" if package.manifest_protected else _UNPROTECTED
            print(f"{package.path}: OK (format {manifest['format_version']}, {verified} verified; {protection})")
        return 0
    if args.json:
        print(json.dumps(_summary(package, manifest)))
        return 0
    labels = manifest["labels"]
    producer = manifest["producer"]
    versions = ", ".join(f"{name} {producer[name]}" for name in ("edgekit", "onnxruntime", "onnx", "openvino", "python")
                         if producer.get(name))
    print(f"{package.path}: edgekit package format {manifest['format_version']}, {_size(package.size_bytes)}")
    print(f"  model        {manifest['model']}")
    print(f"  labels       {len(labels)}: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")
    for spec in map(InputSpec.from_dict, manifest["inputs"]):
        print(f"  input        {spec.name}: {spec.modality} {tuple(spec.shape)} {spec.layout} {spec.dtype} "
              f"({spec.representation})")
    print(f"  outputs      {', '.join(manifest['outputs'])}")
    print(f"  target       {_target(manifest)}{', OpenVINO IR included' if package.has_ir else ''}")
    for line in _device_lines(manifest["target"]):
        print(line)
    print(f"  precision    {manifest['precision']}")
    print(f"  preprocess   {json.dumps(manifest['preprocessing'])}")
    print(f"  fusion       {json.dumps(manifest['fusion'])}")
    print(f"  producer     {versions}; created {producer.get('created', '?')}")
    for name, record in members.items():
        print(f"  member       {name}  {_size(record['bytes'])}  sha256 {record['sha256'][:16]}...")
    print(f"  checksums    OK ({verified})")
    if package.manifest_protected:
        print(f"  integrity    manifest and {verified} covered by integrity.json, sha256 {package.integrity_sha256}")
        if package.signed_by:
            print(f"  signature    Ed25519 by trusted key {package.signed_by}: verified")
        elif package.has_signature:
            print("  signature    present, not verified: pass --trust KEY.pub.pem to check it")
        else:
            print("  signature    none (the digest detects damage and naive tampering, not a deliberate attacker)")
    else:
        print(f"  integrity    {_UNPROTECTED}")
    return 0


def _device_lines(target: dict) -> list[str]:
    """What the device profile recorded in the manifest says: hardware, TensorRT build settings and
    what the package asks of the device that it lacks."""
    profile = target.get("profile") or {}
    if not profile:
        return []
    from targets.profiles import DeviceProfile, request_warnings

    device = DeviceProfile.from_dict(profile)
    hw = device.hardware
    parts = [hw.arch, hw.cpu] + ([f"GPU {hw.gpu}"] if hw.gpu else [])
    parts += [f"{hw.dla_cores} DLA core{'s' if hw.dla_cores != 1 else ''}"] if hw.dla_cores else []
    parts += ["NPU"] if hw.npu else []
    parts += ["encoder motion vectors"] if hw.encoder_motion_vectors else []
    lines = [f"  device       {device.name}: {', '.join(p for p in parts if p)}; {device.threads or 'all'} threads, "
             f"{device.memory_budget_mb} MB budget"]
    if device.tensorrt:
        trt = device.tensorrt
        where = "GPU" if trt["dla_core"] < 0 else (f"DLA core {trt['dla_core']}, GPU fallback "
                                                   f"{'on' if trt['gpu_fallback'] else 'off'}")
        lines.append(f"  tensorrt     engine built on the device at first load: {where}, workspace {trt['workspace_mb']} MB, "
                     f"optimization level {trt['optimization_level']}, CUDA graph {'on' if trt['cuda_graph'] else 'off'}")
    for warning in request_warnings(device, target.get("backend", ""), device.precision):
        lines.append(f"  warning      {warning}")
    return lines


def _integrity(package) -> dict:
    """What the integrity check covered, as JSON data: ``signed`` is true only for a signature
    verified against a trusted key (``--trust``)."""
    if package.manifest_protected:
        return {"manifest_protected": True, "sha256": package.integrity_sha256, "signed": package.signed_by is not None,
                **({"signed_by": package.signed_by} if package.signed_by else {}),
                **({"signature_unverified": True} if package.has_signature and not package.signed_by else {})}
    return {"manifest_protected": False, "sha256": None, "signed": False, "note": _UNPROTECTED}


def _summary(package, manifest: dict) -> dict:
    return {"path": str(package.path), "size_bytes": package.size_bytes, **manifest, "checksums": "OK",
            "integrity": _integrity(package)}


def _target(manifest: dict) -> str:
    """``cpu (backend cpu)``: the device the package is for and the runtime that runs it."""
    target = manifest["target"]
    return f"{target.get('device', '?')} (backend {target.get('backend', '?')})"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
