"""TensorRT without a GPU: everything around the TensorRT calls, for real.

The ONNX a TensorRT package carries (checked with the ``onnx`` package and run by ONNX Runtime), the
engine cache's keys and rebuild rules (on real files), the device profiles, export for every device,
``package inspect``, and the error naming the ``tensorrt`` extra. The TensorRT calls themselves run in
``benchmarks/tensorrt_check.py`` on a machine that has TensorRT; no stand-in module is used here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import BackendError, ConfigError, MissingDependencyError
from edgekit.package import export_package, load_package, write_package
from targets import list_profiles, load_profile
from targets.profiles import request_warnings
from targets.tensorrt import BuildConfig, EngineCache, EngineKey
from targets.tensorrt_onnx import (SUPPORTED_OPS, check_for_tensorrt, fold_int32_dequantize, tensorrt_findings)
from tests.onnx_models import INPUT_NAME, SHAPE, make_model_dir, quantize_bytes, random_input, tiny_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
DEVICES = ["jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "nvidia-gpu", "intel-cpu", "intel-gpu",
           "intel-npu", "x86-cpu", "arm64-cpu"]


def run_ort(model: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})[0]


def _quantize(fp32: bytes, **options) -> bytes:
    return quantize_bytes(fp32, first_seed=200, batches=2, **options)


# ------------------------------------------------------------------------- the ONNX handed to TensorRT


def test_our_int8_model_needs_its_int32_biases_folded_and_then_passes():
    _, _, int8 = tiny_model()
    before = tensorrt_findings(int8)
    int32 = [f for f in before if "dequantizes int32" in f.message]
    assert len(int32) == 3 and all(f.severity == "error" and f.op_type == "DequantizeLinear" for f in int32)
    assert {f.node for f in int32} == {"conv1.bias_DequantizeLinear", "conv2.bias_DequantizeLinear",
                                       "fc.bias_DequantizeLinear"}
    prepared, folded, warnings = check_for_tensorrt(int8)
    assert sorted(folded) == sorted(f.node for f in int32) and warnings == []
    model = onnx.load_from_string(prepared)
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    # what TensorRT requires, read with the onnx package: standard operators only, int8 Q/DQ with zero
    # points of 0, DequantizeLinear on int8 only, static input shapes
    assert {n.op_type for n in model.graph.node} <= SUPPORTED_OPS
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = inits[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
            if node.op_type == "DequantizeLinear" and node.input[0] in inits:
                assert inits[node.input[0]].dtype == np.int8
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == SHAPE
    # the same arithmetic: the folded biases are the values the removed nodes computed
    for seed in range(3):
        x = random_input(seed)
        np.testing.assert_allclose(run_ort(prepared, x), run_ort(int8, x), rtol=1e-5, atol=1e-5)
    original = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load_from_string(int8).graph.initializer}
    np.testing.assert_allclose(inits["fc.bias"], original["fc.bias_quantized"] * original["fc.bias_quantized_scale"],
                               rtol=1e-6)
    assert fold_int32_dequantize(prepared) == (prepared, ())  # nothing left to fold


def test_asymmetric_uint8_quantization_is_refused_node_by_node():
    from onnxruntime.quantization import QuantFormat, QuantType

    _, fp32, _ = tiny_model()
    uint8 = _quantize(fp32, quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                      weight_type=QuantType.QInt8)
    with pytest.raises(ConfigError, match=r"TensorRT cannot build this model: node '[^']+_QuantizeLinear' "
                                          r"\(QuantizeLinear\): zero point is uint8"):
        check_for_tensorrt(uint8)


def test_qoperator_models_and_runtime_extensions_are_refused():
    from onnxruntime.quantization import QuantFormat, QuantType

    _, fp32, _ = tiny_model()
    qoperator = _quantize(fp32, quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8,
                          weight_type=QuantType.QInt8)
    errors = [f for f in tensorrt_findings(qoperator) if f.severity == "error"]
    assert {f.op_type for f in errors} >= {"QLinearConv"}
    assert all("not supported by the ONNX-TensorRT parser" in f.message for f in errors if f.op_type == "QLinearConv")
    # ONNX Runtime's own optimized graph holds com.microsoft operators (FusedConv, ...)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(fp32, sess_options=options, providers=["CPUExecutionProvider"])
        optimized = Path(tmp, "optimized.onnx").read_bytes()
    domains = [f for f in tensorrt_findings(optimized) if "domain 'com.microsoft'" in f.message]
    assert domains and all(f.severity == "error" and f.node for f in domains)


def test_dynamic_input_shapes_are_refused():
    _, fp32, _ = tiny_model()
    model = onnx.load_from_string(fp32)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    findings = tensorrt_findings(model.SerializeToString())
    assert [str(f) for f in findings if f.severity == "error"] == [
        "error: graph input 'mv_residual' has shape ('?', 3, 5, 32, 32): TensorRT packages are built for static "
        "shapes; export the model with fixed input sizes"]


def test_not_onnx_is_a_config_error():
    with pytest.raises(ConfigError, match="not an ONNX model"):
        tensorrt_findings(b"\xff\xff\xff")


# ------------------------------------------------------------------------------- engine cache


def key(**changes) -> EngineKey:
    fields = dict(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                  build=BuildConfig().engine_settings())
    return EngineKey(**{**fields, **changes})


def test_engine_key_changes_with_everything_an_engine_depends_on():
    base = key()
    variants = [key(onnx_sha256="cd" * 32), key(tensorrt_version="10.4.0"), key(gpu_name="NVIDIA H200"),
                key(compute_capability="9.0"), key(build=BuildConfig(dla_core=0).engine_settings()),
                key(build=BuildConfig(workspace_mb=512).engine_settings()),
                key(build=BuildConfig(gpu_fallback=False, dla_core=1).engine_settings())]
    digests = {base.digest} | {v.digest for v in variants}
    assert len(digests) == 1 + len(variants)
    # a CUDA graph or the timing cache change nothing in the engine's bytes: same key
    assert key(build=BuildConfig(cuda_graph=False, timing_cache=False).engine_settings()).digest == base.digest
    assert base.to_dict()["digest"] == base.digest and base.to_dict()["build"]["dla_core"] == -1


def test_cache_builds_once_then_loads_and_an_upgrade_rebuilds(tmp_path):
    cache, builds = EngineCache(tmp_path), []

    def build():
        builds.append(1)
        return json.dumps({"engine": len(builds)}).encode()

    first = cache.get_or_build(key(), build, json.loads)
    assert first.built and first.engine == {"engine": 1} and first.path.is_file() and first.replaced_because is None
    record = json.loads(first.path.with_suffix(".json").read_text())
    assert record["tensorrt_version"] == "10.3.0" and record["digest"] == key().digest and record["bytes"] > 0
    again = cache.get_or_build(key(), build, json.loads)
    assert not again.built and again.engine == {"engine": 1} and len(builds) == 1
    upgraded = cache.get_or_build(key(tensorrt_version="10.7.0"), build, json.loads)  # JetPack upgrade
    assert upgraded.built and upgraded.engine == {"engine": 2} and upgraded.path != first.path
    assert first.path.is_file()  # the older engine stays for the older TensorRT
    forced = cache.get_or_build(key(), build, json.loads, rebuild=True)
    assert forced.built and forced.replaced_because == "rebuild requested" and forced.engine == {"engine": 3}


def test_a_damaged_cached_engine_is_rebuilt_and_a_failed_build_is_an_error(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(key(), lambda: b'{"ok": 1}', json.loads)
    path = cache.engine_path(key())
    path.write_bytes(b'{"ok": ')  # truncated, as a crash or a full disk could leave it
    rebuilt = cache.get_or_build(key(), lambda: b'{"ok": 2}', json.loads)
    assert rebuilt.built and rebuilt.engine == {"ok": 2}
    assert rebuilt.replaced_because.startswith(f"the cached engine {path.name} could not be deserialized")
    assert path.read_bytes() == b'{"ok": 2}'
    with pytest.raises(BackendError, match="TensorRT built an engine it cannot deserialize"):
        cache.get_or_build(key(gpu_name="other"), lambda: b"not json", json.loads)
    assert not cache.engine_path(key(gpu_name="other")).exists()


def test_timing_caches_are_per_tensorrt_version_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    a = cache.timing_cache_path("10.3.0", "Orin", "8.7")
    assert a == cache.timing_cache_path("10.3.0", "Orin", "8.7") and a.parent == tmp_path
    assert len({a, cache.timing_cache_path("10.4.0", "Orin", "8.7"), cache.timing_cache_path("10.3.0", "H200", "9.0")}) == 3


def test_build_config_validation_and_profile_tables():
    assert BuildConfig.from_dict({"dla_core": -1}).dla_core is None
    assert BuildConfig.from_dict({"dla_core": 1}).to_dict()["dla_core"] == 1
    for bad, message in [({"dla_cores": 1}, r"unknown tensorrt setting\(s\) \['dla_cores'\]"),
                         ({"optimization_level": 7}, "optimization_level must be 0-5"),
                         ({"workspace_mb": 8}, "workspace_mb must be at least 16"),
                         ({"gpu_fallback": "yes"}, "gpu_fallback must be true or false"),
                         ({"dla_core": -2}, "dla_core must be a DLA core number")]:
        with pytest.raises(ConfigError, match=message):
            BuildConfig.from_dict(bad)


# ------------------------------------------------------------------------------------ profiles


def test_profiles_say_what_each_device_has():
    profiles = {name: load_profile(name) for name in list_profiles()}
    assert sorted(profiles) == sorted(DEVICES)
    nano, nx, agx = profiles["jetson-orin-nano"], profiles["jetson-orin-nx"], profiles["jetson-agx-orin"]
    assert (nano.hardware.dla_cores, nano.hardware.encoder_motion_vectors) == (0, False)
    assert nx.hardware.dla_cores >= 1 and nx.hardware.encoder_motion_vectors
    assert (agx.hardware.dla_cores, agx.hardware.encoder_motion_vectors) == (2, True)
    for name, profile in profiles.items():
        is_tensorrt = name.startswith("jetson") or name == "nvidia-gpu"
        assert (profile.backend == "tensorrt") == is_tensorrt == profile.hardware.nvidia_gpu
        assert bool(profile.tensorrt) == is_tensorrt
        assert profile.hardware.arch == ("aarch64" if name.startswith(("jetson", "arm64")) else "x86_64")
        assert request_warnings(profile, profile.backend, profile.precision) == []  # each asks only what it has
    assert profiles["intel-npu"].hardware.npu and profiles["intel-npu"].device == "NPU"


def test_export_warns_when_a_package_asks_for_what_its_device_lacks(tmp_path):
    model_dir = make_model_dir(tmp_path / "m")
    notes = export_package(model_dir, tmp_path / "nano.edgepkg", device="jetson-orin-nano",
                           tensorrt={"dla_core": 0}).notes
    assert "warning: DLA core 0 requested, but jetson-orin-nano has no DLA" in notes
    notes = export_package(model_dir, tmp_path / "agx.edgepkg", device="jetson-agx-orin", tensorrt={"dla_core": 2}).notes
    assert "warning: DLA core 2 requested, but jetson-agx-orin has 2 DLA cores" in notes
    notes = export_package(model_dir, tmp_path / "x86.edgepkg", device="x86-cpu", backend="tensorrt").notes
    assert "warning: x86-cpu has no NVIDIA GPU, which TensorRT needs" in notes
    with pytest.raises(ConfigError, match=r"TensorRT build settings \(dla_core\) need backend 'tensorrt'"):
        write_package(model_dir, tmp_path / "no.edgepkg", device="intel-cpu", tensorrt={"dla_core": 0})
    profile = tmp_path / "my-board.toml"
    profile.write_text('backend = "onnxruntime"\ndevice = "CPU"\nprecision = "int8"\nthreads = 2\n'
                       'memory_budget_mb = 256\n[tensorrt]\nworkspace_mb = 64\n')
    with pytest.raises(ConfigError, match="a \\[tensorrt\\] table needs backend 'tensorrt'"):
        load_profile(profile)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    model_dir = make_model_dir(root / "m")
    return model_dir, {device: write_package(model_dir, root / f"{device}.edgepkg", device=device)
                       for device in DEVICES}


def test_export_works_for_every_device_and_records_its_profile(packages):
    model_dir, written = packages
    for device, path in written.items():
        package = load_package(path)
        target = package.manifest.target
        profile = load_profile(device)
        assert (target.device, target.backend) == (device, profile.backend)
        recorded = json.loads(json.dumps(dict(target.profile), default=dict))
        assert recorded["hardware"]["arch"] == profile.hardware.arch
        assert (recorded["threads"], recorded["precision"]) == (profile.threads, profile.precision)
        if profile.backend == "tensorrt":
            assert recorded["tensorrt"] == profile.tensorrt
            findings = tensorrt_findings(package.onnx_bytes)
            assert [f for f in findings if f.severity == "error"] == []
            x = random_input(7)
            np.testing.assert_allclose(run_ort(package.onnx_bytes, x),
                                       run_ort((model_dir / "int8.onnx").read_bytes(), x), rtol=1e-5, atol=1e-5)
            selection = package.select()
            assert selection.backend == "tensorrt" and selection.options["workspace_mb"] == profile.tensorrt["workspace_mb"]
        else:
            assert "tensorrt" not in recorded
        assert package.has_ir == (profile.backend == "openvino")


def test_package_inspect_names_each_configuration(packages):
    _, written = packages
    for device, path in written.items():
        result = subprocess.run([sys.executable, "-m", "edgekit.cli", "package", "inspect", str(path)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
        assert f"target       {device} (backend {load_profile(device).backend})" in result.stdout
        assert lines["device"].startswith(f"  device       {device}: ")
        assert "warning" not in lines
        if device.startswith("jetson") or device == "nvidia-gpu":
            assert "engine built on the device at first load: GPU, workspace" in lines["tensorrt"]


def test_cli_export_with_dla_settings_and_one_line_errors(tmp_path, packages):
    model_dir, _ = packages
    out = tmp_path / "dla.edgepkg"
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(model_dir), "--device", "jetson-agx-orin",
                             "--dla-core", "1", "--no-gpu-fallback", "--opt-level", "5", "-o", str(out), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["target"]["profile"]["tensorrt"] == {
        "workspace_mb": 2048, "optimization_level": 5, "dla_core": 1, "gpu_fallback": False, "cuda_graph": True,
        "timing_cache": True}
    assert any(note.startswith("note: folded 3 int32 bias") for note in summary["notes"])
    inspect = subprocess.run([sys.executable, "-m", "edgekit.cli", "package", "inspect", str(out)],
                             capture_output=True, text=True)
    assert "DLA core 1, GPU fallback off, workspace 2048 MB, optimization level 5" in inspect.stdout
    bad = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(model_dir), "--device", "nvidia-gpu",
                          "--opt-level", "9", "-o", str(tmp_path / "bad.edgepkg")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "edgekit: error: tensorrt optimization_level must be 0-5, got 9"]
    assert not (tmp_path / "bad.edgepkg").exists()


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: the missing-extra error cannot happen here")
def test_running_a_tensorrt_package_without_tensorrt_names_the_extra(packages):
    _, written = packages
    with pytest.raises(MissingDependencyError, match=r"tensorrt is not installed; install it with: "
                                                     r"pip install 'edgekit\[tensorrt\]'"):
        load_package(written["jetson-orin-nx"]).backend()
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", "edgekit/assets/demo.mp4", "--package",
                             str(written["jetson-orin-nano"])], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "edgekit: error: tensorrt is not installed; install it with: pip install 'edgekit[tensorrt]'"]
    # the package still runs on the CPU when asked
    with load_package(written["jetson-orin-nano"]).backend(device="cpu") as backend:
        assert backend.name == "onnxruntime"
        assert backend.run({INPUT_NAME: random_input(1)})["logits"].shape == (1, 4)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: the check script would build an engine")
def test_tensorrt_check_script_says_why_it_cannot_run_here(packages):
    _, written = packages
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "tensorrt_check.py"),
                             str(written["nvidia-gpu"])], capture_output=True, text=True, cwd=root)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and "pip install 'edgekit[tensorrt]'" in report["error"]
    assert report["package"]["device"] == "nvidia-gpu" and report["package"]["onnx_findings"] == []
