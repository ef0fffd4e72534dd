"""The stack's configuration: read once, typed, validated before any resource is declared.

Every per-node fact lives in `Pulumi.<stack>.yaml` under the `sovereign-genomics:` namespace;
the program holds no region, project or jurisdiction of its own. A wrong or missing value
stops the program with one message that names the key and says how to fix it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from workloads.contracts.batch import TASK_KIND, JobSettings
from workloads.contracts.errors import UserError
from workloads.contracts.federation import FEDERATION_WORKER_ACCOUNT_ID
from workloads.contracts.federation_service import WORKER_IMAGE_NAME, image_by_digest
from workloads.contracts.nodes import NODE_NAME, NODE_NAME_RULE

NAMESPACE = "sovereign-genomics"

Role = Literal["node", "hub"]
PerimeterMode = Literal["dryrun", "enforced"]
ProvisioningModel = Literal["SPOT", "STANDARD"]

ROLES: tuple[Role, ...] = ("node", "hub")
PERIMETER_MODES: tuple[PerimeterMode, ...] = ("dryrun", "enforced")
PROVISIONING_MODELS: tuple[ProvisioningModel, ...] = ("SPOT", "STANDARD")

# GCP project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a
# letter and not ending with a hyphen.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_PROJECT_NUMBER = re.compile(r"^[1-9][0-9]{5,18}$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_ACCESS_POLICY = re.compile(r"^[0-9]{1,20}$")
# Confidential VMs with AMD SEV on general-purpose machines: the N2D family.
_CONFIDENTIAL_MACHINE = re.compile(r"^n2d-(standard|highmem|highcpu)-[0-9]+$")
# Org policy values for gcp.resourceLocations: a region's value group or a bare region.
_REGION_GROUP = re.compile(r"^in:([a-z]+-[a-z]+[0-9]+)-locations$")
# A Cloud Identity customer id
# (gcloud organizations describe ORG --format='value(owner.directoryCustomerId)').
_CUSTOMER_ID = re.compile(r"^C[0-9a-z]{6,12}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-f]{64}$")  # raw Ed25519 public key, hex (the roster's form)
_GROUP = re.compile(r"^[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]+$")
# A fully qualified stack name for pulumi.StackReference: <organization>/<project>/<stack>.
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_DEPLOYER = re.compile(r"^(serviceAccount|user):[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]+$")


class ConfigError(UserError, pulumi.RunError):
    """A stack configuration value is missing or wrong (RunError: Pulumi prints no traceback)."""


@dataclass(frozen=True)
class BatchSettings:
    provisioning_model: ProvisioningModel
    machine_type: str


@dataclass(frozen=True)
class BatchJobSettings:
    """The optional `batchJob` block: the Batch job the node stack submits on `pulumi up`."""

    kind: str  # a registered task kind (workloads/batch/registry.py)
    shards: tuple[str, ...]  # object keys in the raw-input bucket, one task each
    image_tag: str  # of the task image (contracts.batch.IMAGE_NAME) in the node's registry
    parallelism: int
    max_retry_count: int
    max_run_duration_s: int


@dataclass(frozen=True)
class WorkerDeployment:
    """The node's federation worker on Confidential Space (deployed only with a digest)."""

    image_digest: str | None  # None: the worker is not deployed (posture says which key)
    machine_type: str
    # The hub stack whose `roster` output the worker pins (pulumi.StackReference).
    hub_stack: str
    # Number of Google's `confidential-space-images` project (the boot image's egress rule).
    image_project_number: str | None
    # The node's disclosure policy for its guard, as TOML (`federationPolicy`; "" = defaults).
    policy_toml: str = ""

    def image(self, repository_url: str) -> str | None:
        if self.image_digest is None:
            return None
        return image_by_digest(repository_url, WORKER_IMAGE_NAME, self.image_digest)


@dataclass(frozen=True)
class CoordinatorDeployment:
    """The hub's coordinator Cloud Run job (deployed only with a digest)."""

    image_digest: str | None
    researchers_group: str  # e-mail of the group that may run it and read the results
    hub_signing_key: str | None  # the hub's pinned public key (hex) for the roster


