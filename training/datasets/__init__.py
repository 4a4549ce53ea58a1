"""Dataset readers: one small API over UCF-101, HMDB-51, Kinetics and folder-per-class trees.

    from training.datasets import open_dataset
    train = open_dataset("data/synth-small", split="train")      # layout detected: ucf101
    for sample in train:                                          # VideoSample(path, label_index, label_name)
        ...
    train.classes                                                 # ('move_left', 'move_right', ...)

Readers list files only; decoding is edgekit.bitstream's job. Paths are absolute. Bad trees raise
``edgekit.errors.ConfigError`` (wrong layout, malformed annotation) or ``SourceError`` (missing
folder or videos) with a message that says what was expected.
"""

from training.datasets.dataset import SPLITS, VIDEO_EXTENSIONS, VideoDataset, VideoSample
from training.datasets.registry import LAYOUTS, detect_layout, open_dataset

__all__ = ["LAYOUTS", "SPLITS", "VIDEO_EXTENSIONS", "VideoDataset", "VideoSample", "detect_layout", "open_dataset"]
