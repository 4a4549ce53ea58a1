"""Package integrity against crafted packages: zip bombs and over-sized members stop at a byte budget,
ONNX external data is refused without opening the file it names, the manifest is covered by the
integrity record (format 2), and every mangled manifest ends in a PackageError. Real zips, real ONNX
(the `onnx` library only builds the attack models), real ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib

import pytest

from edgekit.cli import main
from edgekit.errors import ConfigError, PackageError
from edgekit.manifest import Manifest, ManifestError
from edgekit.package import (UNPROTECTED, ByteBudget, inflate_member, integrity_record, load_package,
                             write_package)
from onnx_models import LABELS, make_model_dir

GiB, MiB = 1 << 30, 1 << 20


# the same tiny quantized model and package as tests/test_package.py (fixtures shared, not copied)
from test_package import cache_dir, model_dir  # noqa: E402,F401  (pytest fixtures)
from test_package import cpu_package as package  # noqa: E402,F401


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def resealed(members: dict[str, bytes], manifest: dict | bytes | None = None) -> dict[str, bytes]:
    """The members with a new manifest and a recomputed integrity.json (what anyone rewriting the
    whole zip can do: the unsigned digest only stops naive tampering)."""
    members = dict(members)
    if manifest is not None:
        members["manifest.json"] = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    members.pop("integrity.json", None)
    manifest_bytes = members.pop("manifest.json")
    return {"integrity.json": integrity_record(manifest_bytes, members), "manifest.json": manifest_bytes, **members}


def format1(members: dict[str, bytes]) -> dict[str, bytes]:
    """The same package as format 1 wrote it: no integrity.json, the manifest lists the members."""
    manifest = {**json.loads(members["manifest.json"]), "format_version": 1}
    return {"manifest.json": json.dumps(manifest).encode(),
            **{n: d for n, d in members.items() if n not in ("manifest.json", "integrity.json")}}


# --------------------------------------------------------------------------------- raw zip writing

def zeros_deflate(n_bytes: int) -> bytes:
    """A raw deflate stream inflating to ``n_bytes`` zeros (a multiple of 16 MiB): one fully flushed
    16 MiB block repeated, so 1 GiB costs 16 kB of compressed data and milliseconds to build."""
    block = 16 * MiB
    assert n_bytes % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return unit * (n_bytes // block) + compressor.flush()


def zeros_crc(n_bytes: int) -> int:
    crc, chunk = 0, bytes(16 * MiB)
    for _ in range(n_bytes // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return crc


def raw_zip(path, entries):
    """Write a zip whose headers say exactly what ``entries`` says, true or not: each entry is
    (name, deflated payload, crc32, declared inflated size)."""
    local, central = bytearray(), bytearray()
    for name, payload, crc, declared in entries:
        encoded, offset = name.encode(), len(local)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(payload), declared,
                             len(encoded), 0) + encoded + payload
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(payload), declared,
                               len(encoded), 0, 0, 0, 0, 0o644 << 16, offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def honest_entry(name: str, data: bytes):
    return name, deflated(data), zlib.crc32(data), len(data)


MEASURE = """
import json, sys
from edgekit.errors import PackageError
from edgekit.package import load_package

def peak_mb():  # VmHWM: this process's peak RSS (ru_maxrss would carry the forking pytest's over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

before = peak_mb()
try:
    load_package(sys.argv[1])
    outcome = "loaded"
except PackageError as err:
    outcome = str(err)
