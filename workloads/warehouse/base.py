"""The small interface every warehouse backend implements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from workloads.contracts.schema import Table
from workloads.objectstore.base import ObjectStore


@dataclass(frozen=True)
class LoadResult:
    """What one atomic load did: a re-run of the same batch reports inserted == updated == 0."""

    table: str
    inserted: int
    updated: int
    unchanged: int
    deleted: int = 0  # rows a replacing load removed (keys absent from the new rows)

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.unchanged


class Warehouse(Protocol):
    """A node's warehouse. Loads are atomic and idempotent; queries return Arrow tables."""

    node: str
    dialect: str  # sqlglot's name for this backend's SQL

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        """Create the tables that do not exist yet, from their schema definitions."""
        ...

    def table_ref(self, table: Table | str) -> str:
        """The table's name as this backend's SQL expects it."""
        ...

    def merge(
        self, table: Table, batches: pa.Table | Iterable[pa.RecordBatch], *, label: str = "",
        replace: bool = False,
    ) -> LoadResult:
        """Upsert rows on the table's primary key, all or nothing; with `replace`, rows whose
        key is not among the new rows are deleted in the same transaction."""
        ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run SQL (use `table_ref` for table names) inside this node only."""
        ...

    def render(self, sql: str) -> list[str]:
        """DuckDB-dialect statements naming tables plainly -> this backend's statements
        (workloads.warehouse.dialect: the one place the dialects differ)."""
        ...

    def stage_parquet(
        self, store: ObjectStore, key: str, name: str, like: Table, job_tag: str
    ) -> None:
        """Make a Parquet object of the node's store queryable as table `name` (in `render`)
        until `unstage(name)`; its columns are those of `like`; `job_tag` names the cloud
        load job so a retry re-attaches."""
        ...

    def unstage(self, name: str) -> None: ...

    def run_atomic(self, sql: str, *, job_id: str) -> None:
        """Run the statements of `sql` (DuckDB dialect) as one transaction: all or nothing.
        `job_id` makes a retried cloud job re-attach instead of running twice."""
        ...

    def close(self) -> None: ...
