"""The INT8 accuracy guard of ``edgekit export`` on a real model: the model as quantized, a copy with
one layer's weight scales damaged, and the fallback on that copy.

    python benchmarks/int8_guard.py --model-dir models/edge-mvr --data data/synth-small > int8-guard.json

``--model-dir``: a quantization output (model.json, fp32.onnx, int8.onnx); ``--data``: a dataset in
the UCF-101 layout whose test split is held out. The damaged copy multiplies the weight scales of
``--damage-layer`` (default ``/backbone/layer3/layer3.0/conv1/Conv``) by ``--factor`` (20): the
kind of silent INT8 collapse the guard exists to catch. The held-out windows are read once and
shared by the three runs. Prints ONE JSON object: each run's report
(``edgekit.int8_guard.Int8GuardReport.to_dict()``), or the refusal's message and report.
Needs the ``onnx`` package (the ``train`` extra) for the damage and the fallback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._env import machine  # noqa: E402


def damaged_copy(model_dir: Path, out: Path, layer: str, factor: float) -> None:
    """``model_dir`` copied to ``out`` with the weight scales of ``layer`` multiplied by ``factor``."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(model_dir, out)
    model = onnx.load(str(out / "int8.onnx"))
    producers = {output: node for node in model.graph.node for output in node.output}
    node = next((n for n in model.graph.node if n.name == layer), None)
    if node is None:
        raise SystemExit(f"no node named {layer!r} in {model_dir / 'int8.onnx'}")
    scale_name = producers[node.input[1]].input[1]
    scale = next(t for t in model.graph.initializer if t.name == scale_name)
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    onnx.save(model, str(out / "int8.onnx"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-drop", type=float, default=1.0, help="points INT8 may lose (default 1)")
    parser.add_argument("--damage-layer", default="/backbone/layer3/layer3.0/conv1/Conv")
    parser.add_argument("--factor", type=float, default=20.0)
    parser.add_argument("--clips", type=int, default=None, help="at most N held-out clips")
    args = parser.parse_args(argv)

    from edgekit.errors import AccuracyGuardError
    from edgekit.int8_guard import check_int8, fallback_int8, prepare_held_out

    say = lambda message: print(message, file=sys.stderr)  # noqa: E731
    model_dir = Path(args.model_dir)
    report = {"benchmark": "int8_guard", "command": " ".join(["python", "benchmarks/int8_guard.py", *sys.argv[1:]]),
              "env": machine(), "model_dir": str(model_dir), "data": args.data, "max_drop_points": args.max_drop,
              "damage": {"layer": args.damage_layer, "weight_scale_factor": args.factor}}
    started = time.perf_counter()
    held = prepare_held_out(model_dir, args.data, clips=args.clips, progress=say)
    report["read_seconds"] = round(time.perf_counter() - started, 2)
    report["as_quantized"] = check_int8(model_dir, None, max_drop_points=args.max_drop, held_out=held).to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        damaged = Path(tmp) / "damaged"
        damaged_copy(model_dir, damaged, args.damage_layer, args.factor)
        checked = check_int8(damaged, None, max_drop_points=args.max_drop, held_out=held)
        try:
            checked.raise_if_failed()
            report["damaged"] = {"refused": False, "report": checked.to_dict()}
        except AccuracyGuardError as err:
            report["damaged"] = {"refused": True, "message": str(err), "report": checked.to_dict()}
        started = time.perf_counter()
        try:
            _, fixed = fallback_int8(damaged, None, max_drop_points=args.max_drop, held_out=held, progress=say)
            report["damaged_fallback"] = {"refused": False, "report": fixed.to_dict()}
        except AccuracyGuardError as err:
            report["damaged_fallback"] = {"refused": True, "message": str(err)}
        report["fallback_seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
