"""Incremental, atomic file outputs: CSV in the seed's column order, and Parquet.

Each sink writes to a hidden temporary name next to its target and renames it into
place only on commit, so a failed or interrupted run never leaves a half file (at
worst a `.*.tmp-<pid>` file from a killed process, which is never read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workloads.contracts.errors import UserError

FILE_FORMATS = ("csv", "parquet")


class Sink(Protocol):
    path: Path

    def write(self, batch: pa.RecordBatch) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def writable_dir(folder: Path, what: str = "--out") -> Path:
    """Create `folder` if needed and prove it is writable, or fail naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"{what} {folder}: cannot write there ({exc.strerror or exc}); "
            f"fix: choose a writable folder"
        ) from None
    return folder


class _AtomicFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")

    def _finish(self, *, keep: bool) -> None:
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


_LOOKUP_LIMIT = 1 << 16  # distinct values above which a column is left to the CSV writer


def _as_text(column: pa.Array) -> pa.Array:
    """Small-range integers (and one-decimal floats) as text via a lookup table.

    Arrow's CSV writer formats numbers value by value; these columns hold a few hundred
    distinct values at most, so formatting each once and taking by index halves the CSV
    cost. Floats get one decimal ("29.0"), as pandas writes them.
    """
    if pa.types.is_integer(column.type):
        values = column.to_numpy(zero_copy_only=False)
        labels: list[str] | None = None
    elif pa.types.is_floating(column.type):
        raw = column.to_numpy(zero_copy_only=False)
        values = np.rint(raw * 10).astype(np.int64)
        if not np.array_equal(values / 10, raw):
            return column  # not all one-decimal values: leave it to the writer
        labels = []
    else:
        return column
    if len(values) == 0:
        return column
    low, high = int(values.min()), int(values.max())
    if high - low >= _LOOKUP_LIMIT:
        return column
    domain = range(low, high + 1)
    text = [str(v) for v in domain] if labels is None else [f"{v / 10:.1f}" for v in domain]
    return pa.array(text).take(pa.array(values - low))


class CsvSink(_AtomicFile):
    """CSV with a plain header and unquoted values, as pandas/csv.writer write the seed's files."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path)
        self._file: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self._file.write((",".join(schema.names) + "\n").encode())
        # Values are ids, integers and floats: nothing needs quoting (checked in the tests).
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        self._names = schema.names
        text_schema = pa.schema([pa.field(name, pa.string()) for name in schema.names])
        self._writer = pacsv.CSVWriter(self._file, text_schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [_as_text(column) for column in batch.columns]
        columns = [c if c.type == pa.string() else pc.cast(c, pa.string()) for c in columns]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, names=self._names))

    def commit(self) -> None:
        self._writer.close()
        self._file.close()
        self._finish(keep=True)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()
            self._finish(keep=False)


class ParquetSink(_AtomicFile):
    """Parquet, one row group per batch, written as batches arrive."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path)
        self._writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def commit(self) -> None:
        self._writer.close()
        self._finish(keep=True)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._finish(keep=False)


def open_sink(fmt: str, path: Path, schema: pa.Schema) -> Sink:
    if fmt == "csv":
        return CsvSink(path, schema)
    if fmt == "parquet":
        return ParquetSink(path, schema)
    raise ValueError(f"unknown file format {fmt!r}")
