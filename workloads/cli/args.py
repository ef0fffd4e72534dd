"""Argument types shared by the CLI modules: bad values are refused by argparse (exit 2)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is below 1; fix: pass a whole number, 1 or more")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is negative; fix: pass a whole number, 0 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number; fix: pass digits only, e.g. 2") from None


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Adds `(default: X)` to an option's help unless it already says, or X is nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)
