"""The ``edgekit`` command line. Every command: ``--help`` with examples, ``--json`` for machines,
exit 0 on success and 2 on bad input with a one-line reason (no traceback)."""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.errors import ConfigError, EdgekitError

EXAMPLES = {
    "inspect": """examples:
  edgekit inspect clip.mp4                    # codec, size, frame types, GOPs, MV statistics
  edgekit inspect clip.mp4 --json             # the same as one JSON object
  edgekit inspect clip.mp4 --render sheet.png # I-frame | MV colour wheel | residual, for 4 frames
  edgekit inspect rtsp://camera/stream --timeout 5""",
    "recognize": """examples:
  edgekit recognize clip.mp4                              # the bundled default model, on the CPU
  edgekit recognize clip.mp4 --json                       # one JSON object: label, score, topk, windows, latency_ms
  edgekit recognize rtsp://camera/stream --package my.edgepkg --device openvino
  edgekit recognize clip.mp4 --stream                     # print each window as soon as it is decided""",
    "demo": """examples:
  edgekit demo            # recognize the bundled sample clip with the bundled default model
  edgekit demo --json
  edgekit demo --device openvino""",
    "sample": """examples:
  edgekit sample clip.mp4                          # 48 frames, a square moving right 4 px/frame
  edgekit sample clip.mp4 --motion up --codec h264 --bframes 2
  edgekit sample pan.mp4 --motion none --pan=-3x0 # camera pans: content moves 3 px/frame left""",
    "transcode": """examples:
  edgekit transcode in.mkv out.mp4                        # MPEG-4, GOP 12, no B, 340x256 (CoViAR)
  edgekit transcode in.mp4 out.mp4 --codec h264 --bframes 2 --size 640x360
  edgekit transcode hevc.mp4 out.mp4 --size keep --json""",
}


