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


if __name__ == "__main__":
    sys.exit(main())
