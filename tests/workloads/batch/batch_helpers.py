"""A node's stack outputs as `pulumi stack output --json` prints them (names: infra/node.py)."""

from __future__ import annotations

from typing import Any

from workloads.batch.target import BatchTarget

STACK_OUTPUTS: dict[str, Any] = {
    "node": "us",
    "project": "sovereign-us",
    "region": "us-central1",
    "dataset": "hospital_data",
    "buckets": {"raw-input": "sovereign-us-raw-input", "staging": "sovereign-us-staging",
                "results": "sovereign-us-results"},
    "repository_url": "us-central1-docker.pkg.dev/sovereign-us/workloads",
    "batch_template":
        "https://www.googleapis.com/compute/v1/projects/sovereign-us/global/"
        "instanceTemplates/confidential-batch-us",
    "batch_service_account": "batch-runner@sovereign-us.iam.gserviceaccount.com",
    "keys": {"bigquery": "projects/sovereign-us/locations/us-central1/keyRings/sovereign-us/"
                         "cryptoKeys/bigquery"},
}


def target() -> BatchTarget:
    return BatchTarget.from_stack_outputs(STACK_OUTPUTS, image_tag="v1")
