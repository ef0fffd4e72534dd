"""Table schemas written once, in BigQuery's vocabulary, and rendered for every engine.

The Pulumi stack declares its BigQuery tables from these definitions (`bigquery_json`),
the BigQuery loaders build `SchemaField`s from them, and the local DuckDB warehouse
creates its tables from them (`duckdb_type`). Nothing restates a column elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

FieldType = Literal[
    "STRING", "INTEGER", "FLOAT", "BOOLEAN", "TIMESTAMP", "DATE", "JSON", "BYTES", "RECORD"
]
Mode = Literal["NULLABLE", "REQUIRED", "REPEATED"]

_DUCKDB_SCALARS: dict[str, str] = {
    "STRING": "VARCHAR",
    "INTEGER": "BIGINT",
    "FLOAT": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATE": "DATE",
    "JSON": "JSON",
    "BYTES": "BLOB",
}

_ARROW_SCALARS: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "JSON": pa.string(),
    "BYTES": pa.binary(),
}


# What a column means, for everything that reads data rather than bytes: the generator's
# profile checks, the federation's scaling and DP bounds, the statistics cells.
Role = Literal["identifier", "outcome", "covariate", "category", "timestamp", "text", "other"]
_NUMERIC = ("INTEGER", "FLOAT")


@dataclass(frozen=True)
class Column:
    name: str
    type: FieldType
    mode: Mode = "NULLABLE"
    description: str = ""
    fields: tuple[Column, ...] = ()  # sub-columns of a RECORD
    role: Role = "other"
    unit: str = ""  # UCUM-style unit of a numeric column: "a" (years), "kg/m2", "mm", "N"
    # Public bounds of a numeric column: known before any data is seen (a clinical range, a
    # count's limits), so scaling, clipping and DP sensitivity never depend on the data.
    bounds: tuple[float, float] | None = None
    # Public levels of a categorical column, in display order.
    levels: tuple[str | int, ...] = ()
    # May this column leave the node, in protected aggregates only (never row by row)?
    releasable: bool = False

    def __post_init__(self) -> None:
        if (self.type == "RECORD") != bool(self.fields):
            raise ValueError(f"column {self.name}: RECORD columns and only they have fields")
        if self.bounds is not None:
            low, high = self.bounds
            if self.type not in _NUMERIC or not low < high:
                raise ValueError(f"column {self.name}: bounds need a numeric type and low < high")
        if self.role == "identifier" and self.releasable:
            raise ValueError(f"column {self.name}: an identifier never leaves the node")
        if self.releasable and self.role in ("outcome", "covariate") and self.bounds is None:
            raise ValueError(
                f"column {self.name}: a releasable {self.role} needs public bounds (the DP "
                "sensitivity and the scaling are computed from them)"
            )
        if self.releasable and self.role == "category" and not self.levels:
            raise ValueError(f"column {self.name}: a releasable category needs public levels")

    @property
    def full_description(self) -> str:
        """The description with the public bounds, which are written once (in `bounds`)."""
        if self.bounds is None:
            return self.description
        low, high = self.bounds
        return f"{self.description} (public bounds {low:g}-{high:g})".lstrip()

    def bigquery_json(self) -> dict[str, Any]:
        """The column as BigQuery's REST API writes a TableFieldSchema."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.full_description:
            out["description"] = self.full_description
        if self.fields:
            out["fields"] = [f.bigquery_json() for f in self.fields]
        return out

    def duckdb_type(self) -> str:
        if self.type == "RECORD":
            inner = ", ".join(f'"{f.name}" {f.duckdb_type()}' for f in self.fields)
            base = f"STRUCT({inner})"
        else:
            base = _DUCKDB_SCALARS[self.type]
        return f"{base}[]" if self.mode == "REPEATED" else base

    def arrow_type(self) -> pa.DataType:
        if self.type == "RECORD":
            base: pa.DataType = pa.struct([f.arrow_field() for f in self.fields])
        else:
            base = _ARROW_SCALARS[self.type]
        return pa.list_(base) if self.mode == "REPEATED" else base

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type(), nullable=self.mode != "REQUIRED")


@dataclass(frozen=True)
class Partitioning:
    """BigQuery partitioning: by a DATE/TIMESTAMP column (`type_`) or integer range."""

    column: str
    type_: Literal["DAY", "HOUR", "MONTH", "YEAR", "RANGE"] = "DAY"
    range_start: int = 0
    range_end: int = 0
    range_interval: int = 0

    def bigquery_json(self) -> dict[str, Any]:
        """BigQuery's REST spelling (a Table resource's `timePartitioning` or
        `rangePartitioning`): the stack's table declarations and the BigQuery backend both
        derive theirs from it."""
        if self.type_ == "RANGE":
            interval = {"start": str(self.range_start), "end": str(self.range_end),
                        "interval": str(self.range_interval)}
            return {"rangePartitioning": {"field": self.column, "range": interval}}
        return {"timePartitioning": {"type": self.type_, "field": self.column}}


