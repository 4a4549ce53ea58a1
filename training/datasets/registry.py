"""``open_dataset``: one entry point over every layout, with layout detection.

Detection order (the first that matches wins): ``classInd.txt`` -> ``ucf101``;
``<class>_test_split1.txt`` files -> ``hmdb51``; CSV with Kinetics columns -> ``kinetics``;
folders of videos -> ``folder``.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ConfigError, SourceError
from training.datasets.dataset import SPLITS, VideoDataset
from training.datasets.folder import check_fractions, class_folders, read_folder
from training.datasets.hmdb51 import find_split_files, read_hmdb51
from training.datasets.kinetics import find_annotation_files, read_kinetics
from training.datasets.ucf101 import find_annotation_dir, read_ucf101

LAYOUTS = ("ucf101", "hmdb51", "kinetics", "folder")


def detect_layout(root: str | Path) -> str:
    """The layout of the tree at ``root`` (one of :data:`LAYOUTS`).

    Raises:
        SourceError: ``root`` is not a folder.
        ConfigError: no layout matches; the message lists what each layout needs.
    """
    root = _existing_folder(root)
    if find_annotation_dir(root) is not None:
        return "ucf101"
    if find_split_files(root, 1):
        return "hmdb51"
    if find_annotation_files(root):
        return "kinetics"
    if class_folders(root):
        return "folder"
    raise ConfigError(
        f"cannot tell the dataset layout of {root}: expected classInd.txt + trainlist01.txt (UCF-101), "
        "<class>_test_split1.txt files (HMDB-51), a CSV with columns label,youtube_id,time_start,time_end,split "
        "(Kinetics), or <class>/<video>.mp4 folders; pass layout= to get that layout's own error"
    )


def _existing_folder(root: str | Path) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise SourceError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise SourceError(f"dataset root {root} is a file; give the folder that holds the dataset")
    return root


def open_dataset(root: str | Path, layout: str = "auto", split: str = "train", fold: int = 1, *,
                 train_fraction: float = 0.7, val_fraction: float = 0.1) -> VideoDataset:
    """Open one split of a video classification dataset.

    Args:
        root: the dataset folder.
        layout: ``"auto"`` (detect), ``"ucf101"``, ``"hmdb51"``, ``"kinetics"`` or ``"folder"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        fold: the official split number of UCF-101 / HMDB-51 (1-3); must be 1 for the others.
        train_fraction, val_fraction: hash split of the ``folder`` layout (test gets the rest).

    Returns:
        A :class:`VideoDataset` of :class:`VideoSample` ``(path, label_index, label_name)``.

    Raises:
        SourceError: missing root, missing videos, an empty split.
        ConfigError: unknown layout or split, bad fold, a tree or file that does not match the layout.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose auto, {', '.join(LAYOUTS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1:
        raise ConfigError(f"fold must be a positive integer, got {fold!r}")
    root = _existing_folder(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout in ("kinetics", "folder") and fold != 1:
        raise ConfigError(f"the {layout} layout has a single split; fold must be 1, got {fold}")

    if layout == "ucf101":
        return read_ucf101(root, split, fold)
    if layout == "hmdb51":
        return read_hmdb51(root, split, fold)
    if layout == "kinetics":
        return read_kinetics(root, split)
    check_fractions(train_fraction, val_fraction)
    return read_folder(root, split, train_fraction, val_fraction)
