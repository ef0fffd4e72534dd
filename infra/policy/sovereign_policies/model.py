"""What a policy looks at (Resource, PolicyConfig), what it reports (Violation), and itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Severity(StrEnum):
    """The same four levels as pulumi_policy.Severity."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class _Unknown:
    """A value Pulumi cannot know during preview (it depends on a resource not yet created)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Any = _Unknown()


class NotKnownYet(Exception):  # noqa: N818 (a state, not an error of the resource)
    """A check needs a value that is unknown during preview; the pack then skips the check."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} can't be known during preview")
        self.path = path


@dataclass(frozen=True)
class Resource:
    """One declared resource as a policy sees it: camelCase inputs and the protect option."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    parent: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type} '{self.name}'"


class CapturedLike(Protocol):
    """infra.capture.CapturedResource, or anything shaped like it."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def protect(self) -> bool: ...


def resource_from(captured: CapturedLike | Resource) -> Resource:
    """A Resource from a captured resource (inputs) or a Resource (returned as is)."""
    if isinstance(captured, Resource):
        return captured
    return Resource(
        type=captured.type,
        name=captured.name,
        urn=captured.urn,
        props=captured.inputs,
        protect=bool(captured.protect),
        parent=getattr(captured, "parent", None),
    )


ROLES = ("node", "hub")


@dataclass(frozen=True)
class PolicyConfig:
    """The facts of the stack under review that policies compare against.

    Keys (camelCase) are the stack config keys of Pulumi.<stack>.yaml and the pack's
    configSchema properties (CONFIG_KEYS); `infra.policy.config` derives the rest
    (federationIdentity, nodeIdentities, signingKeyName, signingAlgorithm) from the
    contracts so the pack itself imports nothing of the project.
    """

    role: str | None = None
    allowed_locations: tuple[str, ...] = ()
    hub_project_number: str | None = None
    project: str | None = None
    project_number: str | None = None
    perimeter_mode: str | None = None  # None: enforced (the default of the stack config)
    deployer: str | None = None  # IAM member form: serviceAccount:ci@admin.iam...
    allowed_member_domains: tuple[str, ...] = ()  # Cloud Identity customer ids
    key_project: str | None = None  # optional separate project holding the node's keys
    key_project_number: str | None = None
    federation_identity: str | None = None  # the node's federation worker e-mail
    node_identities: Mapping[str, str] | None = None  # hub: node name -> worker e-mail
    signing_key_name: str | None = None
    signing_algorithm: str | None = None
    # node: the attested worker (principalSet of its image digest), when deployed
    worker_image_digest: str | None = None
    attested_worker: str | None = None
    worker_image_project_number: str | None = None  # confidential-space-images
    # hub: who runs the coordinator and reads its results, and its identity and bucket
    researchers_group: str | None = None
    coordinator_identity: str | None = None
    results_bucket: str | None = None
    specs_bucket: str | None = None

    @property
    def is_node(self) -> bool:
        """A node stack, or a stack that does not say (the stricter rules then apply)."""
        return self.role != "hub"

    @property
    def key_projects(self) -> tuple[str, ...]:
        """Projects whose keys may protect this project's data (ids)."""
        return tuple(p for p in (self.project, self.key_project) if p)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], fallback: Callable[[str], Any] | None = None
    ) -> PolicyConfig:
        """From camelCase keys; a key missing from `values` is looked up with `fallback`."""

        def read(key: str) -> Any:
            value = values.get(key)
            if value is None and fallback is not None:
                value = fallback(key)
            return value

        def text(key: str) -> str | None:
            value = read(key)
            return str(value) if value is not None else None

        def strings(key: str) -> tuple[str, ...]:
            value = read(key)
            if isinstance(value, str):
                return (value,)
            return tuple(str(v) for v in value) if value else ()

        key_project = read("keyProject")
        nodes = read("nodeIdentities")
        return cls(
            role=text("role"),
            allowed_locations=strings("allowedLocations"),
            hub_project_number=text("hubProjectNumber"),
            project=text("project"),
            project_number=text("projectNumber"),
            perimeter_mode=text("perimeterMode"),
            deployer=text("deployer"),
            allowed_member_domains=strings("allowedMemberDomains"),
            key_project=str(key_project["project"]) if isinstance(key_project, Mapping) else None,
            key_project_number=(
                str(key_project["number"]) if isinstance(key_project, Mapping) else None
            ),
            federation_identity=text("federationIdentity"),
            node_identities=(
                {str(k): str(v) for k, v in nodes.items()} if isinstance(nodes, Mapping) else None
            ),
            signing_key_name=text("signingKeyName"),
            signing_algorithm=text("signingAlgorithm"),
            worker_image_digest=text("workerImageDigest"),
            attested_worker=text("attestedWorker"),
            worker_image_project_number=text("confidentialSpaceImageProjectNumber"),
            researchers_group=text("researchersGroup"),
            coordinator_identity=text("coordinatorIdentity"),
            results_bucket=text("resultsBucket"),
            specs_bucket=text("specsBucket"),
        )

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"allowedLocations": list(self.allowed_locations)}
        scalars = {
            "role": self.role,
            "hubProjectNumber": self.hub_project_number,
            "project": self.project,
            "projectNumber": self.project_number,
            "perimeterMode": self.perimeter_mode,
            "deployer": self.deployer,
            "federationIdentity": self.federation_identity,
            "signingKeyName": self.signing_key_name,
            "signingAlgorithm": self.signing_algorithm,
            "workerImageDigest": self.worker_image_digest,
            "attestedWorker": self.attested_worker,
            "confidentialSpaceImageProjectNumber": self.worker_image_project_number,
            "researchersGroup": self.researchers_group,
            "coordinatorIdentity": self.coordinator_identity,
            "resultsBucket": self.results_bucket,
            "specsBucket": self.specs_bucket,
        }
        out.update({k: v for k, v in scalars.items() if v is not None})
        if self.allowed_member_domains:
            out["allowedMemberDomains"] = list(self.allowed_member_domains)
        if self.key_project and self.key_project_number:
            out["keyProject"] = {"project": self.key_project, "number": self.key_project_number}
        if self.node_identities is not None:
            out["nodeIdentities"] = dict(self.node_identities)
        return out


