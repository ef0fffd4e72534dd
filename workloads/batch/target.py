"""Where a Batch job runs: the node stack's outputs, named as `infra/node.py` exports them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workloads.contracts.errors import UserError

IMAGE_NAME = "vcf-processor"


@dataclass(frozen=True)
class BatchTarget:
    project: str
    region: str
    instance_template: str  # self link of the node's global Confidential VM template
    service_account: str  # must be the template's service account
    input_bucket: str  # raw VCFs (stack output buckets["raw-input"])
    staging_bucket: str  # Parquet between the tasks and the load (buckets["staging"])
    dataset: str  # BigQuery dataset holding processed_variants
    image_uri: str  # <region>-docker.pkg.dev/<project>/<repo>/vcf-processor:<tag>
    # The dataset's CMEK key: the CMEK org policy refuses BigQuery jobs that name none.
    bigquery_kms_key: str

    @classmethod
    def from_stack_outputs(cls, outputs: Mapping[str, Any], *, image_tag: str = "latest") -> (
        BatchTarget
    ):
        """From `pulumi stack output --json` of a node stack."""
        try:
            buckets = outputs["buckets"]
            return cls(
                project=outputs["project"],
                region=outputs["region"],
                instance_template=outputs["batch_template"],
                service_account=outputs["batch_service_account"],
                input_bucket=buckets["raw-input"],
                staging_bucket=buckets["staging"],
                dataset=outputs["dataset"],
                image_uri=f"{outputs['repository_url']}/{IMAGE_NAME}:{image_tag}",
                bigquery_kms_key=outputs["keys"]["bigquery"],
            )
        except KeyError as exc:
            raise UserError(
                f"stack outputs lack {exc}; fix: pass `pulumi stack output --json -s <node>` "
                f"of a node stack (project, region, batch_template, batch_service_account, "
                f"buckets, dataset, repository_url, keys)"
            ) from exc
