"""The INT8 accuracy guard (edgekit.int8_guard): a real INT8 model passes on real clips, a damaged one
is refused naming both top-1s, and the fallback finds the damaged layer and keeps it in FP32.

The model is trained here, in seconds: a small conv net on motion vectors (3 segments of 2x32x32),
fitted to the training split of a tiny synthetic dataset (17 motion classes) read through the
Recognizer's own path, exported to ONNX and quantized by the project's quantizer
(``quantize.int8.quantize_int8``: symmetric int8 QDQ, percentile calibration on the training windows).
Its test top-1 is far above chance (1/17), so a damaged INT8 model loses measurable points. The test
split holds 34 clips: one clip is 2.9 points, so the tests allow two clips and also require 80 % of the
windows to agree with FP32 (the damaged model loses about 25 points and agrees on under 25 %).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import AccuracyGuardError, ConfigError
from edgekit.int8_guard import check_int8, fallback_int8, prepare_held_out, quantized_compute_nodes
from edgekit.spec import InputSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (1, 3, 2, 32, 32)  # BSCHW: 3 segments of motion vectors (dx, dy) at 32x32
LIMIT_POINTS = 6.0  # two of the 34 test clips (2.94 points each): INT8 of a tiny net may flip one
DAMAGED_LAYER = "/conv2/Conv"


def _net(num_classes: int):
    import torch
    from torch import nn

    class MotionNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(2, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
            self.conv3, self.bn3 = nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
            self.fc = nn.Linear(32, num_classes)

        def forward(self, mv):  # (B, 3, 2, 32, 32) -> (B, K): segments folded into the batch, then averaged
            x = mv.reshape(-1, 2, 32, 32)
            x = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(x)))
            x = torch.relu(self.bn3(self.conv3(x)))
            return self.fc(x.mean((2, 3))).reshape(-1, SHAPE[1], num_classes).mean(1)

    torch.manual_seed(0)
    return MotionNet()


def _export(net, path) -> None:
    from onnx_models import export_mv_onnx

    export_mv_onnx(net, path, SHAPE)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from media import synth_tiny

    return synth_tiny(tmp_path_factory.mktemp("synth") / "tiny", 10)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, dataset):
    """A MODEL_DIR (model.json, fp32.onnx, int8.onnx) of a net trained on the training split."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader

    from quantize.int8 import CalibrationSettings, quantize_int8
    from training.synth import CLASS_NAMES

    folder = tmp_path_factory.mktemp("guard") / "motion-net"
    folder.mkdir()
    net = _net(len(CLASS_NAMES))
    _export(net, folder / "fp32.onnx")  # untrained: the windows' inputs do not depend on the weights
    shutil.copyfile(folder / "fp32.onnx", folder / "int8.onnx")
    meta = {"model": "guard-motion-net", "labels": list(CLASS_NAMES), "inputs": [InputSpec("mv", "mv", SHAPE).to_dict()],
            "outputs": ["logits"], "preprocessing": {"window_frames": 8, "stride_frames": 4},
            "fusion": {"softmax": True}}
    (folder / "model.json").write_text(json.dumps(meta))
    train = prepare_held_out(folder, dataset, split="train")
    x = torch.from_numpy(np.concatenate([w["mv"] for w in train.inputs]))
    y = torch.from_numpy(train.clip_labels[train.window_clip])
    optimizer = torch.optim.AdamW(net.parameters(), 1e-2, weight_decay=1e-3)
    net.train()
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(15):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 32):
            batch = order[start:start + 32]
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch], label_smoothing=0.2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for module in net.modules():  # batch-norm statistics of the whole training set, not a running mean
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        net(x)
    _export(net, folder / "fp32.onnx")

    class TrainingWindows(CalibrationDataReader):
        def __init__(self):
            self.windows = iter(train.inputs)

        def get_next(self):
            return next(self.windows, None)

    # every layer INT8: the guard's fallback is what keeps layers in float here
    quantize_int8(folder / "fp32.onnx", folder / "int8.onnx", TrainingWindows(),
                  settings=CalibrationSettings(method="percentile", float_ends=False))
    return folder


