"""``edgekit profile --compare rgb-flow``: the RGB + optical-flow pipeline timed on the same clip as the
package, with the real components (PyAV, OpenCV's TV-L1 / Farneback / DIS, a two-stream network
exported from torch and run by ONNX Runtime); and the HTML report holding the comparison plot."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from edgekit.errors import ConfigError, MissingDependencyError
from edgekit.profile import format_text, profile

pytest.importorskip("torch")
pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

CLIP = "160x128@25"  # 2 s: 50 frames; windows of 48 every 24: one at frame 48 and a tail window at 50
CLIP_SECONDS = 2.0
FRAMES = 50
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report():
    return profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=2, compare="rgb-flow", per_window=True)


def test_baseline_reads_the_same_clip_at_the_same_sampling(report):
    section = report["compare"]
    assert report["settings"]["compare"] == "rgb-flow"
    assert section["frames"] == FRAMES == report["source"]["frames_per_pass"]
    assert section["frame_size"] == [128, 160] and section["source_fps"] == 25
    assert section["windows"] == 2 == report["throughput"]["windows"] // report["throughput"]["passes"]
    spec = section["spec"]
    assert (spec["window_frames"], spec["stride_frames"], spec["segments"], spec["size"]) == (48, 24, 3, [112, 112])
    network = section["baseline"]["network"]
    assert network["inputs"] == {"iframe": [1, 3, 3, 112, 112], "flow": [1, 3, 2, 112, 112]}
    assert network["precision"] == "fp32" and network["width"] == 24 and network["stem"] == "patch4"
    assert network["bytes"] > 100_000 and network["params"] > 1_000_000


def test_tvl1_is_timed_on_the_sampled_frames_and_extrapolated(report):
    flow = report["compare"]["baseline"]["flow"]
    tvl1 = flow["tvl1"]
    # segment centres of frames 0-47 (8, 24, 40) and of the tail window 2-49 (10, 26, 42)
    assert tvl1["timed_frames"] == [8, 24, 40, 10, 26, 42] and tvl1["frames_timed"] == 6
    assert tvl1["pairs"] == FRAMES - 1 and tvl1["extrapolated"]
    median_ms = tvl1["per_frame_ms"]["p50"]  # extrapolated from the median: robust to one slow call
    assert tvl1["total_ms"] == pytest.approx(median_ms * (FRAMES - 1), rel=1e-4)
    assert tvl1["measured_total_ms"] >= tvl1["per_frame_ms"]["min"] * 6
    for method in ("farneback", "dis"):  # timed on every pair, nothing extrapolated
        assert flow[method]["frames_timed"] == FRAMES - 1 and not flow[method]["extrapolated"]
        assert flow[method]["total_ms"] == flow[method]["measured_total_ms"] > 0
    assert median_ms > flow["farneback"]["per_frame_ms"]["p50"]  # TV-L1 is the slow one


def test_end_to_end_is_the_sum_of_stages_and_speedups_follow(report):
    section = report["compare"]
    package = section["package"]
    tp = report["throughput"]
    assert package["end_to_end_ms_per_source_s"] == pytest.approx(tp["wall_s"] * 1000 / tp["video_s"], rel=1e-3)
    for method, variant in section["rgb_flow"].items():
        stages = variant["stages_ms_per_source_s"]
        assert set(stages) == {"decode_rgb", "flow", "preprocess", "network"}
        assert variant["end_to_end_ms_per_source_s"] == pytest.approx(sum(stages.values()), rel=1e-3)
        assert section["speedup"][method] == pytest.approx(
            variant["end_to_end_ms_per_source_s"] / package["end_to_end_ms_per_source_s"], rel=1e-2)
        assert section["speedup"][method] > 1  # the compressed domain wins even on a tiny clip
        assert variant["flow_extrapolated"] == (method == "tvl1")
    assert section["speedup"]["tvl1"] > section["speedup"]["farneback"]


def test_text_output_has_the_comparison(report):
    text = format_text(report)
    assert "compare rgb-flow: 50 frames of 160x128" in text
    assert "RGB + tvl1 (flow extrapolated)" in text and "RGB + farneback" in text and "RGB + dis" in text
    assert "timed on 6 of 49 pairs and extrapolated" in text


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images[attrs.get("id")] = attrs["src"]
        for key in ("src", "href"):
            if attrs.get(key):
                self.links.append(attrs[key])


def test_report_is_self_contained_and_holds_the_compare_plot(report, tmp_path):
    pytest.importorskip("matplotlib")
    from edgekit.profile_report import write_report

    paths = write_report(report, tmp_path / "profile.html")
    page = paths["html"].read_text(encoding="utf-8")
    parser = _Page()
    parser.feed(page)
    assert not [link for link in parser.links if link.startswith(("http://", "https://", "//"))]
    assert "http://" not in page and "https://" not in page
    assert set(parser.images) == {"plot-stages", "plot-breakdown", "plot-timeline", "plot-compare"}
    for name, src in parser.images.items():  # every plot embedded, byte for byte the PNG beside the page
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG_SIGNATURE) and png == paths[name.removeprefix("plot-")].read_bytes()
    assert "Compared with RGB + optical flow" in page and "RGB + tvl1 (flow extrapolated)" in page


def test_compare_without_the_train_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingDependencyError, match=r"edgekit\[train\]"):
        profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=1, compare="rgb-flow")


@pytest.mark.parametrize("options, fragment", [
    ({"compare": "rgb-only"}, "unknown comparison"),
    ({"compare": "rgb-flow", "streams": 2}, "one stream"),
    ({"compare": "rgb-flow", "source": "rtsp://127.0.0.1:1/x", "seconds": 1}, "give a file"),
])
def test_bad_compare_options_are_refused_before_measuring(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        profile(**options)


def test_cli_refuses_an_unknown_comparison_in_one_line():
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "profile", "--compare", "rgb"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "rgb-flow" in result.stderr and "Traceback" not in result.stderr


def test_cli_json_has_the_compare_section(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "profile", "--synthetic", "64x48@25",
                             "--synthetic-seconds", "1", "--runs", "1", "--compare", "rgb-flow", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    section = json.loads(result.stdout)["compare"]
    assert section["frames"] == 25 and section["windows"] == 1 and section["frame_size"] == [48, 64]
    assert set(section["speedup"]) == {"tvl1", "farneback", "dis"}
