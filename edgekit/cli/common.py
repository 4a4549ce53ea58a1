"""What every edgekit command shares: a parser per command with an "examples:" epilog, arguments
added only when the command is used, the device/backend words, and one way to run a command and
turn a user error into one line and exit code 2."""

from __future__ import annotations

import argparse
import math
import os
import sys

from edgekit.errors import ConfigError, EdgekitError, os_error_message


class CommandParser(argparse.ArgumentParser):
    """A command's parser whose arguments are added the first time it parses or prints its help.

    ``add_arguments(parser)`` runs then, so building the ``edgekit`` parser imports no command
    module: ``edgekit --help`` imports nothing heavy and a command's module loads only when that
    command is used.
    """

    def __init__(self, *args, add_arguments=None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._pending_arguments = add_arguments

    def _add_pending_arguments(self) -> None:
        if self._pending_arguments is not None:
            add_arguments, self._pending_arguments = self._pending_arguments, None
            add_arguments(self)

    def parse_known_args(self, args=None, namespace=None):
        self._add_pending_arguments()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_pending_arguments()
        return super().format_help()


def add_command(subparsers, name: str, help_text: str, examples: str | None = None, **kwargs) -> CommandParser:
    """A subcommand whose ``--help`` shows ``help_text`` and ``examples`` (an "examples:" block)."""
    return subparsers.add_parser(name, help=help_text, description=kwargs.pop("description", help_text),
                                 epilog=examples, **kwargs)


# --device and --backend take the words of edgekit.Recognizer and write_package; the library checks
# them (ConfigError listing the valid ones), the help lists them from the same tables


def device_help(default: str | None) -> str:
    """Help of ``--device``: the hardware classes and the device profiles this installation ships."""
    from targets.backend import DEVICE_CLASSES
    from targets.profiles import list_profiles

    return (f"hardware: {', '.join(DEVICE_CLASSES)}, a device profile ({', '.join(list_profiles())}) "
            f"or a profile .toml" + (f" (default: {default})" if default else ""))


def backend_help(default: str) -> str:
    """Help of ``--backend``: the runtimes."""
    from targets.backend import BACKEND_NAMES

    return f"runtime: {', '.join(BACKEND_NAMES)} (default: {default})"


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command (``args.run(args)``); returns the exit code.

    0 on success; 2 with one line ``PROG: error: ...`` on bad input (argparse errors exit 2 too);
    130 on Ctrl-C. User errors are :class:`EdgekitError` and :class:`OSError` (a path that cannot be
    read or written: permission, missing folder, name too long, full disk); any other exception is a
    bug and shows its traceback.
    """
    try:
        args = parser.parse_args(argv)
        return int(args.run(args) or 0)
    except EdgekitError as err:
        return _user_error(parser, str(err))
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        return _user_error(parser, os_error_message(err))


def _user_error(parser: argparse.ArgumentParser, message: str) -> int:
    """Print ``message`` as one line (a path may hold a newline) and return exit code 2. Under torchrun
    only the first process prints: every process meets the same bad input, the user needs one line."""
    if os.environ.get("WORLD_SIZE") is None or os.environ.get("RANK", "0") == "0":
        print(f"{parser.prog}: error: {' '.join(message.split()) or 'failed'}", file=sys.stderr)
    return 2


def seconds(flag: str):
    """An argparse type for ``flag``: seconds, finite and > 0. Raises ConfigError, which argparse lets
    through (it catches only ValueError/TypeError/ArgumentTypeError), so the user gets one line, exit 2."""
    def parse(text: str) -> float:
        value = _float(text)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{flag} must be a number of seconds > 0, got {text!r}")
        return value
    return parse


positive_seconds = seconds("--timeout")  # the ``--timeout`` of every command that reads a source


def whole_number(flag: str, minimum: int = 1):
    """An argparse type for ``flag``: an int >= ``minimum``, else ConfigError (one line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise ConfigError(f"{flag} must be a whole number >= {minimum}, got {text!r}")
        return value
    return parse


def positive_int(flag: str):
    """An argparse type for ``flag``: an int >= 1, else ConfigError (one line, exit 2)."""
    return whole_number(flag, 1)


def number_in(flag: str, low: float, high: float, what: str):
    """An argparse type for ``flag``: a number in [low, high] (``what`` says which kind), else
    ConfigError (one line, exit 2)."""
    def parse(text: str) -> float:
        value = _float(text)
        if not low <= value <= high:  # NaN fails too
            raise ConfigError(f"{flag} is {what} between {low:g} and {high:g}, got {text!r}")
        return value
    return parse


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