@pytest.fixture(scope="module")
def held_out(model_dir, dataset):
    return prepare_held_out(model_dir, dataset)


def _scale_initializer(model, node_name: str, slot: int):
    """The scale initializer of the DequantizeLinear feeding ``node_name``'s input ``slot``."""
    producers = {out: n for n in model.graph.node for out in n.output}
    node = next(n for n in model.graph.node if n.name == node_name)
    dq = producers[node.input[slot]]
    return next(i for i in model.graph.initializer if i.name == dq.input[1])


def _damaged_copy(model_dir, out, damage) -> None:
    import onnx

    shutil.copytree(model_dir, out)
    model = onnx.load(str(out / "int8.onnx"))
    damage(model)
    onnx.save(model, str(out / "int8.onnx"))


def _multiply(tensor, factor: float) -> None:
    from onnx import numpy_helper

    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * np.float32(factor), tensor.name))


@pytest.fixture(scope="module")
def damaged_dir(model_dir, tmp_path_factory):
    """The INT8 model with conv2's weight scales multiplied by 20."""
    out = tmp_path_factory.mktemp("damaged") / "motion-net"
    _damaged_copy(model_dir, out, lambda model: _multiply(_scale_initializer(model, DAMAGED_LAYER, 1), 20.0))
    return out


def _recognizer_top1(model_dir, dataset, precision: str, tmp_path) -> float:
    from edgekit import Recognizer
    from edgekit.benchmark import dataset_clips
    from edgekit.package import write_package

    package = write_package(model_dir, tmp_path / f"{precision}.edgepkg", device="cpu", precision=precision)
    with Recognizer(package, device="cpu", backend="onnxruntime") as recognizer:
        clips = dataset_clips(dataset)
        return sum(recognizer.recognize(c.path).label == c.label for c in clips) / len(clips)


def test_real_int8_passes_and_its_figures_are_the_recognizers(model_dir, dataset, tmp_path):
    report = check_int8(model_dir, dataset, max_drop_points=LIMIT_POINTS, min_agreement=0.8)
    assert report.passed and report.raise_if_failed() is report
    assert (report.clips, report.windows, report.split) == (34, 34 * 5, "test")  # 24-frame clips, 8-frame windows
    assert report.fp32_top1 > 0.3  # a real model: chance is 1/17
    assert report.drop_points <= LIMIT_POINTS and report.agreement >= 0.8
    assert report.drop_points == pytest.approx(100 * (report.fp32_top1 - report.int8_top1))
    # the guard's top-1s are what a Recognizer gets from each precision's package, clip by clip
    assert report.fp32_top1 == pytest.approx(_recognizer_top1(model_dir, dataset, "fp32", tmp_path))
    assert report.int8_top1 == pytest.approx(_recognizer_top1(model_dir, dataset, "int8", tmp_path))
    assert json.loads(json.dumps(report.to_dict()))["kept_fp32"] == []


def test_damaged_int8_is_refused_naming_both_top1s(damaged_dir, held_out):
    report = check_int8(damaged_dir, None, max_drop_points=LIMIT_POINTS, held_out=held_out)
    assert not report.passed
    assert report.drop_points > 10 and report.agreement < 0.5
    with pytest.raises(AccuracyGuardError) as caught:
        report.raise_if_failed()
    message = str(caught.value)
    assert f"INT8 top-1 {100 * report.int8_top1:.1f} % against FP32 {100 * report.fp32_top1:.1f} %" in message
    assert f"{report.drop_points:.1f} points lost, at most 6 allowed" in message
    assert "--fallback" in message and "--calib-clips" in message and "--max-int8-drop" in message
    assert caught.value.report is report and "\n" not in message


