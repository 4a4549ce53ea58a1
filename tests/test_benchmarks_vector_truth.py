"""benchmarks/vector_truth.py: encoded motion vectors against the exact flow of real generated clips
(x264 and MPEG-4 through PyAV, decoded by edgekit.open), end to end and per clip."""

from __future__ import annotations

import numpy as np
import pytest

from benchscripts import load_benchmark, run_benchmark
from training.synth import resolve_config
from training.synth.generate import generate

vt = load_benchmark("vector_truth.py")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The tiny preset (128x96, 24 frames), one clip each of scene_right and static, x264 and MPEG-4."""
    root = tmp_path_factory.mktemp("vector-truth")
    out = {}
    for codec in ("h264", "mpeg4"):
        folder = root / codec
        generate(resolve_config("tiny", codec=codec, clips_per_class=1, classes="scene_right,static"), folder,
                 workers=1, progress=False)
        out[codec] = folder
    return out


def test_cell_flow_averages_4px_blocks_over_8px_cells_and_crops():
    flow = np.zeros((2, 6, 10), np.float32)
    flow[0, :2, :2] = [[1, 2], [3, 4]]
    flow[1] = 5
    cells = vt.cell_flow(flow, 4, gh=2, gw=9)
    assert cells.shape == (2, 2, 5)  # 6 // 2 rows (cropped to gh), 10 // 2 columns
    assert cells[0, 0, 0] == pytest.approx(2.5) and cells[0, 1, 1] == 0 and np.all(cells[1] == 5)


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_a_pan_is_tracked_and_a_still_scene_has_few_spurious_vectors(clips, codec):
    root = clips[codec]
    pan = vt.clip_figures(root / "videos/scene_right/scene_right_00000.mp4", root / "flow/scene_right/scene_right_00000.npz")
    assert pan["moving_cells"] > 100 and pan["tracked"] > 0.5 and pan["epe_px"] < 1.0
    still = vt.clip_figures(root / "videos/static/static_00000.mp4", root / "flow/static/static_00000.npz")
    assert still["moving_cells"] == 0 and still["tracked"] is None and still["still_cells"] > 100
    assert still["spurious"] < pan["tracked"]
    # the pan's vectors judged against a still scene's truth: every one of them is spurious there
    wrong = vt.clip_figures(root / "videos/scene_right/scene_right_00000.mp4", root / "flow/static/static_00000.npz")
    assert wrong["tracked"] is None and wrong["spurious"] > 0.5


def test_script_prints_figures_by_codec_and_class(clips):
    report = run_benchmark("vector_truth.py", "--data", clips["h264"], "--data", clips["mpeg4"], timeout=300)
    assert report["benchmark"] == "vector_truth" and report["env"]["av"]
    assert [d["data"] for d in report["datasets"]] == [str(clips["h264"]), str(clips["mpeg4"])]
    for data, codec in zip(report["datasets"], ("h264", "mpeg4")):
        assert data["clips"] == 2 and list(data["by_codec"]) == [codec]
        assert set(data["by_codec_class"]) == {f"{codec} scene_right", f"{codec} static"}
        row = data["by_codec"][codec]
        assert row["clips"] == 2 and row["tracked"]["clips"] == 1 and row["spurious"]["clips"] == 1  # a pan has no still cell
        assert 0 <= row["spurious"]["p10"] <= row["spurious"]["median"] <= row["spurious"]["p90"] <= 1


def test_a_folder_that_is_not_a_dataset_is_refused(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(vt.__file__), "--data", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no metadata.jsonl" in proc.stderr


def test_max_vector_counts_what_a_limit_would_drop(clips):
    root = clips["h264"]
    pan = vt.clip_figures(root / "videos/scene_right/scene_right_00000.mp4",
                          root / "flow/scene_right/scene_right_00000.npz", (0.01, 0.5))
    tight, loose = pan["long"][0.01], pan["long"][0.5]
    assert tight["inter"] == loose["inter"] > 100
    # about 1 px at 128x96: the pan's tracked vectors go with the rest; at half the picture nothing does
    assert tight["dropped"] > 0.5 * tight["inter"] and tight["lost_good"] > 0.5 * tight["dropped"]
    assert tight["dropped"] == tight["lost_good"] + tight["removed_wrong"]
    assert loose["dropped"] == loose["lost_good"] == loose["removed_wrong"] == 0
    report = run_benchmark("vector_truth.py", "--data", root, "--max-vector", "0.01", "--max-vector", "0.5",
                           timeout=300)
    shares = report["datasets"][0]["max_vector"]["h264"]
    assert set(shares) == {"0.01", "0.5"} and shares["0.5"]["dropped"] == 0
    assert 0 < shares["0.01"]["good_lost_share"] <= 1 and shares["0.01"]["dropped"] > 0.1
    assert shares["0.01"]["lost_good"] + shares["0.01"]["removed_wrong"] == pytest.approx(1, abs=1e-3)


def test_min_gain_reports_the_vectors_the_option_leaves(clips):
    root = clips["mpeg4"]
    still = vt.clip_figures(root / "videos/static/static_00000.mp4", root / "flow/static/static_00000.npz")
    tested = vt.clip_figures(root / "videos/static/static_00000.mp4", root / "flow/static/static_00000.npz",
                             min_gain=1.0)
    assert tested["still_cells"] == still["still_cells"] > 100  # the same cells: only vectors become 0
    assert tested["spurious"] <= still["spurious"]
    pan = vt.clip_figures(root / "videos/scene_right/scene_right_00000.mp4",
                          root / "flow/scene_right/scene_right_00000.npz", min_gain=1.0)
    assert pan["tracked"] > 0.5  # a textured pan keeps its vectors
    report = run_benchmark("vector_truth.py", "--data", root, "--min-gain", "1", timeout=300)
    row = report["datasets"][0]["min_gain"]["1.0"]["mpeg4"]
    assert row["clips"] == 2 and row["spurious"]["median"] <= report["datasets"][0]["by_codec"]["mpeg4"]["spurious"]["median"]
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(vt.__file__), "--data", str(root), "--min-gain", "300"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--min-gain" in proc.stderr
