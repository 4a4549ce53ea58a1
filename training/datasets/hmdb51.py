"""HMDB-51 layout: one split file per class and fold, videos in class folders.

Tree::

    root/testTrainMulti_7030_splits/<class>_test_split<N>.txt   (or directly in root)
    root/<class>/<video>.avi                                    (or root/hmdb51_org/<class>/...)

Split-file lines are ``<video>.avi <id>``: 1 = train, 2 = test, 0 = unused. HMDB-51 defines no
validation split. Classes are numbered in sorted order of their names.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from training.datasets.dataset import VideoDataset, VideoSample, require_present

SPLIT_ID = {"train": 1, "test": 2}
SPLIT_FOLDERS = ("testTrainMulti_7030_splits", "splits", "test_train_splits")
VIDEO_FOLDERS = ("", "hmdb51_org", "hmdb51", "videos")


def find_split_files(root: Path, fold: int) -> dict[str, Path]:
    """``{class name: split file}`` for fold ``fold``, from the first folder that has any."""
    pattern = re.compile(rf"^(.+)_test_split{fold}\.txt$")
    folders = [root] + [root / f for f in SPLIT_FOLDERS]
    folders += sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in folders:
        if folder.is_dir():
            found = {m.group(1): p for p in folder.iterdir() if (m := pattern.match(p.name))}
            if found:
                return dict(sorted(found.items()))
    return {}


def read_hmdb51(root: Path, split: str, fold: int) -> VideoDataset:
    """Read one split of an HMDB-51 style tree.

    Raises:
        ConfigError: ``split="val"``, no split files for this fold, malformed lines.
        SourceError: videos marked for this split are missing on disk.
    """
    if split not in SPLIT_ID:
        raise ConfigError("HMDB-51 defines no validation split; use split='train' or 'test' "
                          "(or hold out part of train yourself)")
    split_files = find_split_files(root, fold)
    if not split_files:
        raise ConfigError(f"{root} has no <class>_test_split{fold}.txt files (HMDB-51 layout expects them in "
                          f"root/ or root/testTrainMulti_7030_splits/)")
    classes = tuple(split_files)
    wanted = SPLIT_ID[split]
    entries: list[tuple[str, str, int]] = []
    for label, (name, path) in enumerate(split_files.items()):
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ConfigError(f"{path}:{line_no}: expected '<video> <0|1|2>' (1 train, 2 test, 0 unused), got {line!r}")
            if int(parts[1]) == wanted:
                entries.append((name, parts[0], label))
    if not entries:
        raise SourceError(f"the HMDB-51 split files of fold {fold} mark no video for {split!r}")

    first_class, first_video, _ = entries[0]
    base = next((root / f for f in VIDEO_FOLDERS if (root / f / first_class / first_video).is_file()), None)
    if base is None:
        raise SourceError(f"cannot find {first_class}/{first_video}; expected it under {root}/<class>/ "
                          f"or {root}/hmdb51_org/<class>/")
    samples = tuple(VideoSample(base / name / video, label, classes[label]) for name, video, label in entries)
    require_present(samples, f"{split} videos of HMDB-51 fold {fold}")
    return VideoDataset(root, "hmdb51", split, fold, classes, samples)
