"""Incremental, atomic file outputs: CSV in the seed's column order, and Parquet.

Each sink writes to a hidden temporary name next to its target and renames it into
place only on commit, so a failed or interrupted run never leaves a half file (at
worst a `.*.tmp-<pid>` file from a killed process, which is never read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workloads.errors import UserError

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


class CsvSink(_AtomicFile):
    """CSV with a plain header and unquoted values, as pandas/csv.writer write the seed's files."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path)
        self._file: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self._file.write((",".join(schema.names) + "\n").encode())
        # Values are ids, integers and floats: nothing needs quoting (checked in the tests).
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        self._writer = pacsv.CSVWriter(self._file, schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

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