@dataclass(frozen=True)
class NodeRef:
    """A node as the hub knows it: its short name, its GCP project, its pinned public key."""

    name: str
    project: str
    signing_key: str | None = None  # hex raw Ed25519 key from the node's KMS key; None: unpinned

    @property
    def federation_identity(self) -> str:
        """The node's federation worker, as the hub grants it (created by the node stack)."""
        return f"{FEDERATION_WORKER_ACCOUNT_ID}@{self.project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class KeyProject:
    """An optional separate project for the keys (separation of duties: key admins there)."""

    project: str
    number: str


@dataclass(frozen=True)
class CommonConfig:
    stack: str
    role: Role
    project: str
    project_number: str
    region: str
    jurisdiction: str
    allowed_locations: tuple[str, ...]
    # The project that Org Policy and Access Context Manager calls are billed to (the
    # deployer's quota project; these APIs refuse calls without one).
    quota_project: str
    # Cloud Identity customer ids whose principals IAM may name (iam.allowedPolicyMemberDomains).
    allowed_member_domains: tuple[str, ...]
    # The identity that runs `pulumi up` (IAM member form), admitted through the perimeter.
    deployer: str
    key_project: KeyProject | None  # None: the keys live in the project itself


@dataclass(frozen=True)
class NodeConfig(CommonConfig):
    node: str
    hub_project: str
    hub_project_number: str
    access_policy: str
    perimeter_mode: PerimeterMode
    # The project number of Batch's image project (batch-custom-image): Batch VMs boot from
    # its image, so the perimeter must let that one read out (egress rule).
    batch_image_project_number: str
    batch: BatchSettings
    batch_job: BatchJobSettings | None  # None: the stack declares no Batch job
    worker: WorkerDeployment


@dataclass(frozen=True)
class HubConfig(CommonConfig):
    nodes: tuple[NodeRef, ...]
    coordinator: CoordinatorDeployment

    @property
    def missing_roster_keys(self) -> tuple[str, ...]:
        """Config keys still to pin before the roster is complete (empty: complete)."""
        missing = [f"nodes[{i}].signingKey" for i, n in enumerate(self.nodes) if not n.signing_key]
        if self.coordinator.hub_signing_key is None:
            missing.insert(0, "hubSigningKey")
        return tuple(missing)


StackConfig = NodeConfig | HubConfig


