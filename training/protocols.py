"""Test-time protocols: which views of a test clip a model scores and how the scores are combined,
with the seed papers' settings as named presets.

A *view* is one complete set of model inputs for one clip; a protocol scores several and averages:

- **temporal views.** A BSCHW (TSN) input of S segments evaluated at N segments (N a multiple of S):
  the N frames are chosen by the one selection rule (``edgekit.sampling.select_frames`` with N
  segments) and dealt into G = N / S interleaved groups, group g taking segments g, g + G, g + 2G, ...
  Each group is then a test-time sampling of S segments over the whole clip with the interval the
  model was trained with (OFF, sec. 4.2.3, requires the interval to be the same at training and
  test time); for a model whose segment consensus is an average (every 2D model here) averaging the
  groups is TSN's N-segment consensus. A BCTHW (3D) input is evaluated on K clips: K windows spread
  evenly over the clip (K whole GOPs at evenly spaced GOP numbers for "gop" inputs), each given to
  the same rule. An input with one temporal view repeats it when another input has several; two
  inputs with different counts above one are refused.
- **spatial views.** The cache stores side data already resized to the model's input size (its
  ``spec.json`` size; ``CachedClips`` refuses any other), so there is no larger picture to crop from:
  a crop is a square of side ``crop_side`` (default 0.875 = 224/256, the papers' crop of a 256-pixel
  side) of the stored picture, area-resized back to the input size exactly as training's crop
  augmentation does it (``training.augment``: motion vectors and flow multiplied by 1 / side). One
  crop is the whole stored picture (no resize: today's view); 3 crops are left, centre and right
  squares at mid-height; 5 are the centre and the 4 corners; 10 are those 5 and their horizontal
  flips.
- **flips.** A flipped view mirrors every plane and negates dx (``training.augment``'s horizontal
  flip). The model then scores the mirror image, so its probability for class c is read back as the
  clip's probability for c's mirror image (``move_left`` <-> ``move_right``, symmetric classes keep
  theirs). A class whose mirror image is no class (``red_up_right``) has no estimate from a flipped
  view: its score averages the unflipped views only; every other class averages all views.
- **averaging.** Several views: the mean over views of each view's softmax probabilities (with the
  flip mapping above). One view: its logits unchanged, so the single-view default gives exactly
  the numbers evaluation gave before protocols existed.

Numpy only; ``training.evaluate`` runs the model.
"""

from __future__ import annotations

import difflib
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edgekit import preprocess, sampling
from edgekit.errors import ConfigError
from edgekit.spec import InputSpec

CROP_SIDE = 0.875  # 224 of 256: the side the papers crop from their 256-pixel short side
CROP_COUNTS = (1, 3, 5, 10)


@dataclass(frozen=True)
class TestProtocol:
    """What a test-time evaluation scores per clip. ``segments``: total TSN segments of each BSCHW
    input (None: the model's own); ``crops``: 1, 3, 5 or 10 (10 = 5 and their flips); ``flip``:
    add the horizontal flip of each crop; ``clips``: temporal clips of each BCTHW input;
    ``crop_side``: side of a crop as a fraction of the stored picture; ``name``: the preset it came
    from ("single" for the default, "custom" for flags alone); ``adapts``: options that adapt to the
    model (a preset's own ``segments`` and ``clips``, see :func:`plan_views`); the others must fit.
    Raises ConfigError for a bad value."""

    __test__ = False  # not a pytest test class, despite the name

    segments: int | None = None
    crops: int = 1
    flip: bool = False
    clips: int = 1
    crop_side: float = CROP_SIDE
    name: str = "single"
    adapts: frozenset = frozenset()

    def __post_init__(self):
        if self.segments is not None and (not isinstance(self.segments, int) or self.segments < 1):
            raise ConfigError(f"segments must be a whole number >= 1, got {self.segments!r}")
        if self.crops not in CROP_COUNTS:
            raise ConfigError(f"crops must be one of {', '.join(map(str, CROP_COUNTS))} (centre, left/centre/right, "
                              f"corners + centre, and those 5 flipped), got {self.crops!r}")
        if not isinstance(self.clips, int) or self.clips < 1:
            raise ConfigError(f"clips must be a whole number >= 1, got {self.clips!r}")
        if not (isinstance(self.crop_side, (int, float)) and 0 < self.crop_side <= 1):
            raise ConfigError(f"crop side must be a fraction of the picture in (0, 1], got {self.crop_side!r}")

    @property
    def flips(self) -> bool:
        """Whether flipped views are scored (``flip``, or implied by 10 crops)."""
        return self.flip or self.crops == 10


