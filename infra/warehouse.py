"""BigQuery: the node's `hospital_data` dataset and every table in workloads.tables.ALL_TABLES."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from workloads.contracts.schema import Partitioning, Table

DATASET_ID = "hospital_data"


def _time_partitioning(p: Partitioning | None) -> gcp.bigquery.TableTimePartitioningArgs | None:
    if p is None or p.type_ == "RANGE":
        return None
    return gcp.bigquery.TableTimePartitioningArgs(type=p.type_, field=p.column)


def _range_partitioning(p: Partitioning | None) -> gcp.bigquery.TableRangePartitioningArgs | None:
    if p is None or p.type_ != "RANGE":
        return None
    return gcp.bigquery.TableRangePartitioningArgs(
        field=p.column,
        range=gcp.bigquery.TableRangePartitioningRangeArgs(
            start=p.range_start, end=p.range_end, interval=p.range_interval
        ),
    )


class Warehouse(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        kms_key: pulumi.Input[str],
        tables: Sequence[Table],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Warehouse", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # No `accesses` block: BigQuery keeps its project-role defaults (owners, editors,
        # viewers of this project only); access is granted per identity with IAM members.
        self.dataset = gcp.bigquery.Dataset(
            f"{name}-dataset",
            project=project,
            dataset_id=DATASET_ID,
            location=region,
            description="Patient genomic and clinical data of this node; never leaves it.",
            default_encryption_configuration=gcp.bigquery.DatasetDefaultEncryptionConfigurationArgs(
                kms_key_name=kms_key
            ),
            delete_contents_on_destroy=False,
            opts=child,
        )
        self.tables: dict[str, gcp.bigquery.Table] = {}
        for table in tables:
            self.tables[table.name] = gcp.bigquery.Table(
                f"{name}-{table.name}",
                project=project,
                dataset_id=self.dataset.dataset_id,
                table_id=table.name,
                description=table.description,
                schema=table.bigquery_json(),
                clusterings=list(table.clustering) or None,
                time_partitioning=_time_partitioning(table.partitioning),
                range_partitioning=_range_partitioning(table.partitioning),
                # Explicit even though the dataset default covers it: a reviewer (and the
                # policy pack) sees the key on the table itself.
                encryption_configuration=gcp.bigquery.TableEncryptionConfigurationArgs(
                    kms_key_name=kms_key
                ),
                labels=dict(table.labels) or None,
                deletion_protection=True,
                opts=child,
            )
        self.register_outputs({"dataset": self.dataset.dataset_id, "tables": sorted(self.tables)})
