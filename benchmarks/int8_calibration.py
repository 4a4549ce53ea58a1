"""INT8 calibration recipes compared on the reproduction's rows: each row's FP32 ONNX quantized by
``quantize.int8.quantize_int8`` under every recipe, scored on the same test clips through ONNX
Runtime (CPU EP, one thread), against its FP32.

    python benchmarks/int8_calibration.py --rows-dir runs/reproduce-small/rows > docs/results/int8-calibration.json
    python benchmarks/int8_calibration.py --rows-dir runs/reproduce-small/rows --split val > docs/results/int8-calibration-val.json

``--rows-dir``: the ``rows`` folder of an ``edgekit reproduce`` run (each row folder holds the
``fp32.onnx`` and ``result.json`` that name its checkpoint; the checkpoint's cache gives the
calibration clips, its training split, and the test clips, exactly as ``training/reproduce/measure.py``
reads them). Fused rows (late fusion of other rows) are scored from their rows' logits under each
recipe. Per row and recipe: top-1 INT8, the gap FP32 - INT8 in points, the clips whose INT8 class
differs from FP32's ("flips": less noisy than the gap, which nets flips that cancel), and the
seconds spent (pre-processing, calibration, quantization, scoring). Recipes marked
``tensorrt_compatible: false`` (uint8 asymmetric activations) are diagnostics of what TensorRT's
zero-point-0 rule costs, never candidates for the default. Prints ONE JSON object; progress on stderr.
"""

# no ``from __future__ import annotations``: the tests import this script by path (not in sys.modules),
# where a dataclass's string annotations cannot be resolved
import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._env import machine  # noqa: E402


@dataclass(frozen=True)
class Recipe:
    """One way to calibrate: ``clips`` training clips and ``settings`` (quantize.int8.CalibrationSettings kwargs)."""

    name: str
    clips: int
    settings: tuple[tuple[str, object], ...] = ()

    def calibration(self):
        from quantize.int8 import CalibrationSettings

        # every layer and addition INT8, unless said
        return CalibrationSettings(**{"float_ends": False, "float_adds": False, **dict(self.settings)})


RECIPES = (
    Recipe("minmax-64", 64, (("method", "minmax"),)),  # what the reproduction measured with at first
    Recipe("minmax-256", 256, (("method", "minmax"),)),
    Recipe("minmax-ema-256", 256, (("method", "minmax"), ("moving_average", True))),
    Recipe("percentile-99.99-256", 256, (("method", "percentile"), ("percentile", 99.99))),
    Recipe("percentile-99.999-256", 256, (("method", "percentile"), ("percentile", 99.999))),
    Recipe("percentile-99.99-64", 64, (("method", "percentile"), ("percentile", 99.99))),
    Recipe("percentile-99.99-512", 512, (("method", "percentile"), ("percentile", 99.99))),
    Recipe("percentile-99.99-256-float-ends", 256, (("method", "percentile"), ("percentile", 99.99),
                                                     ("float_ends", True))),
    Recipe("entropy-256", 256, (("method", "entropy"),)),
    # the float-ends default against variations of it (chosen among on the val split: --split val)
    Recipe("percentile-99.99-256-float-ends-adds", 256, (("method", "percentile"), ("percentile", 99.99),
                                                          ("float_ends", True), ("float_adds", True))),
    Recipe("percentile-99.999-256-float-ends", 256, (("method", "percentile"), ("percentile", 99.999),
                                                      ("float_ends", True))),
    Recipe("percentile-99.99-512-float-ends", 512, (("method", "percentile"), ("percentile", 99.99),
                                                     ("float_ends", True))),
    Recipe("minmax-256-float-ends", 256, (("method", "minmax"), ("float_ends", True))),
    Recipe("entropy-256-float-ends", 256, (("method", "entropy"), ("float_ends", True))),
    # the default with empirical bias correction (quantize.bias) on the first 64 calibration clips
    Recipe("percentile-99.99-256-float-ends-bias", 256, (("method", "percentile"), ("percentile", 99.99),
                                                          ("float_ends", True), ("bias_correction", True))),
    Recipe("percentile-99.99-256-bias", 256, (("method", "percentile"), ("percentile", 99.99),
                                              ("bias_correction", True))),
    Recipe("uint8-asym-minmax-256", 256, (("method", "minmax"), ("activations", "uint8-asymmetric"))),  # diagnostic
)


