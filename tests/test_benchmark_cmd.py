"""``edgekit benchmark``: rows per device and precision, the three formats, the CI gate (exit 3),
failing rows and bad arguments (exit 2), on a tiny real MODEL_DIR, the bundled default package and a
tiny synthetic dataset."""

from __future__ import annotations

import json

import pytest

from edgekit.benchmark import FAILED, INVALID, PASSED, benchmark, format_markdown, format_text
from edgekit.cli import main
from edgekit.recognizer import DEFAULT_PACKAGE
from onnx_models import make_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("quantized") / "tiny")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from media import synth_tiny

    return synth_tiny(tmp_path_factory.mktemp("synth") / "tiny", 3)


def run(capsys, *args):
    code = main(["benchmark", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_per_device_and_precision_json(capsys, model_dir):
    code, out, _ = run(capsys, model_dir, "--devices", "onnxruntime,openvino", "--precisions", "fp32,int8", "--json")
    assert code == 0
    report = json.loads(out)
    rows = report["rows"]
    assert [(r["device"], r["precision"]) for r in rows] == [
        ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
    assert [r["backend"] for r in rows] == ["onnxruntime", "onnxruntime", "openvino", "openvino"]
    for row in rows:
        assert row["status"] == PASSED and row["error"] is None
        assert row["size_mb"] > 0 and row["windows"] > 0
        assert 0 < row["ms_p50"] <= row["ms_p99"]
        assert row["windows_per_s"] > 0 and row["realtime_factor"] > 0
        assert row["top1"] is None and row["top1_change"] is None  # no --data: speed only, on the demo clip
    assert report["passed"] is True and report["data"] is None and report["clip"].endswith("demo.mp4")


def test_dataset_accuracy_markdown_and_floor_gate(capsys, model_dir, dataset):
    code, out, _ = run(capsys, model_dir, DEFAULT_PACKAGE, "--data", dataset, "--format", "markdown",
                       "--floor", "0.3")
    lines = out.splitlines()
    assert lines[0].startswith("| model | device | precision | status | size MB | top-1 % | top-1 change |")
    assert lines[1].startswith("|---|---|---|---|---:|")
    table = [line for line in lines if line.startswith("| ")][1:]
    assert len(table) == 3  # tiny MODEL_DIR fp32 and int8 on cpu, the default package on its target
    assert all(line.count("|") == lines[0].count("|") for line in table)
    # the tiny model knows 4 labels, none a synthetic class: top-1 0 -> under the floor; the default
    # model was trained on these classes
    assert code == 3
    report = benchmark([model_dir, DEFAULT_PACKAGE], data=dataset, floor=0.3)
    tiny_fp32, tiny_int8, default = report["rows"]
    assert tiny_fp32["top1"] == 0 and tiny_fp32["status"] == INVALID and "under the floor" in tiny_fp32["error"]
    assert tiny_int8["top1_change"] == 0 and tiny_int8["precision"] == "int8"
    assert default["status"] == PASSED and default["top1"] >= 0.3 and default["precision"] == "int8"
    assert default["clips"] == report["clips"] == 17
    assert report["passed"] is False
    text = format_text(report)
    assert "exported but failed validation" in text and "row 1: top-1 0.0 % is under the floor" in text
    assert format_markdown(report).count("\n|") == 4


def test_int8_drop_gate(model_dir, dataset):
    report = benchmark([DEFAULT_PACKAGE], data=dataset, max_int8_drop=0.5)
    assert report["passed"] is True  # a package alone has no FP32 row to lose against
    report = benchmark([model_dir], data=dataset, max_int8_drop=0.0)
    assert [r["status"] for r in report["rows"]] == [PASSED, PASSED]  # 0 -> 0: no loss


def test_failing_row_exits_3(capsys, tmp_path, model_dir):
    corrupt = tmp_path / "corrupt.edgepkg"
    corrupt.write_bytes(DEFAULT_PACKAGE.read_bytes()[:5000])
    int8_only = make_model_dir(tmp_path / "int8-only", fp32=False)
    code, out, _ = run(capsys, corrupt, int8_only, "--precisions", "fp32,int8", "--json")
    assert code == 3
    rows = json.loads(out)["rows"]
    assert [(r["status"], r["precision"]) for r in rows] == [(FAILED, None), (FAILED, "fp32"), (PASSED, "int8")]
    assert "PackageError" in rows[0]["error"] and "\n" not in rows[0]["error"]
    assert "no fp32.onnx" in rows[1]["error"]
    code, out, _ = run(capsys, corrupt)
    assert code == 3 and "failed" in out and "row 1: PackageError" in out


@pytest.mark.parametrize("args, words", [
    (["--devices", "quantum"], "unknown device"),
    (["--devices", "cpu,,openvino"], "--devices"),
    (["--precisions", "fp16"], "precisions are fp32, int8"),
    (["--floor", "80"], "--floor"),
    (["--floor", "0.5"], "need top-1"),
    (["--max-int8-drop", "-1"], "--max-int8-drop"),
    (["--runs", "0"], "--runs"),
    (["--format", "markdown", "--json"], "not both"),
    (["--data", "/nonexistent/data"], "/nonexistent/data"),
])
def test_bad_arguments_exit_2(capsys, model_dir, args, words):
    code, out, err = run(capsys, model_dir, *args)
    assert code == 2 and out == ""
    assert err.startswith("edgekit: error:") and words in err and len(err.strip().splitlines()) == 1


def test_missing_model_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.edgepkg")
    assert code == 2 and "no such package or model folder" in err
    code, _, err = run(capsys, tmp_path)
    assert code == 2 and "without model.json" in err
