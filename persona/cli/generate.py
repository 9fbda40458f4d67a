"""CLI commands: the generation stages."""

from __future__ import annotations

COMMANDS: list = []
