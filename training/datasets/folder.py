"""Generic layout: one folder per class, any video files inside, split by a hash of the path.

Tree::

    root/<class>/<anything>.mp4|avi|mkv|mov|webm|...   (sub-folders inside a class are searched too)

Classes are the sorted names of the class folders that hold at least one video. A video goes to
train, val or test by the SHA-256 of its path relative to ``root``: deterministic, independent of
the other files (adding videos never moves existing ones to another split), and close to the
requested fractions on large folders (not exact per class on small ones).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from training.datasets.dataset import VIDEO_EXTENSIONS, VideoDataset, VideoSample, is_video_file


def split_by_hash(relative_path: str, train_fraction: float, val_fraction: float) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a POSIX relative path, by where its hash falls in [0, 1)."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < train_fraction:
        return "train"
    return "val" if position < train_fraction + val_fraction else "test"


def check_fractions(train_fraction: float, val_fraction: float) -> None:
    """Raises ConfigError unless 0 < train, 0 <= val and train + val <= 1."""
    if not (0.0 < train_fraction <= 1.0 and 0.0 <= val_fraction and train_fraction + val_fraction <= 1.0 + 1e-9):
        raise ConfigError(f"train_fraction={train_fraction} and val_fraction={val_fraction} must satisfy "
                          "0 < train, 0 <= val, train + val <= 1 (test gets the rest)")


def class_folders(root: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> dict[str, list[Path]]:
    """``{class: sorted video paths}`` for every visible sub-folder of ``root`` that holds videos."""
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        videos = sorted(p for p in folder.rglob("*") if is_video_file(p, extensions))
        if videos:
            found[folder.name] = videos
    return found


def read_folder(root: Path, split: str, train_fraction: float = 0.7, val_fraction: float = 0.1,
                extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> VideoDataset:
    """Read one split of a folder-per-class tree.

    Raises:
        ConfigError: bad fractions, or no sub-folder of ``root`` holds a video.
    """
    check_fractions(train_fraction, val_fraction)
    folders = class_folders(root, extensions)
    if not folders:
        raise ConfigError(f"{root} has no <class>/<video> folders (expected files ending in "
                          f"{', '.join(extensions)} inside one folder per class)")
    classes = tuple(folders)
    samples = tuple(
        VideoSample(path, label, name)
        for label, (name, paths) in enumerate(folders.items())
        for path in paths
        if split_by_hash(path.relative_to(root).as_posix(), train_fraction, val_fraction) == split
    )
    if not samples:
        raise SourceError(f"no video of {root} falls in split {split!r} with train_fraction={train_fraction}, "
                          f"val_fraction={val_fraction}; change the fractions")
    return VideoDataset(root, "folder", split, 1, classes, samples)
