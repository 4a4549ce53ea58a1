"""TensorRT on a real NVIDIA device: build the engine from a package, compare it with ONNX Runtime,
time it. Run it on the Jetson (or any machine with TensorRT and an NVIDIA GPU) the package is for:

    python benchmarks/tensorrt_check.py edge-mvr-nx.edgepkg > tensorrt-check.json
    python benchmarks/tensorrt_check.py edge-mvr-agx.edgepkg --dla-core 0 --runs 500
    python benchmarks/tensorrt_check.py edge-mvr-nx.edgepkg --rebuild       # time a cold engine build

What it does, in order:

1. loads and verifies the package and checks its ONNX for TensorRT without TensorRT
   (``targets.tensorrt_onnx.tensorrt_findings``);
2. loads it on the ``tensorrt`` backend with the package's build settings (``--dla-core`` and
   ``--no-cuda-graph`` override them): the engine comes from the cache or is built now (``built``,
   ``build_seconds``, ``engine_path``); a second load must come from the cache (``cached_reload``);
3. runs ``--inputs`` seeded random inputs of the model's shapes through TensorRT and through ONNX
   Runtime on the CPU (the same ONNX bytes) and compares the logits: max absolute difference, that
   difference relative to the largest |logit|, top-1 agreement; ``matches`` is true when the relative
   difference is at most ``--tolerance`` (default 0.05: INT8 kernels of two runtimes round
   differently) and top-1 agrees on at least 90 % of the inputs;
4. times ``--runs`` inferences after ``--warmup``: total milliseconds per inference (p50/p90/p99,
   mean) and the host-to-device / compute / device-to-host split from CUDA events.

Prints ONE JSON object; ``ok`` is true when every step ran and the outputs match. Exits 0 when
``ok``, 1 when the outputs do not match, 2 when it cannot run (no TensorRT or cuda-python: the error
names the ``tensorrt`` extra; a bad package; a build error naming the layer).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._env import machine  # noqa: E402


def percentiles(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(array, 50)), "p90": float(np.percentile(array, 90)),
            "p99": float(np.percentile(array, 99)), "mean": float(array.mean()), "runs": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", help="an .edgepkg exported for a TensorRT device")
    parser.add_argument("--dla-core", type=int, default=None, help="override the package's DLA core (-1: GPU)")
    parser.add_argument("--no-cuda-graph", action="store_true", help="launch the engine without a CUDA graph")
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached engine (time a cold build)")
    parser.add_argument("--cache-dir", default=None, help="engine cache folder (default: EDGEKIT_CACHE_DIR/tensorrt)")
    parser.add_argument("--inputs", type=int, default=32, help="random inputs compared with ONNX Runtime")
    parser.add_argument("--runs", type=int, default=200, help="timed inferences")
    parser.add_argument("--warmup", type=int, default=20, help="untimed inferences first")
    parser.add_argument("--tolerance", type=float, default=0.05, help="max |diff| / max |logit| allowed")
    args = parser.parse_args(argv)

    from edgekit.errors import EdgekitError
    from edgekit.package import load_package
    from targets.tensorrt_onnx import tensorrt_findings

    report: dict = {"ok": False, "machine": machine()}
    try:
        package = load_package(args.package)
    except EdgekitError as err:
        report["error"] = str(err)
        print(json.dumps(report))
        return 2
    target = package.manifest.target
    report["package"] = {"path": str(package.path), "device": target.device, "backend": target.backend,
                         "model": package.manifest.model, "precision": package.manifest.precision,
                         "tensorrt": dict(target.profile.get("tensorrt", {})),
                         "onnx_findings": [str(f) for f in tensorrt_findings(package.onnx_bytes)]}
    selection = package.select(backend="tensorrt")
    options = dict(selection.options)
    if args.dla_core is not None:
        options["dla_core"] = None if args.dla_core < 0 else args.dla_core
    if args.no_cuda_graph:
        options["cuda_graph"] = False
    if args.cache_dir:
        options["cache_dir"] = args.cache_dir
    try:
        import tensorrt

        report["tensorrt_version"] = tensorrt.__version__
    except ImportError:
        report["tensorrt_version"] = None
    try:
        started = time.perf_counter()
        backend = package.backend(selection=selection, **options, rebuild=args.rebuild)
        load_seconds = time.perf_counter() - started
    except EdgekitError as err:
        report["error"] = str(err)
        print(json.dumps(report))
        return 2
    with backend:
        report["engine"] = {"path": str(backend.engine_path), "built": backend.built,
                            "build_seconds": round(backend.build_seconds, 3), "load_seconds": round(load_seconds, 3),
                            "replaced_because": backend.replaced_because, "device": backend.device,
                            "cuda_graph": backend.config.cuda_graph}
        rng = np.random.default_rng(0)
        samples = [{t.name: rng.standard_normal(t.shape).astype(t.dtype) for t in backend.inputs}
                   for _ in range(args.inputs)]
        with package.backend(device="cpu", backend="onnxruntime") as reference:
            ours = [backend.run(x)[backend.output_names[0]] for x in samples]
            theirs = [reference.run(x)[reference.output_names[0]] for x in samples]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
        scale = max(float(np.abs(b).max()) for b in theirs) or 1.0
        agree = float(np.mean([int(a.argmax()) == int(b.argmax()) for a, b in zip(ours, theirs)]))
        matches = diff / scale <= args.tolerance and agree >= 0.9
        report["comparison"] = {"inputs": args.inputs, "max_abs_diff": diff, "relative_diff": diff / scale,
                                "top1_agreement": agree, "tolerance": args.tolerance, "matches": matches}
        for _ in range(args.warmup):
            backend.run(samples[0])
        totals, parts = [], {"host_to_device_ms": [], "compute_ms": [], "device_to_host_ms": []}
        for i in range(args.runs):
            started = time.perf_counter()
            backend.run(samples[i % len(samples)])
            totals.append((time.perf_counter() - started) * 1000)
            for name in parts:
                parts[name].append(getattr(backend.last_timings, name))
        report["latency_ms"] = {"total": percentiles(totals), **{k: percentiles(v) for k, v in parts.items()}}
        report["inferences_per_s"] = 1000.0 / report["latency_ms"]["total"]["mean"]
    with package.backend(selection=selection, **options) as again:
        report["engine"]["cached_reload"] = not again.built
    report["ok"] = bool(matches and report["engine"]["cached_reload"])
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
