"""edgekit.package: write a .edgepkg from a real quantized MODEL_DIR, load it back verified, run it,
and refuse every kind of damaged, tampered or foreign package with a PackageError naming the cause."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import zipfile

import numpy as np
import pytest

from edgekit.errors import ConfigError, PackageError
from edgekit.package import integrity_record, load_package, write_package
from onnx_models import INPUT_NAME, LABELS, SHAPE, make_model_dir, random_input
from targets import load_backend

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="openvino is not installed")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("quantized") / "tiny")


@pytest.fixture(scope="module")
def cpu_package(model_dir, tmp_path_factory):
    return write_package(model_dir, tmp_path_factory.mktemp("pkg") / "tiny-cpu.edgepkg", device="cpu")


def rewrite(src, dst, *, drop=(), replace=None, add=None, reseal=False):
    """Copy the zip ``src`` to ``dst`` member by member, dropping, replacing or adding members.
    ``reseal``: recompute integrity.json over the new manifest and members, as someone who rewrites
    the whole package can (the unsigned digest does not stop that; the ONNX checks still apply)."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin:
        members = {name: replace.get(name, zin.read(name)) for name in zin.namelist() if name not in drop}
    members.update(add)
    members = {name: data.encode() if isinstance(data, str) else data for name, data in members.items()}
    if reseal:
        manifest = members.pop("manifest.json")
        members.pop("integrity.json")
        members = {"integrity.json": integrity_record(manifest, members), "manifest.json": manifest, **members}
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return dst


