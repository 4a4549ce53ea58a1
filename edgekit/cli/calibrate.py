"""``edgekit calibrate``: fit calibrated scores and a "none" threshold for a package, write a new one.

``edgekit calibrate PKG --data DIR --split val -o OUT.edgepkg`` is
``edgekit.calibration.calibrate_package(PKG, DIR, split="val")`` (through the Recognizer), then
``edgekit.package.rewrite_package`` with the calibration in the manifest: the same ONNX (and IR)
bytes, labels and specs, a new integrity record. A signed package is refused unless ``--sign KEY``
re-signs the new one or ``--unsigned`` accepts that the new one carries no signature (a signature
covers the old manifest, not the new).
"""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.cli.common import add_command, backend_help, device_help, number_in, positive_int, whole_number
from edgekit.errors import ConfigError

EXAMPLES = """examples:
  edgekit calibrate my.edgepkg --data data/synth-small-motion -o my-calibrated.edgepkg
      # temperature on the val split; the lowest threshold under which at most 5 % of the windows of
      # static and noise-only clips are reported as an event
  edgekit calibrate my.edgepkg --data data/synth-small-motion --max-false-event-rate 0.02 --noise-clips 80 -o out.edgepkg
  edgekit calibrate my.edgepkg --data data/synth-small-motion --negatives quiet-footage/ -o out.edgepkg
      # the rate holds on the windows of every video under quiet-footage/ too (clips with no event)
  edgekit calibrate my.edgepkg --data data/synth-small-motion --threshold 0.6 -o out.edgepkg --json   # a fixed threshold
  edgekit calibrate signed.edgepkg --data data/synth-small-motion --sign key.pem -o out.edgepkg       # re-signed
  edgekit recognize clip.mp4 --package out.edgepkg --threshold 0      # then: 0 turns "none" off

The new package's manifest carries a 'calibration' section (temperature, threshold, the split and
clips it was fitted on, NLL/ECE before and after); 'edgekit package inspect PKG --json' shows it."""


def add_commands(subparsers) -> None:
    add_command(subparsers, "calibrate", "Calibrate a package's scores on a dataset and set the threshold under "
                "which a window is 'none'; writes a new package.", EXAMPLES,
                add_arguments=_arguments).set_defaults(run=calibrate)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", metavar="PKG", help="the .edgepkg to calibrate (it is not changed)")
    p.add_argument("--data", required=True, metavar="DIR", help="a dataset folder in the UCF-101 layout "
                   "('edgekit synth' writes one) with the package's classes")
    p.add_argument("--split", choices=("train", "val", "test"), default="val", help="split to fit on (default val)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.edgepkg", help="the calibrated package to write")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--threshold", type=number_in("--threshold", 0, 1, "a score"), metavar="X",
                        help="a fixed threshold in [0, 1] (0: never 'none')")
    choice.add_argument("--max-false-event-rate", type=number_in("--max-false-event-rate", 0, 1, "a fraction"),
                        default=0.05, metavar="F", help="choose the lowest threshold under which at most this "
                        "fraction of the windows of static and noise-only clips is an event (default 0.05)")
    p.add_argument("--noise-clips", type=whole_number("--noise-clips", 0), default=40, metavar="N",
                   help="noise-only clips (still scenes, sensor noise, flicker, exposure changes) written and "
                   "scored beside the split's static clips (default 40; 0: static clips only)")
    p.add_argument("--negatives", action="append", default=[], metavar="DIR",
                   help="a folder of clips with no motion event (every video under it); the threshold holds the "
                   "false-event rate on its windows too (repeatable; e.g. static clips of your own cameras)")
    p.add_argument("--limit", type=positive_int("--limit"), metavar="N", help="at most N clips per class (quick run)")
    p.add_argument("--device", metavar="D", help=device_help("the package's target"))
    p.add_argument("--backend", metavar="B", help=backend_help("the device's usual runtime"))
    p.add_argument("--threads", type=positive_int("--threads"), metavar="N", help="inference threads")
    signing = p.add_mutually_exclusive_group()
    signing.add_argument("--sign", metavar="KEY.pem", help="sign the new package with this Ed25519 private key "
                         "(needs edgekit[sign])")
    signing.add_argument("--unsigned", action="store_true", help="accept that a signed package's calibrated copy "
                         "is unsigned (its old signature cannot cover the new manifest)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgekit.calibration import calibrate_package, with_calibration
    from edgekit.package import load_package, rewrite_package

    if Path(args.output).resolve() == Path(args.package).resolve():
        raise ConfigError("-o must name a new file; the package to calibrate is read, not changed")
    package = load_package(args.package)
    if package.has_signature and not (args.sign or args.unsigned):
        raise ConfigError(f"{args.package} is signed, and its signature cannot cover a new manifest; pass --sign "
                          "KEY.pem to sign the calibrated package, or --unsigned to write it without a signature")
    say = (lambda message: print(message, file=sys.stderr)) if args.json else print
    run = calibrate_package(package, args.data, split=args.split, threshold=args.threshold,
                            max_false_event_rate=args.max_false_event_rate, noise=args.noise_clips, limit=args.limit,
                            device=args.device, backend=args.backend, threads=args.threads, progress=say,
                            negatives=args.negatives)
    out = rewrite_package(package, args.output, with_calibration(package.manifest, run.calibration),
                          sign_key=args.sign)
    written = load_package(out, trusted_keys=[args.sign] if args.sign else None)  # verify what was written
    report = {"package": str(out), "source": str(args.package), "signed": written.signed_by is not None,
              "integrity_sha256": written.integrity_sha256, **run.to_dict()}
    if args.json:
        print(json.dumps(report))
        return 0
    c = run.calibration
    print(f"wrote {out}: temperature {c.temperature:.3f}, threshold {c.threshold:.4f} ({c.rule}), fitted on "
          f"{c.clips} {c.split} clips")
    print(f"  NLL {c.nll_before:.3f} -> {c.nll_after:.3f} nats, ECE {c.ece_before:.3f} -> {c.ece_after:.3f}")
    negatives = ", ".join(f"{name} {n} windows" for name, n in run.negative_windows.items())
    print(f"  threshold  event top-1  false events ({negatives})")
    for row in run.tradeoff:
        rates = "  ".join(f"{name} {rate:6.1%}" for name, rate in row["false_event_rate"].items())
        mark = "  <- chosen" if row["threshold"] == round(c.threshold, 4) else ""
        print(f"  {row['threshold']:9.4f}  {row['event_top1']:11.1%}  {rates}{mark}")
    if run.binding:
        b = run.binding
        print(f"  set by {b['set']}: {b['windows']} windows, at most {b['events_allowed']} of them events")
        if b["events_allowed"] == 0:
            more = {"static": f"more static clips in the {args.split} split", "noise": "more --noise-clips"}.get(
                b["set"], "more videos in that folder")
            print(f"  note: with {b['windows']} windows none may be an event at {args.max_false_event_rate:g}, so the "
                  f"one highest-scoring event window of {b['set']} sets the threshold; {more} give a steadier one")
    return 0
