"""Bad input at the command line: every case ends in exit code 2 and one line on stderr that says
what is wrong (no traceback, no raw errno), and leaves no temporary ``.part`` file behind."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import pytest

from edgekit.cli import main
from edgekit.cli.common import CommandParser, run_command
from media import moving_square_clip


def edgekit(*args, timeout=120, **kwargs):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def unprivileged(*args, **kwargs):
    """``edgekit ARGS`` without the power to bypass file permissions (root drops CAP_DAC_*)."""
    if os.geteuid() != 0:
        return edgekit(*args, **kwargs)
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", sys.executable, "-m",
                           "edgekit.cli", *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)


def assert_one_line_error(code, stderr, *fragments):
    assert code == 2, stderr
    assert stderr.startswith("edgekit: error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "Errno" not in stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def run_main(capsys, *args):
    if args[0] in ("transcode", "inspect"):  # in-process, a progress bar would use a stream capsys closed
        args = (*args, "--json")
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def no_part_files(folder) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-errors") / "clip.mp4"
    moving_square_clip(path, "h264", frames=24, bframes=2)
    return path


# -- timeouts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["recognize", "inspect"])
@pytest.mark.parametrize("value", ["-1", "nan", "0", "inf", "soon"])
def test_invalid_timeout_is_one_line(capsys, clip, command, value):
    assert_one_line_error(*run_main(capsys, command, clip, "--timeout", value),
                          f"--timeout must be a number of seconds > 0, got '{value}'")


def test_recognize_on_a_silent_pipe_times_out_in_time():
    t0 = time.monotonic()  # start-up and the bundled model, up to the source: a device refused at once
    assert edgekit("recognize", "/dev/zero").returncode == 2
    start_up = time.monotonic() - t0
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        r = edgekit("recognize", "-", "--timeout", 2, stdin=silent.stdout, timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        silent.kill()
        silent.wait()
        silent.stdout.close()
    assert_one_line_error(r.returncode, r.stderr, "standard input: timed out", "no data for 2 s", "--timeout")
    assert elapsed < start_up + 2 + 1, (elapsed, start_up)


def test_silent_fifo_times_out(capsys, tmp_path):
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    assert_one_line_error(*run_main(capsys, "inspect", fifo, "--timeout", 1), f"FIFO {fifo}: timed out")


# -- inputs that are not video files -----------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_files_are_named(capsys, device):
    assert_one_line_error(*run_main(capsys, "inspect", device), f"{device} is a character device, not a video file")


def test_truncated_mp4_says_truncated(capsys, clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:clip.stat().st_size // 2])
    for args in (["inspect", cut], ["transcode", cut, tmp_path / "out.mp4"]):
        assert_one_line_error(*run_main(capsys, *args), "truncated or damaged MP4/MOV file", "no 'moov' index")
    assert no_part_files(tmp_path) and not (tmp_path / "out.mp4").exists()


def test_file_in_an_unreadable_folder_says_permission_denied(clip, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(clip, locked / "clip.mp4")
    locked.chmod(0)
    try:
        r = unprivileged("inspect", locked / "clip.mp4")
    finally:
        locked.chmod(0o755)
    assert_one_line_error(r.returncode, r.stderr, "permission denied")
    assert "no such file" not in r.stderr


# -- outputs ----------------------------------------------------------------------------------------------


def test_inspect_render_refuses_negative_frames(capsys, clip, tmp_path):
    assert_one_line_error(*run_main(capsys, "inspect", clip, "--render", tmp_path / "x.png", "--frames", "-3"),
                          "--frames must be a whole number >= 1, got '-3'")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args, fragment", [
    (["sample", "{tmp}/x.webm"], "cannot write .webm"),
    (["sample", "{tmp}/x.h264"], "a .h264 file holds h264 only, not mpeg4"),
    (["sample", "{tmp}/x.m4v", "--codec", "h264"], "a .m4v file holds mpeg4 only, not h264"),
    (["transcode", "{clip}", "{tmp}/out.webm"], "use one of .mp4, .m4v, .h264, .264, .avi, .mkv, .mov"),
    (["sample", "{tmp}/s.mp4", "--frames", "0"], "--frames must be a whole number >= 1"),
    (["transcode", "{clip}", "{tmp}/out.mp4", "--fps", "0"], "fps must be a number of frames per second > 0"),
])
def test_unsupported_outputs_and_options_are_refused_up_front(capsys, clip, tmp_path, args, fragment):
    args = [a.format(tmp=tmp_path, clip=clip) for a in args]
    assert_one_line_error(*run_main(capsys, *args), fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


@pytest.mark.parametrize("command", ["sample", "transcode", "render"])
def test_output_under_a_file_says_the_folder_is_a_file(capsys, clip, tmp_path, command):
    (tmp_path / "taken").write_text("a file, not a folder")
    out = tmp_path / "taken" / "sub" / ("x.png" if command == "render" else "x.mp4")
    args = {"sample": ["sample", out], "transcode": ["transcode", clip, out],
            "render": ["inspect", clip, "--render", out]}[command]
    assert_one_line_error(*run_main(capsys, *args), f"cannot write {out}", "is a file, not a folder")
    assert no_part_files(tmp_path)


@pytest.mark.parametrize("command", ["sample", "transcode", "render"])
def test_over_long_names_are_refused(capsys, clip, tmp_path, command):
    out = tmp_path / ("n" * 250 + (".png" if command == "render" else ".mp4"))
    args = {"sample": ["sample", out], "transcode": ["transcode", clip, out],
            "render": ["inspect", clip, "--render", out]}[command]
    assert_one_line_error(*run_main(capsys, *args), "file name too long")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["sample", "transcode", "render"])
def test_unwritable_folder_says_permission_denied(clip, tmp_path, command):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    out = folder / ("x.png" if command == "render" else "x.mp4")
    args = {"sample": ["sample", out], "transcode": ["transcode", clip, out],
            "render": ["inspect", clip, "--render", out]}[command]
    try:
        r = unprivileged(*args)
    finally:
        folder.chmod(0o755)
    assert_one_line_error(r.returncode, r.stderr, f"cannot write {out}: permission denied")
    assert list(folder.iterdir()) == []


def test_output_where_nothing_can_be_created(capsys, tmp_path):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    assert_one_line_error(*run_main(capsys, "sample", "/proc/edgekit-test.mp4"), "cannot write /proc/edgekit-test.mp4")


# -- the central handler --------------------------------------------------------------------------------


def _parser_running(command):
    parser = CommandParser(prog="edgekit")
    parser.set_defaults(run=command)
    return parser


def test_any_os_error_is_one_line_and_a_bug_keeps_its_traceback(capsys, tmp_path):
    def unwritable(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out\nput.json"))

    assert run_command(_parser_running(unwritable), []) == 2
    assert_one_line_error(2, capsys.readouterr().err, "out put.json: permission denied")

    def bug(args: argparse.Namespace):
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        run_command(_parser_running(bug), [])


def test_package_inspect_of_an_unreadable_package_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "model.edgepkg").write_bytes(b"PK\x05\x06" + bytes(18))
    locked.chmod(0)
    try:
        r = unprivileged("package", "inspect", locked / "model.edgepkg")
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
