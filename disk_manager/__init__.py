"""Never again "No space left on device": check, estimate, clean and relocate model caches."""

from disk_manager.clean import CleanReport
from disk_manager.errors import DiskManagerError
from disk_manager.manager import DiskManager
from disk_manager.preflight import Item, Preflight, preflight
from disk_manager.units import format_size, parse_size

__version__ = "0.1.0"
__all__ = ["CleanReport", "DiskManager", "DiskManagerError", "Item", "Preflight",
           "format_size", "parse_size", "preflight"]