@dataclass(frozen=True)
class Preset:
    """A paper's test protocol: the options it sets and where the paper states them."""

    name: str
    segments: int | None
    crops: int
    flip: bool
    clips: int
    source: str

    def protocol(self, crop_side: float = CROP_SIDE) -> TestProtocol:
        return TestProtocol(self.segments, self.crops, self.flip, self.clips, crop_side, self.name,
                            frozenset({"segments", "clips"}))


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("dmc", 25, 1, False, 1,
           "DMC-Net sec. 4.2 'Testing': 25 uniformly sampled frames; for DMC no cropping and no flipping"),
    Preset("coviar", 25, 5, True, 1,
           "DMC-Net sec. 4.2 'Testing' (CoViAR's setting for I, MV, R): 25 frames x 5 crops x flip, "
           "250 scores averaged; MFCD-Net sec. 7.2 counts it the same way"),
    Preset("iptsn", 16, 1, False, 1,
           "IP-TSN sec. 4.2.2 'Inference': 16 I-frames with one centre crop; 16 P-frames as one clip, centre crop"),
    Preset("mfcd", None, 1, False, 15,
           "MFCD-Net sec. 5 'Inference' and sec. 7.2: fifteen 12-frame clips (1 I-frame + 11 residual frames); "
           "the paper crops each clip at random, here the whole picture"),
    Preset("off", 25, 10, True, 1,
           "OFF sec. 4.3.1: 25 segments, the other settings TSN's (10 crops); sec. 4.2.3: the segment interval "
           "kept from training (interleaved groups)"),
    Preset("tsn", 25, 10, True, 1,
           "TSN (Wang et al. 2016) test setting as OFF sec. 4.3.1 cites it: 25 segments x 10 crops "
           "(4 corners + centre and their flips)"),
)}


def preset_help() -> str:
    """One line per preset for ``--help``."""
    lines = []
    for p in PRESETS.values():
        what = ", ".join(filter(None, [f"{p.segments} segments" if p.segments else "",
                                       f"{p.clips} clips" if p.clips > 1 else "",
                                       f"{p.crops} crop{'s' if p.crops > 1 else ''}",
                                       "flip" if p.flip and p.crops != 10 else ""]))
        lines.append(textwrap.fill(f"{p.name:<7} {what}. {p.source}", 110, initial_indent="  ",
                                   subsequent_indent=" " * 10))
    return "\n".join(lines)


def find_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError naming the closest one otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=1, cutoff=0.5)
    raise ConfigError(f"unknown protocol {name!r}; choose one of {', '.join(PRESETS)}"
                      + (f" (did you mean {close[0]!r}?)" if close else ""))


def protocol_from_options(preset: str | None = None, *, segments: int | None = None, crops: int | None = None,
                          flip: bool = False, clips: int | None = None,
                          crop_side: float | None = None) -> TestProtocol:
    """The protocol of a preset (or the single view), with any option given here overriding it.
    Raises ConfigError for an unknown preset (naming the closest) or a bad value."""
    side = CROP_SIDE if crop_side is None else crop_side
    base = TestProtocol(crop_side=side) if preset is None else find_preset(preset).protocol(side)
    changes = {k: v for k, v in (("segments", segments), ("crops", crops), ("clips", clips)) if v is not None}
    if flip:
        changes["flip"] = True
    if changes:
        changes["name"] = f"{preset}+custom" if preset else "custom"
        changes["adapts"] = base.adapts - set(changes)
    return replace(base, **changes)


@dataclass(frozen=True)
class SpatialView:
    """One spatial view: ``crop`` = (top, left, height, width) as fractions of the stored picture
    (``edgekit.preprocess.FULL`` for the whole of it), and whether it is mirrored left-right."""

    crop: tuple[float, float, float, float]
    hflip: bool


def spatial_views(crops: int, flip: bool, side: float = CROP_SIDE) -> tuple[SpatialView, ...]:
    """The spatial views of ``crops`` (1, 3, 5 or 10) crops of side ``side``, each followed by its
    flip when ``flip`` (10 crops always flip). 1 crop is the whole picture."""
    mid, far = (1 - side) / 2, 1 - side
    if crops == 1:
        boxes = [preprocess.FULL]
    elif crops == 3:
        boxes = [(mid, 0.0, side, side), (mid, mid, side, side), (mid, far, side, side)]
    elif crops in (5, 10):
        boxes = [(mid, mid, side, side), (0.0, 0.0, side, side), (0.0, far, side, side),
                 (far, 0.0, side, side), (far, far, side, side)]
    else:
        raise ConfigError(f"crops must be one of {', '.join(map(str, CROP_COUNTS))}, got {crops!r}")
    flips = (False, True) if flip or crops == 10 else (False,)
    return tuple(SpatialView(tuple(float(v) for v in box), f) for box in boxes for f in flips)


