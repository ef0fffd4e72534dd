"""Offline review of a stack: a sorted JSON manifest and a Markdown posture summary.

    python -m infra.render --stack us [--stack eu ...] [--out DIR]   # + <stack>.tfplan.json
    python -m infra.render --update-golden      # refresh tests/infra/golden/ (us, eu, hub)

Both are rendered from the same program `pulumi up` runs, under mocks, without any cloud
access: the manifest lists every declared resource (type, name, parent, protect, inputs)
sorted by URN with sorted keys, so that a pull request shows the infrastructure change as
a plain diff; the posture summary says what a security reviewer asks first (keys and their
rotation, which resource uses which key, regions, the perimeter, org policies, identities
and their roles, and the policy pack's verdicts).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc

from infra import terraform_plan
from infra.capture import REPO_ROOT, CapturedResource, capture_stack, stack_config
from workloads.contracts.errors import UserError

GOLDEN_DIR = REPO_ROOT / "tests" / "infra" / "golden"
GOLDEN_STACKS = ("us", "eu", "sg", "hub")
DEFAULT_OUT = REPO_ROOT / "out" / "infra"
VERDICTS_HEADING = "## Policy verdicts"

_NAMESPACE_PREFIX = "sovereign-genomics:"


@dataclass(frozen=True)
class Rendered:
    stack: str
    manifest: str  # JSON text
    posture: str  # Markdown text
    plan: str = ""  # Terraform plan JSON (for Checkov); derived from the manifest

    def files(self, *, with_plan: bool = True) -> dict[str, str]:
        out = {
            f"{self.stack}.manifest.json": self.manifest,
            f"{self.stack}.posture.md": self.posture,
        }
        if with_plan and self.plan:
            out[f"{self.stack}.tfplan.json"] = self.plan
        return out


# ---------------------------------------------------------------- manifest


def _stable(value: Any) -> Any:
    """Values that render the same on every run: no secrets in clear, unknowns named."""
    if isinstance(value, Mapping):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return "<secret>"
        return {str(k): _stable(v) for k, v in value.items() if k != "__provider"} | (
            {"__provider": "<serialized dynamic provider>"} if "__provider" in value else {}
        )
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if value == rpc.UNKNOWN:
        return "<unknown>"
    return value


def manifest(stack: str, resources: Sequence[CapturedResource]) -> dict[str, Any]:
    return {
        "stack": stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "protect": r.protect,
                "inputs": _stable(r.inputs),
            }
            for r in sorted(resources, key=lambda r: r.urn)
        ],
    }


def manifest_json(stack: str, resources: Sequence[CapturedResource]) -> str:
    return json.dumps(manifest(stack, resources), indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------- posture


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _of(resources: Sequence[CapturedResource], type_: str) -> list[CapturedResource]:
    return sorted((r for r in resources if r.type == type_), key=lambda r: r.name)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _days(period: str) -> str:
    seconds = int(period.rstrip("s"))
    return f"{seconds // 86400} days" if seconds % 86400 == 0 else period


def _key_section(resources: Sequence[CapturedResource]) -> list[str]:
    keys = {
        f"{k.inputs['keyRing']}/cryptoKeys/{k.inputs['name']}": k
        for k in _of(resources, "gcp:kms/cryptoKey:CryptoKey")
    }
    users: dict[str, set[str]] = defaultdict(set)
    holders: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        if r.type == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember":
            holders[r.inputs["cryptoKeyId"]].add(
                f"{r.inputs['member']} ({r.inputs['role'].removeprefix('roles/')})"
            )
            continue
        for _path, value in _leaves(r.inputs):
            if isinstance(value, str) and value in keys:
                users[value].add(f"{r.type.rsplit(':', 1)[1]} {r.name}")
    rows = [
        [
            f"`{k.inputs['name']}`",
            _days(k.inputs.get("rotationPeriod", "0s")) if "rotationPeriod" in k.inputs else "NONE",
            "yes" if k.protect else "NO",
            ", ".join(sorted(users[key_id])) or "-",
            ", ".join(sorted(holders[key_id])) or "-",
        ]
        for key_id, k in sorted(keys.items())
    ]
    rings = [
        f"`{r.inputs['name']}` in {r.inputs['location']}"
        for r in _of(resources, "gcp:kms/keyRing:KeyRing")
    ]
    return [
        "## Keys",
        "",
        f"Keyring: {', '.join(rings) or '(none)'}",
        "",
        *_table(["key", "rotation", "protected", "used by", "granted to"], rows),
    ]


def _region_section(resources: Sequence[CapturedResource]) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for r in resources:
        for path, value in _leaves(r.inputs):
            last = path.rsplit(".", 1)[-1]
            is_place = last in ("location", "region") or last.startswith(
                "allowedPersistenceRegions"
            )
            if is_place and isinstance(value, str):
                counts[value] += 1
    allowed = [
        v
        for p in _of(resources, "gcp:orgpolicy/policy:Policy")
        if p.inputs["name"].endswith("/gcp.resourceLocations")
        for _path, v in _leaves(p.inputs["spec"])
        if _path.startswith("rules[0].values.allowedValues")
    ]
    rows = [[f"`{region}`", str(n)] for region, n in sorted(counts.items())]
    return [
        "## Regions",
        "",
        "Org policy gcp.resourceLocations allows: "
        + (", ".join(f"`{v}`" for v in allowed) or "(not set)"),
        "",
        *_table(["location", "resources placed there"], rows),
    ]


def _perimeter_section(resources: Sequence[CapturedResource]) -> list[str]:
    perimeters = _of(resources, "gcp:accesscontextmanager/servicePerimeter:ServicePerimeter")
    if not perimeters:
        return []
    lines = ["## Perimeter (VPC Service Controls)", ""]
    for p in perimeters:
        dry = bool(p.inputs.get("useExplicitDryRunSpec"))
        fence = p.inputs.get("spec" if dry else "status", {})
        lines += [
            f"`{p.inputs['name']}`: **{'DRY-RUN (logs, does not block)' if dry else 'ENFORCED'}**",
            "",
            f"- protects: {', '.join(fence.get('resources', []))}",
            "- restricted services: "
            + ", ".join(
                s.removesuffix(".googleapis.com") for s in fence.get("restrictedServices", [])
            ),
            "- from inside the VPC, only restricted services are reachable: "
            + ("yes" if fence.get("vpcAccessibleServices", {}).get("enableRestriction") else "NO"),
        ]
        for rule in fence.get("egressPolicies", []):
            who = ", ".join(rule.get("egressFrom", {}).get("identities", [])) or "ANY IDENTITY"
            to = rule.get("egressTo", {})
            for op in to.get("operations", []):
                methods = ", ".join(
                    m.get("method", m.get("permission", "")).rsplit(".", 1)[-1]
                    for m in op.get("methodSelectors", [])
                )
                lines.append(
                    f"- egress: {who} -> {', '.join(to.get('resources', []))}, "
                    f"{op.get('serviceName')} ({methods})"
                )
        if fence.get("egressPolicies"):
            lines.append(
                "- VPC-SC names projects, not topics: which hub topics and subscription the "
                "identity may use is narrowed by the hub stack's IAM"
            )
        for rule in fence.get("ingressPolicies", []):
            source = rule.get("ingressFrom", {})
            who = ", ".join(source.get("identities", [])) or source.get("identityType", "ANYONE")
            levels = ", ".join(
                str(s.get("accessLevel", s.get("resource", "?"))).rsplit("/", 1)[-1]
                for s in source.get("sources", [])
            )
            lines.append(
                f"- ingress: {who} through access level {levels or 'NONE'} (the deployer's way "
                "in once enforced; without it the first enforced `up` locks the deployer out)"
            )
        if dry:
            lines.append(
                "- **WARNING: dry-run.** The perimeter blocks nothing; read the dry-run "
                "violations in Cloud Logging, then set `perimeterMode: enforced`."
            )
        lines.append("")
    for level in _of(resources, "gcp:accesscontextmanager/accessLevel:AccessLevel"):
        conditions = level.inputs.get("basic", {}).get("conditions", [])
        members = sorted({m for c in conditions for m in c.get("members", [])})
        lines += [
            f"Access level `{level.inputs['name'].rsplit('/', 1)[-1]}`: admits "
            f"{', '.join(members) or 'ANYONE'}",
            "",
        ]
    return lines[:-1]


def _audit_section(resources: Sequence[CapturedResource]) -> list[str]:
    configs = _of(resources, "gcp:projects/iAMAuditConfig:IAMAuditConfig")
    buckets = _of(resources, "gcp:logging/projectBucketConfig:ProjectBucketConfig")
    if not configs and not buckets:
        return []
    rows = [
        [
            c.inputs["service"].removesuffix(".googleapis.com"),
            ", ".join(sorted(e["logType"] for e in c.inputs.get("auditLogConfigs", []))),
            ", ".join(
                m for e in c.inputs.get("auditLogConfigs", []) for m in e.get("exemptedMembers", [])
            )
            or "nobody",
        ]
        for c in configs
    ]
    lines = [
        "## Audit logs and where logs are kept",
        "",
        *_table(["service", "audit log types", "exempted"], rows),
        "",
    ]
    for b in buckets:
        key = b.inputs.get("cmekSettings", {}).get("kmsKeyName", "Google-managed")
        lines.append(
            f"- log bucket `{b.inputs['bucketId']}` in `{b.inputs.get('location')}`, "
            f"{b.inputs.get('retentionDays')} days, key `{str(key).rsplit('/', 1)[-1]}`"
        )
    for sink in _of(resources, "gcp:logging/projectSink:ProjectSink"):
        what = (
            f"entries matching {sink.inputs['filter']!r}"
            if sink.inputs.get("filter")
            else "every entry"
        )
        lines.append(
            f"- sink `{sink.inputs['name']}` routes {what} "
            f"to `{sink.inputs['destination'].rsplit('/', 1)[-1]}`"
        )
    excluded = _of(resources, "gcp:logging/projectExclusion:ProjectExclusion")
    lines.append(
        "- the `_Default` sink is excluded (no copy in the global `_Default` bucket)"
        if excluded
        else "- **the `_Default` sink still copies every entry to the global `_Default` bucket**"
    )
    lines.append(
        "- `_Required` (Admin Activity, System Event) stays Google's: its location is the "
        "organization's default storage location, set once (docs/infra.md)"
    )
    return lines


def _data_access_section(resources: Sequence[CapturedResource]) -> list[str]:
    lines: list[str] = []
    for dataset in _of(resources, "gcp:bigquery/dataset:Dataset"):
        dataset_id = dataset.inputs["datasetId"]
        policies = [
            json.loads(p.inputs["policyData"])
            for p in _of(resources, "gcp:bigquery/datasetIamPolicy:DatasetIamPolicy")
            if p.inputs.get("datasetId") == dataset_id
        ]
        if policies:
            rows = [
                [b["role"].removeprefix("roles/"), ", ".join(b["members"])]
                for policy in policies
                for b in policy.get("bindings", [])
            ]
            lines += [
                f"Dataset `{dataset_id}`: whole access list declared (authoritative; BigQuery's "
                "project-role defaults do not apply, project viewers cannot read it)",
                "",
                *_table(["role", "members"], rows),
                "",
            ]
        else:
            lines += [
                f"Dataset `{dataset_id}`: **BigQuery's default access list** (every project "
                "viewer reads it)",
                "",
            ]
    return ["## Who reads the patient data", "", *lines[:-1]] if lines else []


def _deployment_section(resources: Sequence[CapturedResource]) -> list[str]:
    providers = _of(resources, "pulumi:providers:gcp")
    lines = ["## Deployment prerequisites the stack itself handles", ""]
    for provider in providers:
        lines.append(
            f"- control-plane provider `{provider.name}`: bills Org Policy and Access Context "
            f"Manager calls to quota project `{provider.inputs.get('billingProject')}` "
            f"(user project override {provider.inputs.get('userProjectOverride')})"
        )
    agents = [
        f"{r.inputs['service'].removesuffix('.googleapis.com')}"
        for r in _of(resources, "gcp:projects/serviceIdentity:ServiceIdentity")
    ]
    lines.append(
        "- service agents created by the program before their key grants: "
        + (", ".join(agents) or "none")
        + " (BigQuery and Cloud Storage agents read, which creates them; Compute and Logging "
        "exist once their API is on)"
    )
    rings = {str(r.inputs.get("project")) for r in _of(resources, "gcp:kms/keyRing:KeyRing")}
    projects = {
        str(r.inputs.get("project"))
        for r in resources
        if r.type.startswith("gcp:") and isinstance(r.inputs.get("project"), str)
    } - rings
    lines.append(
        f"- keys live in project {', '.join(f'`{p}`' for p in sorted(rings))}"
        + (" (a separate key project)" if projects and not (rings & projects) else "")
    )
    lines.append(
        "- org policies come first; every API waits for them (they constrain only what is "
        "created after them). The default network, if the project has one, predates them: "
        "delete it before the first `up` (docs/infra.md, step 2)"
    )
    return lines


def _rule_text(rule: Mapping[str, Any]) -> str:
    if "enforce" in rule:
        return f"enforce {rule['enforce']}"
    if "denyAll" in rule:
        return "deny all"
    if "allowAll" in rule:
        return "ALLOW ALL"
    values = rule.get("values", {})
    parts = []
    if "allowedValues" in values:
        parts.append("allow " + ", ".join(values["allowedValues"]))
    if "deniedValues" in values:
        parts.append("deny " + ", ".join(values["deniedValues"]))
    return "; ".join(parts) or json.dumps(rule, sort_keys=True)


def _org_policy_section(resources: Sequence[CapturedResource]) -> list[str]:
    rows = [
        [
            f"`{p.inputs['name'].rsplit('/', 1)[1]}`",
            "; ".join(_rule_text(r) for r in p.inputs.get("spec", {}).get("rules", [])),
        ]
        for p in _of(resources, "gcp:orgpolicy/policy:Policy")
    ]
    return ["## Org policies (project level)", "", *_table(["constraint", "rule"], rows)]


_SCOPE_KEYS = (
    ("cryptoKeyId", "key"),
    ("bucket", "bucket"),
    ("datasetId", "dataset"),
    ("repository", "repository"),
    ("topic", "topic"),
    ("subscription", "subscription"),
    ("project", "project"),
)


def _identity_section(resources: Sequence[CapturedResource]) -> list[str]:
    roles: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        if "member" not in r.inputs or "role" not in r.inputs:
            continue
        scope = next(
            (
                f"{label} {str(r.inputs[key]).rsplit('/', 1)[-1]}"
                for key, label in _SCOPE_KEYS
                if key in r.inputs
            ),
            "?",
        )
        roles[r.inputs["member"]].add(f"{r.inputs['role'].removeprefix('roles/')} on {scope}")
    accounts = [
        f"`{a.inputs['accountId']}` ({a.inputs.get('displayName', '')})"
        for a in _of(resources, "gcp:serviceaccount/account:Account")
    ]
    rows = [[f"`{m}`", "; ".join(sorted(rs))] for m, rs in sorted(roles.items())]
    return [
        "## Identities and their roles",
        "",
        f"Service accounts declared: {', '.join(accounts) or '(none)'}",
        "",
        *_table(["member", "roles"], rows),
    ]


def _compute_section(resources: Sequence[CapturedResource]) -> list[str]:
    templates = _of(resources, "gcp:compute/instanceTemplate:InstanceTemplate")
    if not templates:
        return []
    rows = []
    for t in templates:
        i = t.inputs
        external = any("accessConfigs" in nic for nic in i.get("networkInterfaces", []))
        rows.append(
            [
                f"`{i.get('name', t.name)}`",
                i.get("machineType", "?"),
                i.get("confidentialInstanceConfig", {}).get("confidentialInstanceType", "NONE"),
                i.get("scheduling", {}).get("provisioningModel", "STANDARD"),
                "yes" if external else "no",
                i.get("serviceAccount", {}).get("email", "?"),
            ]
        )
    jobs = []
    for job in _of(resources, "pulumi-python:dynamic:Resource"):
        if "jobJson" not in job.inputs:
            continue
        spec = json.loads(job.inputs["jobJson"])
        policy = spec.get("allocationPolicy", {})
        templates_used = [i.get("instanceTemplate", "NONE") for i in policy.get("instances", [])]
        allowed = policy.get("location", {}).get("allowedLocations", [])
        jobs.append(
            f"- Batch job `{job.inputs.get('jobId')}` in {job.inputs.get('location')}: "
            f"template {', '.join(t.rsplit('/', 1)[-1] for t in templates_used) or 'NONE'}, "
            f"allowed locations {', '.join(allowed) or 'ANY'}, "
            f"runs as {policy.get('serviceAccount', {}).get('email', '?')}"
        )
    return [
        "## Compute",
        "",
        *_table(
            ["template", "machine", "confidential", "provisioning", "external IP", "runs as"], rows
        ),
        *(["", *jobs] if jobs else []),
    ]


def _federation_section(
    resources: Sequence[CapturedResource], values: Mapping[str, Any]
) -> list[str]:
    """The federation services (issue 16): deployed with what, or which key is missing."""
    def conf(key: str) -> Any:
        return next((v for k, v in values.items() if k.endswith(f":{key}")), None)

    role = conf("role")
    lines = ["## Federation services", ""]
    if role == "node":
        templates = _of(resources, "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate")
        if not templates:
            return [*lines, "- worker: **not deployed**: set `workerImageDigest` (docs/infra.md)"]
        i = templates[0].inputs
        meta = i.get("metadata", {})
        boot = next((d.get("sourceImage") for d in i.get("disks", []) if d.get("boot")), "?")
        external = any("accessConfigs" in nic for nic in i.get("networkInterfaces", []))
        lines += [
            f"- worker: Confidential Space on `{i.get('machineType')}` "
            f"({i.get('confidentialInstanceConfig', {}).get('confidentialInstanceType', 'NONE')}),"
            f" boot image `{boot}`, external IP {'yes' if external else 'no'}, "
            f"VM account {i.get('serviceAccount', {}).get('email', '?')}",
            f"- image: `{meta.get('tee-image-reference')}`; restart "
            f"`{meta.get('tee-restart-policy')}`; logs `{meta.get('tee-container-log-redirect')}`;"
            f" env {', '.join(sorted(k[8:] for k in meta if k.startswith('tee-env-')))}",
        ]
        groups = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
        for g in _of(resources, groups):
            lines.append(
                f"- managed by regional instance group `{g.inputs.get('name')}` "
                f"(size {int(g.inputs.get('targetSize', 0))}, {g.inputs.get('region')})"
            )
        attested: dict[str, set[str]] = {}
        for r in resources:
            if r.inputs.get("member", "").startswith("principalSet:"):
                attested.setdefault(r.inputs["member"], set()).add(
                    f"{r.inputs.get('role')} ({r.name})"
                )
            if "policyData" in r.inputs and r.type.endswith("DatasetIamPolicy"):
                for b in json.loads(r.inputs["policyData"]).get("bindings", []):
                    for m in b.get("members", []):
                        if m.startswith("principalSet:"):
                            attested.setdefault(m, set()).add(
                                f"{b.get('role')} on dataset {r.inputs.get('datasetId')}"
                            )
        for member, roles in sorted(attested.items()):
            lines.append(f"- data and key access only for `{member}`: {'; '.join(sorted(roles))}")
        providers = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
        for p in _of(resources, providers):
            lines.append(
                f"- attestation: issuer `{p.inputs.get('oidc', {}).get('issuerUri')}`, "
                f"condition `{p.inputs.get('attributeCondition')}`"
            )
        return lines
    if role != "hub":
        return []
    missing = [
        key
        for key, present in (
            ("hubSigningKey", conf("hubSigningKey")),
            *(
                (f"nodes[{n}].signingKey", node.get("signingKey"))
                for n, node in enumerate(conf("nodes") or [])
            ),
        )
        if not present
    ]
    lines.append(
        "- roster: complete (exported as `roster`)"
        if not missing
        else f"- roster: **incomplete**: set {', '.join(f'`{k}`' for k in missing)}"
    )
    jobs = _of(resources, "gcp:cloudrunv2/job:Job")
    if not jobs:
        needed = [k for k in ("coordinatorImageDigest",) if not conf(k)] or ["the roster keys"]
        lines.append(f"- coordinator: **not deployed**: set {', '.join(f'`{k}`' for k in needed)}")
    for job in jobs:
        t = job.inputs.get("template", {}).get("template", {})
        images = [c.get("image") for c in t.get("containers", [])]
        lines.append(
            f"- coordinator: Cloud Run job `{job.inputs.get('name')}` in "
            f"{job.inputs.get('location')}, image {', '.join(f'`{i}`' for i in images)}, "
            f"runs as {t.get('serviceAccount')}, key `{t.get('encryptionKey')}`"
        )
    for m in _of(resources, "gcp:cloudrunv2/jobIamMember:JobIamMember"):
        lines.append(f"- may run it: {m.inputs.get('member')} ({m.inputs.get('role')})")
    for b in _of(resources, "gcp:storage/bucket:Bucket"):
        retention = b.inputs.get("retentionPolicy")
        if retention:
            lines.append(
                f"- results bucket `{b.inputs.get('name')}` in {b.inputs.get('location')}: "
                f"retention {int(retention.get('retentionPeriod', 0)) // 86400} days "
                f"({'locked' if retention.get('isLocked') else 'not locked'}), key "
                f"`{b.inputs.get('encryption', {}).get('defaultKmsKeyName')}`"
            )
    return lines


def _pubsub_section(resources: Sequence[CapturedResource]) -> list[str]:
    topics = _of(resources, "gcp:pubsub/topic:Topic")
    subs = _of(resources, "gcp:pubsub/subscription:Subscription")
    if not topics and not subs:
        return []
    topic_rows = [
        [
            f"`{t.inputs['name']}`",
            t.inputs.get("kmsKeyName", "NONE").rsplit("/", 1)[-1],
            t.inputs.get("schemaSettings", {}).get("schema", "none").rsplit("/", 1)[-1],
            t.inputs.get("messageRetentionDuration", "-"),
            ", ".join(
                t.inputs.get("messageStoragePolicy", {}).get("allowedPersistenceRegions", [])
            ),
        ]
        for t in topics
    ]
    sub_rows = [
        [
            f"`{s.inputs['name']}`",
            str(s.inputs.get("topic", "")).rsplit("/", 1)[-1],
            s.inputs.get("messageRetentionDuration", "-"),
            str(s.inputs.get("deadLetterPolicy", {}).get("deadLetterTopic", "none")).rsplit("/", 1)[
                -1
            ],
        ]
        for s in subs
    ]
    return [
        "## Pub/Sub",
        "",
        *_table(["topic", "key", "schema", "retention", "stored in"], topic_rows),
        "",
        *_table(["subscription", "topic", "retention", "dead letter"], sub_rows),
    ]


def _header(
    stack: str, values: Mapping[str, Any], resources: Sequence[CapturedResource]
) -> list[str]:
    def get(key: str) -> str:
        value = values.get(_NAMESPACE_PREFIX + key, "-")
        return value if isinstance(value, str) else json.dumps(value)

    protected = sum(1 for r in resources if r.protect)
    custom = sum(1 for r in resources if not r.type.startswith(("sovereign:", "pulumi:")))
    return [
        f"# Posture of stack `{stack}`",
        "",
        f"- role: {get('role')}; project `{get('project')}` ({get('projectNumber')}); "
        f"region `{get('region')}`; jurisdiction {get('jurisdiction')}",
        f"- {custom} cloud resources in {len(resources) - custom - 1} components; "
        f"{protected} protected against deletion",
        "- rendered offline under Pulumi mocks from the program `pulumi up` runs; "
        f"full inputs in `{stack}.manifest.json`",
    ]


def _verdicts(stack: str, resources: Sequence[CapturedResource], stack_dir: Path) -> list[str]:
    from infra.policy.config import config_for_stack
    from infra.policy.evaluate import evaluate, verdicts_markdown

    config = config_for_stack(stack, stack_dir=stack_dir)
    violations = evaluate(resources, config)
    lines = [VERDICTS_HEADING, "", verdicts_markdown(resources, config).rstrip("\n")]
    for v in violations:
        where = f"{v.resource_type} {v.resource_name}" if v.resource_name else "stack"
        lines.append(f"- FAIL {v.policy} ({where}): {v.message}")
    return lines


def posture_markdown(
    stack: str,
    resources: Sequence[CapturedResource],
    values: Mapping[str, Any],
    verdicts: Sequence[str] = (),
) -> str:
    sections = [
        _header(stack, values, resources),
        _key_section(resources),
        _region_section(resources),
        _perimeter_section(resources),
        _data_access_section(resources),
        _audit_section(resources),
        _deployment_section(resources),
        _compute_section(resources),
        _federation_section(resources, values),
        _pubsub_section(resources),
        _org_policy_section(resources),
        _identity_section(resources),
        list(verdicts),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


def without_verdicts(posture: str) -> str:
    """The posture minus the policy pack's verdicts (owned and versioned by the pack)."""
    return re.split(rf"^{re.escape(VERDICTS_HEADING)}$", posture, flags=re.MULTILINE)[0]


