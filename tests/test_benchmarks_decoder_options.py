"""benchmarks/decoder_options.py at a tiny scale: every option set decodes the same clip; skipping
non-reference pictures decodes fewer of them; the ratios follow from the milliseconds."""

from __future__ import annotations

import pytest

from benchscripts import run_benchmark


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("decoder_options")
    return run_benchmark("decoder_options.py", "--sizes", "1280x720", "--frames-scale", "0.1", "--repeats", "1",
                         "--workdir", str(workdir), timeout=300)


def test_every_option_set_is_measured_on_the_same_clip(report):
    options = report["results"]["1280x720"]["options"]
    assert set(options) == {"plain", "export_mvs", "no_loop_filter", "no_loop_filter_idct", "references_only", "rgb",
                            "offline_420"}
    frames = report["results"]["1280x720"]["clip"]["frames"]
    assert frames == 25
    for name, item in options.items():
        expected = frames if name != "references_only" else None
        if expected is not None:
            assert item["pictures"] == expected, name
        assert item["wall_ms"] > 0 and item["cpu_ms"] > 0
        assert item["cpu_ms_per_picture"] == pytest.approx(item["cpu_ms"] / item["pictures"], rel=1e-2)
        assert item["cpu_vs_export_mvs"] == pytest.approx(item["cpu_ms"] / options["export_mvs"]["cpu_ms"], rel=1e-2)
    # two B-frames per anchor: the references are about a third of the pictures
    assert 0 < options["references_only"]["pictures"] < frames / 2
    assert options["references_only"]["skip_frame"] == "NONREF"
    assert options["no_loop_filter"]["options"]["skip_loop_filter"] == "all"
    # edgekit's offline pass reads every picture and costs at least the decoding it rests on
    result = report["results"]["1280x720"]
    assert options["offline_420"]["options"] is None and options["offline_420"]["pictures"] == frames
    assert result["offline_420_cpu_vs_rgb"] == pytest.approx(options["offline_420"]["cpu_ms"] / options["rgb"]["cpu_ms"],
                                                             abs=2e-3)
    assert options["offline_420"]["cpu_ms"] > 0.8 * options["export_mvs"]["cpu_ms"]


def test_bad_sizes_are_refused(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "decoder_options.py"
    r = subprocess.run([sys.executable, str(script), "--sizes", "340x256"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "sizes must be among" in r.stderr