after = peak_mb()
print(json.dumps({"outcome": outcome, "growth_mb": after - before, "peak_mb": after}))
"""


def load_in_subprocess(path) -> dict:
    """Load ``path`` in a fresh Python; its outcome and peak resident memory growth (ru_maxrss)."""
    run = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


# ------------------------------------------------------------------------------------ byte budget

@pytest.mark.parametrize("bombed", ["model.onnx", "manifest.json", "integrity.json"])
def test_a_member_whose_header_lies_about_its_size_is_refused_in_bounded_memory(package, tmp_path, bombed):
    members = members_of(package)
    # the zip headers (and the records) say the member's real size; its data inflates to 2 GiB
    entries = [honest_entry(name, data) for name, data in members.items()]
    entries = [(name, zeros_deflate(2 * GiB), crc, size) if name == bombed else (name, payload, crc, size)
               for name, payload, crc, size in entries]
    bomb = raw_zip(tmp_path / "bomb.edgepkg", entries)
    assert bomb.stat().st_size < 3_000_000  # 2 MB of zip inflating to 2 GiB
    legit = load_in_subprocess(package)
    refused = load_in_subprocess(bomb)
    assert legit["outcome"] == "loaded"
    assert f"member {bombed!r}" in refused["outcome"] or f"{bombed} was modified" in refused["outcome"]
    # peak memory over the legitimate load (which also builds an ONNX Runtime session) stays small
    assert refused["growth_mb"] < 200 and refused["peak_mb"] - legit["peak_mb"] < 200, (legit, refused)
    print(f"\n{bombed} bomb (2 GiB): peak {refused['peak_mb']:.1f} MB (growth {refused['growth_mb']:.1f} MB); "
          f"legitimate load: peak {legit['peak_mb']:.1f} MB (growth {legit['growth_mb']:.1f} MB)")


def honest_big_package(tmp_path, size: int, members: dict[str, bytes]):
    """A format-2 package whose model.onnx is ``size`` zeros, recorded truthfully everywhere."""
    record = {"sha256": hashlib.sha256(b"").hexdigest(), "bytes": size}  # the budget refuses before any hash
    manifest = json.loads(members["manifest.json"])
    manifest["members"] = {"model.onnx": record}
    manifest_bytes = json.dumps(manifest).encode()
    integrity = json.dumps({"format_version": 2, "algorithm": "sha256", "members": manifest["members"],
                            "manifest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                                         "bytes": len(manifest_bytes)}}).encode()
    return raw_zip(tmp_path / "big.edgepkg", [honest_entry("integrity.json", integrity),
                                              honest_entry("manifest.json", manifest_bytes),
                                              ("model.onnx", zeros_deflate(size), zeros_crc(size), size)])


def test_an_honest_member_over_the_budget_is_refused_before_it_is_inflated(package, tmp_path):
    big = honest_big_package(tmp_path, 2 * GiB, members_of(package))
    started = time.perf_counter()
    with pytest.raises(PackageError, match=r"records 2,147,48\d,\d{3} bytes of members, over the 536,870,912-byte "
                                           r"budget; refusing it \(pass max_bytes= to load_package"):
        load_package(big)  # default budget: 512 MiB
    with pytest.raises(PackageError, match="over the 67,108,864-byte budget"):
        load_package(big, max_bytes=64 * MiB)
    assert time.perf_counter() - started < 2
    with pytest.raises(ConfigError, match="max_bytes must be a positive integer"):
        load_package(big, max_bytes=0)


def test_streaming_stops_at_the_limit_not_at_the_member_end(package, tmp_path):
    big = honest_big_package(tmp_path, 2 * GiB, members_of(package))
    tracemalloc.start()
    started = time.perf_counter()
    with zipfile.ZipFile(big) as archive, pytest.raises(PackageError) as info:
        inflate_member(archive, "model.onnx", limit=32 * MiB)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # refused after 33 MiB of the 2 GiB: the count, not the header, decides
    assert "inflates past 33,554,432 bytes (refused after 34,603,008)" in str(info.value)
    assert peak < 80 * MiB and seconds < 5, (peak, seconds)
    with zipfile.ZipFile(big) as archive, pytest.raises(PackageError, match="takes the package past 16,777,216"):
        inflate_member(archive, "model.onnx", limit=GiB, budget=ByteBudget(16 * MiB))


def test_a_record_smaller_than_the_zip_header_is_refused_before_inflating(package, tmp_path):
    members = format1(members_of(package))
    manifest = json.loads(members["manifest.json"])
    manifest["members"]["model.onnx"]["bytes"] = 1000
    bad = write_zip(tmp_path / "bad.edgepkg", {**members, "manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(PackageError, match=r"member 'model.onnx' has \d+ bytes, the record says 1000"):
        load_package(bad)


# -------------------------------------------------------------------------------- external data

def external_data_onnx(onnx_path, tmp_path) -> tuple[bytes, str]:
    """The ONNX at ``onnx_path`` with every initializer stored as external data at
    ``../weights.bin`` (onnx itself refuses to write '..', so the location is set afterwards, as
    an attacker would); returns the model bytes and the first external tensor's name."""
    import onnx

    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(onnx.load(str(onnx_path)), str(folder / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    (folder / "weights.bin").rename(tmp_path / "weights.bin")
    proto = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    return proto.SerializeToString(), next(t.name for t in proto.graph.initializer if t.external_data)


def test_onnx_external_data_is_refused_naming_the_tensor(model_dir, package, tmp_path, monkeypatch):
    onnx_bytes, tensor = external_data_onnx(model_dir / "int8.onnx", tmp_path)
    members = members_of(package)
    manifest = json.loads(members["manifest.json"])
    manifest["members"]["model.onnx"] = {"sha256": hashlib.sha256(onnx_bytes).hexdigest(), "bytes": len(onnx_bytes)}
    bad = write_zip(tmp_path / "external.edgepkg", resealed({**members, "model.onnx": onnx_bytes}, manifest))
    monkeypatch.chdir(tmp_path / "model")  # where '../weights.bin' resolves to the real, present weights
    assert (tmp_path / "weights.bin").is_file()
    with pytest.raises(PackageError, match=rf"model.onnx: tensor {tensor!r} and \d+ more stores its data outside "
                                           r"the ONNX file \(at '../weights.bin'\); a package must carry all its "
                                           "weights"):
        load_package(bad)
    (tmp_path / "weights.bin").unlink()  # absent: the same refusal, not "file not found"
    with pytest.raises(PackageError, match=rf"tensor {tensor!r} and \d+ more stores its data outside"):
        load_package(bad)
    # a FIFO blocks whoever opens it for reading: a refusal within the timeout proves it was never opened
    os.mkfifo(tmp_path / "weights.bin")
    refused = load_in_subprocess(bad)
    assert "stores its data outside the ONNX file" in refused["outcome"]
    # and export refuses such a model in the first place
    export_dir = make_model_dir(tmp_path / "export")
    (export_dir / "int8.onnx").write_bytes(onnx_bytes)
    with pytest.raises(ConfigError, match=rf"int8.onnx: tensor {tensor!r} and \d+ more stores its data outside"):
        write_package(export_dir, tmp_path / "x.edgepkg")


def test_external_data_is_found_in_attribute_tensors_and_subgraphs():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from targets.onnx_info import onnx_external_data

    def external(name):
        tensor = numpy_helper.from_array(np.ones(4, np.float32), name)
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        return tensor

    then_graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=external("inner"))], "then", [],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    graph = helper.make_graph([helper.make_node("Constant", [], ["c"], value=external("outer")),
                               helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=then_graph)],
                              "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    found = onnx_external_data(helper.make_model(graph).SerializeToString())
    assert sorted(t.name for t in found) == ["inner", "inner", "outer"]
    clean = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [numpy_helper.from_array(np.ones(4, np.float32), "w")])
    assert onnx_external_data(onnx.helper.make_model(clean).SerializeToString()) == ()


