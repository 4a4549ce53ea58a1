"""The edgekit command line, run as users run it (a subprocess), on real encoded clips."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import pytest

from media import moving_square_clip


def edgekit(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "clip.mp4"
    moving_square_clip(path, "h264", frames=24, motion=(4, -2), bframes=2)
    return path


def test_inspect_json_reports_frame_types_gops_and_motion(clip):
    r = edgekit("inspect", clip, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["codec"], out["width"], out["height"], out["frames"]) == ("h264", 320, 240, 24)
    assert out["pattern"] == "IBBPBBPBBPBP" * 2 and out["gop_lengths"] == [12, 12]
    assert out["frame_types"] == {"I": 2, "B": 14, "P": 8}
    assert out["mv"]["mean_dx_px"] > 0 > out["mv"]["mean_dy_px"]  # the square moves right and up
    assert out["damaged_frames"] == 0


def test_inspect_render_writes_a_png_sheet(clip, tmp_path):
    png = tmp_path / "sheet.png"
    r = edgekit("inspect", clip, "--render", png, "--frames", "3")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    with av.open(str(png)) as c:
        frame = next(c.decode(video=0))
    assert frame.width == 3 * 320 + 2 * 4 and frame.height == 3 * (240 + 12)


def test_transcode_json(clip, tmp_path):
    dst = tmp_path / "out.mp4"
    r = edgekit("transcode", clip, dst, "--size", "160x128", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["codec"], out["width"], out["height"], out["frames"], out["gop"]) == ("mpeg4", 160, 128, 24, 12)
    r = edgekit("inspect", dst, "--json")
    assert json.loads(r.stdout)["pattern"] == ("I" + "P" * 11) * 2


@pytest.mark.parametrize("content", [None, b"", b"not a video at all\n" * 40])
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    r = edgekit("inspect", path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("edgekit: error:")
    assert "Traceback" not in r.stderr


def test_help_has_examples():
    r = edgekit("inspect", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "--render" in r.stdout