@dataclass(frozen=True)
class ViewPlan:
    """A protocol resolved against a model's inputs. ``segments``: input name -> frames chosen per
    clip (BSCHW: all N segments; BCTHW: its T); ``temporal``: input name -> its temporal views (G
    groups or K clips); ``temporal_views``: the most of them (views pair up by index);
    ``spatial``: the spatial views. A clip is scored in ``views`` = temporal x spatial views,
    ordered temporal-major."""

    protocol: TestProtocol
    segments: Mapping[str, int]
    temporal: Mapping[str, int]
    temporal_views: int
    spatial: tuple[SpatialView, ...]

    @property
    def views(self) -> int:
        return self.temporal_views * len(self.spatial)

    @property
    def flipped(self) -> np.ndarray:
        """(views,) bool: which views are mirrored."""
        return np.tile(np.array([s.hflip for s in self.spatial], bool), self.temporal_views)

    def describe(self) -> dict:
        p = self.protocol
        return {"name": p.name, "segments": p.segments, "crops": p.crops, "flip": p.flips, "clips": p.clips,
                "crop_side": p.crop_side, "segments_per_input": dict(self.segments),
                "temporal_views_per_input": dict(self.temporal), "views": self.views,
                "averaging": "logits (one view)" if self.views == 1 else
                "mean of softmax probabilities; flipped views read through the mirror map"}


def nearest_multiple(n: int, of: int) -> int:
    """The multiple of ``of`` nearest to ``n`` (ties up), at least ``of``."""
    return max(of, of * math.floor(n / of + 0.5))


def plan_views(protocol: TestProtocol, specs: Sequence[InputSpec], model: str = "this model") -> ViewPlan:
    """Resolve ``protocol`` for a model with input ``specs``. Explicit options must fit: ``segments``
    a multiple of each BSCHW input's S, given only to a model with a BSCHW input, ``clips`` only to one
    with a BCTHW input. Options in ``protocol.adapts`` (a preset's own) adapt instead: the segment
    count becomes the nearest multiple of S, and an option for a layout the model lacks is not used.
    Raises ConfigError."""
    tsn = [s for s in specs if s.layout == "BSCHW"]
    clip = [s for s in specs if s.layout == "BCTHW"]
    if "segments" not in protocol.adapts and protocol.segments is not None and not tsn:
        raise ConfigError(f"{model} has no TSN-segment (BSCHW) input, so --segments does not apply; its clip "
                          f"inputs ({', '.join(s.name for s in clip)}) take --clips K")
    if "clips" not in protocol.adapts and protocol.clips > 1 and not clip:
        raise ConfigError(f"{model} has no clip (BCTHW) input, so --clips does not apply; its TSN inputs "
                          f"({', '.join(s.name for s in tsn)}) take --segments N")
    segments, temporal = {}, {}
    for spec in tsn:
        n = spec.segments if protocol.segments is None else protocol.segments
        if n % spec.segments:
            if "segments" not in protocol.adapts:
                raise ConfigError(f"--segments {n} is not a multiple of the {spec.segments} segments {model}'s input "
                                  f"{spec.name!r} takes (it is scored in groups of {spec.segments}); use "
                                  f"{nearest_multiple(n, spec.segments)}")
            n = nearest_multiple(n, spec.segments)
        segments[spec.name], temporal[spec.name] = n, n // spec.segments
    for spec in clip:
        segments[spec.name], temporal[spec.name] = spec.segments, protocol.clips
    several = sorted({t for t in temporal.values() if t > 1})
    if len(several) > 1:
        raise ConfigError(f"{model}'s inputs would be scored in different numbers of temporal views "
                          f"({', '.join(f'{k}: {v}' for k, v in temporal.items())}); give --segments and --clips "
                          "that make them equal, or one of them 1")
    return ViewPlan(protocol, segments, temporal, several[0] if several else 1,
                    spatial_views(protocol.crops, protocol.flip, protocol.crop_side))