class _Reader:
    """Reads raw values from a Pulumi config and turns every problem into a ConfigError."""

    def __init__(self, cfg: pulumi.Config, stack: str) -> None:
        self._cfg = cfg
        self._stack = stack

    def fail(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(
            f"stack {self._stack}: config {NAMESPACE}:{key} {problem}; "
            f"fix: {fix} (in Pulumi.{self._stack}.yaml)"
        )

    def raw(self, key: str) -> str | None:
        return self._cfg.get(key)

    def string(
        self,
        key: str,
        pattern: re.Pattern[str] | None = None,
        example: str = "",
        default: str | None = None,
    ) -> str:
        value = self.raw(key)
        if value is None or value == "":
            if default is not None:
                return default
            raise self.fail(key, "is missing", f"set it, e.g. `{key}: {example}`")
        if pattern is not None and not pattern.match(value):
            raise self.fail(
                key, f"is {value!r}, which is malformed", f"use a value like {example!r}"
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, default=default, example=choices[0])
        if value not in choices:
            raise self.fail(key, f"is {value!r}", f"use one of {', '.join(choices)}")
        return value

    def structured(self, key: str, example: str) -> Any:
        value = self.raw(key)
        if value is None:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            problem = f"is not structured YAML ({exc.msg})"
            raise self.fail(key, problem, f"write it as {example}") from None

    def string_list(self, key: str, example: str) -> tuple[str, ...]:
        value = self.structured(key, example)
        if value is None:
            raise self.fail(key, "is missing", f"set it as a list, e.g. {example}")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(
                key, f"is {value!r}", f"write a non-empty list of strings, e.g. {example}"
            )
        return tuple(value)


def region_allowed(region: str, allowed_locations: tuple[str, ...]) -> bool:
    """True if an org-policy location list admits the region (its value group or itself)."""
    return region in allowed_locations or f"in:{region}-locations" in allowed_locations


def _common(r: _Reader, stack: str, role: Role) -> dict[str, Any]:
    region = r.string("region", _REGION, "us-central1")
    allowed = r.string_list("allowedLocations", f"[in:{region}-locations]")
    for value in allowed:
        if not (_REGION_GROUP.match(value) or _REGION.match(value)):
            raise r.fail(
                "allowedLocations",
                f"has {value!r}, which is neither a region nor a region value group",
                f"use values like in:{region}-locations or {region}",
            )
    if not region_allowed(region, allowed):
        raise r.fail(
            "region",
            f"is {region!r}, outside the jurisdiction's allowedLocations {list(allowed)}",
            f"pick a region inside allowedLocations or add in:{region}-locations to it "
            "if the jurisdiction admits it",
        )
    return {
        "stack": stack,
        "role": role,
        "project": r.string("project", _PROJECT_ID, "fed-node-us"),
        "project_number": r.string(
            "projectNumber",
            _PROJECT_NUMBER,
            "123456789012 (gcloud projects describe PROJECT --format='value(projectNumber)')",
        ),
        "region": region,
        "jurisdiction": r.string("jurisdiction", re.compile(r"^[A-Za-z0-9 _-]{2,40}$"), "HIPAA"),
        "allowed_locations": allowed,
        "quota_project": r.string("quotaProject", _PROJECT_ID, "sg-admin"),
        "allowed_member_domains": _customer_ids(r),
        "deployer": r.string(
            "deployer", _DEPLOYER, "serviceAccount:pulumi-deployer@sg-admin.iam.gserviceaccount.com"
        ),
        "key_project": _key_project(r),
    }


def _customer_ids(r: _Reader) -> tuple[str, ...]:
    ids = r.string_list("allowedMemberDomains", "[C0123abcd]")
    for value in ids:
        if not _CUSTOMER_ID.match(value):
            raise r.fail(
                "allowedMemberDomains",
                f"has {value!r}, which is not a Cloud Identity customer id",
                "use ids like C0123abcd (gcloud organizations describe ORG "
                "--format='value(owner.directoryCustomerId)')",
            )
    return ids


def _key_project(r: _Reader) -> KeyProject | None:
    example = "keyProject: {project: fed-keys-us, number: '100000000101'}"
    raw = r.structured("keyProject", example)
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or set(raw) != {"project", "number"}
        or not _PROJECT_ID.match(str(raw["project"]))
        or not _PROJECT_NUMBER.match(str(raw["number"]))
    ):
        raise r.fail("keyProject", f"is {raw!r}", f"write it as {example}")
    return KeyProject(project=str(raw["project"]), number=str(raw["number"]))


def _node(r: _Reader, common: dict[str, Any]) -> NodeConfig:
    batch_raw = r.structured("batch", "batch: {provisioningModel: SPOT, machineType: ...}")
    batch_raw = {} if batch_raw is None else batch_raw
    if not isinstance(batch_raw, dict):
        raise r.fail("batch", f"is {batch_raw!r}", "write it as a mapping")
    unknown = set(batch_raw) - {"provisioningModel", "machineType"}
    if unknown:
        raise r.fail(
            "batch", f"has unknown keys {sorted(unknown)}", "use provisioningModel, machineType"
        )
    model = batch_raw.get("provisioningModel", "SPOT")
    if model not in PROVISIONING_MODELS:
        raise r.fail(
            "batch.provisioningModel",
            f"is {model!r}",
            f"use one of {', '.join(PROVISIONING_MODELS)}",
        )
    machine = batch_raw.get("machineType", "n2d-standard-4")
    if not isinstance(machine, str) or not _CONFIDENTIAL_MACHINE.match(machine):
        raise r.fail(
            "batch.machineType",
            f"is {machine!r}, not an N2D machine type (AMD SEV Confidential VMs need N2D)",
            "use e.g. n2d-standard-4",
        )
    batch_job = _batch_job(r)
    hub_project = r.string("hubProject", _PROJECT_ID, "fed-hub")
    if hub_project == common["project"]:
        raise r.fail("hubProject", "equals the node's own project", "name the hub's project")
    return NodeConfig(
        **common,
        node=r.string("node", NODE_NAME, "us"),
        hub_project=hub_project,
        hub_project_number=r.string("hubProjectNumber", _PROJECT_NUMBER, "210987654321"),
        access_policy=r.string(
            "accessPolicy",
            _ACCESS_POLICY,
            "123456789 (gcloud access-context-manager policies list --organization=ORG)",
        ),
        perimeter_mode=_as_perimeter_mode(r.choice("perimeterMode", PERIMETER_MODES, "enforced")),
        batch_image_project_number=r.string(
            "batchImageProjectNumber",
            _PROJECT_NUMBER,
            "the number of project batch-custom-image "
            "(gcloud projects describe batch-custom-image --format='value(projectNumber)')",
        ),
        batch=BatchSettings(provisioning_model=model, machine_type=machine),
        batch_job=batch_job,
        worker=_worker(r),
    )


