"""Parse and format sizes ("30GB", "512MiB"), durations ("30d") and margins ("10%").

Suffixes: KB/MB/GB/TB are decimal (10**9), KiB/MiB/GiB/TiB and the bare letters K/M/G/T are
binary (2**30), as `df -h` and `ls -h` print them. A bare number is bytes.
"""

from __future__ import annotations

import re

from disk_manager.errors import DiskManagerError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"


def parse_size(text: str | int, *, what: str = "size") -> int:
    """'30GB' -> 30_000_000_000; '512MiB' -> 536_870_912; ints pass through."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise DiskManagerError(f"{what}: must not be negative, got {text}")
        return text
    m = re.fullmatch(_NUMBER + r"([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise DiskManagerError(
            f"{what}: cannot read {text!r} as a size (examples: 30GB, 512MiB, 1.5T, 1000000)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(text: str | float, *, what: str = "duration") -> float:
    """'30d' -> seconds. Units: s, m, h, d, w."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    m = re.fullmatch(_NUMBER + r"([smhdw])\s*", str(text).lower())
    if not m:
        raise DiskManagerError(
            f"{what}: cannot read {text!r} as a duration (examples: 30d, 12h, 2w)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_margin(text: str | float, *, what: str = "margin") -> float:
    """'10%' or '0.1' -> 0.1."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(_NUMBER + r"(%?)\s*", str(text))
        if not m:
            raise DiskManagerError(f"{what}: cannot read {text!r} (examples: 10%, 0.1)")
        value = float(m.group(1)) / (100 if m.group(2) else 1)
    if not 0 <= value < 10:
        raise DiskManagerError(f"{what}: {text!r} is out of range (0% to 1000%)")
    return value


def format_size(n: int | float) -> str:
    """Decimal units, like the Hub and `parse_size('30GB')`: 14_483_000_000 -> '14.5 GB'."""
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    """A rough age for tables: '3 d', '5 h', '40 s'."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"