def test_fallback_keeps_the_damaged_layer_in_fp32(model_dir, damaged_dir, held_out, tmp_path):
    import onnx
    from onnx import numpy_helper

    from quantize.graph import zero_point_violations
    from targets.onnx_info import onnx_precision
    from targets.tensorrt_onnx import fold_int32_dequantize, tensorrt_findings

    onnx_bytes, report = fallback_int8(damaged_dir, None, max_drop_points=LIMIT_POINTS, min_agreement=0.8,
                                       held_out=held_out)
    assert report.passed and report.quantized_layers == 4
    assert report.kept_fp32[0].name == DAMAGED_LAYER and report.kept_fp32[0].op_type == "Conv"
    assert len(report.kept_fp32) < report.quantized_layers
    assert report.kept_fp32[0].sensitivity > 1.0  # the damage moved the outputs by more than their own spread

    model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(model)
    assert zero_point_violations(model) == [] and onnx_precision(onnx_bytes) == "int8"
    assert tensorrt_findings(fold_int32_dequantize(onnx_bytes)[0]) == []  # still what TensorRT parses
    damaged = onnx.load(str(damaged_dir / "int8.onnx"))
    assert [i.name for i in model.graph.input] == [i.name for i in damaged.graph.input]
    assert [o.name for o in model.graph.output] == [o.name for o in damaged.graph.output]
    kept = {k.name for k in report.kept_fp32}
    assert {n.name for n in quantized_compute_nodes(model)} == {n.name for n in quantized_compute_nodes(damaged)} - kept
    # the kept Conv reads the FP32 model's own weights
    conv = next(n for n in model.graph.node if n.name == DAMAGED_LAYER)
    fp32 = onnx.load(str(model_dir / "fp32.onnx"))
    weights = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == conv.input[1]))
    assert any(np.array_equal(weights, numpy_helper.to_array(i)) for i in fp32.graph.initializer)

    # re-measured from the bytes, as export will package them: the same figures, and a package loads
    mended = tmp_path / "mended"
    shutil.copytree(damaged_dir, mended)
    (mended / "int8.onnx").write_bytes(onnx_bytes)
    again = check_int8(mended, None, max_drop_points=LIMIT_POINTS, min_agreement=0.8, held_out=held_out)
    assert (again.int8_top1, again.agreement, again.passed) == (report.int8_top1, report.agreement, True)
    from edgekit.package import load_package, write_package

    assert load_package(write_package(mended, tmp_path / "mended.edgepkg", device="cpu")).manifest.precision == "int8"


def test_fallback_result_loads_in_openvino(damaged_dir, held_out):
    pytest.importorskip("openvino")
    from targets import load_backend

    onnx_bytes, _ = fallback_int8(damaged_dir, None, max_drop_points=LIMIT_POINTS, held_out=held_out)
    with load_backend("cpu", onnx_bytes, threads=1) as ort, load_backend("openvino", onnx_bytes) as ov:
        x = held_out.inputs[0]
        assert np.allclose(ov.run(x)["logits"], ort.run(x)["logits"], atol=0.5)


def test_fallback_refuses_when_no_layer_in_fp32_helps(model_dir, held_out, tmp_path):
    # the logits' own Q/DQ (after the last Reshape, read by no compute node) crushed: nothing to keep helps
    def crush_logits(model):
        q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "/Reshape_1_output_0")
        scale = next(i for i in model.graph.initializer if i.name == q.input[1])
        _multiply(scale, 1e-3)

    crushed = tmp_path / "crushed"
    _damaged_copy(model_dir, crushed, crush_logits)
    with pytest.raises(AccuracyGuardError) as caught:
        fallback_int8(crushed, None, max_drop_points=LIMIT_POINTS, held_out=held_out)
    report = caught.value.report
    assert len(report.kept_fp32) == report.quantized_layers == 4 and not report.passed
    assert "even with all 4 quantized layers in FP32" in str(caught.value)
    assert f"FP32 {100 * report.fp32_top1:.1f} %" in str(caught.value)


def test_bad_arguments_are_config_errors(model_dir, dataset, tmp_path):
    with pytest.raises(ConfigError, match="max_drop_points"):
        check_int8(model_dir, dataset, max_drop_points=-1)
    with pytest.raises(ConfigError, match="min_agreement"):
        check_int8(model_dir, dataset, min_agreement=2)
    only_int8 = tmp_path / "only-int8"
    only_int8.mkdir()
    for name in ("model.json", "int8.onnx"):
        shutil.copyfile(model_dir / name, only_int8 / name)
    with pytest.raises(ConfigError, match="no fp32.onnx"):
        check_int8(only_int8, dataset)
    with pytest.raises(ConfigError, match="unknown split"):
        check_int8(model_dir, dataset, split="holdout")


