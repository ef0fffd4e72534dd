"""The sovereign node role: every per-node component, wired together, and the stack outputs."""

from __future__ import annotations

import pulumi

from infra.buckets import Buckets
from infra.confidential_batch import ConfidentialBatch
from infra.config import NodeConfig
from infra.federation_worker import FederationWorker, WorkerInputs
from infra.foundation import declare_foundation
from infra.identities import Identities, NodeResources
from infra.keys import KeyPurpose
from infra.network import Network
from infra.perimeter import Perimeter
from infra.registry import Registry
from infra.services import NODE_APIS, NODE_AUDITED_APIS, NODE_RESTRICTED_APIS
from infra.signing_key import SigningKey
from infra.warehouse import COMPONENT_NAME as WAREHOUSE_COMPONENT
from infra.warehouse import Warehouse
from workloads.contracts import catalogue
from workloads.contracts.batch import BatchTarget, JobSettings, TaskRequest, image_uri
from workloads.contracts.federation_service import attested_principal_set
from workloads.contracts.stack_outputs import NodeOutputs

NODE_KEY_PURPOSES: tuple[KeyPurpose, ...] = ("bigquery", "storage", "artifactregistry", "compute")
# Services whose data the org policy refuses to store without a customer-managed key.
NODE_CMEK_SERVICES: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "compute.googleapis.com",
    # Enabled for the worker's client library; no topic lives here, and none may without CMEK.
    "pubsub.googleapis.com",
    "storage.googleapis.com",
)


