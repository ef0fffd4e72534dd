"""BigQuery: one dataset per domain of the catalogue and every table and view in it.

The node declares whatever workloads.contracts.catalogue.DOMAINS holds: adding a domain
(a module under workloads/contracts/tables/ and a line in the catalogue) adds its dataset,
tables and views here with no change to this file. Every dataset gets the same defaults,
the ones Google's cloud-foundation-fabric `bigquery-dataset` module makes explicit: the
node's region as location, the BigQuery CMEK key as default encryption (and on each table,
so a reviewer sees it there), contents kept on destroy, tables deletion-protected.

- a Table: its schema, clustering, partitioning (contracts' BigQuery spelling) and its
  primary and foreign keys as BigQuery's unenforced constraints (query-planner hints; the
  loaders MERGE on the primary key, DuckDB enforces both locally);
- an ExternalParquet table: an external table over its prefix of a node bucket, Parquet,
  Hive-partitioned (CUSTOM: keys and types from the contract; the keys come from the paths,
  so they are left out of the schema). Its bytes stay in the bucket under the bucket's
  CMEK (BigQuery stores none), so the table itself names no key;
- a View: standard SQL with `{dataset}` bound to the domain's dataset and
  `{dataset:<domain>}` to another domain's; it stores nothing. Views come after every
  domain's tables (a view may join domains).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_gcp as gcp

from workloads.contracts.schema import Domain, Partitioning, Table

# The node stack declares one Warehouse component under this name (its tables are named
# "<name>-<table>").
COMPONENT_NAME = "warehouse"

# Checkov findings the keyless tables accept, each table named (keyless_table_resources):
# a stored table without its key still fails.
KEYLESS_CHECKOV_SKIPS: dict[str, str] = {
    "CKV_GCP_80": (
        "views store no bytes (they read tables that carry the node's key) and an external "
        "table's bytes are Parquet objects in the node's CMEK bucket (the policy pack's "
        "encryption-cmek checks that its source URIs are the node's own buckets)"
    ),
}


def keyless_table_resources(domains: Sequence[Domain] | None = None) -> list[str]:
    """Resource names of the catalogue's views and external tables (no table key)."""
    from workloads.contracts.catalogue import DOMAINS

    names = [v.name for d in (domains or DOMAINS) for v in d.views]
    names += [t.name for d in (domains or DOMAINS) for t in d.tables if t.external is not None]
    return [f"{COMPONENT_NAME}-{n}" for n in sorted(names)]


def _time_partitioning(p: Partitioning | None) -> gcp.bigquery.TableTimePartitioningArgs | None:
    spec = p.bigquery_json().get("timePartitioning") if p is not None else None
    return None if spec is None else gcp.bigquery.TableTimePartitioningArgs(**spec)


def _range_partitioning(p: Partitioning | None) -> gcp.bigquery.TableRangePartitioningArgs | None:
    spec = p.bigquery_json().get("rangePartitioning") if p is not None else None
    if spec is None:
        return None
    bounds = {k: int(v) for k, v in spec["range"].items()}
    return gcp.bigquery.TableRangePartitioningArgs(
        field=spec["field"], range=gcp.bigquery.TableRangePartitioningRangeArgs(**bounds)
    )


_HIVE_KEY_TYPES = ("STRING", "INTEGER", "DATE", "TIMESTAMP")  # what CUSTOM mode accepts


def _schema(table: Table) -> str:
    """The schema BigQuery gets: an external table's Hive keys come from its paths."""
    keys = table.external.hive_partition_keys if table.external else ()
    return json.dumps([c.bigquery_json() for c in table.columns if c.name not in keys])


def _external(
    table: Table, bucket_names: Mapping[str, pulumi.Input[str]]
) -> gcp.bigquery.TableExternalDataConfigurationArgs | None:
    ext = table.external
    if ext is None:
        return None
    if ext.bucket not in bucket_names:
        raise ValueError(
            f"table {table.name}: external bucket {ext.bucket!r} is not a node bucket "
            f"({', '.join(sorted(bucket_names))})"
        )
    prefix = pulumi.Output.concat("gs://", bucket_names[ext.bucket], "/", ext.prefix.strip("/"))
    hive = None
    if ext.hive_partition_keys:
        # CUSTOM: the partition keys, their order and types are the contract's, not guessed.
        types = {k: table.column(k).type for k in ext.hive_partition_keys}
        unsupported = {k: t for k, t in types.items() if t not in _HIVE_KEY_TYPES}
        if unsupported:
            raise ValueError(f"table {table.name}: Hive keys of types {_HIVE_KEY_TYPES} "
                             f"only, not {unsupported}")
        keys = "".join(f"/{{{k}:{t}}}" for k, t in types.items())
        hive = gcp.bigquery.TableExternalDataConfigurationHivePartitioningOptionsArgs(
            mode="CUSTOM",
            source_uri_prefix=pulumi.Output.concat(prefix, keys),
            require_partition_filter=False,
        )
    return gcp.bigquery.TableExternalDataConfigurationArgs(
        source_format="PARQUET",
        source_uris=[pulumi.Output.concat(prefix, "/*")],
        autodetect=False,  # the schema is the contract's
        hive_partitioning_options=hive,
    )


