"""How the federation's two services run in the cloud: images, their settings, their state.

The node stack (infra/) runs the worker on Confidential Space inside the node's perimeter;
the hub stack runs the coordinator as a Cloud Run job. The stacks write these settings,
the services' entrypoints read them: both sides import this module, so they cannot drift.

Two images (one Dockerfile, two targets) rather than one image with two commands: a
Confidential Space workload identity provider trusts an image *digest*, so the node's
signing key and data can be granted to the worker's digest alone, and the coordinator's
image, which the hub runs, can never wear a node's identity.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Self

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table

WORKER_IMAGE_NAME = "federation-worker"  # in each node's Artifact Registry
COORDINATOR_IMAGE_NAME = "federation-coordinator"  # in the hub's Artifact Registry

# Per node, the guard's state (odometer and release log): the one dataset the worker may
# write. Its read access to the domains' datasets stays read-only.
LEDGER_DATASET = "federation_ledger"

# The guard's state, in LEDGER_DATASET in the cloud and in the node's own (encrypted)
# warehouse locally. Written before a release is handed back for upload.
ODOMETER = Table(
    name="federation_odometer",
    description="Every differentially private release of this node, per dataset, for life.",
    columns=(
        Column("dataset", "STRING", "REQUIRED", "The table released from"),
        Column("run_id", "STRING", "REQUIRED", "Run of the release"),
        Column("step", "INTEGER", "REQUIRED", "Round of the release"),
        Column("algorithm", "STRING", "REQUIRED", "What was released"),
        Column("noise_multiplier", "FLOAT", "REQUIRED", "sigma / L2 sensitivity"),
        Column("epsilon_after", "FLOAT", "REQUIRED", "Lifetime epsilon after it"),
        Column("released_at", "TIMESTAMP", "REQUIRED", "When"),
    ),
)
RELEASE_LOG = Table(
    name="federation_releases",
    description="Every exact release: which query, over which participant set.",
    columns=(
        Column("dataset", "STRING", "REQUIRED", "The table released from"),
        Column("query", "STRING", "REQUIRED", "sha256 of algorithm, parameters and model"),
        Column("participants", "STRING", "REQUIRED", "Sorted comma-separated node set"),
        Column("release_class", "STRING", "REQUIRED", "masked_sums | clear_cells | metrics"),
        Column("run_id", "STRING", "REQUIRED", "Run of the release"),
        Column("step", "INTEGER", "REQUIRED", "Round of the release"),
        Column("released_at", "TIMESTAMP", "REQUIRED", "When"),
    ),
)
LEDGER_TABLES: tuple[Table, ...] = (ODOMETER, RELEASE_LOG)

# The hub's regional CMEK bucket where the coordinator keeps every released result with its
# run metadata (spec, participants, epsilon and delta charged per node, signatures).
RESULTS_BUCKET_PURPOSE = "federation-results"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image_by_digest(repository_url: str, image_name: str, digest: str) -> str:
    """`<region>-docker.pkg.dev/<project>/<repo>/<image>@sha256:...`: never a tag."""
    if not _DIGEST.fullmatch(digest):
        raise UserError(
            f"image digest {digest!r} for {image_name} is not sha256:<64 hex>; fix: set the "
            f"digest `docker buildx imagetools inspect` prints for the pushed image"
        )
    return f"{repository_url}/{image_name}@{digest}"


def _var(name: str) -> str:
    return field(metadata={"env": name})  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Settings:
    """Settings carried as environment variables (each field names its variable)."""

    def environment(self) -> dict[str, str]:
        return {f.metadata["env"]: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        return tuple(f.metadata["env"] for f in fields(cls))

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        missing = [var for var in cls.variables() if not env.get(var)]
        if missing:
            raise UserError(
                f"{cls.__name__} lacks {', '.join(missing)}; fix: run the service from its "
                f"stack (which sets them) or set them by hand"
            )
        return cls(**{f.name: env[f.metadata["env"]] for f in fields(cls)})


@dataclass(frozen=True)
class WorkerSettings(_Settings):
    """A node's worker in the cloud. On Confidential Space each is a `tee-env-<NAME>`
    metadata value, allowed by the image's `tee.launch_policy.allow_env_override` label."""

    node: str = _var("SOVEREIGN_NODE")  # this node's name (workloads.contracts.nodes)
    node_project: str = _var("SOVEREIGN_NODE_PROJECT")  # its project: BigQuery jobs run there
    region: str = _var("SOVEREIGN_REGION")  # the node's one region
    hub_project: str = _var("SOVEREIGN_HUB_PROJECT")  # where the federation topics live
    signing_key: str = _var("SOVEREIGN_SIGNING_KEY")  # KMS key *version* the worker signs with
    datasets: str = _var("SOVEREIGN_DATASETS")  # JSON: domain -> BigQuery dataset id
    ledger_dataset: str = _var("SOVEREIGN_LEDGER_DATASET")  # LEDGER_DATASET's full id
    bigquery_kms_key: str = _var("SOVEREIGN_BQ_KMS_KEY")  # named on every BigQuery job
    roster: str = _var("SOVEREIGN_ROSTER")  # the pinned roster (JSON): hub and node keys
    policy: str = _var("SOVEREIGN_POLICY")  # the node's disclosure policy (TOML)

    def dataset_ids(self) -> dict[str, str]:
        try:
            value = json.loads(self.datasets)
        except json.JSONDecodeError as exc:
            raise UserError(f"SOVEREIGN_DATASETS is not JSON ({exc}); fix: a JSON object "
                            f"domain -> dataset id") from None
        if not isinstance(value, dict):
            raise UserError("SOVEREIGN_DATASETS is not a JSON object; fix: domain -> dataset id")
        return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class CoordinatorSettings(_Settings):
    """The hub's coordinator (a Cloud Run job). The run itself (product, spec, nodes) comes
    as the execution's arguments, which the researchers' group may override."""

    hub_project: str = _var("SOVEREIGN_HUB_PROJECT")
    region: str = _var("SOVEREIGN_REGION")  # the hub's one region
    signing_key: str = _var("SOVEREIGN_SIGNING_KEY")  # the hub's KMS key version
    roster: str = _var("SOVEREIGN_ROSTER")  # the pinned roster (JSON)
    results_bucket: str = _var("SOVEREIGN_RESULTS_BUCKET")  # RESULTS_BUCKET_PURPOSE's name
