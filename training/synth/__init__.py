"""Synthetic motion benchmark: procedurally rendered clips whose classes are defined by motion.

Clips are rendered with numpy + OpenCV (textured objects with random-shape masks, moved by a known
affine per frame over a textured background, with camera jitter, lighting change, noise, occluders
and distractors), encoded with real encoders through PyAV (``mpeg4`` or ``h264``), and stored in the
UCF-101 layout with dense ground-truth flow per frame. ``python -m training synth --help``.

Flow convention (the sign of edgekit's motion vectors): for frame t >= 1, ``flow[t][:, y, x]`` =
(dx, dy) = p - q, where p = (x, y) is a pixel of frame t and q is where that content was in frame
t-1: the displacement of content from the previous to the current frame, on the CURRENT frame's
grid, in pixels; ``flow[0] = 0``. Stored at 1/4 resolution, values in full-resolution pixels.

Modules: ``classes`` (the class list), ``config`` (presets, settings), ``texture`` (appearance),
``motion`` (per-class trajectories), ``scene`` (one clip's plan), ``render`` (frames + flow),
``encode`` (PyAV), ``groundtruth`` (.npz I/O), ``splits`` (split files), ``generate`` (the run),
``cli`` (``python -m training synth``); the broad presets: ``broad`` (encoding, motions and scene
drawn per clip) and ``appearance`` (more texture families and shapes); ``heldout`` (a second,
independently written renderer of the 12 fixed classes: the domain-shift check, never trained on).

This package imports numpy only; rendering needs OpenCV (``pip install 'edgekit[train]'``)::

    from training.synth import resolve_config
    from training.synth.generate import generate
    report = generate(resolve_config("tiny", seed=0), "/tmp/synth-tiny", workers=2)
"""

from training.synth.classes import CLASS_NAMES, CLASSES, SynthClass
from training.synth.config import PRESETS, Preset, SynthConfig, resolve_config
from training.synth.groundtruth import ClipGroundTruth, load_ground_truth

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "PRESETS",
    "ClipGroundTruth",
    "Preset",
    "SynthClass",
    "SynthConfig",
    "load_ground_truth",
    "resolve_config",
]
