"""The ``edgekit`` command line: one command per step of the life cycle, mirroring the Python objects.

======================================== =================================================
command                                  module
======================================== =================================================
train, eval, quantize                    :mod:`edgekit.cli.training` (the ``train`` extra)
export, package inspect                  :mod:`edgekit.cli.package`
recognize, demo, profile, benchmark,     :mod:`edgekit.cli.runtime`
inspect, sample, transcode
synth, cache, models, assets, reproduce, :mod:`edgekit.cli.training` (the ``train`` extra)
curves
======================================== =================================================

Every command: ``--help`` with examples, ``--json`` where it prints results, exit 0 on success and
2 on bad input with one line ``edgekit: error: ...`` (no traceback); ``benchmark`` exits 3 when a
row fails or falls under its gates (``--floor``, ``--max-int8-drop``). A command's arguments and
modules load only when it is used: ``edgekit --help`` and ``edgekit train --help`` never import torch.
"""

from __future__ import annotations

import argparse

from edgekit.cli import calibrate, package, runtime, training
from edgekit.cli.common import CommandParser, run_command

EXAMPLES = """examples:
  edgekit demo                                             # the bundled model on the bundled sample clip
  edgekit recognize clip.mp4 --json                        # labels, scores, windows, latency
  edgekit profile --synthetic 640x480@25                   # latency per stage, throughput, memory on this device
  edgekit synth --preset small --classes motion --out data/synth-small-motion   # the life cycle, from data
  edgekit train --config edge-mvr-standard               # a bundled config, or a TOML path
  edgekit eval --checkpoint runs/edge-mvr-standard/best.json
  edgekit quantize --checkpoint runs/edge-mvr-standard/best.json --out models/edge-mvr
  edgekit export models/edge-mvr --device cpu -o edge-mvr-cpu.edgepkg
  edgekit recognize clip.mp4 --package edge-mvr-cpu.edgepkg --device cpu

train, eval, quantize, synth, cache, models, assets, reproduce and curves need the train extra:
  pip install torch==2.13.0 && pip install 'edgekit[train]'
'edgekit COMMAND --help' shows each command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    """The ``edgekit`` parser. Cheap: it imports no command module (see :class:`CommandParser`)."""
    from edgekit import __version__

    parser = CommandParser(prog="edgekit", description="Compressed-domain video recognition on edge devices: "
                           "train, quantize, export and run models on motion vectors, residuals and I-frames.",
                           epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    training.add_commands(commands, ("train", "eval", "quantize"))
    package.add_commands(commands)
    runtime.add_commands(commands)
    calibrate.add_commands(commands)
    training.add_commands(commands, ("synth", "cache", "models", "assets", "reproduce", "curves"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``edgekit`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    return run_command(build_parser(), argv)
