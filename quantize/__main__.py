"""Quantize a checkpoint to INT8 ONNX: ``python -m quantize --checkpoint CKPT --out DIR``.

Exports FP32 ONNX, runs ONNX Runtime's pre-processing, quantizes statically to INT8 QDQ (per-channel
symmetric weights, symmetric activations: TensorRT-ready) calibrated on real side data, and reports
size, top-1 and ms per clip for FP32 and INT8 through ONNX Runtime and OpenVINO.

examples:
  python -m quantize --checkpoint runs/edge-mvr/best.json --out models/edge-mvr
  python -m quantize --checkpoint runs/edge-mvr/best.json --calib data/cache --calib-clips 512 --out models/edge-mvr --json
  python -m quantize --checkpoint runs/edge-mvr/best.json --calib-method percentile --calib-percentile 99.99 --out models/p
  python -m quantize --checkpoint runs/edge-mvr/best.json --calib-ends int8 --out models/edge-mvr-all-int8
  edgekit export models/edge-mvr --device cpu -o edge-mvr.edgepkg
"""

from __future__ import annotations

import argparse
import json
import sys

from quantize.int8 import CALIBRATION_METHODS, DEFAULT_CALIB_CLIPS, DEFAULT_METHOD, CalibrationSettings


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``edgekit quantize`` / ``python -m quantize`` (no torch imported)."""
    p.add_argument("--checkpoint", required=True, help="training checkpoint JSON")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--calib", help="side-data cache for calibration/evaluation (default: the checkpoint's)")
    p.add_argument("--calib-clips", type=_positive_int, default=DEFAULT_CALIB_CLIPS, metavar="N",
                   help=f"training clips to calibrate activation ranges on (default {DEFAULT_CALIB_CLIPS})")
    p.add_argument("--calib-method", "--method", dest="method", choices=list(CALIBRATION_METHODS),
                   default=DEFAULT_METHOD, help=f"how a tensor's range is taken from them: minmax (the extremes "
                   f"seen), percentile (a percentile of |x|), entropy (least KL divergence); default {DEFAULT_METHOD}"
                   " (benchmarks/int8_calibration.py); --method is the old name")
    p.add_argument("--calib-percentile", type=float, default=CalibrationSettings().percentile, metavar="P",
                   help="with --calib-method percentile: the percentile of |x| kept (default %(default)s)")
    p.add_argument("--calib-ends", choices=("float", "int8"), default="float",
                   help="the first layer (reading MVs, residuals or pixels) and the classifier: kept in float "
                        "(default; TensorRT runs them in FP16) or INT8 like the rest. Over the 20 reproduction "
                        "rows, float: 18 within 1 point of FP32 against 16, 15 %% fewer flipped clips "
                        "(benchmarks/int8_calibration.py); INT8 2.03x FP32 on edge-mvr either way")
    p.add_argument("--calib-adds", choices=("float", "int8"), default="int8",
                   help="the additions (residual connections): INT8 like the layers (default: what TensorRT's INT8 "
                        "fusions want) or float (7-11 %% fewer clips flipped against FP32 over the "
                        "20 reproduction rows, at the same ONNX Runtime speed)")
    p.add_argument("--bias-correction", action="store_true",
                   help="after quantizing, each layer's bias absorbs the mean shift INT8 leaves in its output "
                        "channels, measured on the first 64 calibration clips against FP32 (only biases change: "
                        "still TensorRT-compatible; quantize/bias.py)")
    p.add_argument("--eval-split", default="test", help="split for the FP32/INT8 accuracy check (default test)")
    p.add_argument("--eval-clips", type=int, default=None, metavar="N", help="limit evaluation clips (default all)")
    p.add_argument("--latency-runs", type=int, default=50, metavar="N", help="timed runs per backend (default 50)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object (progress on stderr)")


def run(args: argparse.Namespace) -> int:
    """Quantize, evaluate and print the report (markdown, or JSON with ``--json``)."""
    from quantize.core import quantize_checkpoint
    from quantize.report import report_markdown

    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    settings = CalibrationSettings(method=args.method, percentile=args.calib_percentile,
                                   float_ends=args.calib_ends == "float", float_adds=args.calib_adds == "float",
                                   bias_correction=args.bias_correction)
    report = quantize_checkpoint(args.checkpoint, args.out, calib=args.calib, calib_clips=args.calib_clips,
                                 method=args.method, settings=settings, eval_split=args.eval_split,
                                 eval_clips=args.eval_clips, latency_runs=args.latency_runs, progress=say)
    print(json.dumps(report) if args.json else report_markdown(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m quantize``: this module's command through the edgekit CLI's runner."""
    from edgekit.cli.common import run_command
    from edgekit.cli.training import command_parser

    return run_command(command_parser("quantize", prog="python -m quantize"), argv)


if __name__ == "__main__":
    sys.exit(main())