class ListReader:
    """ONNX Runtime's CalibrationDataReader over a list of input dicts."""

    def __init__(self, inputs: list[dict]):
        self._it = iter(inputs)

    def get_next(self):
        return next(self._it, None)


def score(path: Path, inputs: list[dict]) -> np.ndarray:
    """Logits (N, K) float32 of the ONNX model at ``path`` on ``inputs``, ONNX Runtime CPU at one thread."""
    from quantize.evaluate import load_session

    with load_session(path, "cpu", threads=1) as backend:
        return np.stack([np.asarray(backend.run(x)["logits"][0], np.float32) for x in inputs])


def compare(fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray) -> dict:
    """top-1 of both, the gap FP32 - INT8 in points and the flips (clips whose class differs)."""
    top1_fp32 = float(np.mean(fp32_logits.argmax(1) == labels))
    top1_int8 = float(np.mean(int8_logits.argmax(1) == labels))
    return {"top1_fp32": top1_fp32, "top1_int8": top1_int8, "gap_points": round(100 * (top1_fp32 - top1_int8), 4),
            "flips": int(np.sum(fp32_logits.argmax(1) != int8_logits.argmax(1)))}


def measure_recipes(fp32: Path, calib_inputs: list[dict], test_inputs: list[dict], labels: np.ndarray,
                    recipes=RECIPES, say=lambda _m: None) -> tuple[np.ndarray, dict[str, dict], dict[str, np.ndarray]]:
    """The FP32 logits of ``fp32`` on ``test_inputs`` and, per recipe, its INT8 figures
    (:func:`compare` plus ``seconds``) and logits. ``calib_inputs`` holds at least the largest
    recipe's clips; a recipe takes the first ``clips`` of them."""
    from quantize.int8 import quantize_int8

    fp32_logits = score(fp32, test_inputs)
    figures, logits = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes:
            int8 = Path(tmp) / f"{recipe.name}.onnx"
            started = time.perf_counter()
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantizer warns per BatchNorm vector it leaves per-tensor
            try:
                quantize_int8(fp32, int8, ListReader(calib_inputs[:recipe.clips]), settings=recipe.calibration())
            finally:
                root.setLevel(level)
            quantized = time.perf_counter()
            logits[recipe.name] = score(int8, test_inputs)
            figures[recipe.name] = {**compare(fp32_logits, logits[recipe.name], labels),
                                    "calibration_seconds": round(quantized - started, 2),
                                    "seconds": round(time.perf_counter() - started, 2)}
            f = figures[recipe.name]
            say(f"  {recipe.name}: INT8 {100 * f['top1_int8']:.1f} % (FP32 {100 * f['top1_fp32']:.1f}), gap "
                f"{f['gap_points']:+.1f}, {f['flips']} flips, {f['seconds']:.0f} s")
    return fp32_logits, figures, logits


def summarize(rows: dict[str, dict], recipes=RECIPES, limit_points: float = 1.0) -> dict:
    """Per recipe over every row: rows within ``limit_points``, the largest and mean |gap|, flips in
    all, and the seconds spent."""
    out = {}
    for recipe in recipes:
        figures = [row["recipes"][recipe.name] for row in rows.values() if recipe.name in row["recipes"]]
        gaps = [abs(f["gap_points"]) for f in figures]
        out[recipe.name] = {
            "clips": recipe.clips, "settings": recipe.calibration().to_dict(),
            "tensorrt_compatible": recipe.calibration().tensorrt_compatible, "rows": len(figures),
            "rows_within_limit": sum(g <= limit_points + 1e-9 for g in gaps),
            "max_abs_gap_points": round(max(gaps), 4) if gaps else None,
            "mean_abs_gap_points": round(float(np.mean(gaps)), 4) if gaps else None,
            "mean_gap_points": round(float(np.mean([f["gap_points"] for f in figures])), 4) if figures else None,
            "flips": sum(f.get("flips", 0) for f in figures),
            "seconds": round(sum(f.get("seconds", 0.0) for f in figures), 1)}
    return out


