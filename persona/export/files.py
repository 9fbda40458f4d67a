"""Writers of the exported files: JSONL and parquet, each written beside and renamed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from persona.errors import PersonaError
from persona.io import write_jsonl as write_jsonl  # the one JSONL writer, re-exported

PARQUET_BATCH = 1_000  # rows per parquet write: memory stays flat on any dataset size


def write_parquet(path: Path, rows: Iterable[dict]) -> int:
    """Rows of {"messages": [{role, content}]} into one parquet file."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise PersonaError("--to hf needs pyarrow: pip install pyarrow (or 'persona[hf]')"
                           ) from None
    schema = pa.schema([("messages", pa.list_(pa.struct(
        [("role", pa.string()), ("content", pa.string())])))])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    n, batch = 0, []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for row in rows:
                batch.append(row)
                if len(batch) == PARQUET_BATCH:
                    writer.write_table(pa.Table.from_pylist(batch, schema))
                    n, batch = n + len(batch), []
            if batch or not n:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                n += len(batch)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; keep the umask like io.py
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