def _size(text: str):
    if text == "keep":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 340x256 or 'keep', got {text!r}") from None
    return (w, h)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgekit", description="Compressed-domain video recognition on edge devices.")
    parser.add_argument("--version", action="version", version=f"edgekit {__import__('edgekit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("inspect", "Show what a video's bitstream holds: frame types, GOPs, motion vectors.")
    p.add_argument("video", help="path or URL of the video")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--render", metavar="OUT.png", help="also write a picture of I-frame, MV field and residual")
    p.add_argument("--frames", type=int, default=4, help="frames in the --render sheet (default 4)")
    p.add_argument("--accumulate", action="store_true", help="render accumulated (CoViAR) MV/residual")
    p.add_argument("--transcode", choices=["mpeg4", "h264"], help="re-encode codecs without MVs (HEVC, VP9, AV1)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a live source may stall (default 10)")
    p.set_defaults(run=_inspect)

    p = add("recognize", "Recognize actions in a video from its compressed-domain side data.")
    p.add_argument("source", help="path, URL (rtsp/http) or '-' for a raw H.264/MPEG-4 stream on stdin")
    p.add_argument("--package", help="an .edgepkg (default: the bundled default model)")
    p.add_argument("--device", default="cpu", help="cpu (ONNX Runtime) or openvino (default cpu)")
    p.add_argument("--stream", action="store_true", help="print each window as soon as it is decided")
    p.add_argument("--threads", type=int, help="inference threads (default: the backend's choice)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a live source may stall (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_recognize)

    p = add("demo", "Run the default model on the bundled sample clip: per-window predictions and latency.")
    p.add_argument("--device", default="cpu", help="cpu or openvino (default cpu)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_demo)

    from edgekit import package as pkg

    p = sub.add_parser("export", help="Write a device package (.edgepkg) from a quantized model directory.",
                       description="Write a device package (.edgepkg) from a quantized model directory.",
                       epilog=pkg.EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    pkg.add_export_arguments(p)
    p.set_defaults(run=pkg.cli_export)

    p = sub.add_parser("package", help="Work with .edgepkg packages.", description="Work with .edgepkg packages.")
    package_sub = p.add_subparsers(dest="package_command", required=True, metavar="SUBCOMMAND")
    p = package_sub.add_parser("inspect", help="Show and verify a package: model, labels, inputs, target, checksums.",
                               description="Show and verify a package: model, labels, inputs, target, checksums.",
                               epilog=pkg.INSPECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    pkg.add_inspect_arguments(p)
    p.set_defaults(run=pkg.cli_package_inspect)

    p = add("sample", "Write a sample clip with known motion (no download needed).")
    p.add_argument("out", help="output file (.mp4, .m4v, .h264, .avi, .mkv)")
    p.add_argument("--motion", default="right", choices=["right", "left", "up", "down", "none"])
    p.add_argument("--speed", type=int, default=4, help="object speed in px/frame (default 4)")
    p.add_argument("--pan", type=_size, default=(0, 0), help="background motion DXxDY px/frame, e.g. --pan=-3x0")
    p.add_argument("--codec", choices=["mpeg4", "h264"], default="mpeg4")
    p.add_argument("--bframes", type=int, default=0, help="B-frames between anchors (h264 only)")
    p.add_argument("--size", type=_size, default=(320, 240), help="WxH (default 320x240)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_sample)

    p = add("transcode", "Re-encode a video into the CoViAR/DMC-Net training format.")
    p.add_argument("src")
    p.add_argument("dst", help="output file (.mp4, .avi, .mkv, .m4v)")
    p.add_argument("--codec", choices=["mpeg4", "h264"], default="mpeg4")
    p.add_argument("--gop", type=int, default=12)
    p.add_argument("--bframes", type=int, default=0)
    p.add_argument("--size", type=_size, default=(340, 256), help="WxH or 'keep' (default 340x256)")
    p.add_argument("--fps", type=float, help="output frame rate (default: the source's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_transcode)
    return parser


def _inspect(args) -> int:
    from edgekit.bitstream import inspect

    kw = {"transcode": args.transcode, "timeout_s": args.timeout}
    summary = inspect.summarize(args.video, progress=None if not args.json else False, **kw)
    if args.render:
        summary["render"] = inspect.render(args.video, args.render, frames=args.frames,
                                           accumulate=args.accumulate, **kw)
    if args.json:
        print(json.dumps(summary))
        return 0
    mv = summary["mv"]
    print(f"{summary['source']}: {summary['codec']} {summary['width']}x{summary['height']}"
          f" @ {summary['fps'] or '?'} fps, {summary['frames']} frames")
    if summary["source_codec"] != summary["codec"]:
        print(f"  transcoded from {summary['source_codec']}")
    print(f"  frame types  {summary['frame_types']}")
    print(f"  pattern      {summary['pattern']}")
    print(f"  GOP lengths  {summary['gop_summary']}")
    print(f"  MV grid      {mv['grid'][0]}x{mv['grid'][1]} blocks of 8x8; median {mv['median_px']:.2f} px, "
          f"p95 {mv['p95_px']:.2f} px, max {mv['max_px']:.1f} px; mean (dx, dy) = "
          f"({mv['mean_dx_px']:+.2f}, {mv['mean_dy_px']:+.2f}) px")
    print(f"  blocks       {mv['intra_fraction']:.1%} intra, {mv['zero_fraction']:.1%} zero vectors")
    print(f"  damaged      {summary['damaged_frames']} frames ({summary['decode_errors']} decode errors)")
    if args.render:
        print(f"  wrote        {summary['render']['path']} (frames {summary['render']['frames']})")
    return 0


def _recognizer(package, device, threads=None):
    from edgekit.recognizer import Recognizer

    options = {"threads": threads} if threads else {}
    return Recognizer(package, device, **options) if package else Recognizer.default(device, **options)


def _print_prediction(pred, title: str) -> None:
    print(f"{title}: {pred.label} ({pred.score:.2f})   top-3: "
          + ", ".join(f"{lab} {sc:.2f}" for lab, sc in pred.topk[:3]))
    for w in pred.windows:
        print(f"  {w.start_s:6.2f}-{w.end_s:6.2f} s  {w.label:<14} {w.score:.2f}")
    lat = pred.latency_ms
    per_window = {k: lat[k] / max(len(pred.windows), 1) for k in ("decode", "preprocess", "inference")}
    print(f"  latency: total {lat['total']:.0f} ms for {pred.duration_s:.1f} s of video "
          f"({pred.duration_s * 1000 / max(lat['total'], 1e-9):.0f}x real time); per window: "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in per_window.items()))


def _recognize(args) -> int:
    import sys as _sys

    source = _sys.stdin.buffer if args.source == "-" else args.source
    with _recognizer(args.package, args.device, args.threads) as rec:
        if args.stream and not args.json:
            for w in rec.stream(source, timeout_s=args.timeout):
                print(f"{w.start_s:6.2f}-{w.end_s:6.2f} s  {w.label:<14} {w.score:.2f}", flush=True)
            return 0
        pred = rec.recognize(source, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(pred.to_dict()))
    else:
        _print_prediction(pred, pred.source)
    return 0


def _demo(args) -> int:
    from edgekit.recognizer import ASSETS

    clip = ASSETS / "demo.mp4"
    truth = json.loads((ASSETS / "demo.json").read_text())
    with _recognizer(None, args.device) as rec:
        pred = rec.recognize(clip)
    out = pred.to_dict()
    out["package"] = str(rec.package.path)
    out["truth"] = truth["segments"]
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"edgekit demo: {rec.package.manifest['model']} ({rec.package.manifest['precision']}) on "
          f"{rec.backend.name}/{rec.backend.device}; sample clip of {len(truth['segments'])} actions")
    print("  truth: " + ", ".join(f"{t['start_s']:.1f}-{t['end_s']:.1f} s {t['label']}" for t in truth["segments"]))
    _print_prediction(pred, "prediction")
    return 0


def _sample(args) -> int:
    from edgekit.sample import make_clip

    if args.bframes and args.codec != "h264":
        raise ConfigError("--bframes needs --codec h264 (MPEG-4 Part 2 samples have no B-frames)")
    meta = make_clip(args.out, args.motion, speed_px=args.speed, codec=args.codec, size=args.size,
                     frames=args.frames, bframes=args.bframes, pan=args.pan)
    out = {"path": args.out, **{k: list(v) if isinstance(v, tuple) else v for k, v in meta.items()}}
    print(json.dumps(out) if args.json else
          f"wrote {args.out}: {args.frames} frames, object moves {meta['motion']} px/frame, pan {meta['pan']}")
    return 0


def _transcode(args) -> int:
    from edgekit._progress import Progress
    from edgekit.bitstream import transcode

    with Progress(None, "transcode", enabled=False if args.json else None) as bar:
        result = transcode(args.src, args.dst, codec=args.codec, gop=args.gop, bframes=args.bframes,
                           size=args.size, fps=args.fps, progress=lambda n: bar.update())
    out = {"path": result.path, "codec": result.codec, "width": result.width, "height": result.height,
           "frames": result.frames, "gop": result.gop, "bframes": result.bframes}
    print(json.dumps(out) if args.json else
          f"wrote {result.path}: {result.codec} {result.width}x{result.height}, {result.frames} frames, "
          f"GOP {result.gop}, {result.bframes} B-frames")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except EdgekitError as err:
        print(f"edgekit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
