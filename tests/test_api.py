"""The public surface: ``import edgekit`` (lazily), explicit typed keywords, device vs backend words,
readable reprs, and the typed manifest. Real package, real ONNX Runtime / OpenVINO."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile

import pytest

import edgekit
from edgekit.errors import ConfigError, EdgekitError, MissingDependencyError
from edgekit.manifest import Manifest, ManifestError
from edgekit.recognizer import DEFAULT_PACKAGE
from targets.backend import select_backend


def test_import_edgekit_is_cheap_and_exposes_the_public_names():
    code = ("import sys, edgekit\n"
            "heavy = [m for m in ('av', 'onnxruntime', 'numpy', 'torch') if m in sys.modules]\n"
            "rec = edgekit.Recognizer.default()\n"
            "print(heavy, 'onnxruntime' in sys.modules, 'torch' in sys.modules, rec.backend.name)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True", "False", "onnxruntime"]
    import edgekit.bitstream
    import edgekit.errors
    import edgekit.fusion
    import edgekit.recognizer

    assert edgekit.open is edgekit.bitstream.open and edgekit.errors is sys.modules["edgekit.errors"]
    assert edgekit.Prediction is edgekit.fusion.Prediction
    assert edgekit.VideoPrediction is edgekit.recognizer.VideoPrediction
    assert {"Recognizer", "Prediction", "VideoPrediction", "open", "errors"} <= set(dir(edgekit))
    with pytest.raises(AttributeError, match="no attribute 'Recogniser'"):
        edgekit.Recogniser  # noqa: B018


def test_the_readme_example_runs_on_the_default_model():
    with edgekit.Recognizer.default() as rec:
        pred = rec.recognize(DEFAULT_PACKAGE.parent / "demo.mp4")
    assert pred.top_label in rec.labels and len(pred.windows) == 9 and pred.frames == 240
    assert pred.latency_ms.total >= pred.latency_ms.decode + pred.latency_ms.inference > 0
    assert repr(rec).startswith("Recognizer('edge-mvr', int8, onnxruntime on cpu, window 48 frames every 24")
    assert repr(pred).startswith("VideoPrediction(") and f"{len(pred.windows)} windows" in repr(pred)
    assert repr(pred.windows[0]).startswith(f"Prediction({pred.windows[0].label} ")
    assert "model='edge-mvr', int8, 15 labels" in repr(rec.package)


def test_options_are_explicit_keywords_with_clear_errors():
    with pytest.raises(TypeError):
        edgekit.Recognizer(DEFAULT_PACKAGE, "openvino")  # device and backend are keyword-only
    with pytest.raises(ConfigError, match="the first argument is the package"):
        edgekit.Recognizer("openvino")
    with pytest.raises(ConfigError, match="threads must be an integer"):
        edgekit.Recognizer.default(threads="2")
    with edgekit.Recognizer.default() as rec:
        with pytest.raises(TypeError, match="accumulate"):
            rec.recognize(DEFAULT_PACKAGE.parent / "demo.mp4", accumulate=False)


@pytest.mark.parametrize("device,backend,default,expected", [
    (None, None, ("onnxruntime", "cpu"), ("onnxruntime", "cpu", {})),
    (None, None, ("cpu", "cpu"), ("onnxruntime", "cpu", {})),                 # format-1 name of ONNX Runtime
    ("cpu", None, ("openvino", "cpu"), ("openvino", "cpu", {"device": "CPU"})),  # the package's backend is kept
    (None, "openvino", ("onnxruntime", "cpu"), ("openvino", "cpu", {"device": "CPU"})),
    ("gpu", None, ("onnxruntime", "cpu"), ("openvino", "gpu", {"device": "GPU"})),
    ("npu", None, ("onnxruntime", "cpu"), ("openvino", "npu", {"device": "NPU"})),
    ("intel-cpu", None, ("onnxruntime", "cpu"), ("openvino", "cpu", {"device": "CPU"})),
    ("generic-arm64", None, ("openvino", "cpu"), ("onnxruntime", "cpu", {"threads": 4})),
    ("jetson-orin-nano", None, ("onnxruntime", "cpu"), ("tensorrt", "gpu", {
        "device": "GPU.0", "workspace_mb": 512, "optimization_level": 3, "dla_core": None, "gpu_fallback": True,
        "cuda_graph": True, "timing_cache": True})),
])
def test_device_names_hardware_and_backend_names_the_runtime(device, backend, default, expected):
    chosen = select_backend(device, backend, default=default)
    assert (chosen.backend, chosen.device, chosen.options) == expected


@pytest.mark.parametrize("device,backend,message", [
    ("openvino", None, "'openvino' is a backend, not a device: pass backend='openvino'"),
    ("tpu", None, "unknown device 'tpu'; devices are cpu, gpu, npu or a profile: arm64-cpu"),
    ("gpu", "onnxruntime", "backend 'onnxruntime' runs on cpu in this build, not on 'gpu'"),
    (None, "tflite", "unknown backend 'tflite'; backends are onnxruntime, openvino, tensorrt"),
])
def test_bad_device_or_backend_words_are_refused(device, backend, message):
    with pytest.raises(ConfigError, match=message):
        select_backend(device, backend)


def test_a_profile_selects_the_runtime_and_tensorrt_names_its_extra_when_missing():
    with edgekit.Recognizer.default(device="x86-cpu") as rec:
        assert rec.selection.profile == "x86-cpu" and rec.backend.name == "onnxruntime"
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the missing-extra error cannot happen")
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgekit\[tensorrt\]'"):
        edgekit.Recognizer.default(device="jetson-orin-nano")


def test_openvino_runs_the_default_package_when_asked_by_backend():
    pytest.importorskip("openvino")
    with edgekit.Recognizer.default(backend="openvino") as rec:
        assert rec.backend.name == "openvino" and str(rec.selection) == "openvino on cpu"
        assert rec.recognize(DEFAULT_PACKAGE.parent / "demo.mp4").frames == 240


def test_the_manifest_is_typed_and_packages_written_earlier_keep_loading():
    raw = json.loads(zipfile.ZipFile(DEFAULT_PACKAGE).read("manifest.json"))
    assert raw["format_version"] == 2 and raw["inputs"][0]["modality"] == "mv_residual"
    spec = {k: v for k, v in raw["inputs"][0].items() if k != "modality"}
    raw = {**raw, "format_version": 1, "inputs": [{**spec, "stream": "mv_residual"}],  # as 0.1 wrote it
           "target": {"device": "cpu", "backend": "cpu"}}
    manifest = Manifest.from_dict(raw)
    assert manifest.inputs[0].modality == "mv_residual" and manifest.target.backend == "onnxruntime"
    assert (manifest.preprocessing.window_frames, manifest.preprocessing.stride_frames) == (48, 24)
    assert manifest.score_output == "logits" and manifest.fusion.scores == "softmax"
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    with pytest.raises(ManifestError, match="fusion.output 'probs' is not one of the outputs"):
        Manifest.from_dict({**raw, "fusion": {"output": "probs"}})
    with pytest.raises(ManifestError, match="window_frames must be an integer >= 2"):
        Manifest.from_dict({**raw, "preprocessing": {"window_frames": "48"}})
    assert issubclass(ManifestError, ValueError) and not issubclass(ManifestError, EdgekitError)


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_a_picture_size_change_starts_new_windows(tmp_path, codec):
    from media import size_change_stream

    ext = {"h264": "h264", "mpeg4": "m4v"}[codec]
    path = tmp_path / f"change.{ext}"
    size_change_stream(path, codec, sizes=((128, 96), (160, 120)), frames=(48, 72))
    with edgekit.Recognizer.default() as rec:
        pred = rec.recognize(path)
    assert pred.frames == 120
    # 48 frames at the first size make one window; the 72 of the second make windows of their own
    # (48, then a 24-frame tail of at least half a window): no window mixes the two sizes
    assert len(pred.windows) == 3


def test_the_motion_vector_only_default_reads_no_residual(tmp_path):
    """Recognizer.default("mv"): the bundled edge-mv-ref package, motion vectors of P-frames alone (no
    residual, no RGB: the loop filter and IDCT skipped), on the demo clip."""
    import edgekit.bitstream as bs
    from edgekit.recognizer import ASSETS

    with edgekit.Recognizer.default("mv") as rec:
        assert rec.package.manifest.model == "edge-mv-ref" and [s.modality for s in rec.specs] == ["mv_ref"]
        assert rec._reader_options["residual"] is False and rec._reader_options["rgb"] is None
        pred = rec.recognize(ASSETS / "demo.mp4")
        assert pred.frames == 240 and len(pred.windows) == 9 and pred.top_label in rec.labels
        run = rec.windows(ASSETS / "demo.mp4")
        list(run)
        assert run.reader.decoder_options.get("skip_idct") == "all"
    with pytest.raises(edgekit.errors.ConfigError, match="unknown default 'rgb'"):
        edgekit.Recognizer.default("rgb")
    assert bs  # the reader module the Recognizer opens