def clip_windows(kinds: Sequence[str], spec: InputSpec, clips: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges, one per temporal clip of the BCTHW input ``spec``, that the
    selection rule is applied to. One clip: the whole clip (exactly the single-view selection).
    "gop" inputs: the GOPs at ``clips`` evenly spaced GOP numbers (``segment_positions``, test time:
    the centre one for one clip), each from its I-frame to the next. Motion runs: windows of
    max(n / clips, 2 T) frames (room for I-frames between the T P/B frames), their starts evenly
    spread over the clip; they overlap when the clip is shorter than ``clips`` x 2 T frames."""
    n = len(kinds)
    if clips == 1:
        return [(0, n)]
    if spec.frames == "gop":
        starts = [i for i, k in enumerate(kinds) if k == "I"]
        if not starts:
            return [(0, n)] * clips
        ends = starts[1:] + [n]
        picked = sampling.segment_positions(len(starts), clips, train=False)
        return [(starts[g], ends[g]) for g in picked]
    length = min(n, max(math.ceil(n / clips), 2 * spec.segments))
    starts = np.floor(np.linspace(0, n - length, clips) + 0.5).astype(np.int64)
    return [(int(s), int(s) + length) for s in starts]


def temporal_positions(kinds: Sequence[str], spec: InputSpec, plan: ViewPlan) -> list[np.ndarray]:
    """For each temporal view of ``spec``'s input, the display positions (int64, (spec.segments,))
    of the frames that make it, by ``edgekit.sampling.select_frames`` at test time."""
    kinds = list(kinds)
    if spec.layout == "BSCHW":
        n = plan.segments[spec.name]
        wide = replace(spec, shape=(spec.shape[0], n, *spec.shape[2:]))
        chosen = sampling.select_frames(kinds, wide, train=False)
        groups = n // spec.segments
        return [chosen[g::groups] for g in range(groups)]
    return [start + sampling.select_frames(kinds[start:end], spec, train=False)
            for start, end in clip_windows(kinds, spec, plan.temporal[spec.name])]


class ClipViews:
    """The views of each clip of a test dataset under a plan: item ``i`` is (inputs, label) with
    inputs a dict of float32 arrays keyed by input name, each ``(views, *item shape)`` (the item
    shapes of ``training.cache.CachedClips``), views ordered as :class:`ViewPlan` says.

    ``dataset``: a ``training.cache.CachedClips`` built with ``train=False`` (its specs, the
    model's). Crops and flips go through ``training.augment``'s geometry, the one the training
    augmentation uses."""

    def __init__(self, dataset, plan: ViewPlan):
        from training.augment import Augmenter
        from training.config import AugmentSection

        if dataset.train:
            raise ConfigError("test-time views are taken from a test-mode dataset (CachedClips(..., train=False))")
        self.dataset, self.plan = dataset, plan
        self._geometry = Augmenter(AugmentSection(), dataset.classes)  # every option off: crop and flip only

    def __len__(self) -> int:
        return len(self.dataset)

    def views(self, i: int) -> dict[str, np.ndarray]:
        """Clip ``i``'s views: input name -> float32 ``(views, *item shape)``."""
        from training.cache.dataset import clip_frames

        kinds = clip_frames(self.dataset.clips[i])[0]
        by_input = {}
        for spec in self.dataset.specs:
            temporal = temporal_positions(kinds, spec, self.plan)
            temporal += [temporal[-1]] * (self.plan.temporal_views - len(temporal))  # a single view repeats
            out = []
            for chosen in temporal:
                base = self.dataset.input_from_frames(i, spec, chosen)
                for view in self.plan.spatial:
                    if view.crop == preprocess.FULL and not view.hflip:
                        out.append(base)
                    else:  # training.augment's crop and flip (no draw: noise and dropout are off)
                        out.append(self._geometry.transform(base, spec, ["hflip"] if view.hflip else [],
                                                             view.crop, None))
            by_input[spec.name] = np.stack(out)
        return by_input

    def __getitem__(self, i: int) -> tuple[dict[str, np.ndarray], int]:
        return self.views(i), int(self.dataset.clips[i]["label"])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def average_scores(logits: np.ndarray, flipped: np.ndarray, mirror: np.ndarray | None = None) -> np.ndarray:
    """Video scores (n, C) from per-view logits (n, V, C). One view: the logits themselves. Several:
    the mean over views of softmax probabilities (float64), where a flipped view's score for class c
    is its probability of c's mirror image ``mirror[c]`` (``mirror``: (C,) int64 from
    ``training.augment.mirror_table``; -1 = no mirror image: class c averages the unflipped views
    only). ``flipped``: (V,) bool. Raises ConfigError when a view is flipped and ``mirror`` is None."""
    logits = np.asarray(logits)
    if logits.shape[1] == 1:
        return logits[:, 0]
    probs = softmax(logits)
    flipped = np.asarray(flipped, bool)
    if flipped.any():
        if mirror is None:
            raise ConfigError("flipped views need each class's mirror image (training.augment.mirror_table)")
        mirror = np.asarray(mirror, np.int64)
        read = probs[:, flipped][..., np.maximum(mirror, 0)]
        read[..., mirror < 0] = np.nan
        probs[:, flipped] = read
    return np.nanmean(probs, axis=1)
