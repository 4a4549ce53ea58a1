"""List the model zoo: inputs, parameters, GFLOPs at the default input, ONNX exportability.

GFLOPs are multiply-accumulates of conv and linear layers / 1e9 for one forward pass at the
model's default input (all segments / frames, batch 1), the convention of the seed papers.
Counting runs on torch's meta device and takes no time; --check-export really exports every
model to ONNX (static shapes, portable operators only) in a temporary folder, which takes minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edgekit.errors import ConfigError

EXAMPLES = """\
examples:
  python -m training models                       # table of every model
  python -m training models --json                # one JSON object (models + paper figures)
  python -m training models --check-export        # also export each model to ONNX (slow)
  python -m training models --model edge-mvr --model dmc-r18 --check-export --num-classes 10
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--check-export", action="store_true",
                        help="export every listed model to ONNX in a temporary folder and report yes/no")
    parser.add_argument("--model", action="append", dest="models", metavar="NAME",
                        help="only this model (repeatable); default: every registered model")
    parser.add_argument("--num-classes", type=int, default=101,
                        help="classifier size used for parameter counts (default: 101, UCF-101)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar during --check-export")


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def _inputs_text(inputs: list[dict]) -> str:
    """``mv_residual BSCHW 1x3x5x112x112`` for each input spec (as dicts)."""
    return ", ".join(f"{i['name']} {i['layout']} {'x'.join(str(d) for d in i['shape'])}" for i in inputs)


def _try_export(name: str, num_classes: int, folder: Path) -> tuple[bool, float | None, str]:
    """(exported?, size in MB, error message) for one model at its default config."""
    import torch

    from training.models import build_model, export_onnx

    torch.manual_seed(0)
    model = build_model(name, num_classes).eval()
    path = folder / f"{name}.onnx"
    try:
        export_onnx(model, path)
    except Exception as err:  # report, don't crash: the column answers "does it export?"
        return False, None, f"{type(err).__name__}: {err}".splitlines()[0]
    size_mb = path.stat().st_size / 2**20
    path.unlink()
    return True, round(size_mb, 2), ""


def collect(names: list[str], num_classes: int, check_export: bool, progress: bool) -> list[dict]:
    """One row per model: name, paper, summary, inputs, params, gflops (+ onnx, onnx_mb)."""
    import torch

    from training.models import build_model, count_macs, count_params, model_entry, spec_inputs

    rows = []
    for name in names:
        entry = model_entry(name)
        with torch.device("meta"):
            model = build_model(name, num_classes).eval()
            macs = count_macs(model, spec_inputs(model, device="meta"))
        rows.append({"name": name, "paper": entry.paper, "summary": entry.summary,
                     "inputs": [spec.to_dict() for spec in model.input_specs],
                     "params": count_params(model), "gflops": round(macs / 1e9, 3)})
    if check_export:
        with tempfile.TemporaryDirectory(prefix="edgekit-models-") as tmp:
            for row in _progress(rows, progress, "ONNX export"):
                ok, size_mb, error = _try_export(row["name"], num_classes, Path(tmp))
                row.update(onnx=ok, onnx_mb=size_mb, onnx_error=error)
    return rows


def format_table(rows: list[dict], check_export: bool) -> str:
    header = ["model", "paper", "inputs (name layout shape)", "params(M)", "GFLOPs"]
    if check_export:
        header += ["ONNX", "MB"]
    lines = []
    for row in rows:
        cells = [row["name"], row["paper"], _inputs_text(row["inputs"]), f"{row['params'] / 1e6:.2f}",
                 f"{row['gflops']:.2f}"]
        if check_export:
            cells += ["yes" if row["onnx"] else "no", f"{row['onnx_mb']:.1f}" if row["onnx_mb"] else "-"]
        lines.append(cells)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    numeric = {3, 4, 6}
    def fmt(cells):
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(cells) for cells in lines]
    failures = [r for r in rows if check_export and not r["onnx"]]
    out += [f"export failed: {r['name']}: {r['onnx_error']}" for r in failures]
    return "\n".join(out)


def format_reference(reference: list[dict]) -> str:
    header = ["figure", "source", "paper", "ours", "dev"]
    lines = [[r["what"], r["source"], f"{r['paper']:g} {r['unit']}", f"{r['ours']:.3f}", f"{r['deviation']:+.1%}"]
             for r in reference]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    def fmt(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines])


def run(args: argparse.Namespace) -> int:
    from training.models import list_models
    from training.models.flops import reference_figures

    if args.num_classes < 1:
        raise ConfigError(f"--num-classes must be >= 1, got {args.num_classes}")
    names = args.models or list_models()
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; known: {', '.join(list_models())}")
    rows = collect(names, args.num_classes, args.check_export, progress=not args.no_progress and not args.json)
    reference = reference_figures()
    if args.json:
        print(json.dumps({"num_classes": args.num_classes, "gflops_convention": "conv+linear MACs / 1e9, batch 1",
                          "models": rows, "reference": reference}))
    else:
        print(format_table(rows, args.check_export))
        print(f"\nGFLOPs = conv+linear multiply-accumulates / 1e9 at the default input, batch 1; "
              f"params with {args.num_classes} classes.\n")
        print(format_reference(reference))
    return 1 if args.check_export and not all(r["onnx"] for r in rows) else 0
