"""The small interface every warehouse backend implements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from workloads.contracts.schema import Table


@dataclass(frozen=True)
class LoadResult:
    """What one atomic load did: a re-run of the same batch reports inserted == updated == 0."""

    table: str
    inserted: int
    updated: int
    unchanged: int

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


class Warehouse(Protocol):
    """A node's warehouse. Loads are atomic and idempotent; queries return Arrow tables."""

    node: str

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        """Create the tables that do not exist yet, from their schema definitions."""
        ...

    def table_ref(self, table: Table | str) -> str:
        """The table's name as this backend's SQL expects it."""
        ...

    def merge(
        self, table: Table, batches: pa.Table | Iterable[pa.RecordBatch], *, label: str = ""
    ) -> LoadResult:
        """Upsert rows on the table's primary key, all or nothing."""
        ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run SQL (use `table_ref` for table names) inside this node only."""
        ...

    def close(self) -> None: ...
