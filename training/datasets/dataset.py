"""The dataset surface every layout reader returns: a frozen, indexable list of labelled videos."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".3gp")


@dataclass(frozen=True)
class VideoSample:
    """One labelled video: absolute ``path``, ``label_index`` (0-based into the dataset's
    ``classes``) and ``label_name``."""

    path: Path
    label_index: int
    label_name: str


@dataclass(frozen=True)
class VideoDataset(Sequence):
    """The videos of one split of one dataset, in a deterministic order.

    ``classes`` are all class names of the dataset (every split has the same list, so label
    indices agree across splits); ``layout`` is ``"ucf101"``, ``"hmdb51"``, ``"kinetics"`` or
    ``"folder"``; ``missing`` lists annotated videos absent on disk that were skipped (Kinetics
    only: YouTube takedowns make every copy incomplete; the other layouts raise instead).
    """

    root: Path
    layout: str
    split: str
    fold: int
    classes: tuple[str, ...]
    samples: tuple[VideoSample, ...]
    missing: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]

    def __iter__(self) -> Iterator[VideoSample]:
        return iter(self.samples)

    def class_counts(self) -> dict[str, int]:
        """Videos per class name, for every class (0 where a class has none in this split)."""
        counts = Counter(s.label_name for s in self.samples)
        return {name: counts.get(name, 0) for name in self.classes}


def is_video_file(path: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> bool:
    """A visible regular file whose suffix (any case) is one of ``extensions``."""
    return path.suffix.lower() in extensions and not path.name.startswith(".") and path.is_file()


def require_present(samples: Sequence[VideoSample], what: str, hint: str = "") -> None:
    """Raise SourceError if any sample's video is missing on disk (``what`` names the list)."""
    from edgekit.errors import SourceError

    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise SourceError(f"{len(missing)} of {len(samples)} {what} are missing (first: {shown}){hint}")
