"""What a node's federation worker and its guard need of the node, locally or in the cloud.

- `name`;
- `open_warehouse(create=False)`: the node's tables, which the worker only reads;
- `open_ledger(data)`: where the guard keeps its odometer and release log
  (workloads.contracts.federation_service.LEDGER_TABLES).

`LocalNode` (a folder) is one: both are its encrypted DuckDB warehouse, one connection.
`CloudNode` is the other: the tables are the node's BigQuery datasets (one per domain, read
with read-only roles) and the ledger is its LEDGER_DATASET, the one dataset it may write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from workloads.contracts.catalogue import DOMAINS
from workloads.contracts.errors import UserError
from workloads.contracts.federation_service import LEDGER_TABLES
from workloads.contracts.nodes import NODE_NAME, NODE_NAME_RULE
from workloads.warehouse.base import Warehouse


class NodeHandle(Protocol):
    @property
    def name(self) -> str: ...

    def open_warehouse(self, *, create: bool = ...) -> Warehouse: ...

    def open_ledger(self, data: Warehouse) -> Warehouse: ...


_RESOURCE = re.compile(r"^projects/([^/]+)/datasets/([^/]+)$")


def dataset_ref(text: str, project: str, what: str) -> tuple[str, str]:
    """`dataset`, `project.dataset`, `project:dataset` or `projects/p/datasets/d` (a
    Pulumi resource id) -> (project, dataset)."""
    if match := _RESOURCE.match(text):
        return match.group(1), match.group(2)
    head, sep, tail = text.replace(":", ".").rpartition(".")
    dataset, owner = (tail, head) if sep else (text, project)
    if not dataset or not owner or "." in owner or "/" in text:
        raise UserError(f"{what} {text!r} is not a BigQuery dataset id; fix: give "
                        f"'dataset' or 'project.dataset'")
    return owner, dataset


@dataclass(frozen=True)
class CloudNode:
    """A node in Google Cloud as its worker sees it (WorkerSettings)."""

    name: str
    project: str  # the node's project: BigQuery jobs run (and are billed) there
    region: str
    datasets: Mapping[str, str]  # domain -> dataset id (the node stack's `datasets` output)
    ledger_dataset: str  # LEDGER_DATASET's id ('dataset' or 'project.dataset')
    kms_key: str  # named on every BigQuery job (the node's CMEK org policy)
    client: Any = field(default=None, compare=False)  # a bigquery.Client (made when None)

    def __post_init__(self) -> None:
        if not NODE_NAME.match(self.name):
            raise UserError(f"node name {self.name!r} is not valid; fix: use {NODE_NAME_RULE}")
        unknown = sorted(set(self.datasets) - {d.name for d in DOMAINS})
        if unknown or not self.datasets:
            raise UserError(
                f"datasets name unknown domains {unknown} (or none); fix: map each of "
                f"{', '.join(d.name for d in DOMAINS)} to its dataset id")

    def table_datasets(self) -> dict[str, str]:
        """Table (or view) name -> 'project.dataset' of the domain that declares it."""
        refs = {}
        for domain in DOMAINS:
            if domain.name in self.datasets:
                project, dataset = dataset_ref(self.datasets[domain.name], self.project,
                                               f"dataset of {domain.name}")
                refs.update({t.name: f"{project}.{dataset}" for t in domain.tables})
                # Its views too (the stack declares them in the same dataset).
                refs.update({v.name: f"{project}.{dataset}" for v in domain.views})
        return refs

    def open_warehouse(self, *, create: bool = False) -> Warehouse:
        from workloads.warehouse.bigquery_warehouse import BigQueryWarehouse

        first = next(iter(self.datasets.values()))
        _, dataset = dataset_ref(first, self.project, "dataset")
        return BigQueryWarehouse(project=self.project, dataset=dataset, location=self.region,
                                 client=self.client, node=self.name, kms_key=self.kms_key,
                                 table_datasets=self.table_datasets())

    def open_ledger(self, data: Warehouse) -> Warehouse:
        from workloads.warehouse.bigquery_warehouse import BigQueryWarehouse

        project, dataset = dataset_ref(self.ledger_dataset, self.project, "ledger dataset")
        # Jobs run in the node's project even when the dataset is named with its project.
        return BigQueryWarehouse(project=self.project, dataset=dataset, location=self.region,
                                 client=self.client, node=self.name, kms_key=self.kms_key,
                                 table_datasets={t.name: f"{project}.{dataset}"
                                                 for t in LEDGER_TABLES})
