"""A torch ``Dataset`` over a side-data cache, with TSN segment sampling from ``edgekit.sampling``.

Each item is a dict of float32 tensors, one per requested stream, plus ``label`` (int64):

- ``"mv"``           (S, 2, s, s)  segments of MV
- ``"residual"``     (S, 3, s, s)
- ``"mv_residual"``  (S, 5, s, s)  stacked MV + R (DMC-Net / IP-TSN P-stream / edge model)
- ``"iframe"``       (S, 3, s, s)  I-frames, TSN-sampled among the clip's GOPs
- ``"flow"``         (S, 2, s, s)  teacher flow at the same frames as the motion streams
- ``"mv_residual_clip"`` (5, T, s, s) T consecutive P/B frames (IP-TSN P-stream, BCTHW)
- ``"gop_clip"``     (3, T, s, s)  MFCD-Net: [I, (R_acc + I)/2, ...] of one GOP (BCTHW)

Training draws one random frame per segment (seeded by (seed, epoch, index), so runs repeat);
testing takes segment centres, the rule edgekit.Recognizer applies on a device.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit import preprocess as pp
from edgekit import sampling
from edgekit.errors import ConfigError

STREAMS = ("mv", "residual", "mv_residual", "iframe", "flow", "mv_residual_clip", "gop_clip")


def cache_stream(spec) -> str:
    """The cache stream that feeds an ``edgekit.spec.InputSpec``."""
    if spec.layout == "BSCHW" and spec.stream in ("mv", "residual", "mv_residual", "iframe", "flow"):
        return spec.stream
    if spec.layout == "BCTHW" and spec.stream == "mv_residual":
        return "mv_residual_clip"
    if spec.layout == "BCTHW" and spec.stream == "gop_clip":
        return "gop_clip"
    raise ConfigError(f"the side-data cache cannot feed input {spec.name!r} ({spec.stream}, {spec.layout})")


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


def _load_index(folder: Path, split: str) -> list[dict]:
    clips = []
    for shard_json in sorted(folder.glob("shard-*.json")):
        shard = json.loads(shard_json.read_text())
        clips += [{**c, "shard": shard["shard"]} for c in shard["clips"] if c["split"] == split]
    return clips


class CachedClips:
    """Indexable dataset of one split of a cache (usable directly as a torch Dataset)."""

    def __init__(self, cache: str | Path, split: str = "train", streams=("mv_residual",), segments: int = 3,
                 clip_length: int = 12, train: bool | None = None, seed: int = 0):
        bad = [s for s in streams if s not in STREAMS]
        if bad:
            raise ConfigError(f"unknown stream(s) {bad}; expected any of {STREAMS}")
        self.folder = find_cache(cache)
        meta = json.loads((self.folder / "spec.json").read_text())
        self.spec, self.classes = meta["spec"], meta["classes"]
        self.clips = _load_index(self.folder, split)
        if not self.clips:
            raise ConfigError(f"{self.folder} has no clips of split {split!r} (is the build complete?)")
        if "flow" in streams and self.spec["flow"] == "none":
            raise ConfigError("this cache holds no flow; rebuild it with --flow gt|tvl1|farneback|dis")
        self.streams, self.segments, self.clip_length = tuple(streams), segments, clip_length
        self.train = split == "train" if train is None else train
        self.seed, self.epoch = seed, 0
        self.input_names: dict[str, str] | None = None  # model input name -> cache stream (for_specs)
        self._arrays: dict = {}

    @classmethod
    def for_specs(cls, cache, split: str, specs, train: bool | None = None, seed: int = 0) -> "CachedClips":
        """The dataset that feeds a model: items keyed by the specs' input names (plus ``label``),
        with the specs' segment count / clip length."""
        names = {s.name: cache_stream(s) for s in specs}
        segments = max(s.segments for s in specs)
        ds = cls(cache, split, streams=tuple(names.values()), segments=segments, clip_length=segments,
                 train=train, seed=seed)
        ds.input_names = names
        return ds

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

    def arrays(self, i: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """The item as numpy float32 arrays (what ``__getitem__`` wraps in tensors)."""
        clip = self.clips[i]
        rng = rng or np.random.default_rng((self.seed, self.epoch, i))
        n = clip["motion_count"]
        motion = self._array(clip["shard"], "motion")
        m0 = clip["motion_offset"]
        out = {}
        seg = None
        if {"mv", "residual", "mv_residual", "flow"} & set(self.streams):
            seg = sampling.segment_positions(n, self.segments, train=self.train, rng=rng)
            x = motion[m0 + seg].astype(np.float32)  # (S, 5, s, s)
            if "mv_residual" in self.streams:
                out["mv_residual"] = x
            if "mv" in self.streams:
                out["mv"] = np.ascontiguousarray(x[:, :2])
            if "residual" in self.streams:
                out["residual"] = np.ascontiguousarray(x[:, 2:])
            if "flow" in self.streams:
                out["flow"] = self._array(clip["shard"], "flow")[m0 + seg].astype(np.float32)
        if "iframe" in self.streams:
            g = sampling.segment_positions(clip["iframe_count"], self.segments, train=self.train, rng=rng)
            out["iframe"] = self._array(clip["shard"], "iframe")[clip["iframe_offset"] + g].astype(np.float32)
        if "mv_residual_clip" in self.streams:
            start = sampling.clip_start(n, self.clip_length, train=self.train, rng=rng)
            idx = np.minimum(np.arange(start, start + self.clip_length), n - 1)
            out["mv_residual_clip"] = np.moveaxis(motion[m0 + idx].astype(np.float32), 0, 1)
        if "gop_clip" in self.streams:
            out["gop_clip"] = self._gop_clip(clip, motion, rng)
        if self.input_names is not None:
            out = {name: out[stream] for name, stream in self.input_names.items()}
        return out

    def _gop_clip(self, clip, motion, rng) -> np.ndarray:
        """[I, (R_acc^1 + I)/2, ...] of one GOP, T steps (padded by repeating the last), (3, T, s, s)."""
        gops = np.asarray(clip["gop"])
        g = int(sampling.segment_positions(clip["iframe_count"], 1, train=self.train, rng=rng)[0])
        frames = np.flatnonzero(gops == g)
        i_in = self._array(clip["shard"], "iframe")[clip["iframe_offset"] + g].astype(np.float32)
        steps = [i_in]
        scale = self.spec["normalization"]["residual_scale"]
        for k in frames[: self.clip_length - 1]:
            res = motion[clip["motion_offset"] + k, 2:].astype(np.float32)
            steps.append(pp.gop_step(res, i_in, self.spec["normalization"], residual_scale=scale))
        while len(steps) < self.clip_length:
            steps.append(steps[-1])
        return np.stack(steps, axis=1)

    def __getitem__(self, i: int) -> dict:
        import torch

        out = {k: torch.from_numpy(v) for k, v in self.arrays(i).items()}
        out["label"] = torch.tensor(self.clips[i]["label"], dtype=torch.int64)
        return out
