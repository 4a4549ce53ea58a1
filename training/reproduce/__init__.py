"""Reproduce the seed papers' comparisons in one command: ``python -m training reproduce --preset small``.

Generates the synthetic benchmark, then trains every stage of the plan in order, chaining them as
the papers do (flow network -> DMC-Net's generator -> + MSE -> + adversarial; IP-TSN's 2D MR and
flow networks -> 2D distillation -> inflation -> 2D-3D distillation from the inflated flow teacher;
MFCD-Net's RGB teacher -> its distilled student; OFF's backbone -> OFF with the backbone frozen),
building the caches each needs on the way (teacher flow, decoded RGB). Each row of the table is then
exported to ONNX, quantized to INT8 and measured: test top-1 FP32 and INT8 through ONNX Runtime,
GFLOPs, parameters, ms per clip at one thread, training minutes. The results, with the papers'
headline orderings checked, go to RESULTS.json and RESULTS.md (default docs/results/seeds).

Presets are plans in training/configs/reproduce-<preset>.toml: ``small`` (about an hour on a 2-core
CPU: reduced sizes, widths and epochs, each reduction stated in the md), ``tiny`` (a minute or two:
the pipeline end to end, for tests), ``paper`` (training/configs/paper/*: the papers' 224 px inputs,
widths, epochs and batches, for a GPU). A run resumes where it stopped: finished stages are not
retrained and finished rows not measured again, unless --overwrite.

examples:
  python -m training reproduce --preset small
  python -m training reproduce --preset small --out runs/reproduce-small --results docs/results/seeds
  python -m training reproduce --preset tiny --out /tmp/rp --data /tmp/rp/data --results /tmp/rp/seeds --json
  python -m training reproduce --preset small --overwrite       # retrain every stage, re-measure every row
  python -m training reproduce --preset paper --list            # the stages and rows of a plan, nothing run
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(p) -> None:
    from edgekit.cli.common import positive_int

    p.add_argument("--preset", default="small", metavar="NAME",
                   help="plan name (training/configs/reproduce-NAME.toml: small, tiny, paper) or a plan's "
                        ".toml path (default: small)")
    p.add_argument("--out", metavar="DIR", help="stages' runs and rows' ONNX files (default: runs/reproduce-PRESET)")
    p.add_argument("--data", metavar="DIR",
                   help="synthetic data folder, generated or resumed (default: data/reproduce-PRESET)")
    p.add_argument("--cache", metavar="DIR", help="side-data cache root (default: data/cache)")
    p.add_argument("--results", metavar="PATH", default="docs/results/seeds",
                   help="results path without suffix: writes PATH.json and PATH.md (default: docs/results/seeds)")
    p.add_argument("--workers", type=positive_int("--workers"), default=2,
                   help="processes generating the data (default: 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="retrain every stage and re-measure every row in --out (data and caches are kept)")
    p.add_argument("--list", action="store_true", help="print the plan's stages and rows and exit")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object (progress on stderr)")


def _shown(path: Path) -> str:
    from training.config import CONFIG_DIR

    try:
        return str(path.resolve().relative_to(CONFIG_DIR.resolve()).with_suffix(""))
    except ValueError:
        return str(path)


def run(args) -> int:
    from training.reproduce.pipeline import Reproduction
    from training.reproduce.plan import load_plan

    plan = load_plan(args.preset)
    if args.list:
        stages = [{"name": s.name, "config": _shown(s.config), "set": list(s.overrides), "needs": list(s.needs)}
                  for s in plan.stages]
        listing = {"plan": str(plan.path), "stages": stages,
                   "rows": [r.id for r in plan.rows], "set": list(plan.overrides)}
        if args.json:
            print(json.dumps(listing))
        else:
            print(f"plan {plan.path}: {len(plan.stages)} stages, {len(plan.rows)} rows; every stage: "
                  + " ".join(plan.overrides))
            for s in plan.stages:
                print(f"  stage {s.name}: {_shown(s.config)} {' '.join(s.overrides)}"
                      + (f" (after {', '.join(s.needs)})" if s.needs else ""))
            for r in plan.rows:
                print(f"  row {r.id}: {r.label}")
        return 0
    os.environ.setdefault("TQDM_MININTERVAL", "1")
    stream = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    name = plan.preset
    out = Path(args.out or f"runs/reproduce-{name}")
    data = Path(args.data or f"data/reproduce-{name}")
    cache = Path(args.cache or "data/cache")
    argv = sys.argv[2:] if sys.argv[1:2] == ["reproduce"] else ["--preset", name]
    prog = "edgekit" if Path(sys.argv[0]).name == "edgekit" else "python -m training"
    command = " ".join([prog, "reproduce", *(a for a in argv if a != "--json")])
    result = Reproduction(plan, out, data, cache, Path(args.results), overwrite=args.overwrite,
                          workers=args.workers, command=command, say=say).run()
    if args.json:
        print(json.dumps(result))
    else:
        held = sum(c["status"] == "holds" for c in result["orderings"])
        say(f"{len(result['rows'])} rows in {Path(args.results).with_suffix('.md')} "
            f"({result['runtime']['total_minutes']:.1f} min); orderings: {held} of {len(result['orderings'])} hold")
    return 0
