"""CLI commands: checks."""

from __future__ import annotations

COMMANDS: list = []
