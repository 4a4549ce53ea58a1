"""targets: the CPU (ONNX Runtime) and OpenVINO backends on a real exported and quantized ONNX model,
input validation, precision detection, and the device profiles."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from edgekit.errors import ConfigError, MissingDependencyError
from onnx_models import INPUT_NAME, random_input, tiny_model, torch_logits
from targets import Backend, available_backends, list_profiles, load_backend, load_profile
from targets.onnx_info import onnx_operators, onnx_precision

BACKENDS = ["cpu", pytest.param("openvino", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"))]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Keep OpenVINO's compiled-blob cache out of the user's home."""
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def onnx():
    _, fp32, int8 = tiny_model()
    return {"fp32": fp32, "int8": int8}


def logits(backend, x):
    return backend.run({INPUT_NAME: x})["logits"]


def test_cpu_backend_matches_torch(onnx):
    with load_backend("cpu", onnx["fp32"]) as backend:
        assert isinstance(backend, Backend)
        assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "CPU", "fp32")
        assert backend.input_names == (INPUT_NAME,) and backend.output_names == ("logits",)
        for seed in range(3):
            x = random_input(seed)
            out = logits(backend, x)
            assert out.shape == (1, 4) and out.dtype == np.float32
            np.testing.assert_allclose(out, torch_logits(x), atol=1e-5)


def test_cpu_backend_loads_a_path_with_threads_and_optimization_level(onnx, tmp_path):
    path = tmp_path / "int8.onnx"
    path.write_bytes(onnx["int8"])
    x = random_input(7)
    with load_backend("cpu", onnx["int8"]) as from_bytes, \
            load_backend("cpu", path, threads=1, graph_optimization="disable") as from_path:
        assert from_path.threads == 1 and from_path.precision == "int8"
        # the unfused QDQ graph computes the same quantized function as the fused integer kernels
        np.testing.assert_allclose(logits(from_path, x), logits(from_bytes, x), atol=5e-3)


def test_int8_model_tracks_fp32(onnx):
    with load_backend("cpu", onnx["fp32"]) as fp32, load_backend("cpu", onnx["int8"]) as int8:
        for seed in range(3):
            x = random_input(seed)
            reference = logits(fp32, x)
            assert np.abs(logits(int8, x) - reference).max() < 0.05 * np.abs(reference).max()


def test_precision_is_detected_from_the_graph(onnx):
    assert onnx_precision(onnx["fp32"]) == "fp32"
    assert onnx_precision(onnx["int8"]) == "int8"
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= onnx_operators(onnx["int8"])
    assert not {"QuantizeLinear", "DequantizeLinear"} & onnx_operators(onnx["fp32"])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_matches_onnxruntime(onnx, precision, cache_dir):
    pytest.importorskip("openvino")
    with load_backend("cpu", onnx[precision]) as ort_backend, load_backend("openvino", onnx[precision]) as ov:
        assert (ov.name, ov.device, ov.precision) == ("openvino", "CPU", precision)
        assert ov.input_names == (INPUT_NAME,) and ov.output_names == ("logits",)
        for seed in range(4):
            x = random_input(seed)
            expected, got = logits(ort_backend, x), logits(ov, x)
            # INT8: runtimes may round a value differently, a few quantization steps (1.4e-3 at the logits)
            np.testing.assert_allclose(got, expected, atol=1e-4 if precision == "fp32" else 5e-3)
            assert got.argmax() == expected.argmax()
    assert any(cache_dir.joinpath("openvino").iterdir())  # compiled blob cached for the next start


def test_openvino_runs_from_ir_files_and_ir_bytes(onnx, tmp_path):
    pytest.importorskip("openvino")
    from targets.openvino import ir_bytes, save_ir

    xml_path, bin_path = save_ir(onnx["int8"], tmp_path / "ir" / "model.xml")
    assert xml_path.read_bytes().startswith(b"<?xml") and bin_path.stat().st_size > 0
    assert sorted(p.name for p in xml_path.parent.iterdir()) == ["model.bin", "model.xml"]  # no temp left
    xml, weights = ir_bytes(onnx["int8"])
    x = random_input(3)
    with load_backend("cpu", onnx["int8"]) as reference, \
            load_backend("openvino", xml_path, cache=False) as from_files, \
            load_backend("openvino", xml, weights=weights, cache=False) as from_bytes:
        assert from_files.precision == from_bytes.precision == "int8"
        for backend in (from_files, from_bytes):
            np.testing.assert_allclose(logits(backend, x), logits(reference, x), atol=5e-3)


def test_openvino_unavailable_device_lists_the_available_ones(onnx):
    pytest.importorskip("openvino")
    with pytest.raises(ConfigError, match=r"'GPU\.9' is not available here; available devices: \[.*'CPU'"):
        load_backend("openvino", onnx["fp32"], device="GPU.9")
    with pytest.raises(ConfigError, match="unknown OpenVINO device 'TPU'"):
        load_backend("openvino", onnx["fp32"], device="TPU")


