"""Train/val/test assignment of the synthetic clips and the UCF-101 style list files.

Every class gets the same split sizes (about 70/10/20 %, at least one val and one test clip when a
class has three or more): clips of a class are i.i.d. draws, so the first ``n_train`` clip numbers
go to train, the next ``n_val`` to val, the rest to test. Deterministic and class-balanced.

Files (UCF-101 conventions, label numbers from 1):

- ``classInd.txt``     ``1 move_left``
- ``trainlist01.txt``  ``move_left/move_left_00000.mp4 1``
- ``vallist01.txt``    ``move_left/move_left_00070.mp4 1`` (not in UCF-101; same format as train)
- ``testlist01.txt``   ``move_left/move_left_00080.mp4``  (no label, as in UCF-101)
"""

from __future__ import annotations

from pathlib import Path

from edgekit._fileio import atomic_write

SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


def split_sizes(clips_per_class: int) -> dict[str, int]:
    """Clips per class in each split, e.g. ``{"train": 70, "val": 10, "test": 20}`` for 100."""
    n = clips_per_class
    if n < 3:
        return {"train": n, "val": 0, "test": 0}
    n_val = max(1, int(n * VAL_FRACTION + 0.5))
    n_test = max(1, int(n * TEST_FRACTION + 0.5))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def split_of(clip_number: int, clips_per_class: int) -> str:
    """The split of the ``clip_number``-th clip (from 0) of a class."""
    sizes = split_sizes(clips_per_class)
    if clip_number < sizes["train"]:
        return "train"
    return "val" if clip_number < sizes["train"] + sizes["val"] else "test"


def write_ucf_lists(out_dir: Path, class_names: tuple[str, ...], clips: list[tuple[str, str, str]]) -> None:
    """Write classInd.txt and the three list files atomically.

    ``clips`` are ``(relative_video_path, label, split)`` in the order to list them.
    """
    number = {name: i for i, name in enumerate(class_names, start=1)}
    atomic_write(out_dir / "classInd.txt", "".join(f"{i} {name}\n" for name, i in number.items()))
    lines = {split: [] for split in SPLITS}
    for relative, label, split in clips:
        lines[split].append(f"{relative}\n" if split == "test" else f"{relative} {number[label]}\n")
    for split in SPLITS:
        atomic_write(out_dir / f"{split}list01.txt", "".join(lines[split]))
