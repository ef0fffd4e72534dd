"""Errors a person can act on: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or configuration: the message names the input, the problem and the fix."""
