"""benchmarks/loader.py end to end on a real tiny synthetic dataset: it builds the cache training
would, reads every epoch with a loader made afresh per epoch and with one persistent loader (the
same batches), times the model's step, and prints one JSON object; bad arguments exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from benchscripts import BENCHMARKS, run_benchmark  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from training.__main__ import main

    root = tmp_path_factory.mktemp("loader")
    data = root / "synth"
    assert main(["synth", "--preset", "tiny", "--classes", "motion", "--clips-per-class", "3", "--size", "64x48",
                 "--frames", "12", "--seed", "2", "--workers", "1", "--out", str(data), "--json"]) == 0
    return run_benchmark("loader.py", "--config", "edge-mvr-standard", "--set", f"data.dataset={data}",
                         "--set", f"data.cache={root / 'cache'}", "--set", "model.size=32", "--set", "train.batch_size=4",
                         "--set", "train.device=cpu", "--workers", 0, 1, "--epochs", 2, "--steps", 2, timeout=600)


def test_both_loaders_read_every_clip_and_agree(report):
    assert report["benchmark"] == "loader" and report["model"] == "edge-mvr"
    assert report["augment"] is True and report["inputs"] == ["mv_residual"]
    n = report["clips_per_epoch"]
    assert n > 0 and report["batch_size"] == 4 and report["epochs"] == 2
    assert set(report["loaders"]) == {"0", "1"}
    for figures in report["loaders"].values():
        assert figures["same_batches"] is True
        for kind in ("fresh_per_epoch", "persistent"):
            f = figures[kind]
            assert f["batches_per_epoch"] == -(-n // 4) and len(f["seconds_per_epoch"]) == 2
            assert f["seconds"] > 0 and f["clips_per_s"] == pytest.approx(2 * n / f["seconds"], rel=0.01, abs=0.1)
        assert figures["speedup"] == pytest.approx(
            figures["persistent"]["clips_per_s"] / figures["fresh_per_epoch"]["clips_per_s"], rel=0.01)
    assert report["item_ms_in_process"] > 0


def test_the_model_step_and_the_limit(report):
    step = report["model_step"]
    assert step["device"] == "cpu" and step["batch"] == 4 and step["steps"] == 2 and step["clips_per_s"] > 0
    best = max(v["persistent"]["clips_per_s"] for v in report["loaders"].values())
    assert report["limit"] == ("loader" if best < step["clips_per_s"] else "model")
    assert report["env"]["cpu_count"] >= 1 and report["torch"]


def test_bad_arguments_exit_2():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "loader.py"), "--config", "edge-mvr", "--epochs", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--epochs" in proc.stderr
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "loader.py"), "--config", "no-such-config"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
