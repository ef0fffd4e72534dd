"""The Google APIs a role uses, defined once: the stack enables them, the perimeter restricts."""

from __future__ import annotations

# Data-plane APIs of a sovereign node: every one is restricted by its VPC-SC perimeter.
NODE_RESTRICTED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "batch.googleapis.com",
    "bigquery.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
)

# Control-plane APIs the deployment itself calls. Left outside the perimeter on purpose:
# restricting them could lock the deployer out of the project it manages.
CONTROL_PLANE_APIS: tuple[str, ...] = (
    "cloudresourcemanager.googleapis.com",
    "orgpolicy.googleapis.com",
    "serviceusage.googleapis.com",
)

NODE_APIS: tuple[str, ...] = NODE_RESTRICTED_APIS + CONTROL_PLANE_APIS

HUB_APIS: tuple[str, ...] = (
    "cloudkms.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    *CONTROL_PLANE_APIS,
)
