"""Dataset readers on small trees of real encoded clips (UCF-101, HMDB-51, Kinetics, folder-per-class)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from edgekit.bitstream.encode import EncoderSettings, add_video_stream
from edgekit.errors import ConfigError, SourceError
from training.datasets import VideoSample, detect_layout, open_dataset

CLIP_FRAMES = 4


def _encode(container_format: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = add_video_stream(container, EncoderSettings("mpeg4"), 32, 32, 25)
        for t in range(CLIP_FRAMES):
            rgb = np.full((32, 32, 3), 40 * t, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clip_bytes() -> dict[str, bytes]:
    """Real MPEG-4 Part 2 clips in three containers, written under many names by the tests."""
    return {".avi": _encode("avi"), ".mp4": _encode("mp4"), ".mkv": _encode("matroska")}


def _put(path: Path, clip_bytes: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(clip_bytes[path.suffix])
    return path


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---------------------------------------------------------------- UCF-101


def _ucf_tree(root: Path, clip_bytes) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 HandstandPushups\n")
    train, test = [], []
    for name in ("ApplyEyeMakeup", "Archery", "HandstandPushups"):
        for g in (1, 2, 3):
            relative = f"{name}/v_{name}_g{g:02d}_c01.avi"
            _put(root / "UCF-101" / relative, clip_bytes)
            (test if g == 1 else train).append(relative)
    number = {"ApplyEyeMakeup": 1, "Archery": 2, "HandstandPushups": 3}
    (lists / "trainlist01.txt").write_text("".join(f"{r} {number[r.split('/')[0]]}\r\n" for r in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\r\n" for r in test))
    (lists / "trainlist02.txt").write_text("".join(f"{r} {number[r.split('/')[0]]}\n" for r in test))
    return root


def test_ucf101_reads_train_and_test_with_zero_based_labels(tmp_path, clip_bytes):
    root = _ucf_tree(tmp_path / "ucf", clip_bytes)
    train = open_dataset(root, layout="ucf101", split="train")
    test = open_dataset(root, split="test")  # detected
    assert train.layout == test.layout == "ucf101"
    assert train.classes == ("ApplyEyeMakeup", "Archery", "HandstandPushups")
    assert len(train) == 6 and len(test) == 3
    assert train[0] == VideoSample(root.resolve() / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi", 0, "ApplyEyeMakeup")
    assert [s.label_index for s in test] == [0, 1, 2]  # test lines carry no number: class from the folder
    assert train.class_counts() == {"ApplyEyeMakeup": 2, "Archery": 2, "HandstandPushups": 2}
    assert _frame_count(test[2].path) == CLIP_FRAMES


def test_ucf101_fold_selects_the_list_file(tmp_path, clip_bytes):
    root = _ucf_tree(tmp_path / "ucf", clip_bytes)
    fold2 = open_dataset(root, split="train", fold=2)
    assert [s.path.name for s in fold2] == [f"v_{c}_g01_c01.avi" for c in fold2.classes]


def test_ucf101_without_val_list_names_the_missing_file(tmp_path, clip_bytes):
    root = _ucf_tree(tmp_path / "ucf", clip_bytes)
    with pytest.raises(ConfigError, match="vallist01.txt not found"):
        open_dataset(root, split="val")


def test_ucf101_missing_video_is_a_source_error(tmp_path, clip_bytes):
    root = _ucf_tree(tmp_path / "ucf", clip_bytes)
    (root / "UCF-101/Archery/v_Archery_g03_c01.avi").unlink()
    with pytest.raises(SourceError, match="1 of 6 videos listed in trainlist01.txt are missing"):
        open_dataset(root, split="train")


def test_ucf101_malformed_class_index_names_the_line(tmp_path, clip_bytes):
    root = _ucf_tree(tmp_path / "ucf", clip_bytes)
    (root / "ucfTrainTestlist/classInd.txt").write_text("1 ApplyEyeMakeup\nArchery\n")
    with pytest.raises(ConfigError, match=r"classInd.txt:2: expected '<number> <class>'"):
        open_dataset(root, layout="ucf101")


# ---------------------------------------------------------------- HMDB-51


def _hmdb_tree(root: Path, clip_bytes) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name in ("brush_hair", "cartwheel"):
        lines = []
        for i, split_id in enumerate((1, 1, 2, 0)):
            video = f"{name}_clip_{i}.avi"
            _put(root / name / video, clip_bytes)
            lines.append(f"{video} {split_id} \n")  # HMDB files have a trailing space
        (splits / f"{name}_test_split1.txt").write_text("".join(lines))
    return root


def test_hmdb51_splits_by_id_and_skips_unused(tmp_path, clip_bytes):
    root = _hmdb_tree(tmp_path / "hmdb", clip_bytes)
    assert detect_layout(root) == "hmdb51"
    train = open_dataset(root, split="train")
    test = open_dataset(root, split="test")
    assert train.classes == ("brush_hair", "cartwheel")
    assert [s.path.name for s in train] == ["brush_hair_clip_0.avi", "brush_hair_clip_1.avi",
                                            "cartwheel_clip_0.avi", "cartwheel_clip_1.avi"]
    assert [(s.path.name, s.label_index) for s in test] == [("brush_hair_clip_2.avi", 0), ("cartwheel_clip_2.avi", 1)]
    assert _frame_count(test[1].path) == CLIP_FRAMES


def test_hmdb51_has_no_val_split_and_rejects_bad_ids(tmp_path, clip_bytes):
    root = _hmdb_tree(tmp_path / "hmdb", clip_bytes)
    with pytest.raises(ConfigError, match="no validation split"):
        open_dataset(root, layout="hmdb51", split="val")
    with pytest.raises(ConfigError, match="_test_split2.txt"):
        open_dataset(root, layout="hmdb51", fold=2)
    (root / "testTrainMulti_7030_splits/cartwheel_test_split1.txt").write_text("cartwheel_clip_0.avi 3\n")
    with pytest.raises(ConfigError, match=r"cartwheel_test_split1.txt:1: expected '<video> <0\|1\|2>'"):
        open_dataset(root, layout="hmdb51")


# ---------------------------------------------------------------- Kinetics


def _kinetics_tree(root: Path, clip_bytes) -> Path:
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    (annotations / "train.csv").write_text(header + "".join([
        "abseiling,aaaaaaaaaaa,10,20,train,0\n",
        "abseiling,bbbbbbbbbbb,0,10,train,0\n",
        "air drumming,ccccccccccc,84,94,train,0\n",
        "air drumming,ddddddddddd,5,15,train,0\n",  # never downloaded
    ]))
    (annotations / "validate.csv").write_text(header + "air drumming,eeeeeeeeeee,30,40,validate,0\n")
    _put(root / "train/abseiling/aaaaaaaaaaa_000010_000020.mp4", clip_bytes)
    _put(root / "train/abseiling/bbbbbbbbbbb_000000_000010.mp4", clip_bytes)
    _put(root / "train/air drumming/ccccccccccc_000084_000094.mp4", clip_bytes)
    _put(root / "val/air_drumming/eeeeeeeeeee_000030_000040.mp4", clip_bytes)  # other spellings on disk
    return root


def test_kinetics_reads_csv_names_and_reports_missing(tmp_path, clip_bytes):
    root = _kinetics_tree(tmp_path / "k400", clip_bytes)
    assert detect_layout(root) == "kinetics"
    train = open_dataset(root, split="train")
    assert train.classes == ("abseiling", "air drumming")
    assert [(s.path.name, s.label_index) for s in train] == [
        ("aaaaaaaaaaa_000010_000020.mp4", 0), ("bbbbbbbbbbb_000000_000010.mp4", 0), ("ccccccccccc_000084_000094.mp4", 1)]
    assert [p.name for p in train.missing] == ["ddddddddddd_000005_000015.mp4"]
    val = open_dataset(root, split="val")
    assert [(s.path.parent.name, s.label_name) for s in val] == [("air_drumming", "air drumming")]
    assert _frame_count(val[0].path) == CLIP_FRAMES


def test_kinetics_bad_rows_and_absent_split_folder(tmp_path, clip_bytes):
    root = _kinetics_tree(tmp_path / "k400", clip_bytes)
    with pytest.raises(SourceError, match="no labelled rows for split 'test'"):
        open_dataset(root, split="test")
    (root / "annotations/validate.csv").write_text("label,youtube_id,time_start,time_end,split\nx,y,1,2,holdout\n")
    with pytest.raises(ConfigError, match=r"validate.csv:2: split 'holdout'"):
        open_dataset(root, layout="kinetics")
    with pytest.raises(ConfigError, match="single split; fold must be 1"):
        open_dataset(root, layout="kinetics", fold=2)


# ---------------------------------------------------------------- folder per class


def _folder_tree(root: Path, clip_bytes, per_class: int = 30) -> Path:
    for name in ("cats", "dogs"):
        for i in range(per_class):
            _put(root / name / f"{name}_{i:03d}{('.mp4', '.avi', '.mkv')[i % 3]}", clip_bytes)
        (root / name / "notes.txt").write_text("not a video")
        _put(root / name / f".hidden_{name}.mp4", clip_bytes)
    (root / "empty_class").mkdir()
    return root


def test_folder_split_is_deterministic_disjoint_and_complete(tmp_path, clip_bytes):
    root = _folder_tree(tmp_path / "clips", clip_bytes)
    assert detect_layout(root) == "folder"
    splits = {s: open_dataset(root, split=s, train_fraction=0.6, val_fraction=0.2) for s in ("train", "val", "test")}
    paths = {s: {x.path for x in d} for s, d in splits.items()}
    assert splits["train"].classes == ("cats", "dogs")  # empty_class has no video
    assert not (paths["train"] & paths["val"]) and not (paths["train"] & paths["test"]) and not (paths["val"] & paths["test"])
    assert sum(len(p) for p in paths.values()) == 60  # .txt and hidden files ignored
    assert 24 <= len(paths["train"]) <= 48
    assert open_dataset(root, split="train", train_fraction=0.6, val_fraction=0.2) == splits["train"]
    assert _frame_count(splits["test"][0].path) == CLIP_FRAMES


def test_folder_adding_videos_never_moves_existing_ones(tmp_path, clip_bytes):
    root = _folder_tree(tmp_path / "clips", clip_bytes, per_class=10)
    before = {s.path for s in open_dataset(root, layout="folder", split="test")}
    for i in range(10, 20):
        _put(root / "cats" / f"cats_{i:03d}.mp4", clip_bytes)
    after = {s.path for s in open_dataset(root, layout="folder", split="test")}
    assert before <= after


def test_folder_rejects_bad_fractions(tmp_path, clip_bytes):
    root = _folder_tree(tmp_path / "clips", clip_bytes, per_class=3)
    with pytest.raises(ConfigError, match="train_fraction=0.9 and val_fraction=0.3"):
        open_dataset(root, split="train", train_fraction=0.9, val_fraction=0.3)


# ---------------------------------------------------------------- detection and arguments


def test_unknown_tree_root_and_arguments_raise_typed_errors(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here")
    with pytest.raises(ConfigError, match="cannot tell the dataset layout"):
        open_dataset(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(SourceError, match="is a file"):
        open_dataset(tmp_path / "README.txt")
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        open_dataset(tmp_path, split="training")
    with pytest.raises(ConfigError, match="unknown layout 'something-v2'"):
        open_dataset(tmp_path, layout="something-v2")
    with pytest.raises(ConfigError, match="no classInd.txt"):
        open_dataset(tmp_path, layout="ucf101")
