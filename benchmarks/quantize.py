"""INT8 against FP32 at batch 1: latency through ONNX Runtime (edgekit's CPU backend) and OpenVINO,
what ONNX Runtime actually runs, and how closely the INT8 logits follow the FP32 ones.

Model: ``--model-dir DIR`` (a ``python -m quantize`` output: fp32.onnx, int8.onnx, model.json), or by
default one built on the fly: a randomly initialised ``edge-mvr`` whose BatchNorm statistics are
re-estimated on synthetic MV+R clips (so activations have trained-like ranges), exported with
``training.models.export_onnx`` and quantized by ``quantize.int8.quantize_int8`` with a calibration
reader of synthetic clips. Synthetic clips look like the cache's ``mv_residual`` stream: a mostly
static 8x8-block motion field with a few moving objects (MV channels, in input units: pixels x 1/8)
and sparse, small residuals concentrated on the objects.

Timing: for each thread count, an FP32 and an INT8 session are loaded side by side, warmed up, then
run in interleaved rounds (a block of 10 timed FP32 inferences and one of 10 INT8 ones per round, the
order alternating, each block after one untimed inference), so a slow phase of a shared machine
hits both, and one session's spinning thread pool does not slow the other's timed runs. Figures
per precision (``targets.timing.LatencyStats``): median, mean, p10, p90, min (ms), runs, threads.
The speedup is FP32 / INT8 of the medians, and of the p10s and minima: on a busy machine the
medians measure the other processes as much as the model, the low percentiles much less.
``load_average`` in the environment says how busy the machine was.

A built model also keeps ``int8_plain.onnx``, the ONNX Runtime quantizer's output before
``quantize.graph``'s post-pass, timed and inspected beside the others: the "before" of that fix.

Also reported: file sizes; operator counts of the graphs ONNX Runtime runs after its optimisations
(how many Convs became QLinearConv, how many stayed float); whether every Q/DQ zero point is int8 0
(TensorRT's rule); INT8 vs FP32 logits on N synthetic inputs (max / mean abs difference, top-1
agreement); with ``--model-dir`` and ``--cache``, top-1 of both on the cache's test split.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/quantize.py > quantize.json
    python benchmarks/quantize.py --model-dir models/edge-mvr --cache data/cache --cache-clips 200
    python benchmarks/quantize.py --quick          # smoke test: few runs, few inputs
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# numpy's OpenBLAS pool spins after any BLAS call and would take the second core from two-thread
# inference sessions (p90 latencies several times the median); nothing here needs BLAS threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout (after it: benchmarks/, for _env.py)

from _env import script_parser  # noqa: E402

from edgekit._versions import producer_versions  # noqa: E402
from edgekit.spec import InputSpec  # noqa: E402

CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx_vnni_int8", "avx512_bf16",
             "amx_int8")
TARGET_SPEEDUP = 2.0  # the target: INT8 at least 2x faster than FP32 through ONNX Runtime


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- inputs -----------------------------------------------------------------------------------------

def synthetic_mv_residual(rng: np.random.Generator, shape) -> np.ndarray:
    """One (1, S, 5, H, W) float32 clip shaped like the cache's mv_residual stream (see module doc)."""
    _, segments, channels, height, width = shape
    gh, gw = max(height // 8, 1), max(width // 8, 1)
    x = np.zeros((1, segments, channels, height, width), np.float32)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        h, w = int(rng.integers(2, max(gh // 2, 3))), int(rng.integers(2, max(gw // 2, 3)))
        objects.append((int(rng.integers(0, gh - h + 1)), int(rng.integers(0, gw - w + 1)), h, w,
                        rng.uniform(-0.8, 0.8, 2).astype(np.float32), float(rng.uniform(0.03, 0.15))))
    pan = rng.uniform(-0.15, 0.15, 2).astype(np.float32) if rng.random() < 0.3 else np.zeros(2, np.float32)
    for s in range(segments):
        blocks = np.zeros((2, gh, gw), np.float32) + pan[:, None, None]
        detail = np.zeros((gh, gw), np.float32)
        for y0, x0, h, w, v, d in objects:
            dy, dx = (int(round(c * s)) for c in v)  # objects drift between segments
            y, xx = min(max(y0 + dy, 0), gh - h), min(max(x0 + dx, 0), gw - w)
            blocks[:, y:y + h, xx:xx + w] = v[:, None, None]
            detail[y:y + h, xx:xx + w] = d
        x[0, s, :2] = np.repeat(np.repeat(blocks, 8, 1), 8, 2)[:, :height, :width]
        scale = np.repeat(np.repeat(detail, 8, 0), 8, 1)[:height, :width] + np.float32(0.01)
        residual = rng.laplace(0.0, 1.0, (channels - 2, height, width)).astype(np.float32) * scale
        residual[rng.random(residual.shape) < 0.4] = 0.0  # skipped / zero-residual blocks
        x[0, s, 2:] = residual
    return x


def synthetic_inputs(specs: list[InputSpec], count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        item = {}
        for spec in specs:
            if spec.modality == "mv_residual" and spec.layout == "BSCHW":
                item[spec.name] = synthetic_mv_residual(rng, spec.shape)
            else:  # other modalities: unit-scale noise (this benchmark targets the edge model)
                item[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
        out.append(item)
    return out


# -- the model --------------------------------------------------------------------------------------

def build_model_dir(out: Path, model_name: str, classes: int, calib: int, seed: int, bn_clips: int,
                    cfg: dict | None = None) -> dict:
    """fp32.onnx + int8.onnx of a random-init ``model_name`` (``cfg``: build_model overrides) with
    re-estimated BatchNorm statistics."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader

    from quantize.int8 import quantize_int8
    from training.models import build_model, count_macs, count_params, export_onnx, spec_inputs

    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=classes, **(cfg or {}))
    specs = list(model.input_specs)
    for m in model.modules():  # cumulative averages over the synthetic clips, not running ones
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    clips = synthetic_inputs(specs, bn_clips, seed + 1)
    with torch.no_grad():  # one batch: BatchNorm statistics of all the clips at once
        model(**{name: torch.from_numpy(np.concatenate([c[name] for c in clips])) for name in clips[0]})
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / "fp32.onnx")

    class Calibration(CalibrationDataReader):
        def __init__(self, items):
            self._it = iter(items)

        def get_next(self):
            return next(self._it, None)

    post = quantize_int8(out / "fp32.onnx", out / "int8.onnx", Calibration(synthetic_inputs(specs, calib, seed + 2)),
                         plain_out=out / "int8_plain.onnx")
    (out / "model.json").write_text(json.dumps({"model": model_name, "labels": [f"class_{i}" for i in range(classes)],
                                                "inputs": [s.to_dict() for s in specs], "outputs": ["logits"]}))
    return {"source": "built", "model": model_name, "config": cfg or {}, "classes": classes,
            "weights": f"random init, BatchNorm statistics re-estimated on {bn_clips} synthetic clips",
            "params": count_params(model),
            "macs": count_macs(model, spec_inputs(model)), "calibration_clips": calib, "post_pass": post}


# -- measurements -----------------------------------------------------------------------------------

BLOCK = 10  # timed inferences per backend in a row (see the module docstring)


def interleaved(backends: dict, x: dict, runs: int, warmup: int, threads: int, block: int = BLOCK) -> dict:
    """{name: latency statistics} of ``runs`` timed inferences per backend, in interleaved rounds: each
    round runs every backend for a block of ``block`` timed inferences (order alternating), after one
    untimed inference that lets the previous backend's worker threads stop spinning (ONNX Runtime's
    pool spins after each run and would otherwise take the second core from the next session)."""
    from targets.timing import LatencyStats, timed_calls_ms

    names = list(backends)
    for name in names:
        for _ in range(warmup):
            backends[name].run(x)
    times = {name: [] for name in names}
    for r in range(-(-runs // block)):
        for name in (names if r % 2 == 0 else names[::-1]):
            backends[name].run(x)  # switch-in, untimed
            times[name] += timed_calls_ms(lambda: backends[name].run(x), min(block, runs - len(times[name])))
    return {name: LatencyStats.from_times(t, threads).to_dict() for name, t in times.items()}


def with_speedup(result: dict) -> dict:
    """Adds FP32 / INT8 of the medians, p10s and minima (and the same for int8_plain if timed)."""
    fp32 = result["fp32"]
    for name, prefix in (("int8", ""), ("int8_plain", "int8_plain_")):
        if name in result:
            for stat in ("median", "p10", "min"):
                result[f"{prefix}speedup_{stat}"] = round(fp32[stat] / result[name][stat], 3)
    return result


def latency(backend_name: str, paths: dict, x: dict, threads: list[int], runs: int, warmup: int) -> dict:
    from targets import load_backend

    out = {}
    for t in threads:
        options = {"threads": t} if backend_name == "cpu" else {"threads": t, "cache": False}
        log(f"{backend_name}: {runs} runs per model in interleaved blocks at {t} thread(s)")
        backends = {p: load_backend(backend_name, path, **options) for p, path in paths.items()}
        try:
            out[str(t)] = with_speedup(interleaved(backends, x, runs, warmup, t))
        finally:
            for b in backends.values():
                b.close()
    return out


def logits_agreement(paths: dict, inputs: list[dict], backend_name: str = "cpu") -> dict:
    from targets import load_backend

    with load_backend(backend_name, paths["fp32"], threads=1) as fp32, \
            load_backend(backend_name, paths["int8"], threads=1) as int8:
        a = np.concatenate([fp32.run(x)["logits"] for x in inputs])
        b = np.concatenate([int8.run(x)["logits"] for x in inputs])
    diff = np.abs(a - b)
    return {"inputs": len(inputs), "max_abs_diff": round(float(diff.max()), 5),
            "mean_abs_diff": round(float(diff.mean()), 5),
            "fp32_logit_range_mean": round(float(np.ptp(a, axis=1).mean()), 5),
            "top1_agreement": round(float(np.mean(a.argmax(1) == b.argmax(1))), 4)}


def cache_eval(paths: dict, specs: list[InputSpec], cache: str, clips: int | None) -> dict:
    from quantize.calibration import cache_inputs
    from targets import load_backend
    from training.cache import find_cache

    folder = find_cache(cache)
    samples = list(cache_inputs(folder, specs, "test", clips))
    with load_backend("cpu", paths["fp32"], threads=1) as fp32, load_backend("cpu", paths["int8"], threads=1) as int8:
        pa = np.array([int(np.argmax(fp32.run(x)["logits"])) for x, _ in samples])
        pb = np.array([int(np.argmax(int8.run(x)["logits"])) for x, _ in samples])
    labels = np.array([y for _, y in samples])
    return {"cache": str(folder), "split": "test", "clips": len(samples),
            "top1_fp32": round(float(np.mean(pa == labels)), 4) if len(samples) else None,
            "top1_int8": round(float(np.mean(pb == labels)), 4) if len(samples) else None,
            "top1_agreement": round(float(np.mean(pa == pb)), 4) if len(samples) else None}


def graph_report(paths: dict) -> dict:
    import onnx

    from quantize.graph import ort_optimized_ops, zero_point_violations

    int8 = onnx.load(str(paths["int8"]))
    violations = zero_point_violations(int8)
    ort_ops = {p: ort_optimized_ops(path) for p, path in paths.items()}
    report = {"int8_file_ops": {op: sum(n.op_type == op for n in int8.graph.node)
                                for op in sorted({n.op_type for n in int8.graph.node})},
              "int8_zero_points_all_int8_0": not violations, "zero_point_violations": violations[:10],
              "ort_optimized_ops": ort_ops}
    for name in ("int8", "int8_plain"):
        if name in ort_ops:
            report[f"ort_{name}_convs"] = {"QLinearConv": ort_ops[name].get("QLinearConv", 0),
                                           "float_Conv": ort_ops[name].get("Conv", 0)}
    return report


# -- environment ------------------------------------------------------------------------------------

def cpu_info() -> dict:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model is None:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model or platform.processor() or None, "flags": {f: f in flags for f in CPU_FLAGS},
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags)}


def environment() -> dict:
    from targets.cpu import physical_cores

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {**producer_versions(), "platform": platform.platform(), "cpu": cpu_info(), "cpu_count": os.cpu_count(),
            "cpu_affinity": affinity, "physical_cores": physical_cores(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# -- main -------------------------------------------------------------------------------------------

def benchmark(args) -> dict:
    import importlib.util

    started, load_start = time.perf_counter(), os.getloadavg()
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model_dir:
            folder = Path(args.model_dir)
            meta = json.loads((folder / "model.json").read_text())
            model = {"source": "model-dir", "dir": str(folder), "model": meta.get("model"),
                     "classes": len(meta.get("labels", []))}
        else:
            folder = Path(args.workdir) if args.workdir else Path(tmp) / "model"
            log(f"building a random-init {args.model} in {folder}")
            model = build_model_dir(folder, args.model, args.classes, args.calib_clips, args.seed,
                                    8 if args.quick else 32, args.set)
            meta = json.loads((folder / "model.json").read_text())
        specs = [InputSpec.from_dict(d) for d in meta["inputs"]]
        paths = {"fp32": folder / "fp32.onnx", "int8": folder / "int8.onnx"}
        for p in paths.values():
            if not p.exists():
                raise SystemExit(f"error: {p} not found")
        model["size_bytes"] = {p: path.stat().st_size for p, path in paths.items()}
        timed = dict(paths)
        if (folder / "int8_plain.onnx").exists():
            timed["int8_plain"] = folder / "int8_plain.onnx"
        log("inspecting the graphs ONNX Runtime runs")
        graph = graph_report(timed)
        x = synthetic_inputs(specs, 1, args.seed + 3)[0]
        lat = {"onnxruntime": latency("cpu", timed, x, args.threads, args.runs, args.warmup)}
        if args.openvino and importlib.util.find_spec("openvino") is not None:
            lat["openvino"] = latency("openvino", paths, x, args.threads, args.runs, args.warmup)
        else:
            lat["openvino"] = {"skipped": "--no-openvino" if not args.openvino else "openvino is not installed"}
        log(f"logits on {args.inputs} synthetic inputs")
        inputs = synthetic_inputs(specs, args.inputs, args.seed + 4)
        agreement = {"onnxruntime": logits_agreement(paths, inputs)}
        if "skipped" not in lat["openvino"]:
            agreement["openvino"] = logits_agreement(paths, inputs, "openvino")
        report = {"model": model, "graph": graph, "latency_ms": lat, "agreement": agreement}
        if args.cache:
            if not args.model_dir:
                report["cache_eval"] = {"skipped": "--cache needs --model-dir (a random model has no labels)"}
            else:
                log(f"top-1 on the test split of {args.cache}")
                report["cache_eval"] = cache_eval(paths, specs, args.cache, args.cache_clips)
    ort = lat["onnxruntime"]
    report["speedup_int8_vs_fp32"] = {
        f"{backend}_{t}_thread{'s' if t != '1' else ''}": {s: r[f"speedup_{s}"] for s in ("median", "p10", "min")}
        for backend, per in lat.items() if "skipped" not in per for t, r in per.items()}
    # met only if both the median and the p10 speedup reach it: a busy machine can inflate either one
    report["target"] = {"int8_speedup_ge": TARGET_SPEEDUP, **{
        f"onnxruntime_{t}_thread{'s' if t != '1' else ''}_met":
            min(r["speedup_median"], r["speedup_p10"]) >= TARGET_SPEEDUP for t, r in ort.items()}}
    report["settings"] = {"runs": args.runs, "warmup": args.warmup, "threads": args.threads, "inputs": args.inputs,
                          "seed": args.seed, "quick": args.quick, "block": BLOCK,
                          "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    env["load_average"] = {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in os.getloadavg()]}
    env["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["environment"] = env
    return report


def main(argv=None) -> int:
    parser = script_parser("INT8 vs FP32 of an edgekit model at batch 1 through ONNX Runtime and OpenVINO",
                           "python benchmarks/quantize.py --model-dir models/edge-mvr --cache data/cache > q.json")
    parser.add_argument("--model-dir", help="a quantize output folder (fp32.onnx, int8.onnx, model.json); "
                                            "default: build a random-init model on the fly")
    parser.add_argument("--cache", help="with --model-dir: side-data cache whose test split gives top-1")
    parser.add_argument("--cache-clips", type=int, default=None, help="limit of test clips (default: all)")
    parser.add_argument("--model", default="edge-mvr", help="model to build without --model-dir (default edge-mvr)")
    parser.add_argument("--classes", type=int, default=17, help="classes of the built model (default 17)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="build_model override of the built model, e.g. --set width=32 (repeatable)")
    parser.add_argument("--calib-clips", type=int, default=None, help="calibration clips of the built model "
                                                                      "(default 64, 8 with --quick)")
    parser.add_argument("--workdir", help="keep the built model here (default: a temporary folder)")
    parser.add_argument("--runs", type=int, default=None, help="timed rounds per thread count (default 300, "
                                                               "20 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed runs per session (default 20, 3 with --quick)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--inputs", type=int, default=None, help="synthetic inputs for the logits comparison "
                                                                 "(default 64, 16 with --quick)")
    parser.add_argument("--no-openvino", dest="openvino", action="store_false", help="skip OpenVINO")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: few rounds and inputs")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs if args.runs is not None else (20 if quick else 300)
    args.warmup = args.warmup if args.warmup is not None else (3 if quick else 20)
    args.inputs = args.inputs if args.inputs is not None else (16 if quick else 64)
    args.calib_clips = args.calib_clips if args.calib_clips is not None else (8 if quick else 64)
    cfg = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
        cfg[key] = value
    args.set = cfg
    if cfg and args.model_dir:
        parser.error("--set configures the built model; it does not apply to --model-dir")
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1 or args.runs < 1 or args.warmup < 0 or args.inputs < 1:
        parser.error("--threads, --runs and --inputs must be >= 1, --warmup >= 0")
    if not quick and args.runs < 200:
        log(f"note: {args.runs} rounds; the medians are meant to come from >= 200")
    print(json.dumps(benchmark(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
