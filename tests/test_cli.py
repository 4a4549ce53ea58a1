"""The edgekit command line, run as users run it (a subprocess), on real encoded clips."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import av
import pytest

from edgekit.cli import main
from media import moving_square_clip

COMMANDS = ["train", "eval", "quantize", "export", "package", "recognize", "demo", "profile", "benchmark", "inspect",
            "sample", "transcode", "calibrate", "synth", "cache", "models", "assets", "reproduce", "curves"]


def edgekit(*args, timeout=120, input=None):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, input=input)


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("edgekit: error:") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    for fragment in fragments:
        assert fragment in r.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "clip.mp4"
    moving_square_clip(path, "h264", frames=24, motion=(4, -2), bframes=2)
    return path


@pytest.fixture(scope="module")
def left_clip(tmp_path_factory):
    """96 frames of a square moving left, written by `edgekit sample` (a class of the default model)."""
    path = tmp_path_factory.mktemp("cli") / "left.mp4"
    r = edgekit("sample", path, "--motion", "left", "--codec", "h264", "--size", "340x256", "--frames", 96, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["motion"] == [-4, 0]
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


def test_recognize_with_device_and_backend_words(left_clip):
    r = edgekit("recognize", left_clip, "--device", "cpu", "--backend", "onnxruntime", "--threads", 1, "--json",
                "--threshold", 0)  # the model's own label: the shipped threshold may call a window "none"
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["label"] == "move_left" and len(out["windows"]) == 3
    assert out["latency_ms"]["total"] > 0 and out["frames"] == 96


def test_recognize_stream_json_prints_one_object_per_window(left_clip):
    r = edgekit("recognize", left_clip, "--stream", "--json", "--threshold", 0)
    assert r.returncode == 0, r.stderr
    windows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [w["label"] for w in windows] == ["move_left"] * 3
    assert windows[0]["start_s"] < windows[1]["start_s"] < windows[2]["start_s"]
    assert all(w["latency_ms"] >= 0 for w in windows)  # from the window's last frame to its prediction
    assert not any("wallclock" in w for w in windows)  # a file says nothing of when it was captured


@pytest.mark.parametrize("flags, fragment", [
    (["--device", "openvino"], "is a backend, not a device"),
    (["--device", "quantum"], "unknown device 'quantum'"),
    (["--backend", "tflite"], "unknown backend 'tflite'"),
    (["--package", "missing.edgepkg"], "package not found"),
])
def test_recognize_bad_words_exit_2_with_one_line(left_clip, flags, fragment):
    assert_one_line_error(edgekit("recognize", left_clip, *flags), fragment)


def test_sample_refuses_bframes_without_h264(tmp_path):
    assert_one_line_error(edgekit("sample", tmp_path / "x.mp4", "--bframes", 2), "--bframes needs --codec h264")


@pytest.mark.parametrize("content", [None, b"", b"not a video at all\n" * 40])
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    assert_one_line_error(edgekit("inspect", path))


def test_argument_errors_exit_2():
    r = edgekit("transcode", "in.mp4")
    assert r.returncode == 2 and "the following arguments are required: DST" in r.stderr
    r = edgekit("recognize", "clip.mp4", "--threads", "two")
    assert r.returncode == 2 and "invalid int value: 'two'" in r.stderr


def test_top_level_help_lists_the_life_cycle():
    r = edgekit("--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    commands_section = r.stdout.split("positional arguments:", 1)[1].split("options:", 1)[0]
    assert re.findall(r"^    (\w+)", commands_section, re.M) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_examples_in_edgekit_words(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: edgekit {command}" in out and "\nexamples:\n" in out
    assert f"edgekit {command}" in out.split("\nexamples:\n", 1)[1]
    assert "python -m training" not in out and "python -m quantize" not in out


@pytest.mark.parametrize("command", ["recognize", "demo", "export"])
def test_device_help_lists_hardware_profiles_and_backends(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = "".join(capsys.readouterr().out.split())  # help wraps lines at spaces and hyphens
    assert ("hardware:cpu,gpu,npu,adeviceprofile(arm64-cpu,intel-cpu,intel-gpu,intel-npu,jetson-agx-orin,"
            "jetson-orin-nano,jetson-orin-nx,nvidia-gpu,x86-cpu)") in text
    assert "runtime:onnxruntime,openvino,tensorrt" in text


def test_recognize_reads_a_raw_h264_stream_piped_into_stdin(tmp_path):
    raw = tmp_path / "left.h264"
    r = edgekit("sample", raw, "--motion", "left", "--codec", "h264", "--size", "340x256", "--frames", 96)
    assert r.returncode == 0, r.stderr
    with open(raw, "rb") as data:  # through a real pipe, as `ffmpeg ... -f h264 - | edgekit recognize -`
        cat = subprocess.Popen(["cat"], stdin=data, stdout=subprocess.PIPE)
        r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", "-", "--json", "--timeout", "5",
                            "--threshold", "0"],
                           stdin=cat.stdout, capture_output=True, text=True, timeout=120)
        cat.stdout.close()
        cat.wait()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["label"] == "move_left" and out["frames"] == 96