DEFAULT_HUB_STACK = f"organization/{NAMESPACE}/hub"


def _worker(r: _Reader) -> WorkerDeployment:
    digest = r.raw("workerImageDigest") or None
    if digest is not None and not _DIGEST.match(digest):
        raise r.fail(
            "workerImageDigest",
            f"is {digest!r}, not sha256:<64 hex>",
            "set the digest `docker buildx imagetools inspect` prints for the pushed "
            "federation-worker image (never a tag)",
        )
    machine = r.string(
        "workerMachineType", _CONFIDENTIAL_MACHINE, "n2d-standard-2", "n2d-standard-2"
    )
    image_project = r.raw("confidentialSpaceImageProjectNumber") or None
    if image_project is not None and not _PROJECT_NUMBER.match(image_project):
        raise r.fail(
            "confidentialSpaceImageProjectNumber",
            f"is {image_project!r}, not a project number",
            "gcloud projects describe confidential-space-images --format='value(projectNumber)'",
        )
    if digest is not None and image_project is None:
        raise r.fail(
            "confidentialSpaceImageProjectNumber",
            "is missing, and the worker (workerImageDigest) boots from that project's image",
            "set it from gcloud projects describe confidential-space-images "
            "--format='value(projectNumber)'",
        )
    policy = r.structured("federationPolicy", "federationPolicy: {lifetime_epsilon: 10.0}")
    policy = {} if policy is None else policy
    if not isinstance(policy, dict) or not all(
        isinstance(v, (int, float, str, list)) and not isinstance(v, bool) for v in policy.values()
    ):
        raise r.fail(
            "federationPolicy",
            f"is {policy!r}",
            "write the guard's settings as a mapping, e.g. {lifetime_epsilon: 10.0, min_k: 10}",
        )
    return WorkerDeployment(
        # Never empty (an empty variable counts as unset): a comment when defaults apply.
        policy_toml="".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(policy.items()))
        or "# the guard's defaults\n",
        image_digest=digest,
        machine_type=machine,
        hub_stack=r.string("hubStack", _STACK_REF, DEFAULT_HUB_STACK, DEFAULT_HUB_STACK),
        image_project_number=image_project,
    )


