"""`python -m training curves`: the committed metrics of the real edge-mvr and edge-mv training runs as a picture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from training.curves import PALETTE_BGR, nice_ticks

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
RUNS = {"edge-mvr": RESULTS / "train-edge-mvr-metrics.jsonl", "edge-mv": RESULTS / "train-edge-mv-metrics.jsonl"}


def curves(*args):
    return subprocess.run([sys.executable, "-m", "training", "curves", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_folders(tmp_path: Path) -> list[Path]:
    """Training output folders as 'python -m training train' leaves them, holding the committed metrics."""
    folders = []
    for name, metrics in RUNS.items():
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        shutil.copy(metrics, folder / "metrics.jsonl")
        folders.append(folder)
    return folders


def colour_pixels(image: np.ndarray, bgr) -> int:
    return int(np.all(np.abs(image.astype(int) - np.array(bgr)) <= 12, axis=2).sum())


def test_curves_of_two_runs_draw_a_png_with_one_colour_per_run(tmp_path):
    out = tmp_path / "curves.png"
    r = curves(*run_folders(tmp_path), "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    image = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (560, 1400, 3)  # the default size
    assert (image < 250).any(axis=2).mean() > 0.02  # not blank: axes, text and curves
    # each run's curves are drawn in its own colour, in both panels
    for index in range(len(RUNS)):
        left, right = image[:, :700], image[:, 700:]
        assert colour_pixels(left, PALETTE_BGR[index]) > 500 and colour_pixels(right, PALETTE_BGR[index]) > 300
    assert colour_pixels(image, PALETTE_BGR[len(RUNS)]) == 0  # and no third run
    summary = json.loads(r.stdout)
    assert summary["out"] == str(out) and (summary["width"], summary["height"]) == (1400, 560)
    assert [s["name"] for s in summary["runs"]] == list(RUNS)


def test_summary_gives_the_best_val_top1_of_each_file(tmp_path):
    r = curves(*RUNS.values(), "-o", tmp_path / "c.png", "--size", "800x400", "--json")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "c.png")).shape == (400, 800, 3)
    summaries = json.loads(r.stdout)["runs"]
    for summary, path in zip(summaries, RUNS.values()):
        rows = records(path)
        best = max(rows, key=lambda row: row["val_top1"])
        assert summary["name"] == path.stem.removesuffix("-metrics")
        assert summary["best_val_top1"] == best["val_top1"] == max(row["val_top1"] for row in rows)
        assert summary["best_epoch"] == best["epoch"] and summary["epochs"] == len(rows)
        assert summary["final_train_top1"] == rows[-1]["train_top1"]
        assert summary["final_val_top1"] == rows[-1]["val_top1"]
        assert abs(summary["total_seconds"] - sum(row["seconds"] for row in rows)) < 1e-6


def test_curves_print_a_line_per_run(tmp_path):
    r = curves(RUNS["edge-mv"], "-o", tmp_path / "c.png")
    assert r.returncode == 0, r.stderr
    rows = records(RUNS["edge-mv"])
    best = max(row["val_top1"] for row in rows)
    assert f"train-edge-mv: {len(rows)} epochs, best val top-1 {best:.1%}" in r.stdout


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("python -m training: error:") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and all(f in r.stderr for f in fragments), r.stderr


def test_missing_folder_metrics_file_or_epochs_are_refused_in_one_line(tmp_path):
    assert_one_line_error(curves(tmp_path / "absent", "-o", tmp_path / "c.png"), "does not exist")
    (tmp_path / "no-metrics").mkdir()
    assert_one_line_error(curves(tmp_path / "no-metrics", "-o", tmp_path / "c.png"), "holds no metrics.jsonl")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    assert_one_line_error(curves(tmp_path / "empty", "-o", tmp_path / "c.png"), "is empty")
    truncated = tmp_path / "truncated.jsonl"  # a run's metrics cut in the middle of a line
    truncated.write_text(RUNS["edge-mvr"].read_text()[:300])
    assert_one_line_error(curves(truncated, "-o", tmp_path / "c.png"), "line 2 is not a metrics record")
    assert_one_line_error(curves(RUNS["edge-mvr"], "-o", tmp_path / "c.jpg"), "ending in .png")
    assert not (tmp_path / "c.png").exists()


def test_help_shows_examples_without_importing_torch():
    probe = ("import sys\nfrom training.__main__ import main\ntry:\n    main(['curves', '--help'])\n"
             "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'cv2' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\nexamples:\n  python -m training curves" in r.stdout
    assert r.stdout.splitlines()[-1] == "False False"


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 100, 5) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 2.35, 5) == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert nice_ticks(1, 24, 8) == [0, 5, 10, 15, 20, 25]
