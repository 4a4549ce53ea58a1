"""Training never trains on the wrong data and never loses a run: real tiny synthetic datasets,
a real cache, one-epoch runs of the edge model at 32x32 on the CPU."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from edgekit.errors import ConfigError
from training.cache import cache_statistics, load_index
from training.config import load_config
from training.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _synth(out, clips_per_class: int, seed: int):
    from training.__main__ import main

    assert main(["synth", "--preset", "tiny", "--clips-per-class", str(clips_per_class), "--size", "64x48",
                 "--frames", "12", "--seed", str(seed), "--workers", "1", "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return _synth(root / "a", 3, 0), _synth(root / "b", 4, 1)


def _cfg(dataset, cache, out, *extra):
    return load_config(None, [f"data.dataset='{dataset}'", f"data.cache='{cache}'", f"train.out='{out}'",
                              "data.workers=0", "model.size=32", "train.epochs=1", "train.batch_size=8",
                              "train.max_steps_per_epoch=2", *extra])


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


class Interrupted(Exception):
    pass


def _stop_after_first_epoch(line: str) -> None:
    if line.startswith("epoch 1/"):
        raise Interrupted(line)


def test_two_datasets_with_one_cache_root_each_train_on_their_own_clips(datasets, tmp_path):
    runs = {}
    for dataset in datasets:
        summary = train(_cfg(dataset, tmp_path / "cache", tmp_path / dataset.name), progress=False, log=None)
        runs[dataset] = summary["cache"]
        meta = json.loads((tmp_path / dataset.name / "last.json").read_text())
        assert meta["cache"] == summary["cache"]
    (a, cache_a), (b, cache_b) = runs.items()
    assert cache_a != cache_b
    assert {os.path.dirname(p) for p in (cache_a, cache_b)} == {str(tmp_path / "cache")}
    for dataset, cache in runs.items():
        assert all(c["path"].startswith(str(dataset.resolve())) for c in load_index(cache, "train"))
    assert cache_statistics(cache_a).clips == {"train": 17, "val": 17, "test": 17}
    assert cache_statistics(cache_b).clips == {"train": 34, "val": 17, "test": 17}


def test_a_missing_dataset_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset folder .*nowhere does not exist"):
        train(_cfg(tmp_path / "nowhere", tmp_path / "cache", tmp_path / "run"), progress=False, log=None)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_a_folder_holding_a_run_is_refused_then_overwritten_only_when_asked(datasets, tmp_path):
    dataset, out = datasets[0], tmp_path / "run"
    cfg = _cfg(dataset, tmp_path / "cache", out)
    train(cfg, progress=False, log=None)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="holds a previous run .*--resume.*--overwrite"):
        train(cfg, progress=False, log=None)
    assert (out / "metrics.jsonl").read_text() == before  # nothing appended, nothing lost
    train(cfg, overwrite=True, progress=False, log=None)
    assert [r["epoch"] for r in _metrics(out)] == [1]  # a fresh metrics file, not the old one continued
    assert (out / "best.json").exists() and (out / "last.safetensors").exists()


def test_an_interrupted_run_resumes_where_it_stopped(datasets, tmp_path):
    cfg = _cfg(datasets[0], tmp_path / "cache", tmp_path / "run", "train.epochs=2")
    with pytest.raises(Interrupted):
        train(cfg, progress=False, log=_stop_after_first_epoch)
    assert [r["epoch"] for r in _metrics(tmp_path / "run")] == [1]
    summary = train(cfg, resume=True, progress=False, log=None)
    assert summary["epochs"] == 2 and [r["epoch"] for r in _metrics(tmp_path / "run")] == [1, 2]
    assert json.loads((tmp_path / "run" / "last.json").read_text())["epoch"] == 1  # 0-based: the second epoch


def test_resume_refuses_another_config_unless_forced(datasets, tmp_path):
    out = tmp_path / "run"
    train(_cfg(datasets[0], tmp_path / "cache", out), progress=False, log=None)
    changed = _cfg(datasets[0], tmp_path / "cache", out, "train.epochs=2", "train.lr=0.01", "data.workers=1")
    with pytest.raises(ConfigError, match=r"another config \(train\.epochs: 1 -> 2; train\.lr: 0\.002 -> 0\.01\)"):
        train(changed, resume=True, progress=False, log=None)
    assert [r["epoch"] for r in _metrics(out)] == [1]
    summary = train(changed, resume=True, force_resume=True, progress=False, log=None)
    assert summary["epochs"] == 2 and [r["epoch"] for r in _metrics(out)] == [1, 2]


def test_resume_refuses_a_dataset_whose_content_changed(datasets, tmp_path):
    dataset = shutil.copytree(datasets[0], tmp_path / "data")
    cfg = _cfg(dataset, tmp_path / "cache", tmp_path / "run")
    train(cfg, progress=False, log=None)
    video = next((dataset / "videos").rglob("*.mp4"))
    with open(video, "ab") as f:  # re-encoded, say: another size
        f.write(b"\0")
    with pytest.raises(ConfigError, match="the dataset changed since"):
        train(cfg, resume=True, progress=False, log=None)


def test_cli_without_config_says_which_defaults_and_no_progress_keeps_logs_clean(datasets, tmp_path, capsys):
    from training.__main__ import main

    sets = ["data.workers=0", "model.size=32", "train.epochs=1", "train.batch_size=8", "train.max_steps_per_epoch=2",
            f"data.dataset='{datasets[0]}'", f"data.cache='{tmp_path / 'cache'}'", f"train.out='{tmp_path / 'run'}'"]
    assert main(["train", "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    out, err = capsys.readouterr()
    first, epoch = out.splitlines()[:2]
    assert first.startswith("no --config, so the built-in defaults and --set: model edge-mvr size=32, epochs 1")
    assert f"dataset {datasets[0]}, cache {tmp_path / 'cache'}, output {tmp_path / 'run'}" in first
    assert epoch.startswith("epoch 1/1: loss ")
    assert "it/s" not in err and "step/s" not in err and "clip/s" not in err  # no progress bars
    assert main(["train", *[a for s in sets for a in ("--set", s)]]) == 2  # the run is there: refused
    assert "pass --resume" in capsys.readouterr().err


def test_a_torn_checkpoint_pair_is_read_as_the_weights_say(tmp_path):
    import torch

    from training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "last", model, {"epoch": 0})
    old_json = (tmp_path / "last.json").read_text()
    with torch.no_grad():
        model.weight.fill_(1.0)
    save_checkpoint(tmp_path / "last", model, {"epoch": 1})
    (tmp_path / "last.json").write_text(old_json)  # as if a crash fell between the two renames
    meta, state, _ = load_checkpoint(tmp_path / "last.json")
    assert meta["epoch"] == 1 and bool((state["weight"] == 1).all())
    assert not list(tmp_path.glob("*.part"))
