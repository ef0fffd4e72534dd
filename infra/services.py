"""The Google APIs a role uses, defined once: the stack enables them, the perimeter restricts."""

from __future__ import annotations

# Data-plane APIs a sovereign node enables and uses.
NODE_DATA_APIS: tuple[str, ...] = (
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

# Every other VPC-SC supported service that can read or hold data and that someone with
# rights in the project could switch on later (FAST restricts the whole supported list;
# these are the data services among them). Restricting a service the project does not use
# costs nothing and closes the door before anyone enables it.
OTHER_DATA_SERVICES: tuple[str, ...] = (
    "aiplatform.googleapis.com",
    "analyticshub.googleapis.com",
    "bigquerydatapolicy.googleapis.com",
    "bigquerydatatransfer.googleapis.com",
    "bigtable.googleapis.com",
    "bigtableadmin.googleapis.com",
    "cloudasset.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "composer.googleapis.com",
    "container.googleapis.com",
    "containeranalysis.googleapis.com",
    "containerregistry.googleapis.com",
    "datacatalog.googleapis.com",
    "dataflow.googleapis.com",
    "dataform.googleapis.com",
    "datafusion.googleapis.com",
    "dataplex.googleapis.com",
    "dataproc.googleapis.com",
    "dlp.googleapis.com",
    "file.googleapis.com",
    "healthcare.googleapis.com",
    "iamcredentials.googleapis.com",
    "lifesciences.googleapis.com",
    "ml.googleapis.com",
    "notebooks.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "spanner.googleapis.com",
    "sqladmin.googleapis.com",
    "sts.googleapis.com",
    "workflows.googleapis.com",
)

NODE_RESTRICTED_APIS: tuple[str, ...] = tuple(sorted({*NODE_DATA_APIS, *OTHER_DATA_SERVICES}))

# Data services whose Data Access audit logs the node keeps (who read which table/object).
NODE_AUDITED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "batch.googleapis.com",
    "bigquery.googleapis.com",
    "cloudkms.googleapis.com",
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

NODE_APIS: tuple[str, ...] = NODE_DATA_APIS + CONTROL_PLANE_APIS

HUB_APIS: tuple[str, ...] = (
    "cloudkms.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    *CONTROL_PLANE_APIS,
)
HUB_AUDITED_APIS: tuple[str, ...] = ("cloudkms.googleapis.com", "pubsub.googleapis.com")
