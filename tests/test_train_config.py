"""The typed training config: defaults <- TOML <- --set, unknown names refused with a suggestion,
bad values refused in one line. No torch needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import ConfigError
from training.config import TrainConfig, differences, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_then_file_then_overrides():
    cfg = load_config(REPO / "training/configs/edge-mvr.toml", ["train.epochs=3", "train.out=runs/quick",
                                                                "model.size=64", "train.lr=1e-3"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 1e-3 and cfg.train.out == Path("runs/quick")
    assert cfg.model.name == "edge-mvr" and dict(cfg.model.kwargs) == {"segments": 3, "size": 64, "temporal_shift": True}
    assert cfg.train.batch_size == 32 and cfg.data.dataset == Path("data/synth-broad-motion")  # from the file
    assert cfg.train.threads == 0  # not in the file: the default
    assert load_config(None).train == TrainConfig().train


def test_a_bundled_config_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("edge-mvr") == load_config(REPO / "training/configs/edge-mvr.toml")
    assert load_config("edge-mvr.toml").train.epochs == 30 and load_config("edge-mvr").augment.hflip == 0.5
    assert load_config("edge-mvr").stage.init_from == "runs/edge-mvr-standard/best.json"
    with pytest.raises(ConfigError, match=r"^no config file edge-mrv; bundled configs: .*\bedge-flow, edge-mv, edge-mv-ref, edge-mv-ref-distil, edge-mv-standard, edge-mvr, edge-mvr-i, edge-mvr-standard, "):
        load_config("edge-mrv")


def test_flow_cells_needs_flow_and_is_left_out_of_the_saved_config_at_zero():
    assert "flow_cells" not in load_config("edge-flow").to_dict()["data"]  # older runs resume unchanged
    assert load_config("edge-flow", ["data.flow_cells=8"]).to_dict()["data"]["flow_cells"] == 8
    with pytest.raises(ConfigError, match="data.flow_cells averages the teacher flow, and data.flow is 'none'"):
        load_config("edge-mv-ref", ["data.flow_cells=8"])


def test_a_misspelt_key_is_refused_with_the_closest_name():
    with pytest.raises(ConfigError, match=r"^unknown key 'train.epoch'; did you mean 'train.epochs'\?$"):
        load_config(None, ["train.epoch=1"])
    with pytest.raises(ConfigError, match="unknown section 'trian'; did you mean 'train'"):
        load_config(None, ["trian.epochs=1"])


def test_a_misspelt_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[data]\ndatset = "x"\n')
    with pytest.raises(ConfigError, match=r"run.toml: unknown key 'data.datset'; did you mean 'data.dataset'"):
        load_config(path)


@pytest.mark.parametrize("override,message", [
    ("train.epochs=three", "train.epochs must be an integer, got 'three'"),
    ("train.epochs=0", "train.epochs must be >= 1, got 0"),
    ("train.lr=0", "train.lr must be > 0.0, got 0.0"),
    ("train.batch_size=2.5", "train.batch_size must be an integer, got 2.5"),
    ("train.optimizer=adam", "train.optimizer must be one of adamw, sgd, got 'adam'"),
    ("train.device=gpu", "train.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("train.label_smoothing=1", "train.label_smoothing must be < 1.0, got 1.0"),
    ("data.flow=raft", "data.flow must be one of none, gt, tvl1, farneback, dis, dis-ultrafast, got 'raft'"),
    ("train.epochs", "--set expects section.key=value, got 'train.epochs'"),
    ("augment.hflip=1.5", "augment.hflip must be <= 1.0, got 1.5"),
    ("augment.residual_dropout=-0.1", "augment.residual_dropout must be >= 0.0, got -0.1"),
    ("augment.crop_scale=0.8", "augment.crop_scale must be two numbers [low, high], got 0.8"),
    ("augment.crop_scale=[0, 1]", "augment.crop_scale must be > 0.0, got 0.0"),
    ("augment.crop_scale=[0.9, 1.2]", "augment.crop_scale must be <= 1.0, got 1.2"),
    ("augment.clip_stride_max=0", "augment.clip_stride_max must be >= 1, got 0"),
    ("augment.hflip_labels=[1]", 'augment.hflip_labels must be a table of class names, {class = "mirrored class", '
                                 "...}, got [1]"),
])
def test_bad_values_give_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_strings_and_paths_take_unquoted_text():
    cfg = load_config(None, ["train.device=cuda:1", "train.out=2024", "data.cache='my cache'"])
    assert cfg.train.device == "cuda:1" and cfg.train.out == Path("2024") and cfg.data.cache == Path("my cache")


def test_the_config_is_frozen_and_round_trips_through_its_dict():
    cfg = load_config(None, ["model.weights=[1, 2]", "train.warmup_epochs=2"])
    with pytest.raises(AttributeError):
        cfg.train.epochs = 5
    with pytest.raises(TypeError):
        cfg.model.kwargs["size"] = 1
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.with_overrides("train.epochs=4").train.epochs == 4 and cfg.train.epochs == 10
    assert cfg.to_dict()["train"]["out"] == "runs/edge-mvr" and cfg.train.warmup_epochs == 2.0


def test_differences_name_the_changed_keys():
    a = TrainConfig().to_dict()
    b = load_config(None, ["train.epochs=3", "model.size=64", "data.workers=0"]).to_dict()
    assert differences(a, b) == ["data.workers", "model.size", "train.epochs"]
    assert differences(a, b, ignore=["data.workers"]) == ["model.size", "train.epochs"]


def test_augmentation_is_off_by_default_and_only_an_augmented_config_stores_it(tmp_path):
    assert "augment" not in TrainConfig().to_dict()  # checkpoints of runs without it are unchanged
    assert "augment" not in load_config(None, ["augment.hflip=0", "augment.crop_scale=[1, 1]"]).to_dict()
    path = tmp_path / "run.toml"
    path.write_text('[augment]\nhflip = 0.5\ncrop_scale = [0.8, 1.0]\nhflip_labels = { a = "b", b = "a" }\n')
    cfg = load_config(path)
    assert cfg.augment.crop_scale == (0.8, 1.0) and cfg.augment.mv_noise_px == 0.0
    assert cfg.to_dict()["augment"]["hflip_labels"] == {"a": "b", "b": "a"}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert differences(TrainConfig().to_dict(), cfg.to_dict()) == ["augment.crop_scale", "augment.hflip",
                                                                   "augment.hflip_labels"]
    with pytest.raises(ConfigError, match=r"run.toml: unknown key 'augment.crop'; did you mean 'augment.crop_scale'"):
        path.write_text("[augment]\ncrop = [0.8, 1.0]\n")
        load_config(path)


def test_train_help_and_config_errors_never_import_torch():
    code = ("import sys, argparse\n"
            "from training import train\n"
            "p = argparse.ArgumentParser(); train.add_arguments(p); p.format_help()\n"
            "from edgekit.errors import ConfigError\n"
            "try:\n    train.run(p.parse_args(['--set', 'train.epoch=1']))\n"
            "except ConfigError as err:\n    print(err)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "did you mean 'train.epochs'" in done.stdout
