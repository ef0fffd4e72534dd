"""The Google APIs a role uses, defined once: the stack enables them, the perimeter restricts."""

from __future__ import annotations

# Data-plane APIs a sovereign node enables and uses.
NODE_DATA_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "batch.googleapis.com",
    "bigquery.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    # Confidential Space: the attestation verifier, and STS, which exchanges its token for
    # the workload identity pool's (the worker's path to its data and signing key).
    "confidentialcomputing.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
)

# Every other service VPC-SC can restrict, so that one enabled later (by hand, outside this
# stack) is fenced from the start: FAST's restricted-services list (cloud-foundation-fabric,
# fast/stages/1-vpcsc/datasets/classic/restricted-services.yaml) minus
# cloudresourcemanager, which stays outside with the other control-plane APIs below.
# Restricting a service the project does not use costs nothing.
VPC_SC_SERVICES: tuple[str, ...] = (
    "accessapproval.googleapis.com",
    "adsdatahub.googleapis.com",
    "aiplatform.googleapis.com",
    "apigee.googleapis.com",
    "apigeeconnect.googleapis.com",
    "artifactregistry.googleapis.com",
    "assuredworkloads.googleapis.com",
    "automl.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerydatatransfer.googleapis.com",
    "bigtable.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudasset.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudprofiler.googleapis.com",
    "cloudsearch.googleapis.com",
    "cloudtrace.googleapis.com",
    "composer.googleapis.com",
    "compute.googleapis.com",
    "connectgateway.googleapis.com",
    "contactcenterinsights.googleapis.com",
    "container.googleapis.com",
    "containeranalysis.googleapis.com",
    "containerregistry.googleapis.com",
    "containerthreatdetection.googleapis.com",
    "datacatalog.googleapis.com",
    "dataflow.googleapis.com",
    "datafusion.googleapis.com",
    "dataproc.googleapis.com",
    "datastream.googleapis.com",
    "dialogflow.googleapis.com",
    "dlp.googleapis.com",
    "dns.googleapis.com",
    "documentai.googleapis.com",
    "eventarc.googleapis.com",
    "file.googleapis.com",
    "gameservices.googleapis.com",
    "gkeconnect.googleapis.com",
    "gkehub.googleapis.com",
    "healthcare.googleapis.com",
    "iam.googleapis.com",
    "iaptunnel.googleapis.com",
    "language.googleapis.com",
    "lifesciences.googleapis.com",
    "logging.googleapis.com",
    "managedidentities.googleapis.com",
    "memcache.googleapis.com",
    "meshca.googleapis.com",
    "metastore.googleapis.com",
    "ml.googleapis.com",
    "monitoring.googleapis.com",
    "networkconnectivity.googleapis.com",
    "networkmanagement.googleapis.com",
    "networksecurity.googleapis.com",
    "networkservices.googleapis.com",
    "notebooks.googleapis.com",
    "opsconfigmonitoring.googleapis.com",
    "osconfig.googleapis.com",
    "oslogin.googleapis.com",
    "privateca.googleapis.com",
    "pubsub.googleapis.com",
    "pubsublite.googleapis.com",
    "recaptchaenterprise.googleapis.com",
    "recommender.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicedirectory.googleapis.com",
    "spanner.googleapis.com",
    "speakerid.googleapis.com",
    "speech.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "storagetransfer.googleapis.com",
    "texttospeech.googleapis.com",
    "tpu.googleapis.com",
    "trafficdirector.googleapis.com",
    "transcoder.googleapis.com",
    "translate.googleapis.com",
    "videointelligence.googleapis.com",
    "vision.googleapis.com",
    "vpcaccess.googleapis.com",
)

NODE_RESTRICTED_APIS: tuple[str, ...] = tuple(sorted({*NODE_DATA_APIS, *VPC_SC_SERVICES}))

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
    "artifactregistry.googleapis.com",  # the coordinator's image
    "cloudkms.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",  # the coordinator's job
    "storage.googleapis.com",  # the results bucket
    *CONTROL_PLANE_APIS,
)
HUB_AUDITED_APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)
