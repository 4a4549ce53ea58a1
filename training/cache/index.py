"""What a side-data cache holds, read from its own files: the one reader of ``spec.json`` and the
shard JSONs (see build.py for the layout), so no other module parses them.

    from training.cache import cache_statistics, is_complete, load_index
    is_complete(folder)                             # True once every shard is written
    clips = load_index(folder, "train")             # one dict per clip (label, path, offsets, kinds...)
    stats = cache_statistics(folder)
    stats.clips["train"], stats.median_frames_per_clip["train"], stats.failures
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CacheStatistics:
    """Counts of one cache, per split (keys are the splits that hold clips).

    ``clips``: clips stored. ``motion_frames`` / ``iframes``: P/B frames and I-frames stored.
    ``median_frames_per_clip``: median over the split's clips of I + P/B frames per clip, as an int
    (the window a runtime should use to see clips as long as the training clips).
    ``failures``: ``"path: reason"`` of every clip the build skipped. ``size_bytes``: the arrays on disk.
    """

    clips: Mapping[str, int]
    motion_frames: Mapping[str, int]
    iframes: Mapping[str, int]
    median_frames_per_clip: Mapping[str, int]
    failures: tuple[str, ...]
    size_bytes: int

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return {"clips": dict(self.clips), "motion_frames": dict(self.motion_frames), "iframes": dict(self.iframes),
                "median_frames_per_clip": dict(self.median_frames_per_clip), "failures": list(self.failures),
                "size_bytes": self.size_bytes}

    @property
    def total_clips(self) -> int:
        return sum(self.clips.values())

    @property
    def total_frames(self) -> int:
        """Every stored frame: P/B frames plus I-frames, over all splits."""
        return sum(self.motion_frames.values()) + sum(self.iframes.values())


def read_meta(cache_folder: str | Path) -> dict | None:
    """The cache's ``spec.json`` (spec, classes, dataset fingerprint, clip and shard counts), or
    None if the folder holds no cache yet."""
    path = Path(cache_folder) / "spec.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _shards(cache_folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cache_folder.glob("shard-*.json"))]


def is_complete(cache_folder: str | Path) -> bool:
    """True when the cache's ``spec.json`` and every shard it announces are written (a shard is
    complete once its JSON exists: the JSON is written last)."""
    folder = Path(cache_folder)
    meta = read_meta(folder)
    if meta is None:
        return False
    expected = math.ceil(meta["clips"] / meta["shard_clips"])
    return all((folder / f"shard-{i:05d}.json").is_file() for i in range(expected))


def load_index(cache_folder: str | Path, split: str) -> list[dict]:
    """The clips of ``split``, in shard order: each the clip's shard entry (``path``, ``label``,
    ``split``, ``motion_offset``/``motion_count``, ``iframe_offset``/``iframe_count``, ``kinds``,
    ``gop``, ``pts``, ``frame_index``, ``frame_hw``) plus ``shard`` (its shard number)."""
    clips = []
    for shard in _shards(Path(cache_folder)):
        clips += [{**c, "shard": shard["shard"]} for c in shard["clips"] if c["split"] == split]
    return clips


def cache_statistics(cache_folder: str | Path) -> CacheStatistics:
    """Clips, frames and failures of the cache at ``cache_folder`` (complete shards only)."""
    folder = Path(cache_folder)
    clips: dict[str, int] = {}
    motion: dict[str, int] = {}
    iframes: dict[str, int] = {}
    frames_per_clip: dict[str, list[int]] = {}
    failures: list[str] = []
    for shard in _shards(folder):
        failures += shard["failures"]
        for c in shard["clips"]:
            split = c["split"]
            clips[split] = clips.get(split, 0) + 1
            motion[split] = motion.get(split, 0) + c["motion_count"]
            iframes[split] = iframes.get(split, 0) + c["iframe_count"]
            frames_per_clip.setdefault(split, []).append(c["motion_count"] + c["iframe_count"])
    medians = {split: int(np.median(counts)) for split, counts in frames_per_clip.items()}
    size = sum(p.stat().st_size for p in folder.glob("shard-*.npy"))
    return CacheStatistics(clips, motion, iframes, medians, tuple(failures), size)