def test_openvino_missing_names_the_extra(onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(MissingDependencyError, match=r"edgekit\[openvino\]") as info:
        load_backend("openvino", onnx["int8"])
    assert info.value.extra == "openvino"


@pytest.mark.parametrize("name", BACKENDS)
def test_inputs_are_validated(onnx, name):
    x = random_input(0)
    cases = [
        ({}, r"missing input\(s\) \['mv_residual'\]; the model takes \['mv_residual'\]"),
        ({INPUT_NAME: x, "rgb": x}, r"unexpected input\(s\) \['rgb'\]"),
        ({INPUT_NAME: x[:, :2]}, r"'mv_residual' has shape \(1, 2, 5, 32, 32\), the model expects \(1, 3, 5, 32, 32\)"),
        ({INPUT_NAME: x[0]}, r"has shape \(3, 5, 32, 32\)"),
        ({INPUT_NAME: x.astype(np.float64)}, r"'mv_residual' is float64, the model expects float32"),
        ({INPUT_NAME: x.tolist()}, r"must be a numpy array, got list"),
    ]
    options = {"cache": False} if name == "openvino" else {}
    with load_backend(name, onnx["int8"], **options) as be:
        for inputs, message in cases:
            with pytest.raises(ConfigError, match=message):
                be.run(inputs)
        assert logits(be, x).shape == (1, 4)  # still usable after refused calls
    with pytest.raises(ConfigError, match="closed"):
        be.run({INPUT_NAME: x})


def test_factory_refuses_unknown_backends_options_and_models(onnx, tmp_path):
    assert available_backends() == ("onnxruntime", "openvino", "tensorrt")
    with pytest.raises(ConfigError, match="unknown backend 'tflite'; available backends: onnxruntime, openvino, tensorrt"):
        load_backend("tflite", onnx["fp32"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['threadz'\] for backend 'tensorrt'"):
        load_backend("tensorrt", onnx["fp32"], threadz=1)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['thread'\] for backend 'onnxruntime'"):
        load_backend("cpu", onnx["fp32"], thread=2)
    with pytest.raises(ConfigError, match="graph_optimization must be one of"):
        load_backend("cpu", onnx["fp32"], graph_optimization="max")
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        load_backend("cpu", onnx["fp32"], threads=0)
    with pytest.raises(ConfigError, match="runs on device 'CPU' only"):
        load_backend("cpu", onnx["fp32"], device="GPU")
    with pytest.raises(ConfigError, match="model file not found"):
        load_backend("cpu", tmp_path / "absent.onnx")
    with pytest.raises(ConfigError, match="not an ONNX model"):
        load_backend("cpu", b"\xff" * 64)
    with pytest.raises(ConfigError, match="not an ONNX model"):
        load_backend("cpu", onnx["fp32"][: len(onnx["fp32"]) // 2])  # truncated file
    with pytest.raises(ConfigError, match="ONNX Runtime cannot load the model"):
        load_backend("cpu", unknown_operator_model())


def unknown_operator_model() -> bytes:
    """A well-formed ONNX protobuf whose only node is an operator no runtime has."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph).SerializeToString()


def test_builtin_profiles_load_as_data():
    assert list_profiles() == ["arm64-cpu", "intel-cpu", "intel-gpu", "intel-npu", "jetson-agx-orin",
                               "jetson-orin-nano", "jetson-orin-nx", "nvidia-gpu", "x86-cpu"]
    profiles = {name: load_profile(name) for name in list_profiles()}
    intel = profiles["intel-cpu"]
    assert (intel.backend, intel.device, intel.precision, intel.threads) == ("openvino", "CPU", "int8", 0)
    assert intel.backend_options() == {"device": "CPU"}
    assert profiles["arm64-cpu"].backend_options() == {"device": "CPU", "threads": 4}
    assert load_profile("generic-arm64") == profiles["arm64-cpu"]  # the older name still works
    jetson = profiles["jetson-orin-nano"]
    assert (jetson.backend, jetson.precision) == ("tensorrt", "int8") and jetson.memory_budget_mb > 0
    assert all(p.notes and p.memory_budget_mb > 0 for p in profiles.values())


def test_profile_from_a_user_file_and_errors(tmp_path):
    path = tmp_path / "my-box.toml"
    path.write_text('backend = "cpu"\ndevice = "CPU"\nprecision = "fp32"\nthreads = 2\nmemory_budget_mb = 256\n')
    profile = load_profile(path)
    assert (profile.name, profile.backend, profile.threads, profile.notes) == ("my-box", "onnxruntime", 2, "")
    with pytest.raises(ConfigError, match="unknown device profile 'jetson-nano'; available: arm64-cpu, intel-cpu"):
        load_profile("jetson-nano")
    path.write_text('backend = "cpu"\ndevice = "CPU"\nprecision = "int8"\nthreads = "all"\nmemory_budget_mb = 1\n')
    with pytest.raises(ConfigError, match="threads must be an integer"):
        load_profile(path)
    path.write_text('backend = "cpu"\n')
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['device', 'memory_budget_mb', 'precision', 'threads'\]"):
        load_profile(path)

