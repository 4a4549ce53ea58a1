"""Training-side commands: ``train``, ``eval``, ``quantize``, the data/model helpers ``synth``,
``cache``, ``models``, ``assets``, and ``curves`` (training metrics as a picture).

Each command lives in its own module (``training.train``, ``quantize.__main__``, ...), which
defines ``add_arguments(parser)`` and ``run(args) -> int``; ``python -m training <command>`` and
``python -m quantize`` run the same modules through this file. A module is imported only when its
command is parsed, so ``edgekit --help`` imports none of them, and neither it nor a command's
``--help`` imports torch.

The commands need the ``train`` extra (torch, ONNX, safetensors, OpenCV, tqdm). When one of its
modules cannot be imported, the command says so in one line, naming the command and the modules,
and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from functools import partial

from edgekit.cli.common import CommandParser, add_command
from edgekit.errors import MissingDependencyError

# the top-level modules of the ``train`` extra (pyproject.toml); opencv-contrib installs ``cv2``
TRAIN_EXTRA_MODULES = ("torch", "onnx", "safetensors", "cv2", "tqdm")
TRAIN_EXTRA_INSTALL = "pip install 'edgekit[train]' (install torch==2.13.0 first for the CPU build)"


@dataclass(frozen=True)
class TrainingCommand:
    """``module`` defines ``add_arguments(parser)`` and ``run(args) -> int``; its docstring and help
    spell the command ``native`` (how it was run before ``edgekit`` had it)."""

    module: str
    native: str
    help: str


COMMANDS = {
    "train": TrainingCommand("training.train", "python -m training train", "Train a model from a TOML config."),
    "eval": TrainingCommand("training.evaluate", "python -m training eval",
                            "Video-level top-1/top-5 of a checkpoint and its confusion matrix."),
    # quantize has no command module of its own: ``python -m quantize`` is the command
    "quantize": TrainingCommand("quantize.__main__", "python -m quantize",
                                "Quantize a checkpoint to INT8 ONNX; report size, accuracy and latency."),
    "synth": TrainingCommand("training.synth.cli", "python -m training synth",
                             "Generate the synthetic motion benchmark (labelled clips, ground-truth flow)."),
    "cache": TrainingCommand("training.cache.cli", "python -m training cache",
                             "Extract a dataset's side data (and teacher flow) into a memory-mapped cache."),
    "models": TrainingCommand("training.zoo", "python -m training models",
                              "List the model zoo: inputs, parameters, GFLOPs, ONNX export check."),
    "assets": TrainingCommand("training.assets", "python -m training assets",
                              "Build the bundled default package and demo clip."),
    "reproduce": TrainingCommand("training.reproduce", "python -m training reproduce",
                                 "Train and measure the seed papers' comparisons in one command (table + orderings)."),
    "curves": TrainingCommand("training.curves", "python -m training curves",
                              "Draw training runs' top-1 and loss per epoch (metrics.jsonl) as a PNG."),
}


class TrainExtraMissing(MissingDependencyError):
    """A training command ran where modules of the ``train`` extra cannot be imported."""

    def __init__(self, command_line: str, modules: list[str]):
        super().__init__(", ".join(modules), "train")
        self.args = (f"'{command_line}' needs the train extra (cannot import {', '.join(modules)}): "
                     f"{TRAIN_EXTRA_INSTALL}",)


def add_commands(subparsers, names, *, prefix: str = "edgekit") -> None:
    """Add the training commands ``names`` to ``subparsers``; ``prefix`` is what the user types
    before the command name ("edgekit", "python -m training"), used in examples and errors."""
    for name in names:
        add_command(subparsers, name, COMMANDS[name].help,
                    add_arguments=partial(_add_arguments, name, f"{prefix} {name}"))


def command_parser(name: str, prog: str) -> CommandParser:
    """One training command as a program of its own, e.g. ``command_parser("quantize", "python -m quantize")``."""
    return CommandParser(prog=prog, add_arguments=partial(_add_arguments, name, prog))


def _add_arguments(name: str, command_line: str, parser: argparse.ArgumentParser) -> None:
    """Import the command's module, take its arguments and help, and make it the command's ``run``."""
    command = COMMANDS[name]
    try:
        module = importlib.import_module(command.module)
    except (ImportError, MissingDependencyError) as err:
        raise _missing_extra(command_line, err) from None
    description, examples = _split_examples(module.__doc__ or command.help)
    parser.description, parser.epilog = description, examples
    module.add_arguments(parser)  # may set its own epilog
    parser.description = _respell(parser.description, command.native, command_line)
    parser.epilog = _respell(parser.epilog, command.native, command_line)
    parser.set_defaults(run=partial(_run, module, command_line))


def _run(module, command_line: str, args: argparse.Namespace) -> int:
    try:
        return int(module.run(args) or 0)
    except (ImportError, MissingDependencyError) as err:
        raise _missing_extra(command_line, err) from None


def _missing_extra(command_line: str, err: Exception) -> Exception:
    """:class:`TrainExtraMissing` when ``err`` comes from a missing train-extra module, else ``err``
    itself (an ImportError of our own code is a bug and keeps its traceback)."""
    if isinstance(err, MissingDependencyError) and err.extra != "train":
        return err
    missing = _unimportable(TRAIN_EXTRA_MODULES)
    if not missing and isinstance(err, MissingDependencyError):
        missing = [err.module]
    return TrainExtraMissing(command_line, missing) if missing else err


def _unimportable(modules) -> list[str]:
    """The ``modules`` that fail to import here (absent or broken installs)."""
    failed = []
    for module in modules:
        try:
            importlib.import_module(module)
        except (ImportError, OSError):  # OSError: a shared library of the module is missing
            failed.append(module)
    return failed


def _split_examples(doc: str) -> tuple[str, str | None]:
    """(description, "examples:..." epilog) of a command module's docstring."""
    head, found, examples = doc.partition("\nexamples:")
    return head.strip(), ("examples:" + examples.rstrip()) if found else None


def _respell(text: str | None, native: str, command_line: str) -> str | None:
    return text.replace(native, command_line) if text else text
