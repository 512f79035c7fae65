"""The ``robustcv`` command line: thin click commands that parse, validate and call the library."""
from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Iterator

import click

from robustcv import __version__
from robustcv.console import console
from robustcv.errors import UserError
from robustcv.outputs import describe_os_error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="robustcv")
def cli() -> None:
    """How robust is your vision model? Train it, attack it, defend it, report."""


def _register_commands() -> None:
    from robustcv.cli.attack import attack_command
    from robustcv.cli.listing import list_command
    from robustcv.cli.report import report_command
    from robustcv.cli.train import train_command

    for command in (train_command, attack_command, report_command, list_command):
        cli.add_command(command)


_register_commands()


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show each distinct warning once, as ``Warning: <message>`` on one stderr line: no file and
    line from Python's warnings machinery, no source line, no repeats (restored on exit)."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            console.print(f"Warning: {text}", markup=False, highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user mistakes end with one line on stderr and exit status 2."""
    with one_line_warnings():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="robustcv", standalone_mode=False)
    except click.exceptions.Abort:
        _say("Aborted.")
        return 130
    except click.ClickException as exc:  # UsageError, BadParameter, ... (exit code 2)
        _say(f"Error: {exc.format_message()}")
        return exc.exit_code
    except UserError as exc:
        _say(f"Error: {exc}")
        return 2
    except OSError as exc:  # a file-system fault (no permission, full disk, ...) is the user's to fix
        message = describe_os_error(exc)
        if message is None:
            raise
        _say(f"Error: {message}")
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def _say(line: str) -> None:
    """One line on stderr; under torchrun from rank 0 alone: every rank reads the same flags and
    files, so each meets the same mistake, and the other ranks end with the same status silently."""
    from robustcv.distributed import launched_rank

    if launched_rank() == 0:
        click.echo(line, err=True)


def run() -> None:  # pragma: no cover - thin wrapper for `python -m robustcv`
    sys.exit(main())
