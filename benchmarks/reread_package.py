"""A copy of a package that reads its clips with another vector margin (``min_gain``), its model
unchanged: how much of a model's behaviour on a set of clips comes from the vectors its reader keeps.

``edge-mvr`` is trained on vectors that predict their 8x8 cell better than no motion by
``min_gain`` = 4 grey levels per pixel (README, "Vectors no better than none"). This script writes
``PKG`` again (same ONNX bytes, labels, calibration) with ``preprocessing.cache_spec.min_gain`` set
to ``--min-gain``, so ``edgekit.Recognizer`` reads with that margin, and prints one JSON object
(the paths, the old and new margin, the new package's integrity digest). Run the other benchmarks
on the copy (``benchmarks/false_events.py --kinds COPY``, ``benchmarks/heldout.py --package COPY``,
``edgekit benchmark COPY``) to measure it. The copy is unsigned; the model was not trained for it.

Example (docs/results/min-gain-4/):
    python benchmarks/reread_package.py --package edgekit/assets/default.edgepkg --min-gain 4 -o /tmp/mvr-read-mg4.edgepkg
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this tree's edgekit, run as a script
sys.path.append(str(BENCHMARKS))

from _env import script_parser  # noqa: E402


def parse_args(argv=None):
    p = script_parser("A copy of a package that reads with another vector margin (min_gain), its model unchanged",
                      "python benchmarks/reread_package.py --package edgekit/assets/default.edgepkg --min-gain 4 "
                      "-o /tmp/mvr-read-mg4.edgepkg")
    p.add_argument("--package", required=True, metavar="PKG", help="the .edgepkg to copy (it is not changed)")
    p.add_argument("--min-gain", required=True, type=float, metavar="G",
                   help="the margin the copy reads with, grey levels per pixel in [0, 255]")
    p.add_argument("-o", "--output", required=True, metavar="OUT.edgepkg", help="the copy to write")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from edgekit.bitstream.reader import check_min_gain
    from edgekit.errors import ConfigError
    from edgekit.package import load_package, rewrite_package

    try:
        gain = check_min_gain(args.min_gain)
    except ConfigError as err:
        raise SystemExit(f"reread_package.py: error: {err}") from None
    package = load_package(args.package)
    manifest = package.manifest
    extra = json.loads(json.dumps(dict(manifest.preprocessing.extra)))  # a plain, deep copy
    spec = extra.get("cache_spec")
    if not isinstance(spec, dict):
        raise SystemExit(f"reread_package.py: error: {args.package} records no cache_spec: it was not exported "
                         "from a trained model")
    old = spec.get("min_gain")
    spec["min_gain"] = gain
    preprocessing = dataclasses.replace(manifest.preprocessing, extra=types.MappingProxyType(extra))
    out = rewrite_package(package, args.output, dataclasses.replace(manifest, preprocessing=preprocessing))
    written = load_package(out)
    print(json.dumps({"benchmark": "reread_package", "package": str(args.package), "output": str(out),
                      "min_gain": {"before": old, "after": gain}, "integrity_sha256": written.integrity_sha256}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
