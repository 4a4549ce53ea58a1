"""Motion-correct augmentation of training items: the one implementation every training uses.

A training item (``training.cache.CachedClips``) is a dict of float32 arrays keyed by model input,
already normalised by ``edgekit.preprocess``: ``(S, C, s, s)`` for layout BSCHW, ``(C, T, s, s)``
for BCTHW. :class:`Augmenter` changes an item the way the same clip would look if it had been
filmed otherwise, and keeps the label true to the motion:

- **crop/scale**: one square crop of ``f`` of the side (``f`` drawn from ``crop_scale``) at a random
  place, area-resized back to the input size with ``edgekit.preprocess.resize`` (the runtime's own
  geometry), identically for every input, segment and time step of the clip. Motion grows with the
  picture: motion vectors and flow are multiplied by the scale factor ``1 / f``.
- **flips**: a horizontal flip mirrors every plane and negates dx of motion vectors and flow (the
  content now moves the other way; dy is unchanged); a vertical flip negates dy. The label becomes
  its mirror image (``move_left`` <-> ``move_right``, ``rotate_cw`` <-> ``rotate_ccw``); a class
  symmetric under the flip keeps its label; a class whose mirror image is no class
  (``red_up_right`` flipped is "red up-left") is never flipped.
- **temporal**: the sampling rule (``edgekit.sampling.select_frames``, the runtime's) sees a window
  cut short by up to ``window_jitter_frames`` frames at each end, as a runtime window that does not
  line up with the event would; 3D motion runs (BCTHW) take every k-th frame, k up to
  ``clip_stride_max`` (faster motion through the same rule).
- **motion-vector noise**: Gaussian, ``mv_noise_px`` pixels of the model input, on MV channels only
  (never on the teacher's flow, never on residual or RGB).
- **residual dropout**: each segment's (time step's) residual channels are zeroed with probability
  ``residual_dropout``.

Which label is whose mirror image is data (:data:`SYNTH_MIRRORS`, one table per flip, for the
classes of ``training.synth.classes``). A dataset whose classes are not all synthetic benchmark classes
has no table: flipping it needs an explicit map in the config (``augment.hflip_labels``), else a
:class:`~edgekit.errors.ConfigError` says what to give. Augmentation is train-only and every option is
off by default: an :class:`Augmenter` with nothing on is never called and the items stay
bit-identical. Numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgekit import preprocess
from edgekit.errors import ConfigError
from edgekit.spec import InputSpec

FLIPS = ("hflip", "vflip")

# The mirror image of each synthetic benchmark class (training/synth/classes.py, generators in
# training/synth/motion.py): another class, the class itself (symmetric), or None (no such class:
# the clip is never flipped). Image coordinates: x right, y down.
SYNTH_MIRRORS: dict[str, dict[str, str | None]] = {
    "hflip": {  # x -> -x
        "move_left": "move_right", "move_right": "move_left",
        "move_up": "move_up", "move_down": "move_down",             # direction jitter is +-12 deg, symmetric
        "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw",      # a mirror reverses the sense of rotation
        "approach": "approach", "recede": "recede",                 # growth and shrinkage in place
        "wave": "wave",                                             # axis within +-25 deg of horizontal
        "scene_left": "scene_right", "scene_right": "scene_left",
        "static": "static",
        "meet": "meet", "part": "part",                             # axis uniform over all directions
        "bounce": "bounce",                                         # sideways drift uniform in +-1.2 units
        "red_up_right": None, "blue_up_right": None,               # up-left is no class
    },
    "vflip": {  # y -> -y
        "move_left": "move_left", "move_right": "move_right",
        "move_up": "move_down", "move_down": "move_up",
        "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw",
        "approach": "approach", "recede": "recede",
        "wave": "wave",
        "scene_left": "scene_left", "scene_right": "scene_right",  # vertical pan component uniform +-15 %
        "static": "static",
        "meet": "meet", "part": "part",
        "bounce": None,                                             # upside down it falls toward the ceiling
        "red_up_right": None, "blue_up_right": None,               # down-right is no class
    },
}


@dataclass(frozen=True)
class ChannelGroups:
    """Which channels of a modality's step are what: ``vector`` the (dx, dy) channel indices of
    motion (MV or flow, in normalised model-input pixels), ``residual`` the residual channels,
    ``noisy`` whether motion-vector noise applies (MV yes, the teacher's flow no)."""

    vector: tuple[int, int] | None = None
    residual: tuple[int, ...] = ()
    noisy: bool = False


# every modality of edgekit.modality; gop_clip's steps are (R_acc + I) / 2: no separable residual group
CHANNEL_GROUPS: dict[str, ChannelGroups] = {
    "iframe": ChannelGroups(),
    "mv": ChannelGroups(vector=(0, 1), noisy=True),
    "mv_ref": ChannelGroups(vector=(0, 1), noisy=True),
    "residual": ChannelGroups(residual=(0, 1, 2)),
    "mv_residual": ChannelGroups(vector=(0, 1), residual=(2, 3, 4), noisy=True),
    "gop_clip": ChannelGroups(),
    "flow": ChannelGroups(vector=(0, 1)),
}


@dataclass(frozen=True)
class TemporalView:
    """The frames of a clip the sampling rule sees: positions ``start .. end - 1`` of the clip's
    ``n`` frames; 3D motion runs take every ``clip_stride``-th of them from ``clip_offset``."""

    start: int
    end: int
    clip_stride: int = 1
    clip_offset: int = 0

    def positions(self, spec: InputSpec) -> np.ndarray:
        """Clip frame positions (int64) that ``spec``'s selection rule chooses among, in order."""
        positions = np.arange(self.start, self.end, dtype=np.int64)
        if spec.layout == "BCTHW" and spec.frames != "gop" and self.clip_stride > 1:
            stride = min(self.clip_stride, max(1, len(positions) // spec.segments))  # keep a full run
            positions = positions[self.clip_offset % stride::stride]
        return positions


def mirror_table(flip: str, classes: Sequence[str], explicit: Mapping[str, str] | None = None) -> np.ndarray:
    """For each class index, the index of its mirror image under ``flip`` ("hflip" or "vflip"),
    itself when symmetric, -1 when it has none (int64, (len(classes),)).

    ``explicit`` (``{class: mirror}``, "" for none) must name every class; without it the synthetic
    benchmark's table is used when every class is one of its classes (a mirror image missing from
    ``classes`` counts as none). Raises ConfigError for an unknown name, a class left out, a map that
    is not its own inverse, or classes without a known table and no ``explicit`` map."""
    index = {name: k for k, name in enumerate(classes)}
    key = f"augment.{flip}_labels"
    if explicit:
        names = dict(explicit)
        for name, mirror in names.items():
            for wrong in (name, mirror):
                if wrong and wrong not in index:
                    raise ConfigError(f"{key}: {wrong!r} is not a class of this dataset{_closest(wrong, classes)}")
        missing = [c for c in classes if c not in names]
        if missing:
            raise ConfigError(f"{key} gives no mirror image for {', '.join(map(repr, missing))}; give each class its "
                              "mirrored class, itself if the flip leaves it unchanged, or \"\" to never flip it")
        for name, mirror in names.items():
            if mirror and names[mirror] != name:
                raise ConfigError(f"{key}: {name!r} mirrors to {mirror!r} but {mirror!r} mirrors to "
                                  f"{names[mirror]!r}; a flip is its own inverse")
        return np.asarray([index[names[c]] if names[c] else -1 for c in classes], np.int64)
    table = SYNTH_MIRRORS[flip]
    unknown = [c for c in classes if c not in table]
    if unknown:
        raise ConfigError(f"augment.{flip} needs each class's mirror image, and {', '.join(map(repr, unknown[:3]))}"
                          f"{' ...' if len(unknown) > 3 else ''} is no class of the synthetic benchmark; give "
                          f"{key} = {{class = \"mirrored class\", ...}} (the class itself if the flip leaves it "
                          f"unchanged, \"\" to never flip it) or set augment.{flip} = 0")
    return np.asarray([index.get(table[c], -1) if table[c] else -1 for c in classes], np.int64)


def _closest(wrong: str, valid: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(wrong, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class AugmentOptions:
    """The numeric options of an ``[augment]`` section (``training.config.AugmentSection``)."""

    hflip: float = 0.0
    vflip: float = 0.0
    crop_scale: tuple[float, float] = (1.0, 1.0)
    window_jitter_frames: int = 0
    clip_stride_max: int = 1
    mv_noise_px: float = 0.0
    residual_dropout: float = 0.0


class Augmenter:
    """The augmentation of one training set, from the ``[augment]`` config section and the
    dataset's class names (label order). Raises ConfigError (see :func:`mirror_table`) when a
    flip is on and a class's mirror image is unknown.

    ``section`` is a ``training.config.AugmentSection`` (or any object with its fields).
    """

    def __init__(self, section, classes: Sequence[str]):
        # plain values, not the section (its read-only tables do not pickle into spawned DataLoader workers)
        self.options = AugmentOptions(**{name: getattr(section, name) for name in AugmentOptions.__dataclass_fields__})
        self.classes = tuple(classes)
        self.mirrors = {flip: mirror_table(flip, self.classes, getattr(section, f"{flip}_labels"))
                        for flip in FLIPS if getattr(section, flip) > 0 or getattr(section, f"{flip}_labels")}

    @property
    def active(self) -> bool:
        """Whether any option is on (an inactive augmenter is never called)."""
        s = self.options
        return (s.hflip > 0 or s.vflip > 0 or tuple(s.crop_scale) != (1.0, 1.0) or s.window_jitter_frames > 0
                or s.clip_stride_max > 1 or s.mv_noise_px > 0 or s.residual_dropout > 0)

    def temporal_view(self, n: int, rng: np.random.Generator) -> TemporalView:
        """Which of a clip's ``n`` frames the sampling rule sees. Draws from ``rng`` only for the
        options that are on; at most a quarter of the clip is cut at each end."""
        s = self.options
        start, end = 0, n
        jitter = min(s.window_jitter_frames, (n - 1) // 4)
        if jitter > 0:
            start, end = int(rng.integers(0, jitter + 1)), n - int(rng.integers(0, jitter + 1))
        stride = offset = 0
        if s.clip_stride_max > 1:
            stride = int(rng.integers(1, s.clip_stride_max + 1))
            offset = int(rng.integers(0, stride))
        return TemporalView(start, end, max(stride, 1), offset)

    def apply(self, arrays: Mapping[str, np.ndarray], specs: Sequence[InputSpec], label: int,
              rng: np.random.Generator) -> tuple[dict[str, np.ndarray], int]:
        """The augmented item and its label: ``arrays`` (keyed by ``specs``' names, shapes as in the
        module docstring) are not modified; the new arrays are float32, C-contiguous. Draws, in
        order: each flip that is on, the crop, then per input the MV noise and the dropout mask."""
        s = self.options
        flips = []
        for flip in FLIPS:
            if getattr(s, flip) > 0 and rng.random() < getattr(s, flip) and self.mirrors[flip][label] >= 0:
                flips.append(flip)
                label = int(self.mirrors[flip][label])
        crop = preprocess.FULL
        lo, hi = s.crop_scale
        if (lo, hi) != (1.0, 1.0):
            side = float(rng.uniform(lo, hi))
            crop = (float(rng.uniform(0, 1 - side)), float(rng.uniform(0, 1 - side)), side, side)
        out = {}
        for spec in specs:
            out[spec.name] = self.transform(np.asarray(arrays[spec.name], np.float32), spec, flips, crop, rng)
        return out, label

    def transform(self, x: np.ndarray, spec: InputSpec, flips: list[str], crop, rng) -> np.ndarray:
        """One input ``x`` (the layout of ``spec``) cropped (``crop``: top, left, height, width as
        fractions, or ``preprocess.FULL``) and resized back, flipped (``flips``: "hflip", "vflip"), with motion
        components scaled and negated to match, then noise and dropout as the options say (``rng``).
        Shared by training and the test protocols' views (``training.protocols``)."""
        s = self.options
        groups = CHANNEL_GROUPS.get(spec.modality)
        if groups is None:  # a modality added to edgekit.modality without saying what its channels are
            raise ConfigError(f"augmentation does not know the channels of modality {spec.modality!r}; "
                              "add it to training.augment.CHANNEL_GROUPS")
        owned = crop != preprocess.FULL  # x is a new array, ours to change in place
        if owned:
            x = crop_resize(x, crop)
        if "hflip" in flips:
            x = x[..., ::-1]
        if "vflip" in flips:
            x = x[..., ::-1, :]
        if flips or not owned:
            x = np.array(x, np.float32, order="C")  # one copy: never change the caller's array
        by_channel = x if spec.layout == "BCTHW" else x.swapaxes(0, 1)  # (C, steps, h, w), a view
        if groups.vector is not None:
            dx, dy = groups.vector
            by_channel[dx] *= np.float32((-1.0 if "hflip" in flips else 1.0) / crop[3])
            by_channel[dy] *= np.float32((-1.0 if "vflip" in flips else 1.0) / crop[2])
            if groups.noisy and s.mv_noise_px > 0:
                sigma = s.mv_noise_px * spec.normalization["mv_scale"]  # pixels -> normalised units
                noise = rng.standard_normal((2, *by_channel.shape[1:]), dtype=np.float32)
                by_channel[[dx, dy]] += noise * np.float32(sigma)
        if groups.residual and s.residual_dropout > 0:
            dropped = np.flatnonzero(rng.random(by_channel.shape[1]) < s.residual_dropout)
            for channel in groups.residual:
                by_channel[channel, dropped] = 0.0
        return x


def crop_resize(x: np.ndarray, crop: tuple[float, float, float, float]) -> np.ndarray:
    """Every (h, w) plane of ``x`` (any leading dims) cropped to ``crop`` = (top, left, height,
    width) in fractions and area-resized back to (h, w) with ``edgekit.preprocess.resize``
    (float32, same shape). Values are not rescaled: motion is scaled by the caller."""
    h, w = x.shape[-2:]
    planes = np.ascontiguousarray(x, np.float32).reshape(-1, h, w)
    chunks = [preprocess.resize(planes[k:k + 16], (h, w), crop) for k in range(0, len(planes), 16)]
    return np.concatenate(chunks).reshape(x.shape)

