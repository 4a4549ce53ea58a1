"""`edgekit export` and `edgekit package inspect` on a real quantized MODEL_DIR (a tiny torch net
exported to ONNX and quantized to INT8)."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from types import SimpleNamespace

import pytest

from edgekit.cli import main
from edgekit.cli.package import manifest_dict
from onnx_models import make_model_dir

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("quantized") / "tiny")


def edgekit_json(capsys, *args) -> dict:
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_export_then_inspect(model_dir, tmp_path, capsys):
    out = tmp_path / "cli.edgepkg"
    exported = edgekit_json(capsys, "export", model_dir, "--device", "cpu", "-o", out, "--json")
    assert exported["path"] == str(out) and exported["precision"] == "int8" and exported["checksums"] == "OK"
    assert exported["target"]["device"] == "cpu" and exported["target"]["backend"] == "onnxruntime"

    assert main(["package", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tiny-segment-net" in text and "4: walk, run, jump, wave" in text
    assert "mv_residual: mv_residual (1, 3, 5, 32, 32) BSCHW float32" in text
    assert "target       cpu (backend onnxruntime)" in text and "checksums    OK (1 member)" in text

    inspected = edgekit_json(capsys, "package", "inspect", out, "--json")
    assert inspected["members"] == exported["members"] and inspected["size_bytes"] == out.stat().st_size

    verified = edgekit_json(capsys, "package", "inspect", out, "--verify-only", "--json")
    assert verified == {"path": str(out), "ok": True, "format_version": 2, "members": 1,
                        "integrity": inspected["integrity"]}


def test_inspect_refuses_a_modified_package_in_one_line(model_dir, tmp_path, capsys):
    out = tmp_path / "cli.edgepkg"
    assert main(["export", str(model_dir), "--device", "cpu", "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: tiny-segment-net, int8 ONNX, for cpu (backend onnxruntime)")
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("extra.bin", b"\0")
    assert main(["package", "inspect", str(out), "--verify-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgekit: error:") and "'extra.bin' is not listed" in err and err.count("\n") == 1


@needs_openvino
def test_export_for_a_device_profile_carries_the_openvino_ir(model_dir, tmp_path, capsys):
    out = tmp_path / "intel.edgepkg"
    exported = edgekit_json(capsys, "export", model_dir, "--device", "intel-cpu", "-o", out, "--json")
    assert exported["target"]["backend"] == "openvino" and "openvino/model.xml" in exported["members"]
    exported = edgekit_json(capsys, "export", model_dir, "--device", "intel-cpu", "--no-ir", "--precision", "fp32",
                            "-o", out, "--json")
    assert exported["precision"] == "fp32" and set(exported["members"]) == {"model.onnx"}


@pytest.mark.parametrize("flags, fragment", [
    (["--device", "openvino"], "is a backend, not a device"),
    (["--device", "cpu", "--backend", "tflite"], "unknown backend 'tflite'"),
    (["--device", "cpu", "--precision", "fp16"], "invalid choice: 'fp16'"),
])
def test_export_bad_words_exit_2(model_dir, tmp_path, capsys, flags, fragment):
    out = tmp_path / "x.edgepkg"
    try:
        code = main(["export", str(model_dir), *flags, "-o", str(out)])
    except SystemExit as exit_info:  # argparse refuses --precision itself
        code = exit_info.code
    assert code == 2 and fragment in capsys.readouterr().err and not out.exists()


def test_manifest_dict_reads_a_typed_manifest_or_a_plain_dict():
    typed = SimpleNamespace(to_dict=lambda: {"model": "m", "labels": ["a"]})
    assert manifest_dict(SimpleNamespace(manifest=typed)) == {"model": "m", "labels": ["a"]}
    assert manifest_dict(SimpleNamespace(manifest={"model": "m"})) == {"model": "m"}