def test_the_check_runs_without_torch(model_dir, dataset):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgekit.int8_guard import check_int8\n"
            f"report = check_int8({str(model_dir)!r}, {str(dataset)!r}, clips=5, max_drop_points=100)\n"
            "assert report.clips == 5 and report.windows == 25 and report.passed, report\n"
            "assert [m for m in sys.modules if m.startswith('torch') and sys.modules[m] is not None] == []\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ the guard in `edgekit export`


def _cli_export(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", "export", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_export_refuses_a_damaged_int8_model_in_one_line_and_writes_nothing(damaged_dir, dataset, tmp_path):
    out = tmp_path / "damaged.edgepkg"
    result = _cli_export(damaged_dir, "--device", "cpu", "--guard-data", dataset, "--max-int8-drop", LIMIT_POINTS,
                     "-o", out)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and errors[0].startswith("edgekit: error: the INT8 accuracy guard refuses: INT8 top-1 ")
    assert "Traceback" not in result.stderr and not out.exists()


def test_export_with_fallback_packages_the_mixed_model_and_records_it(damaged_dir, dataset, tmp_path):
    from edgekit import Recognizer
    from edgekit.package import load_package

    out = tmp_path / "mixed.edgepkg"
    result = _cli_export(damaged_dir, "--device", "cpu", "--guard-data", dataset, "--max-int8-drop", LIMIT_POINTS,
                     "--fallback", "--json", "-o", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    guard = summary["int8_guard"]
    assert guard["passed"] and guard["drop_points"] <= LIMIT_POINTS
    assert [layer["name"] for layer in guard["kept_fp32"]][0] == DAMAGED_LAYER
    package = load_package(out)
    recorded = dict(package.manifest.metrics)["int8_guard"]
    assert list(recorded["kept_fp32"])[0] == DAMAGED_LAYER and recorded["int8_top1"] == guard["int8_top1"]
    assert package.manifest.precision == "int8"
    with Recognizer(out) as recognizer:
        assert recognizer.recognize(next(dataset.glob("videos/*/*.mp4"))).label in recognizer.labels


def test_export_without_guard_data_uses_quantizes_figures(tmp_path):
    from tests.onnx_models import make_model_dir

    lossy = make_model_dir(tmp_path / "lossy", metrics={"top1_cpu_fp32": 0.90, "top1_cpu_int8": 0.85})
    result = _cli_export(lossy, "--device", "cpu", "-o", tmp_path / "lossy.edgepkg")
    assert result.returncode == 2 and not (tmp_path / "lossy.edgepkg").exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "edgekit: error: the INT8 accuracy guard refuses: INT8 top-1 85.0 % against FP32 90.0 % as edgekit quantize "
        "measured them: 5.0 points lost, at most 1 allowed; export with --guard-data DIR --fallback to keep the most "
        "sensitive layers in FP32, re-quantize with more calibration clips (edgekit quantize --calib-clips N), or "
        "allow more with --max-int8-drop P")
    assert _cli_export(lossy, "--device", "cpu", "--max-int8-drop", 5, "-o", tmp_path / "ok.edgepkg").returncode == 0
    unmeasured = make_model_dir(tmp_path / "unmeasured", metrics={})
    result = _cli_export(unmeasured, "--device", "cpu", "-o", tmp_path / "unmeasured.edgepkg")
    assert result.returncode == 0 and "edgekit: warning: INT8 accuracy not checked" in result.stderr
    fallback_without_data = _cli_export(lossy, "--device", "cpu", "--fallback", "-o", tmp_path / "x.edgepkg")
    assert fallback_without_data.returncode == 2
    assert "the INT8 fallback needs held-out clips to measure layers on: pass --guard-data DIR" in fallback_without_data.stderr