# ---------------------------------------------------------------- command


def render(
    stack: str,
    *,
    stack_dir: Path = REPO_ROOT,
    resources: Sequence[CapturedResource] | None = None,
) -> Rendered:
    """Manifest and posture of a stack file (pass `resources` to reuse a capture of it)."""
    if resources is None:
        resources = capture_stack(stack, stack_dir=stack_dir)
    _project, values = stack_config(stack, stack_dir=stack_dir)
    return Rendered(
        stack=stack,
        manifest=manifest_json(stack, resources),
        posture=posture_markdown(stack, resources, values, _verdicts(stack, resources, stack_dir)),
        plan=json.dumps(terraform_plan.plan(stack, resources), indent=2, sort_keys=True) + "\n",
    )


def write(rendered: Rendered, out: Path, *, with_plan: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.files(with_plan=with_plan).items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.render", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", action="append", help="stack to render (repeatable)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})"
    )
    parser.add_argument(
        "--update-golden",
        action="store_true",
        help=f"rewrite tests/infra/golden/ for {', '.join(GOLDEN_STACKS)}",
    )
    args = parser.parse_args(argv)
    stacks = args.stack or (list(GOLDEN_STACKS) if args.update_golden else None)
    if not stacks:
        parser.error("name a stack with --stack (or use --update-golden)")
    out = GOLDEN_DIR if args.update_golden else args.out
    try:
        for stack in stacks:
            # The goldens hold what a reviewer reads; the plan is derived from the manifest.
            for path in write(render(stack), out, with_plan=not args.update_golden):
                print(path)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