@dataclass(frozen=True)
class Finding:
    """A stack check's result: a message, about one resource or (None) about the stack."""

    message: str
    resource: Resource | None = None


@dataclass(frozen=True)
class Violation:
    policy: str
    severity: Severity
    resource_type: str | None
    resource_name: str | None
    urn: str | None
    message: str


ResourceCheck = Callable[[Resource, PolicyConfig], Iterable[str]]
StackCheck = Callable[[Sequence[Resource], PolicyConfig], Iterable[Finding]]


@dataclass(frozen=True)
class Policy:
    """One rule: metadata for reviewers and exactly one of a per-resource or a stack check."""

    name: str
    pillar: str
    description: str
    severity: Severity
    checkov: tuple[str, ...]
    config_keys: tuple[str, ...]
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    def __post_init__(self) -> None:
        if (self.resource_check is None) == (self.stack_check is None):
            raise TypeError(f"policy {self.name}: give exactly one of resource_check, stack_check")

    @property
    def kind(self) -> str:
        return "resource" if self.resource_check is not None else "stack"

    def check_resource(self, resource: Resource, config: PolicyConfig) -> list[str]:
        """Messages for one resource (each names the resource and the fix)."""
        assert self.resource_check is not None
        return [f"{resource.label}: {msg}" for msg in self.resource_check(resource, config)]

    def check_stack(self, resources: Sequence[Resource], config: PolicyConfig) -> list[Finding]:
        assert self.stack_check is not None
        return [
            Finding(f"{f.resource.label}: {f.message}" if f.resource else f.message, f.resource)
            for f in self.stack_check(resources, config)
        ]

    def violations(self, resources: Sequence[Resource], config: PolicyConfig) -> list[Violation]:
        if self.resource_check is not None:
            return [
                self._violation(msg, r) for r in resources for msg in self.check_resource(r, config)
            ]
        return [self._violation(f.message, f.resource) for f in self.check_stack(resources, config)]

    def _violation(self, message: str, resource: Resource | None) -> Violation:
        return Violation(
            policy=self.name,
            severity=self.severity,
            resource_type=resource.type if resource else None,
            resource_name=resource.name if resource else None,
            urn=resource.urn if resource else None,
            message=message,
        )
