"""A torch ``Dataset`` over a side-data cache: the runtime's frame selection and tensor preparation,
served from stored parts.

The cache stores, per clip, the *parts* of ``edgekit.modality`` once per frame (MV + residual of
every P/B frame, the RGB of every I-frame, teacher flow), already prepared by ``edgekit.preprocess``.
An item is made exactly as ``edgekit.Recognizer`` makes a window's inputs: the clip's frame types go
through ``edgekit.sampling.select_frames`` (random positions when training, the test-time rule
otherwise), and each chosen frame's parts through the modality table's one step function. Items
are dicts keyed by model input name, float32, without the batch dimension:

- layout BSCHW: (S, C, s, s)  TSN segments (``mv``, ``residual``, ``mv_residual``, ``iframe``, ``flow``)
- layout BCTHW: (C, T, s, s)  a clip (IP-TSN's consecutive P/B frames, MFCD-Net's ``gop_clip``)

plus ``label`` (int64). Training draws are seeded by (seed, epoch, index), so runs repeat.

Companions (:class:`Companion`) are extra items a loss or a teacher needs, made of the SAME frames as
one of the model's inputs: teacher flow at the frames of an ``mv_residual`` input (DMC-Net's flow
target, IP-TSN's flow teacher) or the decoded RGB of a ``gop_clip``'s frames (MFCD-Net's raw-RGB
teacher). They take no random draw, so the model's inputs are the same with or without them.

A training split may be augmented (``augment``: ``training.augment``, train-only): the sampling rule
then sees the augmenter's temporal view of the clip, and the item is cropped, flipped (its label
swapped for its mirror image), noised and dropped out after it is assembled. With every option off
the augmenter is not used and items are bit-identical to an unaugmented dataset.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import preprocess, sampling
from edgekit.errors import ConfigError
from edgekit.modality import MODALITIES
from edgekit.spec import InputSpec
from training.cache.index import load_index


def find_cache(path: str | Path) -> Path:
    """The cache folder (holding spec.json) at ``path`` or the single one below it."""
    path = Path(path)
    if (path / "spec.json").exists():
        return path
    found = sorted(p.parent for p in path.glob("*/spec.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(f"no side-data cache at {path}; build one with: python -m training cache DATASET --out {path}")
    raise ConfigError(f"{path} holds {len(found)} caches ({', '.join(p.name for p in found)}); give one of them")


def clip_frames(clip: dict) -> tuple[list[str], list[tuple[str, int]]]:
    """The stored frames of a cached clip in display order: their types ("I", "P", "B") and where
    each one's parts are, ("iframe", GOP number) or ("motion", row of the clip's motion arrays)."""
    kinds, where = [], []
    emitted = 0  # I-frames placed so far
    for row, (kind, gop) in enumerate(zip(clip["kinds"], clip["gop"])):
        while emitted <= gop:  # every GOP starts with its I-frame
            kinds.append("I")
            where.append(("iframe", emitted))
            emitted += 1
        kinds.append(kind)
        where.append(("motion", row))
    while emitted < clip["iframe_count"]:
        kinds.append("I")
        where.append(("iframe", emitted))
        emitted += 1
    return kinds, where


def specs_for_streams(streams: Sequence[str], segments: int, clip_length: int, size: int) -> list[InputSpec]:
    """Input specs named after the older cache stream names: a modality name gives a BSCHW input of
    ``segments``; ``"mv_residual_clip"`` and ``"gop_clip"`` give BCTHW clips of ``clip_length``."""
    specs = []
    for name in streams:
        if name == "mv_residual_clip":
            specs.append(InputSpec(name, "mv_residual", (1, 5, clip_length, size, size), layout="BCTHW"))
        elif name == "gop_clip":
            specs.append(InputSpec(name, "gop_clip", (1, 3, clip_length, size, size), layout="BCTHW"))
        elif name in MODALITIES:
            specs.append(InputSpec(name, name, (1, segments, MODALITIES[name].channels, size, size)))
        else:
            raise ConfigError(f"unknown stream {name!r}; expected a modality {tuple(MODALITIES)}, "
                              "'mv_residual_clip' or 'gop_clip'")
    return specs


@functools.lru_cache(maxsize=64)
def _cell_index(h: int, w: int, height: int, width: int, cell: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For :func:`cell_means`: each stored pixel's cell (flat), the pixels per cell (at least 1), the cells."""
    grid_h, grid_w = -(-height // cell), -(-width // cell)
    rows = np.minimum(((np.arange(h) + 0.5) * height / h // cell).astype(np.int64), grid_h - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * width / w // cell).astype(np.int64), grid_w - 1)
    index = (rows[:, None] * grid_w + cols[None, :]).ravel()
    return index, np.maximum(np.bincount(index, minlength=grid_h * grid_w), 1), grid_h * grid_w


def cell_means(planes: np.ndarray, frame_hw, cell: int) -> np.ndarray:
    """``planes`` (C, h, w), a stored picture of a (H, W) source, with each plane replaced by its
    means over the source's ``cell`` x ``cell``-pixel cells (a model pixel belongs to the cell of its
    centre). Where a model pixel spans more than a cell, it is its own mean: the stored picture
    is then already coarser than the cells."""
    channels, h, w = planes.shape
    index, counts, cells = _cell_index(h, w, int(frame_hw[0]), int(frame_hw[1]), int(cell))
    out = np.empty_like(planes)
    for c in range(channels):
        out[c] = (np.bincount(index, weights=planes[c].ravel(), minlength=cells) / counts)[index].reshape(h, w)
    return out


COMPANION_PARTS = {"flow": "flow", "rgb": "iframe"}  # what a companion holds -> the modality it has the channels of


@dataclass(frozen=True)
class Companion:
    """An extra item ``name`` built from the frames chosen for the input ``follows``, in its layout:
    ``part`` "flow" (teacher flow, 2 channels; zero at an I-frame, like the MVs) or "rgb" (decoded
    RGB, 3 channels, normalised like I-frames; an I-frame gives its own RGB)."""

    name: str
    follows: str
    part: str

    def __post_init__(self):
        if self.part not in COMPANION_PARTS:
            raise ConfigError(f"companion {self.name!r}: part must be one of {tuple(COMPANION_PARTS)}, got {self.part!r}")

    def spec(self, followed: InputSpec) -> InputSpec:
        """The companion's shape as an InputSpec (the followed input's layout and steps)."""
        modality = COMPANION_PARTS[self.part]
        shape = list(followed.shape)
        shape[2 if followed.layout == "BSCHW" else 1] = MODALITIES[modality].channels
        return InputSpec(self.name, modality, tuple(shape), layout=followed.layout,
                         representation=followed.representation)


class CachedClips:
    """Indexable dataset of one split of a cache (usable directly as a torch Dataset).

    ``specs``: the model's input specs (items are keyed by their names). Without specs, ``streams``
    names inputs as in :func:`specs_for_streams`. ``companions``: extra items made of the frames of
    an input (:class:`Companion`). Raises :class:`ConfigError` when the cache cannot feed a spec or a
    companion (other size or normalisation, no flow or RGB stored) or holds no clip of ``split``.
    """

    def __init__(self, cache: str | Path, split: str = "train", streams=("mv_residual",), segments: int = 3,
                 clip_length: int = 12, train: bool | None = None, seed: int = 0,
                 specs: Sequence[InputSpec] | None = None, augment=None, companions: Sequence[Companion] = (),
                 flow_cells: int = 0):
        self.folder = find_cache(cache)
        self.flow_cells = int(flow_cells)  # > 0: the flow part is read as its means over source cells
        meta = json.loads((self.folder / "spec.json").read_text())
        self.spec, self.classes = meta["spec"], meta["classes"]
        self.specs = tuple(specs) if specs is not None else tuple(
            specs_for_streams(streams, segments, clip_length, self.spec["size"]))
        for spec in self.specs:
            self._check_feeds(spec)
        by_name = {s.name: s for s in self.specs}
        self.companions = tuple(companions)
        self.companion_specs = []
        for companion in self.companions:
            if companion.follows not in by_name:
                raise ConfigError(f"companion {companion.name!r} follows input {companion.follows!r}, which the "
                                  f"model does not have (inputs: {', '.join(by_name)})")
            if companion.part == "rgb" and not self.spec.get("rgb", False):
                raise ConfigError(f"{companion.name!r} needs decoded RGB frames and the cache at {self.folder} holds "
                                  "none; it is rebuilt with them when training asks for them (CacheSpec(rgb=True))")
            if companion.part == "flow" and self.spec["flow"] == "none":
                raise ConfigError(f"{companion.name!r} needs teacher flow; set data.flow = gt|tvl1|farneback|dis")
            self.companion_specs.append(companion.spec(by_name[companion.follows]))
        self.clips = load_index(self.folder, split)
        if not self.clips:
            raise ConfigError(f"{self.folder} has no clips of split {split!r} (is the build complete?)")
        self.train = split == "train" if train is None else train
        self.seed, self.epoch = seed, 0
        self._arrays: dict = {}
        self.augmenter = None
        if augment is not None and self.train:
            from training.augment import Augmenter

            augmenter = Augmenter(augment, self.classes)  # ConfigError when a flip's mirror map is unknown
            self.augmenter = augmenter if augmenter.active else None

    @classmethod
    def for_specs(cls, cache, split: str, specs, train: bool | None = None, seed: int = 0,
                  augment=None, companions: Sequence[Companion] = (), flow_cells: int = 0) -> "CachedClips":
        """The dataset that feeds a model: items keyed by the specs' input names and the companions'
        (plus ``label``). ``augment`` (a ``training.config.AugmentSection``) applies to training only;
        ``flow_cells`` (``data.flow_cells``): the flow as its means over source cells (:func:`cell_means`)."""
        return cls(cache, split, train=train, seed=seed, specs=specs, augment=augment, companions=companions,
                   flow_cells=flow_cells)

    def _check_feeds(self, spec: InputSpec) -> None:
        size = self.spec["size"]
        if spec.size != (size, size):
            raise ConfigError(f"input {spec.name!r} is {spec.size[0]}x{spec.size[1]} but the cache at {self.folder} "
                              f"stores {size}x{size}")
        if spec.representation != self.spec["representation"]:
            raise ConfigError(f"input {spec.name!r} wants {spec.representation} side data, the cache holds "
                              f"{self.spec['representation']}")
        stored = self.spec["normalization"]
        differ = sorted(k for k, v in spec.normalization.items() if k in stored and stored[k] != v)
        if differ:
            raise ConfigError(f"input {spec.name!r} normalises {differ} otherwise than the cache; rebuild the cache")
        if "flow" in MODALITIES[spec.modality].parts and self.spec["flow"] == "none":
            raise ConfigError("this cache holds no flow; rebuild it with --flow gt|tvl1|farneback|dis")

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Reseed training-time sampling for a new epoch (deterministic per (seed, epoch, index))."""
        self.epoch = epoch

    def labels(self) -> np.ndarray:
        return np.array([c["label"] for c in self.clips], np.int64)

    def _array(self, shard: int, kind: str) -> np.ndarray:
        key = (shard, kind)
        if key not in self._arrays:  # opened lazily, per process (safe with DataLoader workers)
            self._arrays[key] = np.load(self.folder / f"shard-{shard:05d}.{kind}.npy", mmap_mode="r")
        return self._arrays[key]

    def frame_parts(self, clip: dict, where: tuple[str, int], parts: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored parts of one frame of ``clip`` (float32, (C, s, s)); an I-frame has zero motion."""
        kind, row = where
        size = self.spec["size"]
        gop = row if kind == "iframe" else clip["gop"][row]
        out = {}
        for part in parts:
            if part == "iframe":
                out[part] = self._array(clip["shard"], "iframe")[clip["iframe_offset"] + gop].astype(np.float32)
            elif kind == "iframe":
                out[part] = np.zeros((MODALITIES[part].channels, size, size), np.float32)
            elif part == "flow":
                out[part] = self._array(clip["shard"], "flow")[clip["motion_offset"] + row].astype(np.float32)
                if self.flow_cells:
                    out[part] = cell_means(out[part], clip["frame_hw"], self.flow_cells)
            elif part == "rgb":  # decoded RGB of a P/B frame (an I-frame's is its "iframe" part)
                out[part] = self._array(clip["shard"], "rgb")[clip["motion_offset"] + row].astype(np.float32)
            else:
                motion = self._array(clip["shard"], "motion")[clip["motion_offset"] + row]
                out[part] = (motion[:2] if part == "mv" else motion[2:]).astype(np.float32)
        return out

    def input_from_frames(self, i: int, spec: InputSpec, chosen: Sequence[int]) -> np.ndarray:
        """One input of ``spec`` made of clip ``i``'s frames at display positions ``chosen`` (indices
        into :func:`clip_frames`' order, one per segment or time step), prepared as :meth:`item`
        prepares the frames the sampling rule chose: float32, (S, C, s, s) for BSCHW or (C, T, s, s)
        for BCTHW. For test-time protocols (``training.protocols``) that choose several sets of frames
        of one clip with the same rule; no augmentation."""
        clip = self.clips[i]
        kinds, where = clip_frames(clip)
        row = MODALITIES[spec.modality]
        norm = {**row.normalization, **self.spec["normalization"]}
        steps = [row.step(self.frame_parts(clip, where[k], row.parts), kinds[k], norm) for k in chosen]
        return preprocess.stack(spec, steps)[0]

    def arrays(self, i: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """Item ``i`` as float32 numpy arrays keyed by input name (the inputs of :meth:`item`)."""
        return self.item(i, rng)[0]

    def item_rng(self, i: int, epoch: int | None = None) -> np.random.Generator:
        """The draws of item ``i`` in ``epoch`` (default: the epoch of :meth:`set_epoch`), seeded by
        (seed, epoch, i): the same in any process."""
        return np.random.default_rng((self.seed, self.epoch if epoch is None else epoch, i))

    def item(self, i: int, rng: np.random.Generator | None = None) -> tuple[dict[str, np.ndarray], int]:
        """Item ``i``: float32 numpy arrays keyed by input name, and its label (an augmented flip
        may have swapped it for its mirror image). Draws come from ``rng`` (default: seeded by
        (seed, epoch, i)): the augmenter's temporal view, the sampling rule's, then the augmenter's."""
        clip = self.clips[i]
        rng = rng or self.item_rng(i)
        kinds, where = clip_frames(clip)
        view = self.augmenter.temporal_view(len(kinds), rng) if self.augmenter is not None else None
        norm = self.spec["normalization"]
        out, chosen_by_name = {}, {}
        for spec in self.specs:
            row = MODALITIES[spec.modality]
            if view is None:
                chosen = sampling.select_frames(kinds, spec, train=self.train, rng=rng)
            else:  # the same rule, over the frames the augmenter lets it see
                positions = view.positions(spec)
                chosen = positions[sampling.select_frames([kinds[p] for p in positions], spec, train=self.train,
                                                          rng=rng)]
            steps = [row.step(self.frame_parts(clip, where[k], row.parts), kinds[k], {**row.normalization, **norm})
                     for k in chosen]
            out[spec.name] = preprocess.stack(spec, steps)[0]
            chosen_by_name[spec.name] = chosen
        for companion, spec in zip(self.companions, self.companion_specs):  # same frames, no draw
            steps = []
            for k in chosen_by_name[companion.follows]:
                part = "iframe" if companion.part == "rgb" and where[k][0] == "iframe" else companion.part
                steps.append(self.frame_parts(clip, where[k], (part,))[part])
            out[spec.name] = preprocess.stack(spec, steps)[0]
        label = int(clip["label"])
        if self.augmenter is not None:  # companions are flipped and cropped with their inputs
            out, label = self.augmenter.apply(out, (*self.specs, *self.companion_specs), label, rng)
        return out, label

    def __getitem__(self, key) -> dict:
        """Item ``key`` as torch tensors (plus ``label``). ``key``: an index, drawn for the epoch of
        :meth:`set_epoch`, or an ``(epoch, index)`` pair (``training.train.EpochItems``), drawn for
        that epoch: what a worker process kept across epochs is told."""
        import torch

        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        arrays, label = self.item(i, self.item_rng(i, epoch))
        out = {k: torch.from_numpy(v) for k, v in arrays.items()}
        out["label"] = torch.tensor(label, dtype=torch.int64)
        return out
