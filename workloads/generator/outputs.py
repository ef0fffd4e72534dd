"""Incremental, atomic file outputs: CSV in the seed's column order, and Parquet.

A sink writes into a target that appears whole on commit or not at all: an object of
the node's store (encrypted at rest, the default) or, for exports the user asks for, a
plain file written under a hidden temporary name and renamed into place. A killed
process leaves at worst a `.*.tmp-<pid>-*` file, never read and removed by the next run.
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
from workloads.objectstore.base import ObjectStore
from workloads.objectstore.folder import TMP_MARK

FILE_FORMATS = ("csv", "parquet")


class Sink(Protocol):
    target: Target

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


class Target(Protocol):
    """Where a sink's bytes go: `open` once, then `finish(keep=...)` once."""

    location: str

    def open(self) -> IO[bytes]: ...

    def finish(self, *, keep: bool) -> None: ...


class ExportFile:
    """A plain file the user asked for (outside the node's encrypted store)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-export")
        self._file: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish
        return self._file

    def finish(self, *, keep: bool) -> None:
        if self._file is not None:
            self._file.close()
        if keep:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class StoreObject:
    """An object of the node's store (sealed with the node's key)."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.location = store.uri(key)
        self.key = key
        self._writing = store.open_write(key)

    def open(self) -> IO[bytes]:
        return self._writing.__enter__()

    def finish(self, *, keep: bool) -> None:
        if keep:
            self._writing.__exit__(None, None, None)
        else:
            failure = RuntimeError("output abandoned")
            self._writing.__exit__(RuntimeError, failure, None)


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


class CsvSink:
    """CSV with a plain header and unquoted values, as pandas/csv.writer write the seed's files."""

    def __init__(self, target: Target, schema: pa.Schema) -> None:
        self.target = target
        self._file = target.open()
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
        self.target.finish(keep=True)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.target.finish(keep=False)


class ParquetSink:
    """Parquet, one row group per batch, written as batches arrive."""

    def __init__(self, target: Target, schema: pa.Schema) -> None:
        self.target = target
        self._writer = pq.ParquetWriter(target.open(), schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def commit(self) -> None:
        self._writer.close()
        self.target.finish(keep=True)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.target.finish(keep=False)


def open_sink(fmt: str, target: Target, schema: pa.Schema) -> Sink:
    if fmt == "csv":
        return CsvSink(target, schema)
    if fmt == "parquet":
        return ParquetSink(target, schema)
    raise ValueError(f"unknown file format {fmt!r}")