# ------------------------------------------------------------------------ the manifest is covered

@pytest.mark.parametrize("change", ["labels", "preprocessing", "same size"])
def test_a_modified_manifest_is_refused_before_it_is_used(package, tmp_path, change):
    members = members_of(package)
    manifest = json.loads(members["manifest.json"])
    if change == "labels":
        manifest["labels"][0] = "ATTACKER_scene_left"
        edited = json.dumps(manifest, indent=1).encode()
    elif change == "preprocessing":
        manifest["preprocessing"]["window_frames"] = 8
        edited = json.dumps(manifest, indent=1).encode()
    else:  # a rename that keeps the size: only the hash can tell
        edited = members["manifest.json"].replace(b'"walk"', b'"kick"')
        assert len(edited) == len(members["manifest.json"]) and edited != members["manifest.json"]
    bad = write_zip(tmp_path / "edited.edgepkg", {**members, "manifest.json": edited})
    with pytest.raises(PackageError, match="manifest.json was modified after export"):
        load_package(bad)


def test_format1_packages_load_but_are_reported_unprotected(package, tmp_path, capsys):
    old = write_zip(tmp_path / "old.edgepkg", format1(members_of(package)))
    loaded = load_package(old)
    assert loaded.labels == LABELS and not loaded.manifest_protected and loaded.integrity_sha256 is None
    assert load_package(package).manifest_protected
    with pytest.raises(PackageError, match=r"manifest not integrity-protected \(format 1\); re-export to protect it"):
        load_package(old, require_integrity=True)
    assert main(["package", "inspect", str(old)]) == 0
    assert f"integrity    {UNPROTECTED}" in capsys.readouterr().out
    assert main(["package", "inspect", str(old), "--verify-only"]) == 0
    assert UNPROTECTED in capsys.readouterr().out
    assert main(["package", "inspect", str(old), "--require-integrity"]) == 2
    assert "re-export to protect it" in capsys.readouterr().err
    assert main(["package", "inspect", str(package), "--json"]) == 0
    integrity = json.loads(capsys.readouterr().out)["integrity"]
    assert integrity == {"manifest_protected": True, "signed": False,
                         "sha256": hashlib.sha256(members_of(package)["integrity.json"]).hexdigest()}