def row_inputs(result: dict, calib_clips: int, test_clips: int, split: str = "test"):
    """(calibration input dicts, scored input dicts, their labels) of a measured row, read as
    ``training.reproduce.measure`` reads them (same seeded orders: the first N calibration clips are
    those a run with ``calib_clips = N`` used); the scored clips are the ``split`` split's (the test
    split the table reports, or val, to choose a recipe on clips the table never scores)."""
    from edgekit.spec import InputSpec
    from training.cache import find_cache
    from training.reproduce.measure import clip_inputs, input_feeds

    meta = json.loads(Path(result["checkpoint"]).read_text())
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    feeds = input_feeds(meta)
    cache = find_cache(meta["cache"])
    calib = [x for x, _ in clip_inputs(cache, specs, "train", feeds, calib_clips)]
    scored = list(clip_inputs(cache, specs, split, feeds, test_clips))
    return calib, [x for x, _ in scored], np.array([y for _, y in scored], np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-dir", required=True, help="the rows folder of an edgekit reproduce run")
    parser.add_argument("--row", action="append", default=[], help="only this row id (repeatable; default all)")
    parser.add_argument("--recipe", action="append", default=[],
                        help=f"only this recipe (repeatable; default all: {', '.join(r.name for r in RECIPES)})")
    parser.add_argument("--test-clips", type=int, default=0, help="scored clips per row (default 0: the whole split)")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="the split scored (default test, what the table reports; val to choose a recipe)")
    parser.add_argument("--limit-points", type=float, default=1.0, help="the target |FP32 - INT8| (default 1)")
    args = parser.parse_args(argv)

    say = lambda message: print(message, file=sys.stderr)  # noqa: E731
    known = {r.name: r for r in RECIPES}
    unknown = [name for name in args.recipe if name not in known]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; recipes: {', '.join(known)}")
    recipes = tuple(known[name] for name in args.recipe) or RECIPES
    rows_dir = Path(args.rows_dir)
    results = {p.parent.name: json.loads(p.read_text()) for p in sorted(rows_dir.glob("*/result.json"))}
    if args.row:
        missing = [r for r in args.row if r not in results]
        if missing:
            parser.error(f"no measured row {missing[0]!r} in {rows_dir}; rows: {', '.join(results) or 'none'}")
        results = {r: results[r] for r in args.row}
    if not results:
        parser.error(f"no measured rows (*/result.json) in {rows_dir}; run edgekit reproduce first")
    report = {"benchmark": "int8_calibration",
              "command": " ".join(["python", "benchmarks/int8_calibration.py", *(argv if argv is not None else sys.argv[1:])]),
              "env": machine(), "rows_dir": str(rows_dir), "split": args.split, "limit_points": args.limit_points,
              "recipes": [{"name": r.name, "clips": r.clips, **r.calibration().to_dict()} for r in recipes]}
    rows, logits, labels_of = {}, {}, {}
    started = time.perf_counter()
    for row_id, result in results.items():
        if result.get("fuse"):
            continue
        say(f"{row_id}: {result['label']}")
        read = time.perf_counter()
        calib, test, labels = row_inputs(result, max(r.clips for r in recipes), args.test_clips, args.split)
        read_seconds = time.perf_counter() - read
        fp32_logits, figures, row_logits = measure_recipes(rows_dir / row_id / "fp32.onnx", calib, test, labels,
                                                           recipes, say)
        logits[row_id] = {"fp32": fp32_logits, **row_logits}
        labels_of[row_id] = labels
        rows[row_id] = {"label": result["label"], "test_clips": int(len(labels)),
                        "top1_fp32": float(np.mean(fp32_logits.argmax(1) == labels)),
                        "reproduction_top1": {"fp32": result["top1_fp32"], "int8": result["top1_int8"]},
                        "read_seconds": round(read_seconds, 2), "recipes": figures}
    for row_id, result in results.items():  # fused rows: their rows' logits summed, per recipe
        if not result.get("fuse") or not all(r in logits for r in result["fuse"]):
            continue
        parts, weights = result["fuse"], result["weights"]
        labels = labels_of[parts[0]]
        fused = {name: sum(w * logits[p][name] for p, w in zip(parts, weights)) for name in logits[parts[0]]}
        figures = {r.name: {**compare(fused["fp32"], fused[r.name], labels),
                            "seconds": 0.0} for r in recipes}
        rows[row_id] = {"label": result["label"], "test_clips": int(len(labels)), "fuse": parts, "weights": weights,
                        "top1_fp32": float(np.mean(fused["fp32"].argmax(1) == labels)),
                        "reproduction_top1": {"fp32": result["top1_fp32"], "int8": result["top1_int8"]},
                        "recipes": figures}
    report["rows"] = rows
    report["summary"] = summarize(rows, recipes, args.limit_points)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
