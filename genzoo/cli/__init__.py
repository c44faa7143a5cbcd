"""The ``genzoo`` command line: one module per group of commands.

``genzoo --help``, ``list``, ``datasets`` and ``plugins`` import no deep-learning
framework: the registry holds import paths, and commands import the backends lazily.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from genzoo.cli import authoring, evaluating, listing, sampling, training  # noqa: F401
from genzoo.cli.group import cli
from genzoo.errors import GenzooError, Terminated, one_line

# Click 8.2+ raises this for a group called without a command; 8.1 prints the help itself.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())

__all__ = ["cli", "main"]


def _show_warning(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"genzoo: warning: {one_line(str(message))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one line and exit 2, Ctrl-C exits 130."""
    warnings.showwarning = _show_warning
    try:
        code = cli.main(args=argv, prog_name="genzoo", standalone_mode=False)
    except GenzooError as exc:
        stopped = exc.exit_code in (130, 143)  # Ctrl-C or SIGTERM, handled: not an error
        print(f"genzoo: {'' if stopped else 'error: '}{one_line(str(exc))}", file=sys.stderr)
        _exit(exc.exit_code)
    except click.exceptions.Abort:
        print("genzoo: aborted", file=sys.stderr)
        _exit(130)
    except KeyboardInterrupt as exc:
        print("genzoo: interrupted", file=sys.stderr)
        _exit(143 if isinstance(exc, Terminated) else 130)
    except NO_ARGS_IS_HELP as exc:  # `genzoo`, `genzoo plugin`
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        _exit(0)
    except click.ClickException as exc:
        print(f"genzoo: error: {one_line(exc.format_message())}", file=sys.stderr)
        _exit(exc.exit_code)
    except OSError as exc:  # a path the system refuses: a name too long, a full disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"genzoo: error: {one_line(exc.strerror or str(exc))}{where}", file=sys.stderr)
        _exit(2)
    except Exception as exc:
        if not _out_of_memory(exc):
            raise
        print("genzoo: error: out of memory (a smaller model, batch size or --n needs less): "
              f"{one_line(str(exc))[:200]}", file=sys.stderr)
        _exit(2)
    _exit(code if isinstance(code, int) else 0)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: Python's MemoryError, torch's RuntimeError
    ("can't allocate memory", CUDA's "out of memory"), TensorFlow's ResourceExhaustedError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


def _exit(code: int) -> None:
    """Exit; a rank started by torchrun leaves without tearing down C++ state.

    Everything the run writes is written and renamed into place before this point. What
    remains at interpreter exit is the destruction of gloo's and c10d's threads, which
    can abort a finished rank ("terminate called without an active exception") and so
    fail a job that succeeded.
    """
    if os.environ.get("TORCHELASTIC_RUN_ID") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