def manifest_of(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_roundtrip_runs_like_the_model_dir_onnx(model_dir, tmp_path, precision):
    path = write_package(model_dir, tmp_path / "tiny.edgepkg", device="cpu", precision=precision)
    package = load_package(path)
    assert (package.model, package.labels, package.precision) == ("tiny-segment-net", LABELS, precision)
    assert package.inputs[0].shape == SHAPE and package.inputs[0].modality == "mv_residual"
    assert package.outputs == ("logits",) and package.target.to_dict() == {"device": "cpu", "backend": "onnxruntime"}
    assert package.manifest.to_dict() == manifest_of(path)  # the typed manifest round-trips
    assert package.preprocessing.extra["segments"] == 3 and package.fusion.scores == "softmax"
    assert package.read("model.onnx") == (model_dir / f"{precision}.onnx").read_bytes()
    x = random_input(5)
    with package.backend(threads=1) as packaged, load_backend("cpu", model_dir / f"{precision}.onnx") as direct:
        assert packaged.precision == precision
        np.testing.assert_array_equal(packaged.run({INPUT_NAME: x})["logits"], direct.run({INPUT_NAME: x})["logits"])


def test_manifest_lists_every_member_with_its_checksum(model_dir, cpu_package):
    with zipfile.ZipFile(cpu_package) as archive:
        assert archive.namelist() == ["integrity.json", "manifest.json", "model.onnx"]
        manifest_bytes, integrity = archive.read("manifest.json"), json.loads(archive.read("integrity.json"))
    manifest = manifest_of(cpu_package)
    onnx = (model_dir / "int8.onnx").read_bytes()
    assert manifest["format_version"] == 2
    assert manifest["members"] == {"model.onnx": {"sha256": hashlib.sha256(onnx).hexdigest(), "bytes": len(onnx)}}
    assert integrity == {"format_version": 2, "algorithm": "sha256", "members": manifest["members"],
                         "manifest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                                      "bytes": len(manifest_bytes)}}
    assert manifest["labels"] == list(LABELS) and manifest["inputs"][0]["shape"] == list(SHAPE)
    producer = manifest["producer"]
    assert {"edgekit", "onnx", "onnxruntime", "openvino", "python", "created"} <= set(producer)
    assert producer["created"].endswith("+00:00") and producer["source"]["torch"] == "2.13.0"
    assert manifest["metrics"] == {"top1_fp32": 0.5, "top1_int8": 0.5}


def test_same_inputs_write_the_same_bytes(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = write_package(model_dir, tmp_path / "a.edgepkg").read_bytes()
    assert write_package(model_dir, tmp_path / "b.edgepkg").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.edgepkg", "b.edgepkg"]  # no temp files left


def test_tampered_member_is_refused_naming_it(cpu_package, tmp_path):
    with zipfile.ZipFile(cpu_package) as archive:
        onnx = bytearray(archive.read("model.onnx"))
    onnx[len(onnx) // 2] ^= 0xFF
    bad = rewrite(cpu_package, tmp_path / "bad.edgepkg", replace={"model.onnx": bytes(onnx)})
    with pytest.raises(PackageError, match="member 'model.onnx' failed its SHA-256 check; the package was tampered"):
        load_package(bad)


def test_corrupted_zip_bytes_are_refused_naming_the_member(cpu_package, tmp_path):
    raw = bytearray(cpu_package.read_bytes())
    with zipfile.ZipFile(cpu_package) as archive:
        info = archive.getinfo("model.onnx")
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[data_start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "rot.edgepkg"
    bad.write_bytes(bytes(raw))
    with pytest.raises(PackageError, match="member 'model.onnx'"):
        load_package(bad)


def test_newer_format_version_asks_to_upgrade(cpu_package, tmp_path):
    with zipfile.ZipFile(cpu_package) as archive:
        integrity = {**json.loads(archive.read("integrity.json")), "format_version": 3}
    bad = rewrite(cpu_package, tmp_path / "v3.edgepkg", replace={"integrity.json": json.dumps(integrity)})
    with pytest.raises(PackageError) as info:
        load_package(bad)
    assert str(info.value) == "package format 3 is newer than this edgekit (supports 1, 2); upgrade edgekit"


@pytest.mark.parametrize("case, message", [
    ("no manifest", "has no manifest.json; the package was damaged or tampered with"),
    ("extra member", "member 'notes.txt' is not listed in integrity.json"),
    ("missing member", "member 'model.onnx' listed in the manifest is missing"),
    ("format 0", "unknown package format 0"),
    ("shape mismatch", r"manifest does not match model.onnx: input 'mv_residual' has shape \(1, 3, 5, 64, 64\)"),
    ("labels mismatch", "3 labels but the ONNX output 'logits' has 4 classes"),
    ("precision mismatch", "precision is 'fp32' but the ONNX graph is int8"),
])
def test_foreign_or_inconsistent_packages_are_refused(cpu_package, tmp_path, case, message):
    manifest = manifest_of(cpu_package)
    bad = tmp_path / "bad.edgepkg"
    if case == "no manifest":
        rewrite(cpu_package, bad, drop=["manifest.json"])
    elif case == "extra member":
        rewrite(cpu_package, bad, add={"notes.txt": b"hello"})
    elif case == "missing member":
        rewrite(cpu_package, bad, drop=["model.onnx"])
    else:
        if case == "format 0":
            manifest["format_version"] = 0
        elif case == "shape mismatch":
            manifest["inputs"][0]["shape"] = [1, 3, 5, 64, 64]
        elif case == "labels mismatch":
            manifest["labels"] = manifest["labels"][:3]
        else:
            manifest["precision"] = "fp32"
        rewrite(cpu_package, bad, replace={"manifest.json": json.dumps(manifest)}, reseal=True)
    with pytest.raises(PackageError, match=message):
        load_package(bad)


def test_missing_file_and_not_a_zip_are_refused(tmp_path):
    with pytest.raises(PackageError, match="package not found: .*absent.edgepkg"):
        load_package(tmp_path / "absent.edgepkg")
    text = tmp_path / "notes.edgepkg"
    text.write_text("this is not a zip\n" * 20)
    with pytest.raises(PackageError, match="is not an edgekit package \\(not a valid zip file"):
        load_package(text)


@needs_openvino
def test_openvino_package_carries_ir_and_loads_from_it(model_dir, tmp_path, monkeypatch):
    import targets

    path = write_package(model_dir, tmp_path / "tiny-openvino.edgepkg", device="intel-cpu")
    package = load_package(path)
    assert sorted(package.members) == ["model.onnx", "openvino/model.bin", "openvino/model.xml"]
    target = package.target
    assert (target.device, target.backend, target.profile["device"]) == ("intel-cpu", "openvino", "CPU")
    assert package.has_ir
    calls = []
    real = targets.load_backend

    def spy(name, model, **options):
        calls.append((name, bytes(model[:5]), sorted(options)))
        return real(name, model, **options)

    monkeypatch.setattr(targets, "load_backend", spy)
    x = random_input(9)
    with package.backend() as ov, load_backend("cpu", model_dir / "int8.onnx") as reference:
        assert (ov.name, ov.device, ov.precision) == ("openvino", "CPU", "int8")
        expected, got = reference.run({INPUT_NAME: x})["logits"], ov.run({INPUT_NAME: x})["logits"]
        np.testing.assert_allclose(got, expected, atol=5e-3)
        assert got.argmax() == expected.argmax()
    assert calls == [("openvino", b"<?xml", ["device", "weights"])]  # from the IR, not the ONNX
    with package.backend(backend="onnxruntime") as ort:  # the ONNX in the same package runs on ORT too
        assert ort.name == "onnxruntime" and ort.precision == "int8"
    with pytest.raises(ConfigError, match="'GPU' is not available here"):  # no GPU on this machine
        package.backend(device="gpu")


def test_write_package_refuses_bad_requests_and_leaves_nothing(model_dir, tmp_path):
    out = tmp_path / "x.edgepkg"
    with pytest.raises(ConfigError, match="unknown device 'jetson'; devices are cpu, gpu, npu or a profile"):
        write_package(model_dir, out, device="jetson")
    with pytest.raises(ConfigError, match="'openvino' is a backend, not a device"):
        write_package(model_dir, out, device="openvino")
    with pytest.raises(ConfigError, match="include_ir=True needs backend 'openvino'"):
        write_package(model_dir, out, device="cpu", include_ir=True)
    int8_only = make_model_dir(tmp_path / "int8-only", fp32=False)
    with pytest.raises(ConfigError, match=r"has no fp32.onnx \(found: \['int8.onnx'\]\); pass --precision int8"):
        write_package(int8_only, out, precision="fp32")
    wrong = make_model_dir(tmp_path / "wrong", labels=["a", "b"])
    with pytest.raises(ConfigError, match="model.json does not match int8.onnx: 2 labels but .* has 4 classes"):
        write_package(wrong, out)
    with pytest.raises(ConfigError, match="'metrics' must be an object"):
        write_package(make_model_dir(tmp_path / "odd", metrics=[0.5]), out)
    with pytest.raises(ConfigError, match="has no model.json"):
        write_package(tmp_path, out)
    assert not out.exists() and not list(tmp_path.glob(".*part"))
