"""Every domain a node holds and so every table, combined from workloads/contracts/tables/.

The node stack declares one BigQuery dataset per domain and every table in it by iterating
DOMAINS; the local warehouse creates the same tables. Add a domain: a module under
workloads/contracts/tables/ and its Domain here.
"""

from __future__ import annotations

from workloads.contracts.schema import Domain, Table, View
from workloads.contracts.tables.clinical import CLINICAL
from workloads.contracts.tables.genomics import GENOMICS
from workloads.contracts.tables.robotics import ROBOTICS

DOMAINS: tuple[Domain, ...] = (GENOMICS, CLINICAL, ROBOTICS)

ALL_TABLES: tuple[Table, ...] = tuple(t for d in DOMAINS for t in d.tables)

# Views that declare their columns' meaning: analysed like tables (stored nowhere).
ANALYSABLE_VIEWS: tuple[View, ...] = tuple(v for d in DOMAINS for v in d.views if v.columns)
# What an analysis or a federation algorithm may name: every table and analysable view.
ANALYSABLE: tuple[Table, ...] = ALL_TABLES + tuple(v.as_table() for v in ANALYSABLE_VIEWS)


def view_named(name: str) -> View | None:
    return next((v for d in DOMAINS for v in d.views if v.name == name), None)


def table_named(name: str) -> Table:
    for table in ALL_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"no table {name!r}; known: {', '.join(t.name for t in ALL_TABLES)}")


def domain_of(table: Table) -> Domain:
    for domain in DOMAINS:
        if table in domain.tables:
            return domain
    raise KeyError(f"table {table.name!r} belongs to no domain")


def _check_unique() -> None:
    names = [t.name for t in ALL_TABLES] + [v.name for d in DOMAINS for v in d.views]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:  # BigQuery datasets differ, but local and federated references use bare names
        raise ValueError(f"table and view names must be unique across domains: {dupes}")
    datasets = [d.dataset for d in DOMAINS]
    if len(set(datasets)) != len(datasets):
        raise ValueError("each domain needs its own dataset")


_check_unique()
