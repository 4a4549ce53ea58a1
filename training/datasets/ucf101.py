"""UCF-101 layout: ``classInd.txt`` and ``trainlistNN.txt`` / ``testlistNN.txt`` split files.

Accepted trees (the synthetic benchmark writes the first)::

    root/classInd.txt, trainlist01.txt, testlist01.txt[, vallist01.txt]   root/videos/<Class>/<clip>
    root/ucfTrainTestlist/classInd.txt, ...                                root/UCF-101/<Class>/<clip>

``classInd.txt`` lines are ``1 ApplyEyeMakeup`` (numbers from 1). Train and val lines are
``<Class>/<clip> <number>``; test lines are ``<Class>/<clip>`` and take the class from the folder
(matched case-insensitively, as UCF-101 itself spells some folders differently from classInd).
``vallistNN.txt`` is not part of UCF-101; it is read when present.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from training.datasets.dataset import VideoDataset, VideoSample, require_present

LIST_FILE = {"train": "trainlist{fold:02d}.txt", "val": "vallist{fold:02d}.txt", "test": "testlist{fold:02d}.txt"}
VIDEO_FOLDERS = ("videos", "UCF-101", "UCF101")


def find_annotation_dir(root: Path) -> Path | None:
    """The folder holding ``classInd.txt``: ``root``, ``root/ucfTrainTestlist`` or a direct subfolder."""
    candidates = [root, root / "ucfTrainTestlist"]
    candidates += sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return next((c for c in candidates if (c / "classInd.txt").is_file()), None)


def read_class_index(path: Path) -> tuple[str, ...]:
    """Class names in label order from a ``classInd.txt``.

    Raises:
        ConfigError: a line is not ``<number> <name>``, or the numbers are not 1..N without gaps.
    """
    numbered = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ConfigError(f"{path}:{line_no}: expected '<number> <class>' like '1 ApplyEyeMakeup', got {line!r}")
        if int(parts[0]) in numbered:
            raise ConfigError(f"{path}:{line_no}: class number {parts[0]} appears twice")
        numbered[int(parts[0])] = parts[1]
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise ConfigError(f"{path}: class numbers must run 1..N without gaps, got {sorted(numbered)[:10]}...")
    if not numbered:
        raise ConfigError(f"{path} lists no classes")
    return tuple(numbered[i] for i in range(1, len(numbered) + 1))


def _parse_list(path: Path, classes: tuple[str, ...]) -> list[tuple[str, int]]:
    by_lower = {name.lower(): i for i, name in enumerate(classes)}
    entries = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        relative = parts[0]
        if len(parts) == 2 and parts[1].isdigit():
            number = int(parts[1])
            if not 1 <= number <= len(classes):
                raise ConfigError(f"{path}:{line_no}: class number {number} is not in classInd.txt (1..{len(classes)})")
            label = number - 1
        elif len(parts) == 1 and "/" in relative:
            folder = relative.split("/", 1)[0].lower()
            if folder not in by_lower:
                raise ConfigError(f"{path}:{line_no}: folder {folder!r} of {relative!r} is not a class of classInd.txt")
            label = by_lower[folder]
        else:
            raise ConfigError(f"{path}:{line_no}: expected '<Class>/<clip> [<number>]', got {line!r}")
        entries.append((relative, label))
    return entries


def read_ucf101(root: Path, split: str, fold: int) -> VideoDataset:
    """Read one split of a UCF-101 style tree.

    Raises:
        ConfigError: no ``classInd.txt``, no list file for this split and fold, malformed lines.
        SourceError: listed videos are missing on disk.
    """
    annotations = find_annotation_dir(root)
    if annotations is None:
        raise ConfigError(f"{root} has no classInd.txt (UCF-101 layout expects root/classInd.txt or "
                          "root/ucfTrainTestlist/classInd.txt)")
    classes = read_class_index(annotations / "classInd.txt")
    list_path = annotations / LIST_FILE[split].format(fold=fold)
    if not list_path.is_file():
        present = sorted(p.name for p in annotations.glob("*list*.txt"))
        raise ConfigError(f"{list_path.name} not found in {annotations} (split {split!r}, fold {fold}); "
                          f"present: {', '.join(present) or 'none'}")
    entries = _parse_list(list_path, classes)
    if not entries:
        raise SourceError(f"{list_path} lists no videos")

    bases = [root / name for name in VIDEO_FOLDERS] + [root]
    first = entries[0][0]
    base = next((b for b in bases if (b / first).is_file()), None)
    if base is None:
        raise SourceError(f"cannot find {first} (first line of {list_path.name}); expected it under "
                          f"{root}/videos/, {root}/UCF-101/ or {root}/")
    samples = tuple(VideoSample(base / relative, label, classes[label]) for relative, label in entries)
    require_present(samples, f"videos listed in {list_path.name}", "; restore them or fix the list")
    return VideoDataset(root, "ucf101", split, fold, classes, samples)