def test_stripping_the_integrity_record_is_refused(package, tmp_path):
    members = members_of(package)
    del members["integrity.json"]
    with pytest.raises(PackageError, match="a format-2 package without integrity.json: its integrity record was"):
        load_package(write_zip(tmp_path / "stripped.edgepkg", members))


@pytest.mark.parametrize("integrity, message", [
    (b"{not json", "integrity.json is not valid JSON"),
    (b'{"format_version": 2, "format_version": 2}', "integrity.json repeats the key 'format_version'"),
    (b'{"format_version": 2, "algorithm": "md5", "manifest": {}, "members": {}}', "algorithm 'sha256'"),
    (b'{"format_version": 2, "algorithm": "sha256", "manifest": {"sha256": "00", "bytes": 1}, "members": {}}',
     "needs a 'sha256' string"),
    (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
])
def test_a_damaged_integrity_record_is_refused(package, tmp_path, integrity, message):
    bad = write_zip(tmp_path / "bad.edgepkg", {**members_of(package), "integrity.json": integrity})
    with pytest.raises(PackageError, match=message):
        load_package(bad)


# ------------------------------------------------------------------ every manifest field is typed

@pytest.mark.parametrize("protected", [True, False])
def test_a_manifest_nested_10000_levels_deep_is_refused(package, tmp_path, protected):
    members = members_of(package)
    manifest = json.loads(members["manifest.json"])
    text = json.dumps(manifest)[:-1] + ', "metrics": ' + "[" * 10_000 + "]" * 10_000 + "}"
    members = resealed(members, text.encode()) if protected else {**format1(members), "manifest.json": text.encode()}
    with pytest.raises(PackageError, match="manifest.json is damaged .*nested too deeply"):
        load_package(write_zip(tmp_path / "deep.edgepkg", members))


@pytest.mark.parametrize("field, value, message", [
    ("labels", ["a"] * 3 + [7], "'labels' must be a non-empty list of strings"),
    ("labels", ["x"] * 100_001, "'labels' has duplicates|at most 100000"),
    ("model", {"name": "m"}, "'model' must be a non-empty string"),
    ("inputs", [{"name": "mv_residual", "modality": "mv_residual", "shape": [1, 3, 5, 32, 1e9]}], "shape must be"),
    ("inputs", [{"name": "mv_residual", "modality": "mv_residual", "shape": [1, 3, 5, 32, 32], "dtype": 5}], "dtype"),
    ("inputs", [{"name": "x", "modality": "mv_residual", "shape": [1, 3, 5, 32, 32], "extra": 1}], "unknown key"),
    ("preprocessing", {"window_frames": 10**12}, "window_frames must be an integer >= 2"),
    ("fusion", {"scores": ["softmax"]}, "fusion.scores must be one of"),
    ("target", {"device": "../../etc/evil.toml", "backend": "onnxruntime"}, "must be a device or profile name"),
    ("target", {"device": "cpu", "backend": "tflite"}, "target.backend must be one of"),
    ("members", {"model.onnx": {"sha256": "x", "bytes": -1}}, "needs a 'sha256' string"),
    ("producer", {"created": float("inf")}, "holds Infinity"),
    ("precison", "int8", r"unknown key\(s\) \['precison'\] \(did you mean 'precision'\?\)"),
])
def test_bad_manifest_fields_are_refused_with_a_package_error(package, tmp_path, field, value, message):
    members = members_of(package)
    manifest = json.loads(members["manifest.json"])
    manifest[field] = value
    bad = write_zip(tmp_path / "bad.edgepkg", resealed(members, json.dumps(manifest).encode()))
    with pytest.raises(PackageError, match=message):
        load_package(bad)


def test_manifest_from_dict_refuses_non_json_data_with_a_manifest_error(package):
    manifest = json.loads(members_of(package)["manifest.json"])
    for bad in ({**manifest, "producer": {1: "x"}}, {**manifest, "metrics": {"a": object()}},
                {**manifest, "labels": ("a", "b")}, {**manifest, "inputs": [[1, 2]]}, [manifest], None):
        with pytest.raises(ManifestError):
            Manifest.from_dict(bad)


def _mutations(rng: random.Random):
    """Values a crafted manifest may hold instead of the right one."""
    return [None, True, False, 0, -1, 2**70, 1.5, -0.0, "", "x" * 5000, "cpu", [], {}, [None], {"": None},
            [1, 2, 3, 4, 5], ["a"] * 1000, {"window_frames": "48"}, {"sha256": "0" * 64, "bytes": True},
            [[[[[[]]]]]], rng.choice(["mv_residual", "BCTHW", "float64", "logits", "softmax", "fp32"])]


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value[:6]):
            yield from _paths(child, prefix + (i,))


