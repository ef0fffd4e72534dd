"""`python -m workloads <command>`: one sub-command module per workload.

Each module in COMMAND_MODULES has `register(subparsers)`, which adds its commands and
sets `func` (taking the parsed args, returning an exit code) on each of them.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import NoReturn

from workloads.contracts.errors import UserError

COMMAND_MODULES = (
    "workloads.cli.generate",
    "workloads.cli.vcf",
    "workloads.cli.fhir",
    "workloads.cli.node",
    "workloads.cli.federate",
    "workloads.cli.demo",
    "workloads.analysis.cli",
    "workloads.cli.robotics",
)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line, `error: ...; fix: ...`, exit 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        fix = "" if "fix:" in message else f"; fix: see `{self.prog} --help`"
        self.exit(2, f"error: {self.prog}: {message}{fix}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; given the `command` about to run, only the modules up to the one that
    registers it are imported (a whole `generate` process starts ~1 s sooner without the
    analysis modules' scipy)."""
    parser = Parser(
        prog="python -m workloads",
        description="Sovereign federated genomics: the workloads a node runs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
        if command is not None and command in sub.choices:
            break
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs (pools kill their workers,
    temporary files are removed, transactions roll back) before the process exits."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    # Libraries' deprecation notices (e.g. google.api_core's Python-version FutureWarning)
    # are for this project's developers, not for the people running a command.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    previous = signal.getsignal(signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except UserError as exc:
        return _fail(f"{exc}")
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop writing to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _fail("the output pipe was closed before the command finished; fix: read "
                     "the whole output, or redirect it to a file")
    except (KeyboardInterrupt, Terminated) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated"
        _fail(f"{what}; completed loads and files are kept, nothing half-written is; fix: "
              "run the command again (it continues where it stopped)")
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    except Exception as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        return _fail(message)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def os_error_message(exc: BaseException) -> str | None:
    """`what, where; fix: how` for the operating system's refusals (also when a library,
    e.g. DuckDB, reports them in its own exception type); None for anything else."""
    if not isinstance(exc, OSError) and type(exc).__module__.lstrip("_").split(".")[0] != "duckdb":
        return None
    text = str(exc)
    where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
    code = exc.errno if isinstance(exc, OSError) else None
    if code == errno.ENOSPC or "No space left on device" in text:
        return (f"the disk is full{where}; nothing half-written was kept; fix: free space, "
                "or use --root (and --out) on a disk with room, then run the command again")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in text:
        return (f"permission denied{where or ': ' + text[:200]}; fix: choose a folder you can "
                "write (--root, --out) or fix its permissions")
    if code == errno.EDQUOT:
        return f"disk quota exceeded{where}; fix: free space within your quota"
    if isinstance(exc, OSError):
        return (f"{exc.strerror or text}{where}; fix: check the path and the disk, then run "
                "the command again")
    return None