DEFAULT_TASK_KIND = "vcf"  # the batchJob block predates task kinds: it meant the VCF job
_BATCH_JOB_EXAMPLE = "batchJob: {enabled: true, shards: [in/a.vcf.gz], imageTag: '1.0.0'}"
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _batch_job(r: _Reader) -> BatchJobSettings | None:
    raw = r.structured("batchJob", _BATCH_JOB_EXAMPLE)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise r.fail("batchJob", f"is {raw!r}", f"write it as a mapping: {_BATCH_JOB_EXAMPLE}")
    known = {
        "enabled", "kind", "shards", "imageTag", "parallelism", "maxRetryCount", "maxRunDurationS"
    }
    if set(raw) - known:
        raise r.fail(
            "batchJob", f"has unknown keys {sorted(set(raw) - known)}", f"use {sorted(known)}"
        )
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise r.fail("batchJob.enabled", f"is {enabled!r}", "use true or false")
    if not enabled:
        return None
    shards = raw.get("shards")
    if (
        not isinstance(shards, list)
        or not shards
        or not all(isinstance(s, str) and s for s in shards)
    ):
        raise r.fail(
            "batchJob.shards", f"is {shards!r}", "list the raw-input object keys to process"
        )
    kind = raw.get("kind", DEFAULT_TASK_KIND)
    if not isinstance(kind, str) or not TASK_KIND.match(kind):
        raise r.fail("batchJob.kind", f"is {kind!r}", "name a registered task kind, e.g. vcf")
    tag = raw.get("imageTag")
    if not isinstance(tag, str) or not _IMAGE_TAG.match(tag):
        raise r.fail(
            "batchJob.imageTag", f"is {tag!r}", "name the task image's tag, e.g. '1.0.0'"
        )
    defaults = JobSettings()

    def bounded(key: str, default: int, low: int, high: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise r.fail(f"batchJob.{key}", f"is {value!r}", f"use a whole number in {low}..{high}")
        return value

    return BatchJobSettings(
        kind=kind,
        shards=tuple(shards),
        image_tag=tag,
        parallelism=bounded("parallelism", defaults.parallelism, 1, 1000),
        max_retry_count=bounded("maxRetryCount", defaults.max_retry_count, 0, 10),
        max_run_duration_s=bounded(
            "maxRunDurationS", defaults.max_run_duration_s, 60, 7 * 24 * 3600
        ),
    )


def _hub(r: _Reader, common: dict[str, Any]) -> HubConfig:
    example = "nodes: [{name: us, project: fed-node-us}]"
    raw = r.structured("nodes", example)
    if not isinstance(raw, list) or not raw:
        raise r.fail("nodes", "is missing or empty", f"list the nodes, e.g. {example}")
    nodes: list[NodeRef] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"name", "project"} <= set(item) <= {
            "name", "project", "signingKey"
        }:
            raise r.fail(
                f"nodes[{i}]",
                f"is {item!r}",
                "write it as {name: us, project: fed-node-us, signingKey: <64 hex, optional>}",
            )
        key = item.get("signingKey")
        if key is not None and (not isinstance(key, str) or not _PUBLIC_KEY.match(key)):
            raise r.fail(
                f"nodes[{i}].signingKey",
                f"is {key!r}, not a raw Ed25519 public key in hex",
                "pin the 64 hex characters of the node's KMS signing key (docs/infra.md)",
            )
        name, project = item["name"], item["project"]
        if not isinstance(name, str) or not NODE_NAME.match(name):
            raise r.fail(f"nodes[{i}].name", f"is {name!r}", f"use {NODE_NAME_RULE}, like us")
        if not isinstance(project, str) or not _PROJECT_ID.match(project):
            raise r.fail(
                f"nodes[{i}].project", f"is {project!r}", "use a GCP project id like fed-node-us"
            )
        nodes.append(NodeRef(name=name, project=project, signing_key=key))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise r.fail("nodes", f"repeats a node name: {names}", "give every node a distinct name")
    return HubConfig(**common, nodes=tuple(nodes), coordinator=_coordinator(r))


def _coordinator(r: _Reader) -> CoordinatorDeployment:
    digest = r.raw("coordinatorImageDigest") or None
    if digest is not None and not _DIGEST.match(digest):
        raise r.fail(
            "coordinatorImageDigest",
            f"is {digest!r}, not sha256:<64 hex>",
            "set the digest of the pushed federation-coordinator image (never a tag)",
        )
    hub_key = r.raw("hubSigningKey") or None
    if hub_key is not None and not _PUBLIC_KEY.match(hub_key):
        raise r.fail(
            "hubSigningKey",
            f"is {hub_key!r}, not a raw Ed25519 public key in hex",
            "pin the 64 hex characters of the hub's KMS signing key (docs/infra.md)",
        )
    return CoordinatorDeployment(
        image_digest=digest,
        researchers_group=r.string(
            "researchersGroup", _GROUP, "federation-researchers@example.org"
        ),
        hub_signing_key=hub_key,
    )


def _as_perimeter_mode(value: str) -> PerimeterMode:
    return "dryrun" if value == "dryrun" else "enforced"


_BUILDERS: dict[str, Callable[[_Reader, dict[str, Any]], StackConfig]] = {
    "node": _node,
    "hub": _hub,
}


def load(cfg: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    """The stack's whole configuration, or a ConfigError naming the first wrong key."""
    stack = stack if stack is not None else pulumi.get_stack()
    reader = _Reader(cfg if cfg is not None else pulumi.Config(NAMESPACE), stack)
    role = reader.choice("role", ROLES)
    common = _common(reader, stack, "node" if role == "node" else "hub")
    return _BUILDERS[role](reader, common)