def _constraints(
    table: Table, project: str, declared: Mapping[str, gcp.bigquery.Table]
) -> gcp.bigquery.TableTableConstraintsArgs | None:
    if not table.primary_key and not table.foreign_keys:
        return None
    foreign = []
    for fk in table.foreign_keys:
        if len(fk.columns) != 1 or len(fk.referenced) != 1:
            # pulumi-gcp (like Terraform) declares one column pair per foreign key.
            raise ValueError(f"table {table.name}: foreign keys of one column only ({fk})")
        if fk.table not in declared:
            raise ValueError(
                f"table {table.name}: foreign key to {fk.table!r}, which is not an earlier "
                "table of the same domain; fix: list the referenced table first"
            )
        target = declared[fk.table]
        foreign.append(
            gcp.bigquery.TableTableConstraintsForeignKeyArgs(
                name=f"fk_{table.name}_{fk.table}_{fk.columns[0]}",
                referenced_table=gcp.bigquery.TableTableConstraintsForeignKeyReferencedTableArgs(
                    project_id=project, dataset_id=target.dataset_id, table_id=target.table_id
                ),
                column_references=gcp.bigquery.TableTableConstraintsForeignKeyColumnReferencesArgs(
                    referencing_column=fk.columns[0], referenced_column=fk.referenced[0]
                ),
            )
        )
    return gcp.bigquery.TableTableConstraintsArgs(
        primary_key=gcp.bigquery.TableTableConstraintsPrimaryKeyArgs(
            columns=list(table.primary_key)
        )
        if table.primary_key
        else None,
        foreign_keys=foreign or None,
    )


class Warehouse(pulumi.ComponentResource):
    """`datasets[domain]`, `tables[table]` and `views[view]` of every domain given."""

    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        kms_key: pulumi.Input[str],
        domains: Sequence[Domain],
        bucket_names: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Warehouse", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.datasets: dict[str, gcp.bigquery.Dataset] = {}
        self.tables: dict[str, gcp.bigquery.Table] = {}
        self.views: dict[str, gcp.bigquery.Table] = {}
        for domain in domains:
            # No `accesses` block: BigQuery keeps its project-role defaults (owners, editors,
            # viewers of this project only); access is granted per identity with IAM members.
            dataset = gcp.bigquery.Dataset(
                f"{name}-{domain.name}",
                project=project,
                dataset_id=domain.dataset,
                location=region,
                description=f"{domain.description} Node data: never leaves the node.",
                labels={"domain": domain.name},
                default_encryption_configuration=gcp.bigquery.DatasetDefaultEncryptionConfigurationArgs(
                    kms_key_name=kms_key
                ),
                delete_contents_on_destroy=False,
                opts=child,
            )
            self.datasets[domain.name] = dataset
            declared: dict[str, gcp.bigquery.Table] = {}
            for table in domain.tables:
                declared[table.name] = self._table(
                    name, project, dataset, table, kms_key, bucket_names, declared, child
                )
            self.tables.update(declared)
        # Views after every domain's tables: a view may join another domain's tables
        # (`{dataset:<domain>}`), so each depends on all of them.
        datasets = {d.name: d.dataset for d in domains}
        for domain in domains:
            for view in domain.views:
                self.views[view.name] = gcp.bigquery.Table(
                    f"{name}-{view.name}",
                    project=project,
                    dataset_id=self.datasets[domain.name].dataset_id,
                    table_id=view.name,
                    description=view.description,
                    view=gcp.bigquery.TableViewArgs(
                        query=view.bigquery_sql(project, domain.dataset, datasets),
                        use_legacy_sql=False,
                    ),
                    deletion_protection=True,
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=list(self.tables.values())
                    ),
                )
        self.register_outputs(
            {
                "datasets": {d: ds.dataset_id for d, ds in self.datasets.items()},
                "tables": sorted(self.tables),
                "views": sorted(self.views),
            }
        )

    @staticmethod
    def _table(
        name: str,
        project: str,
        dataset: gcp.bigquery.Dataset,
        table: Table,
        kms_key: pulumi.Input[str],
        bucket_names: Mapping[str, pulumi.Input[str]],
        declared: Mapping[str, gcp.bigquery.Table],
        child: pulumi.ResourceOptions,
    ) -> gcp.bigquery.Table:
        external = _external(table, bucket_names)
        extra: dict[str, Any] = {}
        if external is None:
            # Explicit even though the dataset default covers it: a reviewer (and the
            # policy pack) sees the key on the table itself.
            extra["encryption_configuration"] = gcp.bigquery.TableEncryptionConfigurationArgs(
                kms_key_name=kms_key
            )
        return gcp.bigquery.Table(
            f"{name}-{table.name}",
            project=project,
            dataset_id=dataset.dataset_id,
            table_id=table.name,
            description=table.description,
            schema=_schema(table),
            clusterings=list(table.clustering) or None,
            time_partitioning=_time_partitioning(table.partitioning),
            range_partitioning=_range_partitioning(table.partitioning),
            external_data_configuration=external,
            table_constraints=_constraints(table, project, declared),
            labels=dict(table.labels) or None,
            deletion_protection=True,
            opts=child,
            **extra,
        )
