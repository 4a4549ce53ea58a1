"""Build the side-data cache: every clip's side data extracted once, preprocessed by
``edgekit.preprocess`` at the cache size, stored in sharded memory-mappable ``.npy`` arrays.

Layout of ``CACHE/<key>/``. ``key`` = :func:`cache_key`, a hash of the :class:`CacheSpec` AND of the
dataset's fingerprint (its resolved folder, the clip list with labels and splits, and each video's
size and modification time; no video is read). A changed spec or another dataset (or the same one
with a video added, removed or re-encoded) builds a new cache beside the old one: a cache is never
served for data it was not built from. An interrupted build of the same data resumes in place.

- ``spec.json``                      the spec, the dataset's classes, root and fingerprint
- ``shard-NNNNN.motion.npy``         float16 (F, 5, s, s): per P/B frame, MV (2) + residual (3), as
                                     edgekit.preprocess returns them (normalised, model-input pixels)
- ``shard-NNNNN.iframe.npy``         float16 (G, 3, s, s): per GOP, the I-frame RGB input
- ``shard-NNNNN.flow.npy``           float16 (F, 2, s, s): teacher flow at the same frames (if asked),
                                     frame to frame or accumulated to the GOP's I-frame (``flow_layout``)
- ``shard-NNNNN.rgb.npy``            float16 (F, 3, s, s): decoded RGB of the same P/B frames, normalised
                                     like I-frames (if ``rgb``: MFCD-Net's raw-RGB teacher)
- ``shard-NNNNN.json``               the shard's clips: label, split, path, frame offsets, kinds,
                                     GOP of each frame, pts. Written LAST: a shard is complete iff
                                     its JSON exists, so an interrupted build resumes at the first
                                     shard without one and never reads a half-written array.

Every file is written atomically (``edgekit._fileio``: temp name, fsync, rename). Read a cache
through ``training.cache.index`` (``load_index``, ``is_complete``, ``cache_statistics``).

A cache too big for one machine is built in parts (:class:`CachePart`): part ``r`` of ``N``
extracts the shards ``i`` with ``i % N == r``, into the same folder (a shared file system) or into
folders copied together afterwards. A shard's content depends only on its clips and the spec, so
the parts together are byte for byte the cache one process builds, and the cache is complete once
every shard's JSON is there. ``torchrun ... -m training cache`` splits the shards over its
processes (``training.distributed.build_cache_in_parts``); ``--shard r/N`` runs one part.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import edgekit.bitstream as bs
from edgekit import preprocess as pp
from edgekit._fileio import atomic_save_npy, atomic_write
from edgekit.errors import ConfigError, EdgekitError
from edgekit.spec import default_normalization
from training.flow import METHODS as FLOW_METHODS

# 2: cell traces add each step's vector exactly (float32 displacements) instead of rounding it first
FORMAT_VERSION = 2
FLOW_SOURCES = ("none", "gt", *FLOW_METHODS)  # no flow, the synthetic ground truth, or a training.flow method
FLOW_LAYOUTS = ("frame", "accumulated")
# fields added after caches existed: left out of the key while at their default, so old caches keep their keys
_KEY_OPTIONAL = {"flow_layout": "frame", "rgb": False, "max_vector": 0.0, "min_gain": 0.0}


@dataclass(frozen=True)
class CacheSpec:
    """What the cache holds. Any change gives a different key, hence a fresh cache."""

    representation: str = "accumulated"   # "accumulated" (CoViAR) or "frame"
    size: int = 112                        # square side of the stored inputs
    flow: str = "none"                     # teacher flow source: one of FLOW_SOURCES
    max_frames: int = 0                    # P/B frames kept per clip, evenly spaced; 0 = all
    trace: str = "block"                   # accumulated traces: per 8x8 cell, as edgekit.Recognizer
                                           # computes them ("block"), or exact per pixel ("pixel")
    flow_layout: str = "frame"             # teacher flow from the previous frame ("frame") or composed
                                           # back to the GOP's I-frame ("accumulated", like the default MVs)
    rgb: bool = False                      # also store the decoded RGB of every P/B frame (RGB teachers)
    max_vector: float = 0.0                # drop vectors longer than this fraction of the picture's shorter
                                           # side before tracing (edgekit.bitstream.open's max_vector; 0 = keep all)
    min_gain: float = 0.0                  # a vector must predict its cell better than no motion by this many grey
                                           # levels per pixel, else it reads 0 (edgekit.bitstream.open's min_gain;
                                           # 0 = keep all)
    normalization: dict = field(default_factory=lambda: {**default_normalization("mv_residual"),
                                                         **default_normalization("iframe"),
                                                         **default_normalization("flow")})
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.representation not in ("accumulated", "frame"):
            raise ConfigError(f"representation must be 'accumulated' or 'frame', got {self.representation!r}")
        if not 16 <= self.size <= 1024:
            raise ConfigError(f"size must be in [16, 1024], got {self.size}")
        if self.trace not in ("block", "pixel"):
            raise ConfigError(f"trace must be 'block' or 'pixel', got {self.trace!r}")
        if self.flow not in FLOW_SOURCES:
            raise ConfigError(f"flow must be one of {FLOW_SOURCES}, got {self.flow!r}")
        if self.flow_layout not in FLOW_LAYOUTS:
            raise ConfigError(f"flow_layout must be one of {FLOW_LAYOUTS}, got {self.flow_layout!r}")
        if not 0 <= self.max_vector <= 1:
            raise ConfigError(f"max_vector must be in [0, 1] (0 keeps every vector), got {self.max_vector!r}")
        if not 0 <= self.min_gain <= 255:
            raise ConfigError(f"min_gain must be in [0, 255] grey levels per pixel (0 keeps every vector), "
                              f"got {self.min_gain!r}")

    def key_fields(self) -> dict:
        """The fields the key hashes: every field, except later additions still at their default."""
        return {k: v for k, v in asdict(self).items() if k not in _KEY_OPTIONAL or v != _KEY_OPTIONAL[k]}

    def key(self) -> str:
        """A hash of the spec alone (the cache folder's name also covers the dataset: :func:`cache_key`)."""
        return hashlib.sha256(json.dumps(self.key_fields(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachePart:
    """The shards one builder extracts: shard ``i`` when ``i % count == index`` (the default, 0 of
    1, is every shard). Raises ConfigError unless ``0 <= index < count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"a cache part is r/N with 0 <= r < N, got {self.index}/{self.count}; "
                              "e.g. --shard 0/4 ... --shard 3/4 on four machines")

    @classmethod
    def parse(cls, text: str) -> "CachePart":
        """``"r/N"`` (``"2/8"``: the third of eight parts). Raises ConfigError for anything else."""
        index, sep, count = text.partition("/")
        try:
            if not sep:
                raise ValueError(text)
            index_n, count_n = int(index), int(count)
        except ValueError:
            raise ConfigError(f"--shard expects r/N, part r of N counted from 0 (e.g. 0/4), got {text!r}") from None
        return cls(index_n, count_n)

    def owns(self, shard: int) -> bool:
        return shard % self.count == self.index


def flow_layout_for(representation: str, flow: str) -> str:
    """The layout teacher flow is stored in (training and ``python -m training cache`` both ask here):
    that of the motion vectors, "accumulated" to the I-frame for accumulated inputs, else "frame"
    ("frame" also when there is no flow, so such caches keep their keys). Why: DMC-Net's generator
    refines the input MV through a shortcut and IP-TSN matches features of MV and flow, so the flow
    must be displacement from the same reference frame as the MVs the model sees."""
    return "accumulated" if flow != "none" and representation == "accumulated" else "frame"


def cache_key(spec: CacheSpec, fingerprint: str) -> str:
    """The cache folder's name: 12 hex digits of a hash of ``spec`` and the dataset ``fingerprint``."""
    payload = json.dumps({"spec": spec.key_fields(), "dataset": fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def list_clips(dataset_root: str | Path, splits=("train", "val", "test"),
               layout: str = "auto") -> tuple[Path, list[str], list[dict]]:
    """(resolved root, class names, clips) of ``splits`` of a dataset; each clip is
    ``{"path", "label", "split"}``. A split the dataset lacks or leaves empty is skipped.

    Raises ConfigError if the folder does not exist or holds no clip of ``splits``.
    """
    from training.datasets import open_dataset

    root = Path(dataset_root).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"dataset folder {root} {what}; give the folder that holds the videos (or generate "
                          f"the synthetic benchmark there: python -m training synth --preset small --out {root})")
    root = root.resolve()
    clips, classes, skipped = [], None, []
    for split in splits:
        try:
            ds = open_dataset(root, layout=layout, split=split)
        except EdgekitError as err:  # a split the dataset lacks or leaves empty (no val list, tiny sets)
            skipped.append(f"{split}: {err}")
            continue
        classes = classes or list(ds.classes)
        clips += [{"path": str(s.path), "label": s.label_index, "split": split} for s in ds]
    if not clips:
        raise ConfigError(f"no clips to cache in {root}: " + "; ".join(skipped))
    return root, classes, clips


def dataset_fingerprint(root: Path, classes: list[str], clips: list[dict]) -> str:
    """SHA-256 (hex) of what a cache was built from: the resolved ``root``, ``classes`` and, per clip,
    its path relative to ``root``, label, split, file size and modification time (stat only).

    Raises ConfigError if a listed video cannot be stat'ed."""
    digest = hashlib.sha256(json.dumps({"root": str(root), "classes": classes}).encode())
    for clip in clips:
        path = Path(clip["path"])
        try:
            stat = path.stat()
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from None
        relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        digest.update(json.dumps([relative, clip["label"], clip["split"], stat.st_size, stat.st_mtime_ns]).encode())
    return digest.hexdigest()


def cache_location(dataset_root: str | Path, out: str | Path, spec: CacheSpec, *,
                 splits=("train", "val", "test"), layout: str = "auto") -> Path:
    """Where the cache of this dataset (as it is now on disk) and ``spec`` lives under ``out``,
    built or not. Raises ConfigError for a missing or empty dataset."""
    root, classes, clips = list_clips(dataset_root, splits, layout)
    return Path(out) / cache_key(spec, dataset_fingerprint(root, classes, clips))


def _ground_truth_flow(video: Path):
    """(flow_px float32 (T, 2, h, w), stride) from a synthetic clip's ground truth, found beside the
    videos/ folder as flow/<class>/<clip>.npz."""
    from training.synth.groundtruth import load_ground_truth

    parts = video.parts
    if "videos" not in parts:
        raise ConfigError(f"--flow gt needs the synthetic layout (videos/<class>/<clip>): {video}")
    i = len(parts) - 1 - parts[::-1].index("videos")
    gt_path = Path(*parts[:i], "flow", *parts[i + 1:]).with_suffix(".npz")
    gt = load_ground_truth(gt_path)
    return gt.flow_px, gt.stride_px


def accumulate_flow(flow: np.ndarray, previous: np.ndarray, stride: int = 1) -> np.ndarray:
    """Flow of the current frame back to the GOP's I-frame: ``flow`` (2, h, w) float32 from the
    previous frame (edgekit's MV sign: p - q, in full-resolution pixels, on a grid of ``stride``
    pixels) composed with ``previous`` (2, h, w), the previous frame's flow to the I-frame:
    ``acc(p) = flow(p) + previous(p - flow(p))``, ``previous`` sampled bilinearly (edges clamped).
    This is how edgekit accumulates motion vectors, so both share one reference frame."""
    _, h, w = flow.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.clip(xs - flow[0] / stride, 0, w - 1)  # where the content was, in grid cells
    y = np.clip(ys - flow[1] / stride, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    sampled = (previous[:, y0, x0] * (1 - fx) * (1 - fy) + previous[:, y0, x1] * fx * (1 - fy)
               + previous[:, y1, x0] * (1 - fx) * fy + previous[:, y1, x1] * fx * fy)
    return (flow + sampled).astype(np.float32)


def extract_clip(path: str | Path, spec: CacheSpec) -> dict:
    """Side data of one clip, prepared at the cache size. Returns arrays and per-frame metadata."""
    n = spec.normalization
    hw = (spec.size, spec.size)
    teacher = None
    if spec.flow in FLOW_METHODS:
        from training.flow import make_teacher

        teacher = make_teacher(spec.flow)
    gt = _ground_truth_flow(Path(path)) if spec.flow == "gt" else None
    motion, iframes, flows, rgbs, kinds, gops, pts, index = [], [], [], [], [], [], [], []
    prev_rgb = None
    to_iframe = None  # accumulated layout: the previous frame's flow back to the I-frame
    # the runtime's reader settings: cell traces and residuals binned straight to the stored size
    with bs.open(path, accumulate=spec.representation == "accumulated", trace=spec.trace, residual_size=hw,
                 rgb="all" if teacher or spec.rgb else "iframes", max_vector=spec.max_vector or None,
                 min_gain=spec.min_gain or None) as reader:
        for f in reader:
            frame_hw = (f.height, f.width)  # the picture size may change mid-stream
            # the parts of edgekit.modality, prepared by the runtime's own function
            if f.kind == "I":
                iframes.append(pp.parts(f, frame_hw, hw, ("iframe",), n)["iframe"])
                to_iframe = None
            else:
                part = pp.parts(f, frame_hw, hw, ("mv", "residual"), n)
                motion.append(np.concatenate([part["mv"], part["residual"]]).astype(np.float16))
                kinds.append(f.kind)
                gops.append(len(iframes) - 1)
                pts.append(f.pts)
                index.append(f.index)
                if spec.rgb:
                    rgbs.append(pp.parts(f, frame_hw, hw, ("iframe",), n)["iframe"].astype(np.float16))
                raw = None  # (flow from the previous frame in pixels, its grid stride)
                if teacher is not None:
                    raw = teacher(prev_rgb, f.rgb), 1
                elif gt is not None:
                    flow_px, stride = gt
                    raw = flow_px[min(f.index, len(flow_px) - 1)].astype(np.float32), stride
                if raw is not None:
                    flow, stride = raw
                    if spec.flow_layout == "accumulated":
                        flow = flow if to_iframe is None or to_iframe.shape != flow.shape else \
                            accumulate_flow(flow, to_iframe, stride)
                        to_iframe = flow
                    flows.append(pp.parts(f, frame_hw, hw, ("flow",), n, flow=flow, flow_stride=stride)["flow"])
            if teacher is not None:
                prev_rgb = f.rgb
    if not motion or not iframes:
        raise EdgekitError(f"{path}: needs at least one I-frame and one P/B frame, got "
                           f"{len(iframes)} and {len(motion)}")
    keep = np.arange(len(motion))
    if spec.max_frames and len(motion) > spec.max_frames:
        edges = np.linspace(0, len(motion), spec.max_frames + 1)
        keep = np.floor((edges[:-1] + edges[1:]) / 2).astype(int)
    out = {
        "motion": np.stack([motion[i] for i in keep]),
        "iframe": np.stack(iframes).astype(np.float16),
        "kinds": "".join(kinds[i] for i in keep),
        "gop": [gops[i] for i in keep],
        "pts": [round(pts[i], 4) for i in keep],
        "frame_index": [index[i] for i in keep],
        "frame_hw": list(frame_hw),
    }
    if flows:
        out["flow"] = np.stack([flows[i] for i in keep]).astype(np.float16)
    if rgbs:
        out["rgb"] = np.stack([rgbs[i] for i in keep])
    return out


def _build_shard(args) -> tuple[int, int, list[str]]:
    """Worker: extract a shard's clips and write its files. Returns (shard, frames, failures)."""
    folder, shard, clips, spec_dict = args
    spec = CacheSpec(**spec_dict)
    folder = Path(folder)
    arrays = {"motion": [], "iframe": [], "flow": [], "rgb": []}
    entries, failures, offsets = [], [], {"motion": 0, "iframe": 0}
    for clip in clips:
        try:
            data = extract_clip(clip["path"], spec)
        except EdgekitError as err:
            failures.append(f"{clip['path']}: {err}")
            continue
        entries.append({**clip, "motion_offset": offsets["motion"], "motion_count": len(data["motion"]),
                        "iframe_offset": offsets["iframe"], "iframe_count": len(data["iframe"]),
                        "kinds": data["kinds"], "gop": data["gop"], "pts": data["pts"],
                        "frame_index": data["frame_index"], "frame_hw": data["frame_hw"]})
        offsets["motion"] += len(data["motion"])
        offsets["iframe"] += len(data["iframe"])
        for k in arrays:
            if k in data:
                arrays[k].append(data[k])
    stem = folder / f"shard-{shard:05d}"
    for k, parts in arrays.items():
        if parts:
            atomic_save_npy(f"{stem}.{k}.npy", np.concatenate(parts))
    atomic_write(f"{stem}.json", json.dumps({"shard": shard, "clips": entries, "failures": failures}))
    return shard, offsets["motion"], failures


def build_cache(dataset_root: str | Path, out: str | Path, spec: CacheSpec, *, splits=("train", "val", "test"),
                layout: str = "auto", workers: int | None = None, shard_clips: int = 16,
                progress: bool | None = None, part: CachePart = CachePart(), write_meta: bool = True) -> Path:
    """Build (or resume, or just find) the cache of ``splits`` of the dataset at ``dataset_root``.

    Returns the cache folder ``out/<cache_key(spec, dataset fingerprint)>``; a complete one is
    returned as it is. Clips that cannot be read are skipped and listed in their shard's JSON under
    "failures". ``part``: extract only that part's shards (the folder is complete once every part
    has run; check with ``is_complete``). ``write_meta``: write ``spec.json`` if it is missing
    (False for all but one of several processes building one folder at once). Raises ConfigError
    for a missing or empty dataset folder (or SourceError from the dataset reader), and if the
    folder was started with another ``shard_clips``.
    """
    from tqdm import tqdm

    from training.cache.index import is_complete, read_meta

    root, classes, clips = list_clips(dataset_root, splits, layout)
    fingerprint = dataset_fingerprint(root, classes, clips)
    key = cache_key(spec, fingerprint)
    folder = Path(out) / key
    old = read_meta(folder)
    if old is not None and old.get("shard_clips") != shard_clips:
        raise ConfigError(f"{folder} was started with {old.get('shard_clips')} clips per shard, not {shard_clips}; "
                          "pass that shard size or delete the folder")
    if old is not None and is_complete(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if old is None and write_meta:
        meta = {"spec": asdict(spec), "key": key, "spec_key": spec.key(), "classes": classes, "dataset": str(root),
                "dataset_fingerprint": fingerprint, "splits": list(splits), "shard_clips": shard_clips,
                "clips": len(clips)}
        atomic_write(folder / "spec.json", json.dumps(meta, indent=1))
    shards = [clips[i:i + shard_clips] for i in range(0, len(clips), shard_clips)]
    mine = [(i, s) for i, s in enumerate(shards) if part.owns(i)]
    todo = [(str(folder), i, s, asdict(spec)) for i, s in mine if not (folder / f"shard-{i:05d}.json").exists()]
    workers = workers or os.cpu_count() or 1
    total = sum(len(s) for _, s in mine)
    with tqdm(total=total, initial=total - sum(len(t[2]) for t in todo), unit="clip",
              desc="cache", disable=progress is False) as bar:
        if workers <= 1:
            for t in todo:
                _build_shard(t)
                bar.update(len(t[2]))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for (_, _, shard_clips_list, _), _result in zip(todo, pool.map(_build_shard, todo)):
                    bar.update(len(shard_clips_list))
    return folder