def test_fuzzed_manifests_load_or_raise_package_error(package, tmp_path):
    rng = random.Random(11)
    members, old_members = members_of(package), format1(members_of(package))
    paths = [p for p in _paths(json.loads(members["manifest.json"])) if p]
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        protected = i % 4 != 0  # one in four: a format-1 package, whose manifest no digest covers
        manifest = json.loads((members if protected else old_members)["manifest.json"])
        for _ in range(rng.choice([1, 1, 2, 3])):
            path = rng.choice(paths)
            parent = manifest
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if rng.random() < 0.15 and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                elif isinstance(parent, (dict, list)):
                    parent[path[-1]] = rng.choice(_mutations(rng))
            except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
                continue
        text = json.dumps(manifest).encode()
        if rng.random() < 0.1:  # byte-level damage too
            cut = rng.randrange(len(text))
            text = text[:cut] + bytes([rng.randrange(256)]) + text[cut + 1:]
        bad = write_zip(tmp_path / f"fuzz{i}.edgepkg",
                        resealed(members, text) if protected else {**old_members, "manifest.json": text})
        try:
            load_package(bad)
            outcomes["loaded"] += 1
        except PackageError:
            outcomes["refused"] += 1
        bad.unlink()
    assert outcomes["refused"] > 200 and sum(outcomes.values()) == 300, outcomes


def test_packages_written_by_0_1_keep_loading(package, tmp_path):
    members = format1(members_of(package))
    manifest = json.loads(members["manifest.json"])
    spec = manifest["inputs"][0]
    spec["stream"] = spec.pop("modality")  # how 0.1 wrote an input spec and the backend
    manifest["target"] = {"device": "cpu", "backend": "cpu"}
    manifest["fusion"] = {"softmax": True}
    old = load_package(write_zip(tmp_path / "v01.edgepkg", {**members, "manifest.json": json.dumps(manifest).encode()}))
    assert old.inputs[0].modality == "mv_residual" and old.target.backend == "onnxruntime"
    assert old.fusion.scores == "softmax" and old.manifest.format_version == 1 and not old.manifest_protected


# ------------------------------------------------------------------------------------- signatures

