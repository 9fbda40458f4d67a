"""User-facing errors: the CLI prints them as one line on stderr with their exit code."""

from __future__ import annotations


class DiskManagerError(Exception):
    """A known error caused by the user's input or environment (not a bug)."""

    exit_code = 2