@dataclass(frozen=True)
class ForeignKey:
    """A reference to another table of the same domain: BigQuery declares it unenforced
    (a hint for the optimiser), DuckDB enforces it locally, the tests check it in SQL."""

    columns: tuple[str, ...]
    table: str
    referenced: tuple[str, ...]


@dataclass(frozen=True)
class ExternalParquet:
    """A table whose rows are Parquet files under a prefix of one of the node's buckets
    (a BigLake/external table in BigQuery), Hive-partitioned by the named keys."""

    bucket: str  # a bucket purpose of the node stack: "staging", "results", ...
    prefix: str  # e.g. "robotics/telemetry/"
    # Columns of the table that are directories (`<prefix>/session_id=.../`), not in the
    # files: BigQuery's Hive keys and the files' columns cannot overlap.
    hive_partition_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # what makes a row unique: loads MERGE on it
    partitioning: Partitioning | None = None
    clustering: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    foreign_keys: tuple[ForeignKey, ...] = ()
    external: ExternalParquet | None = None
    # A REPEATED RECORD column the local warehouse stores as a table of its own, one row
    # per element, behind a view of the declared shape (BigQuery keeps it nested): DuckDB
    # holds a transaction's nested lists in memory, rows of scalars it streams to disk.
    stored_long: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")
        if self.stored_long and not (
            self.stored_long in names and self.column(self.stored_long).type == "RECORD"
            and self.column(self.stored_long).mode == "REPEATED"
        ):
            raise ValueError(f"table {self.name}: stored_long names a REPEATED RECORD column")
        fk_columns = [c for fk in self.foreign_keys for c in fk.columns]
        hive_keys = self.external.hive_partition_keys if self.external else ()
        for key in (*self.primary_key, *self.clustering, *fk_columns, *hive_keys):
            if key not in names:
                raise ValueError(f"table {self.name}: {key!r} is not a column")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}; known: {self.column_names}")

    def bigquery_json(self) -> str:
        """The schema as the JSON string `gcp.bigquery.Table(schema=...)` takes."""
        return json.dumps([c.bigquery_json() for c in self.columns], indent=None)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([c.arrow_field() for c in self.columns])

    def duckdb_ddl(self, qualified_name: str) -> str:
        cols = [
            f'"{c.name}" {c.duckdb_type()}' + (" NOT NULL" if c.mode == "REQUIRED" else "")
            for c in self.columns
        ]
        if self.primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in self.primary_key) + ")")
        return f"CREATE TABLE IF NOT EXISTS {qualified_name} (\n  " + ",\n  ".join(cols) + "\n)"


@dataclass(frozen=True)
class View:
    """A view over a node's tables, written once in BigQuery standard SQL: `{dataset}` stands
    for the view's own domain's dataset and `{dataset:<domain>}` for another domain's (a view
    may join domains inside the node). The local warehouse transpiles it (sqlglot).

    A view that declares its `columns` (with their meaning, as a Table's) can be analysed
    like a table: `as_table()` is what the analysis and the federation validate against."""

    name: str
    description: str
    sql: str
    columns: tuple[Column, ...] = ()

    def bigquery_sql(self, project: str, dataset: str,
                     datasets: Mapping[str, str] | None = None) -> str:
        """The view's query with `{dataset}` bound to its domain's dataset in `project` and
        `{dataset:<domain>}` to that domain's (`datasets`: domain name -> dataset)."""
        known = dict(datasets or {})

        def bind(match: re.Match[str]) -> str:
            domain = match.group(1)
            if domain is None:
                return f"`{project}.{dataset}`"
            if domain not in known:
                raise ValueError(f"view {self.name}: no dataset for domain {domain!r}")
            return f"`{project}.{known[domain]}`"

        return _PLACEHOLDER.sub(bind, self.sql)

    def local_sql(self, prefix: str) -> str:
        """The query with every dataset placeholder bound to `prefix` (a local warehouse keeps
        every domain's tables in one schema); still BigQuery's dialect."""
        return _PLACEHOLDER.sub(lambda _: prefix, self.sql)

    def as_table(self) -> Table:
        if not self.columns:
            raise ValueError(f"view {self.name} declares no columns")
        return Table(self.name, self.description, self.columns)


_PLACEHOLDER = re.compile(r"\{dataset(?::([a-z_][a-z0-9_]*))?\}")


@dataclass(frozen=True)
class Domain:
    """A kind of data a node holds: its tables, in one BigQuery dataset of the node (and the
    DuckDB schema of the same name locally). Adding a domain adds a module under
    workloads/contracts/tables/ and a line in the catalogue; no infra code changes."""

    name: str
    dataset: str
    description: str
    tables: tuple[Table, ...]
    views: tuple[View, ...] = ()
