"""Generate the synthetic motion benchmark: procedurally rendered, labelled clips encoded with real
encoders (MPEG-4 Part 2 or H.264), with analytic ground-truth optical flow per frame.

Classes are defined by motion (move_left ... static, meet, part, bounce) with random appearance;
see docs/datasets.md. Broad presets widen every range; the held-out renderer (independent code, the
12 fixed classes) is the domain-shift check. The output reads with
training.datasets.open_dataset(DIR) (UCF-101 layout).
Settings come from the preset, then a TOML file (--config, table [synth]), then the flags.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from edgekit.errors import MissingDependencyError
from training.synth.config import CODECS, PRESETS, RENDERERS, load_toml_overrides, parse_size, resolve_config

EPILOG = """\
presets:
{presets}

examples:
  python -m training synth --preset tiny --out /tmp/synth-tiny
  python -m training synth --preset small --out data/synth-small --codec mpeg4 --seed 0 --workers 2
  python -m training synth --preset full --out data/synth-full --codec h264 --size 320x240 --json
  python -m training synth --config synth.toml --out data/synth-custom --clips-per-class 20
  python -m training synth --preset broad-small --out data/synth-broad-small    # sizes, fps, encoders drawn per clip
  python -m training synth --renderer heldout --out data/heldout --clips-per-class 10   # the domain-shift check
  python -m training synth --preset broad-small --classes motion --out data/synth-broad-motion   # the defaults' data
  python -m training synth --preset broad-small --classes motion --sensor --out data/synth-broad-motion-sensor

Broad presets and the held-out renderer draw each clip's size (up to the preset's, or --size),
frame rate and encoder settings: --codec and --fps do not apply to them.

A rerun with the same settings skips finished clips (resume after Ctrl-C); the same seed gives
byte-identical files whatever --workers is.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    presets = "\n".join(
        f"  {p.name:11s} {p.clips_per_class:4d} clips/class, {'up to ' if p.variety == 'broad' else ''}"
        f"{p.width_px}x{p.height_px}, {p.frames} frames: {p.purpose}"
        for p in PRESETS.values()
    )
    parser.epilog = EPILOG.format(presets=presets)
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="benchmark size and variety (default: small; heldout with --renderer heldout)")
    parser.add_argument("--renderer", choices=RENDERERS, default=None,
                        help="synth (the training renderer, default) or heldout (independent code, 12 fixed "
                             "classes, never trained on)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; resumable)")
    parser.add_argument("--codec", choices=CODECS, default=None, help="encoder (default: mpeg4)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (default: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="parallel processes (default: CPU count)")
    parser.add_argument("--size", default=None, metavar="WxH", help="frame size, multiples of 4 (default: preset's)")
    parser.add_argument("--frames", type=int, default=None, metavar="N", help="frames per clip (default: preset's)")
    parser.add_argument("--fps", type=int, default=None, metavar="N", help="frame rate (default: 25)")
    parser.add_argument("--clips-per-class", type=int, default=None, metavar="N", help="override the preset's count")
    parser.add_argument("--classes", default=None, metavar="SET",
                        help="all (default), motion (the 15 classes motion alone defines: the default models'), "
                             "fixed (the 12 fixed classes) or a comma-separated list; the clips are the ones "
                             "the full run makes for those classes")
    parser.add_argument("--sensor", action="store_true", default=None,
                        help="broad presets: every clip also gets a camera sensor model (shot noise that grows "
                             "with brightness, row banding, lens vignetting), drawn last so the rest of each clip "
                             "is unchanged")
    parser.add_argument("--config", default=None, metavar="FILE.toml", help="TOML file with a [synth] table")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    try:
        from training.synth.generate import generate
    except ModuleNotFoundError as err:
        if err.name in ("cv2", "tqdm"):
            raise MissingDependencyError(err.name, "train") from None
        raise

    settings = load_toml_overrides(args.config) if args.config else {}
    preset = args.preset or settings.pop("preset", None)
    settings.pop("preset", None)
    if args.size is not None:
        settings["width_px"], settings["height_px"] = parse_size(args.size)
    flags = {"codec": args.codec, "seed": args.seed, "frames": args.frames, "fps": args.fps,
             "clips_per_class": args.clips_per_class, "renderer": args.renderer, "classes": args.classes,
             "sensor": args.sensor}
    settings.update({k: v for k, v in flags.items() if v is not None})
    config = resolve_config(preset, **settings)

    # SIGTERM (kill, a scheduler's time limit) stops like Ctrl-C: the clips not started are dropped,
    # the workers' clips in progress finish, the pool is shut down (no orphaned workers)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        report = generate(config, args.out, workers=args.workers, progress=not args.no_progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(
            f"{report.clips_total} clips in {report.out_dir} ({report.clips_written} written, "
            f"{report.clips_skipped} already there) in {report.seconds:.1f} s, "
            f"{report.clips_per_second:.2f} clips/s with {report.workers} workers; "
            f"videos {report.video_bytes / 1e6:.1f} MB, flow {report.flow_bytes / 1e6:.1f} MB",
            file=sys.stdout,
        )
    return 0
