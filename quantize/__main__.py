"""Quantize a checkpoint to INT8 ONNX: ``python -m quantize --checkpoint CKPT --out DIR``.

Exports FP32 ONNX, runs ONNX Runtime's pre-processing, quantizes statically to INT8 QDQ (per-channel
symmetric weights, symmetric activations: TensorRT-ready) calibrated on real side data, and reports
size, top-1 and ms per clip for FP32 and INT8 through ONNX Runtime and OpenVINO.

examples:
  python -m quantize --checkpoint runs/edge-mvr/best.json --out models/edge-mvr
  python -m quantize --checkpoint runs/edge-mvr/best.json --calib data/cache --calib-clips 256 --out models/edge-mvr --json
  edgekit export models/edge-mvr --device cpu -o edge-mvr.edgepkg
"""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.errors import EdgekitError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m quantize", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("examples:", 1)[1] and "examples:" + __doc__.split("examples:", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="training checkpoint JSON")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--calib", help="side-data cache for calibration/evaluation (default: the checkpoint's)")
    p.add_argument("--calib-clips", type=int, default=128)
    p.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--eval-clips", type=int, default=None, help="limit evaluation clips (default all)")
    p.add_argument("--latency-runs", type=int, default=50)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from quantize.core import quantize_checkpoint

    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    try:
        report = quantize_checkpoint(args.checkpoint, args.out, calib=args.calib, calib_clips=args.calib_clips,
                                     method=args.method, eval_split=args.eval_split, eval_clips=args.eval_clips,
                                     latency_runs=args.latency_runs, progress=say)
    except EdgekitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        from quantize.core import report_markdown

        print(report_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