@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two Ed25519 key pairs as PEM files: (private, public) each."""
    pytest.importorskip("cryptography", reason="signing needs edgekit[sign] (cryptography)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    folder, pairs = tmp_path_factory.mktemp("keys"), []
    for name in ("vendor", "other"):
        key = ed25519.Ed25519PrivateKey.generate()
        private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
        pairs.append((private, public))
    return pairs


def test_a_signed_package_loads_only_with_a_trusted_key(model_dir, package, tmp_path, keys):
    from edgekit.package import key_id

    (vendor, vendor_pub), (_, other_pub) = keys
    signed = write_package(model_dir, tmp_path / "signed.edgepkg", sign_key=vendor)
    with zipfile.ZipFile(signed) as archive:
        assert archive.namelist() == ["integrity.json", "integrity.sig", "manifest.json", "model.onnx"]
    loaded = load_package(signed, trusted_keys=[vendor_pub])
    assert loaded.signed_by == key_id(vendor_pub) and loaded.has_signature
    unchecked = load_package(signed)  # no trust store: loads, the signature is not claimed as verified
    assert unchecked.signed_by is None and unchecked.has_signature
    with pytest.raises(PackageError, match=rf"signed by key '{key_id(vendor_pub)}', which is not among the trusted"):
        load_package(signed, trusted_keys=[other_pub])
    with pytest.raises(PackageError, match="is not signed, and trusted keys were given"):
        load_package(package, trusted_keys=[vendor_pub])
    old = write_zip(tmp_path / "old.edgepkg", format1(members_of(package)))
    with pytest.raises(PackageError, match=r"manifest not integrity-protected \(format 1\).*trusted keys were given"):
        load_package(old, trusted_keys=vendor_pub)
    # a resealed manifest passes the digest but not the signature
    members = members_of(signed)
    manifest = json.loads(members["manifest.json"])
    manifest["labels"][0] = "ATTACKER_scene_left"
    signature = members.pop("integrity.sig")
    forged = write_zip(tmp_path / "forged.edgepkg", {**resealed(members, manifest), "integrity.sig": signature})
    assert load_package(forged).labels[0] == "ATTACKER_scene_left"  # what an unsigned digest cannot stop
    with pytest.raises(PackageError, match="does not verify; the package was modified after it was signed"):
        load_package(forged, trusted_keys=[vendor_pub])
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_package(signed, trusted_keys=[b"not a key"])
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        write_package(model_dir, tmp_path / "x.edgepkg", sign_key=vendor_pub)
    assert not (tmp_path / "x.edgepkg").exists()


def test_export_sign_and_inspect_trust_on_the_cli(model_dir, tmp_path, keys, capsys):
    (vendor, vendor_pub), (_, other_pub) = keys
    out = tmp_path / "cli-signed.edgepkg"
    assert main(["export", str(model_dir), "--device", "cpu", "--sign", str(vendor), "-o", str(out)]) == 0
    assert ", signed by key " in capsys.readouterr().out
    assert main(["package", "inspect", str(out), "--trust", str(vendor_pub)]) == 0
    assert "Ed25519 by trusted key" in capsys.readouterr().out
    assert main(["package", "inspect", str(out)]) == 0
    assert "present, not verified: pass --trust" in capsys.readouterr().out
    assert main(["package", "inspect", str(out), "--trust", str(other_pub), "--verify-only"]) == 2
    err = capsys.readouterr().err
    assert "not among the trusted keys" in err and err.count("\n") == 1


def test_a_zip_directory_of_a_million_entries_is_refused_before_it_is_parsed(tmp_path):
    entries = 1_000_000
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"x"
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(central) * entries, 0, 0)
    crafted = tmp_path / "many.edgepkg"
    crafted.write_bytes(central * entries + end)  # 48 MB of directory entries
    with pytest.raises(PackageError, match="the zip directory announces 65,535 entries"):
        load_package(crafted)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_compressed_without_an_output_bound_are_refused(package, tmp_path, method):
    # zipfile inflates bzip2/LZMA without a per-call output bound: a 1 MiB read could become GiBs
    with zipfile.ZipFile(tmp_path / "other.edgepkg", "w", method) as archive:
        for name, data in members_of(package).items():
            archive.writestr(name, data)
    with pytest.raises(PackageError, match=f"uses zip compression method {method}; edgekit packages use deflate"):
        load_package(tmp_path / "other.edgepkg")


def test_a_zip_needing_a_newer_zip_version_is_refused_with_a_package_error(package, tmp_path):
    raw = bytearray(package.read_bytes())
    directory = raw.find(b"PK\x01\x02")
    raw[directory + 6:directory + 8] = struct.pack("<H", 190)  # "version needed to extract": 19.0
    crafted = tmp_path / "v19.edgepkg"
    crafted.write_bytes(bytes(raw))
    with pytest.raises(PackageError, match=r"uses a zip feature edgekit packages never use \(zip file version 19.0\)"):
        load_package(crafted)


def test_the_recognizer_takes_a_trust_store(model_dir, package, tmp_path, keys):
    from edgekit import Recognizer

    (vendor, vendor_pub), (_, other_pub) = keys
    signed = write_package(model_dir, tmp_path / "signed.edgepkg", sign_key=vendor)
    with Recognizer(signed, trusted_keys=[vendor_pub]) as rec:
        assert rec.package.signed_by is not None
    with pytest.raises(PackageError, match="not among the trusted"):
        Recognizer(signed, trusted_keys=[other_pub])
    with pytest.raises(PackageError, match="is not signed"):
        Recognizer(package, trusted_keys=[vendor_pub])
    with pytest.raises(PackageError, match="loaded without verifying a signature"):
        Recognizer(load_package(signed), trusted_keys=[vendor_pub])
