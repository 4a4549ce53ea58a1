"""Build the runtime's bundled assets: the default package and the demo clip.

``edgekit/assets/default.edgepkg`` is the default model's package (``edge-mvr``, from ``edgekit export``
then ``edgekit calibrate``), ``default-mv.edgepkg`` the motion-vector-only default's (``edge-mv-ref``);
``edgekit/assets/demo.mp4`` is a ~10 s clip of several synthetic actions back to back (each a whole
number of GOPs, rendered by the benchmark's own renderer at a seed outside every split), with
``demo.json`` giving the true action of each span.

examples:
  python -m training assets --package edge-mvr.edgepkg
  python -m training assets --package edge-mvr.edgepkg --package-mv edge-mv-ref.edgepkg
  python -m training assets --package edge-mvr.edgepkg --classes move_left,rotate_cw,approach,scene_right,wave
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_output, atomic_write
from edgekit.errors import ConfigError

ASSETS = Path(__file__).resolve().parents[1] / "edgekit" / "assets"
DEMO_CLASSES = ("move_right", "rotate_cw", "approach", "scene_left", "wave")
DEMO_SEED = 2_000_003  # not a seed any preset uses for its clips


def make_demo_clip(out_dir: Path, classes=DEMO_CLASSES, size=(340, 256), frames=48, fps=25, codec="mpeg4") -> dict:
    """Render ``classes`` one after another into ``out_dir/demo.mp4``; returns the truth dict."""
    from training.synth.classes import CLASS_NAMES
    from training.synth.encode import encode_video
    from training.synth.generate import clip_rng
    from training.synth.motion import Canvas
    from training.synth.render import render
    from training.synth.scene import plan_scene

    unknown = [c for c in classes if c not in CLASS_NAMES]
    if unknown:
        raise ConfigError(f"unknown class(es) {unknown}; choose from {list(CLASS_NAMES)}")
    canvas = Canvas(size[0], size[1], frames)
    parts, segments = [], []
    for i, label in enumerate(classes):
        parts.append(render(plan_scene(label, clip_rng(DEMO_SEED, i), canvas)).frames)
        segments.append({"start_s": i * frames / fps, "end_s": (i + 1) * frames / fps, "label": label})
    with atomic_output(out_dir / "demo.mp4") as tmp:
        encode_video(np.concatenate(parts), tmp, codec, fps)
    truth = {"segments": segments, "fps": fps, "size": list(size), "codec": codec, "seed": DEMO_SEED}
    atomic_write(out_dir / "demo.json", json.dumps(truth, indent=1))
    return truth


def add_arguments(p) -> None:
    p.add_argument("--package", help="the .edgepkg to install as the default model (default.edgepkg)")
    p.add_argument("--package-mv", help="the .edgepkg to install as the motion-vector-only default (default-mv.edgepkg)")
    p.add_argument("--out", default=str(ASSETS), help="assets folder (default: edgekit/assets)")
    p.add_argument("--classes", default=",".join(DEMO_CLASSES), help="demo actions, comma-separated")


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = make_demo_clip(out, tuple(args.classes.split(",")))
    print(f"wrote {out / 'demo.mp4'}: " + ", ".join(s["label"] for s in truth["segments"]))
    for given, name in ((args.package, "default.edgepkg"), (args.package_mv, "default-mv.edgepkg")):
        if given:
            from edgekit.package import load_package

            load_package(given)  # verified before it becomes a default
            with atomic_output(out / name) as tmp:
                shutil.copyfile(given, tmp)
            print(f"installed {given} as {out / name}")
    return 0
