"""Kinetics layout: CSV annotations and videos named after their YouTube id and time span.

Tree::

    root/annotations/{train,validate,test}.csv   (or CSV files directly in root)
    root/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4

CSV columns (others are ignored): ``label,youtube_id,time_start,time_end,split``. Split values
``train``, ``val``/``validate``, ``test``; the split folder may use either spelling, and label folders
may replace spaces by underscores. Classes are the sorted labels of all CSV files. Videos listed but
absent on disk are skipped and reported in ``VideoDataset.missing`` (every Kinetics copy lacks some).
"""

from __future__ import annotations

import csv
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from training.datasets.dataset import VIDEO_EXTENSIONS, VideoDataset, VideoSample

REQUIRED_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
SPLIT_NAMES = {
    "train": ("train", "training"),
    "val": ("val", "validate", "valid", "validation"),
    "test": ("test", "testing"),
}


def find_annotation_files(root: Path) -> list[Path]:
    """CSV files in ``root`` or ``root/annotations`` whose header has all :data:`REQUIRED_COLUMNS`."""
    found = []
    for folder in (root, root / "annotations"):
        for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
            with open(path, newline="", encoding="utf-8") as file:
                header = next(csv.reader(file), [])
            if all(column in header for column in REQUIRED_COLUMNS):
                found.append(path)
    return found


def clip_file_stem(youtube_id: str, time_start_s: int, time_end_s: int) -> str:
    """The Kinetics file name without extension, e.g. ``---QUuC4vJs_000084_000094``."""
    return f"{youtube_id}_{time_start_s:06d}_{time_end_s:06d}"


def _rows(paths: list[Path]):
    for path in paths:
        with open(path, newline="", encoding="utf-8") as file:
            for row_no, row in enumerate(csv.DictReader(file), start=2):
                yield path, row_no, row


def _find_video(folder: Path, stem: str) -> Path | None:
    for extension in VIDEO_EXTENSIONS:  # .mp4 first, then what downloaders sometimes keep
        candidate = folder / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    return None


def read_kinetics(root: Path, split: str) -> VideoDataset:
    """Read one split of a Kinetics style tree.

    Raises:
        ConfigError: no CSV with the required columns, a row with a bad split or time value.
        SourceError: none of the split's videos is on disk.
    """
    paths = find_annotation_files(root)
    if not paths:
        raise ConfigError(f"{root} has no Kinetics CSV (expected root/annotations/*.csv or root/*.csv with "
                          f"columns {','.join(REQUIRED_COLUMNS)})")
    canonical = {alias: name for name, aliases in SPLIT_NAMES.items() for alias in aliases}
    labels, wanted = set(), []
    for path, row_no, row in _rows(paths):
        label = (row["label"] or "").strip()
        row_split = (row["split"] or "").strip().lower()
        if row_split not in canonical:
            raise ConfigError(f"{path}:{row_no}: split {row['split']!r} is not one of train, val/validate, test")
        if label:
            labels.add(label)
        if canonical[row_split] == split and label:  # unlabelled test rows cannot be used for training or eval
            try:
                span = int(float(row["time_start"])), int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise ConfigError(f"{path}:{row_no}: time_start/time_end must be seconds, got "
                                  f"{row['time_start']!r}, {row['time_end']!r}") from None
            wanted.append((label, row["youtube_id"].strip(), span, row_split))
    if not wanted:
        raise SourceError(f"the Kinetics CSVs in {root} have no labelled rows for split {split!r}")
    classes = tuple(sorted(labels))
    index = {name: i for i, name in enumerate(classes)}

    split_dirs = [root / name for name in dict.fromkeys([*(w[3] for w in wanted[:1]), *SPLIT_NAMES[split]])]
    split_dir = next((d for d in split_dirs if d.is_dir()), None)
    if split_dir is None:
        raise SourceError(f"no folder for split {split!r} in {root}; expected one of "
                          f"{', '.join(d.name for d in split_dirs)} holding <label>/<youtube_id>_<start>_<end>.mp4")
    label_dirs: dict[str, Path] = {}
    samples, missing = [], []
    for label, youtube_id, (start, end), _ in wanted:
        if label not in label_dirs:
            options = [split_dir / label, split_dir / label.replace(" ", "_")]
            label_dirs[label] = next((d for d in options if d.is_dir()), options[0])
        stem = clip_file_stem(youtube_id, start, end)
        path = _find_video(label_dirs[label], stem)
        if path is None:
            missing.append(label_dirs[label] / f"{stem}.mp4")
        else:
            samples.append(VideoSample(path, index[label], label))
    if not samples:
        raise SourceError(f"none of the {len(wanted)} {split} videos of the Kinetics CSV is under {split_dir}")
    return VideoDataset(root, "kinetics", split, 1, classes, tuple(samples), tuple(missing))
