"""``python -m training <command>``: the training commands, the same as ``edgekit <command>``.

Each command is a module defining ``add_arguments(parser)`` and ``run(args) -> int`` (listed in
``edgekit.cli.training.COMMANDS``); it is imported only when its command is used, so ``--help``
works without torch, and a command run without the ``train`` extra says so in one line.
"""

from __future__ import annotations

import sys

from edgekit.cli.common import CommandParser, run_command
from edgekit.cli.training import add_commands

COMMANDS = ("synth", "cache", "models", "train", "eval", "assets", "reproduce", "curves")
EXAMPLES = """examples:
  python -m training synth --preset small --out data/synth-small
  python -m training train --config training/configs/edge-mvr.toml
  python -m training eval --checkpoint runs/edge-mvr/best.json
  python -m training models --json
  python -m training reproduce --preset small                         # the seed papers' comparison table
  python -m training curves runs/edge-mvr runs/edge-mv -o curves.png  # top-1 and loss per epoch, as a picture
  torchrun --standalone --nproc_per_node 2 -m training train --config edge-mvr   # data-parallel: 2 GPUs/processes"""


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m training", epilog=EXAMPLES,
                           description="The training commands, the same as 'edgekit <command>'; they need the "
                           "train extra: pip install 'edgekit[train]'.")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), COMMANDS,
                 prefix="python -m training")
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