def declare_node(cfg: NodeConfig) -> None:
    foundation = declare_foundation(
        cfg,
        services=NODE_APIS,
        cmek_services=NODE_CMEK_SERVICES,
        audited_services=NODE_AUDITED_APIS,
        ring_name=f"sovereign-{cfg.node}",
        key_purposes=NODE_KEY_PURPOSES,
    )
    apis, keys, encrypted_with = foundation.apis, foundation.keys, foundation.encrypted_with
    after_apis = pulumi.ResourceOptions(depends_on=[apis])

    buckets = Buckets(
        "buckets",
        project=cfg.project,
        region=cfg.region,
        kms_key=keys.key_id("storage"),
        opts=encrypted_with("storage"),
    )
    warehouse = Warehouse(
        WAREHOUSE_COMPONENT,
        project=cfg.project,
        region=cfg.region,
        kms_key=keys.key_id("bigquery"),
        domains=catalogue.DOMAINS,  # read at run time: a new domain needs no change here
        bucket_names={purpose: b.name for purpose, b in buckets.buckets.items()},
        opts=encrypted_with("bigquery"),
    )
    registry = Registry(
        "registry",
        project=cfg.project,
        region=cfg.region,
        kms_key=keys.key_id("artifactregistry"),
        opts=encrypted_with("artifactregistry"),
    )
    network = Network("network", project=cfg.project, region=cfg.region, opts=after_apis)
    digest = cfg.worker.image_digest
    # Who reads the node's data and signs for it: the attested worker image, if deployed.
    attested = attested_principal_set(cfg.project_number, digest) if digest else None
    identities = Identities(
        "identities",
        project=cfg.project,
        region=cfg.region,
        on=NodeResources(
            raw_input_bucket=buckets.buckets["raw-input"],
            staging_bucket=buckets.buckets["staging"],
            results_bucket=buckets.buckets["results"],
            datasets=warehouse.datasets,
            repository=registry.repository,
        ),
        data_reader=attested,
        opts=after_apis,
    )
    batch = ConfidentialBatch(
        "confidential-batch",
        project=cfg.project,
        node=cfg.node,
        settings=cfg.batch,
        subnet=network.subnet.self_link,
        service_account=identities.batch_runner.email,
        kms_key=keys.key_id("compute"),
        opts=encrypted_with("compute"),
    )
    signing = SigningKey(
        "signing",
        key_ring=keys.key_ring.id,
        signer=attested,
        opts=pulumi.ResourceOptions(depends_on=[identities]),
    )
    worker = FederationWorker(
        "federation-worker",
        deployment=cfg.worker,
        on=WorkerInputs(
            project=cfg.project,
            project_number=cfg.project_number,
            region=cfg.region,
            node=cfg.node,
            hub_project=cfg.hub_project,
            repository_url=registry.url,
            subnet=network.subnet.self_link,
            service_account_email=identities.federation_worker.email,
            compute_key=keys.key_id("compute"),
            bigquery_key=keys.key_id("bigquery"),
            signing_key=signing.key.id,
            datasets={domain: d.dataset_id for domain, d in warehouse.datasets.items()},
        ),
        # Its VM boots only once its identity, grants, key and image access are in place.
        opts=pulumi.ResourceOptions(
            depends_on=[
                identities,
                signing,
                network,
                registry,
                *keys.usable("compute"),
                *keys.usable("bigquery"),
            ]
        ),
    )

    # The job comes before the fence (B2): it is created while the deployer is still
    # inside; later `up`s come in through the deployer's access level and ingress rule.
    fenced: list[pulumi.Resource] = [
        *foundation.components,
        warehouse,
        buckets,
        registry,
        network,
        identities,
        batch,
        signing,
        worker,
    ]
    if cfg.batch_job is not None:
        from infra.batch_job import declare_batch_job

        job = cfg.batch_job
        fenced.append(
            declare_batch_job(
                f"{job.kind}-job",
                BatchTarget[pulumi.Input[str]](
                    project=cfg.project,
                    region=cfg.region,
                    instance_template=batch.template.self_link,
                    service_account=identities.batch_runner.email,
                    input_bucket=buckets.buckets["raw-input"].name,
                    staging_bucket=buckets.buckets["staging"].name,
                    image_uri=image_uri(registry.url, job.image_tag),
                    bigquery_kms_key=keys.key_id("bigquery"),
                ),
                TaskRequest(job.kind, job.shards),
                settings=JobSettings(
                    parallelism=job.parallelism,
                    max_retry_count=job.max_retry_count,
                    max_run_duration_s=job.max_run_duration_s,
                ),
                # The job needs its VMs' template, identity and every grant in place.
                opts=pulumi.ResourceOptions(parent=batch, depends_on=[identities]),
            )
        )
    perimeter = Perimeter(
        "perimeter",
        access_policy=cfg.access_policy,
        node=cfg.node,
        project_numbers=[
            cfg.project_number,
            *([cfg.key_project.number] if cfg.key_project else []),
        ],
        restricted_services=NODE_RESTRICTED_APIS,
        federation_identity=identities.federation_worker.email,
        hub_project_number=cfg.hub_project_number,
        batch_image_project_number=cfg.batch_image_project_number,
        worker_image_project_number=cfg.worker.image_project_number if digest else None,
        agent_project_number=cfg.project_number,
        deployer=cfg.deployer,
        mode=cfg.perimeter_mode,
        provider=foundation.control_plane,
        # Fence last: once enforced, calls from outside are refused (the deployer's come
        # through its ingress rule).
        opts=pulumi.ResourceOptions(depends_on=fenced),
    )

    outputs = NodeOutputs[pulumi.Input[str]](
        node=cfg.node,
        jurisdiction=cfg.jurisdiction,
        project=cfg.project,
        region=cfg.region,
        keys={purpose: key.id for purpose, key in keys.keys.items()},
        datasets={domain: d.dataset_id for domain, d in warehouse.datasets.items()},
        tables={name: t.id for name, t in {**warehouse.tables, **warehouse.views}.items()},
        buckets={purpose: b.name for purpose, b in buckets.buckets.items()},
        repository_url=registry.url,
        network=network.vpc.self_link,
        subnet=network.subnet.self_link,
        batch_template=batch.template.self_link,
        batch_service_account=identities.batch_runner.email,
        federation_service_account=identities.federation_worker.email,
        perimeter=perimeter.perimeter.name,
        perimeter_mode=cfg.perimeter_mode,
        signing_key=signing.key.id,
    )
    for name, value in outputs.exports().items():
        pulumi.export(name, value)
