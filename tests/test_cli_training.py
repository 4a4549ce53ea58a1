"""The training commands in a runtime-only install: `--help` works without torch, and running one says
in one line that it needs the train extra. "Runtime-only" is real: the commands run in a subprocess
whose PYTHONPATH puts first a torch, onnx, safetensors, cv2 and tqdm that fail to import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TRAIN_EXTRA = ("torch", "onnx", "safetensors", "cv2", "tqdm")
NEEDS_EXTRA = ("needs the train extra (cannot import torch, onnx, safetensors, cv2, tqdm): "
               "pip install 'edgekit[train]' (install torch==2.13.0 first for the CPU build)")


@pytest.fixture(scope="module")
def runtime_only_env(tmp_path_factory):
    """Environment in which importing any module of the train extra raises ImportError."""
    shadow = tmp_path_factory.mktemp("no-train-extra")
    for name in TRAIN_EXTRA:
        (shadow / name).mkdir()
        (shadow / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (test shadow)')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}


def run(env, *command, timeout=120):
    argv = [sys.executable, "-m", "edgekit.cli", *command[1:]] if command[0] == "edgekit" else \
        [sys.executable, *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_shadow_really_hides_torch(runtime_only_env):
    r = run(runtime_only_env, "-c", "import torch")
    assert r.returncode == 1 and "torch is not installed (test shadow)" in r.stderr


@pytest.mark.parametrize("command", [
    ("edgekit", "--help"),
    ("edgekit", "train", "--help"),
    ("edgekit", "eval", "--help"),
    ("edgekit", "quantize", "--help"),
    ("edgekit", "synth", "--help"),
    ("edgekit", "cache", "--help"),
    ("edgekit", "assets", "--help"),
    ("edgekit", "models", "--help"),
    ("-m", "training", "--help"),
    ("-m", "training", "train", "--help"),
    ("-m", "quantize", "--help"),
])
def test_help_works_without_the_train_extra(runtime_only_env, command):
    r = run(runtime_only_env, *command)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("command, prog, command_line", [
    (("edgekit", "train", "--config", "training/configs/edge-mvr.toml"), "edgekit", "edgekit train"),
    (("edgekit", "eval", "--checkpoint", "runs/x/best.json"), "edgekit", "edgekit eval"),
    (("edgekit", "quantize", "--checkpoint", "runs/x/best.json", "--out", "models/x"), "edgekit", "edgekit quantize"),
    (("edgekit", "synth", "--preset", "tiny", "--out", "{tmp}/synth"), "edgekit", "edgekit synth"),
    (("edgekit", "models"), "edgekit", "edgekit models"),
    (("-m", "training", "train", "--config", "training/configs/edge-mvr.toml"), "python -m training",
     "python -m training train"),
    (("-m", "quantize", "--checkpoint", "runs/x/best.json", "--out", "models/x"), "python -m quantize",
     "python -m quantize"),
])
def test_running_a_training_command_without_the_extra_says_so_in_one_line(runtime_only_env, tmp_path, command, prog,
                                                                          command_line):
    r = run(runtime_only_env, *(part.format(tmp=tmp_path) for part in command))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr == f"{prog}: error: '{command_line}' {NEEDS_EXTRA}\n"
    assert not (tmp_path / "synth").exists()


def test_argument_errors_of_a_training_command_need_no_torch(runtime_only_env):
    r = run(runtime_only_env, "edgekit", "eval")
    assert r.returncode == 2 and "the following arguments are required: --checkpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_building_and_parsing_imports_no_torch():
    # torch IS installed here: the parser must simply not import it
    code = ("import sys\n"
            "from edgekit.cli import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "for argv in (['train', '--config', 'x.toml'], ['eval', '--checkpoint', 'x.json'],\n"
            "             ['quantize', '--checkpoint', 'x.json', '--out', 'm'], ['synth', '--out', 'd'],\n"
            "             ['recognize', 'clip.mp4', '--device', 'gpu'], ['export', 'm', '--device', 'cpu', '-o', 'p']):\n"
            "    parser.parse_args(argv)\n"
            "heavy = sorted(m for m in ('torch', 'onnx', 'safetensors', 'cv2', 'tqdm', 'onnxruntime') if m in sys.modules)\n"
            "print(heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"


def test_python_m_training_and_edgekit_run_the_same_command(capsys):
    from edgekit.cli import main as edgekit_main
    from training.__main__ import main as training_main

    for main in (edgekit_main, training_main):
        with pytest.raises(SystemExit):
            main(["eval", "--help"])
    edgekit_help, training_help = capsys.readouterr().out.split("usage: ")[1:]
    options_and_examples = edgekit_help.split("\noptions:\n")[1]  # the usage lines wrap by the program's name
    assert "edgekit eval --checkpoint" in options_and_examples
    assert options_and_examples.replace("edgekit eval", "python -m training eval") in training_help
