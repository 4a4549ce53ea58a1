"""``python -m training <command>``: one entry point, one module per command.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "synth": ("training.synth.cli", "generate the synthetic motion benchmark"),
    "cache": ("training.cache.cli", "extract side data (and teacher flow) of a dataset into a memory-mapped cache"),
    "models": ("training.models.cli", "list the model zoo with parameters and GFLOPs"),
    "train": ("training.train", "train a model from a TOML config"),
    "eval": ("training.evaluate", "video-level top-1/top-5 of a checkpoint, confusion matrix"),
    "assets": ("training.assets", "build the bundled default package and demo clip"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = modules[name] = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    args = parser.parse_args(argv)
    from edgekit.errors import EdgekitError

    try:
        return int(modules[args.command].run(args) or 0)
    except EdgekitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
