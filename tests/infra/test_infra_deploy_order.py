"""The deploy blockers B2-B7: what a real `pulumi up` needs, checked on the captured stacks.

Each test reads the order and options Pulumi would act on (explicit and input dependencies,
a component's parent chain, providers, replacement options) and would have failed on the
program before the fix. (B1, the Batch provider's serialisation, belongs to infra/batch_job.)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pytest
from infra_testkit import of_type, one, stack_file

from infra.capture import CapturedResource, capture_stack

JOB = {"enabled": True, "shards": ["in/a.vcf.gz"], "imageTag": "1.0.0"}


class Order:
    """When each resource may start: after its own dependencies and its ancestors' (a child
    registers only once its parent has, which waits for the parent's depends_on), a
    dependency on a component meaning all of the component's descendants."""

    def __init__(self, resources: Sequence[CapturedResource]) -> None:
        self.by_urn = {r.urn: r for r in resources}
        self.children: dict[str, list[str]] = {}
        for r in resources:
            if r.parent:
                self.children.setdefault(r.parent, []).append(r.urn)

    def _descendants(self, urn: str) -> set[str]:
        out = {urn}
        for child in self.children.get(urn, []):
            out |= self._descendants(child)
        return out

    def _direct(self, urn: str) -> set[str]:
        deps: set[str] = set()
        r: CapturedResource | None = self.by_urn[urn]
        while r is not None:
            for d in r.dependencies:
                deps |= self._descendants(d)
            r = self.by_urn.get(r.parent) if r.parent else None
        return deps

    def waits_for(self, urn: str) -> set[str]:
        @cache
        def closure(u: str) -> frozenset[str]:
            out = set(self._direct(u))
            for d in list(out):
                if d != u:
                    out |= closure(d)
            return frozenset(out)

        return set(closure(urn))


def _cloud(resources: Sequence[CapturedResource]) -> list[CapturedResource]:
    return [r for r in resources if r.type.startswith(("gcp:", "pulumi-python:dynamic"))]


@pytest.fixture(scope="module")
def us_batch() -> list[CapturedResource]:
    return capture_stack("us", {"batchJob": JOB})


def test_b2_the_perimeter_comes_last_and_lets_the_deployer_back_in(
    us_batch: list[CapturedResource],
) -> None:
    order = Order(us_batch)
    perimeter = one(us_batch, ":ServicePerimeter")
    waits = order.waits_for(perimeter.urn)
    before = {r.urn for r in _cloud(us_batch)} - {perimeter.urn}
    assert before <= waits, sorted(order.by_urn[u].name for u in before - waits)
    job = one(us_batch, "pulumi-python:dynamic:Resource")
    assert perimeter.urn not in order.waits_for(job.urn)  # the job no longer waits for the fence
    # ...and every later `up` comes in: the deployer, through its access level.
    deployer = stack_file("us")["deployer"]
    (ingress,) = perimeter.inputs["status"]["ingressPolicies"]
    level = one(us_batch, ":AccessLevel")
    assert ingress["ingressFrom"]["identities"] == [deployer]
    assert ingress["ingressFrom"]["sources"] == [{"accessLevel": level.inputs["name"]}]
    assert level.inputs["basic"]["conditions"] == [{"members": [deployer]}]


def test_b3_batch_vms_may_read_their_boot_image_across_the_perimeter(
    captured: dict[str, list[CapturedResource]],
) -> None:
    cfg = stack_file("us")
    template = one(captured["us"], ":InstanceTemplate")
    image_project = template.inputs["disks"][0]["sourceImage"].split("/")[1]
    trusted = next(r for r in captured["us"] if r.name.endswith("trustedImageProjects"))
    # Batch's image project, and Confidential Space's (the federation worker's boot image).
    assert trusted.inputs["spec"]["rules"][0]["values"]["allowedValues"] == [
        f"projects/{image_project}",
        "projects/confidential-space-images",
    ]
    rules = one(captured["us"], ":ServicePerimeter").inputs["status"]["egressPolicies"]
    to_images = [
        r
        for r in rules
        if r["egressTo"]["resources"] == [f"projects/{cfg['batchImageProjectNumber']}"]
    ]
    assert len(to_images) == 1
    (rule,) = to_images
    assert rule["egressTo"]["operations"][0]["serviceName"] == "compute.googleapis.com"
    batch_agent = f"service-{cfg['projectNumber']}@gcp-sa-cloudbatch.iam.gserviceaccount.com"
    assert f"serviceAccount:{batch_agent}" in rule["egressFrom"]["identities"]


@pytest.mark.parametrize("stack", ["us", "hub"])
def test_b4_org_policies_come_before_every_api(
    captured: dict[str, list[CapturedResource]], stack: str
) -> None:
    resources = captured[stack]
    order = Order(resources)
    policies = {r.urn for r in of_type(resources, "orgpolicy/policy:Policy")}
    assert len(policies) >= 20
    for service in of_type(resources, "projects/service:Service"):
        assert policies <= order.waits_for(service.urn), service.name
    for policy in policies:  # ...and wait for no API of the project themselves
        assert not [u for u in order.waits_for(policy) if order.by_urn[u].type.endswith(":Service")]
    skip = next(r for r in resources if r.name.endswith("skipDefaultNetworkCreation"))
    assert skip.inputs["spec"]["rules"] == [{"enforce": "TRUE"}]


@pytest.mark.parametrize("stack", ["us", "hub"])
def test_b5_every_agent_key_grant_waits_for_its_agent(
    captured: dict[str, list[CapturedResource]], stack: str
) -> None:
    resources = captured[stack]
    order = Order(resources)
    identities = {
        r.inputs["service"].split(".")[0]: r.urn for r in of_type(resources, ":ServiceIdentity")
    }
    apis = {r.inputs["service"].split(".")[0]: r.urn for r in of_type(resources, ":Service")}
    grants = [
        g
        for g in of_type(resources, ":CryptoKeyIAMMember")
        if g.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    ]
    assert grants
    for grant in grants:
        purpose = grant.inputs["cryptoKeyId"].rsplit("/", 1)[1].removesuffix("-key")
        waits = order.waits_for(grant.urn)
        needed = identities.get(purpose) or apis[purpose]
        assert needed in waits, f"{grant.name} does not wait for the {purpose} agent"
    if stack == "hub":
        assert "pubsub" in identities


@pytest.mark.parametrize("stack", ["us", "hub"])
def test_b6_control_plane_calls_bill_the_quota_project(
    captured: dict[str, list[CapturedResource]], stack: str
) -> None:
    resources = captured[stack]
    (provider,) = of_type(resources, "pulumi:providers:gcp")
    assert provider.inputs["billingProject"] == stack_file(stack)["quotaProject"]
    assert provider.inputs["userProjectOverride"] in (True, "true")
    control = [
        r for r in resources if r.type.startswith(("gcp:orgpolicy/", "gcp:accesscontextmanager/"))
    ]
    assert control
    for r in control:
        assert r.provider is not None and r.provider.startswith(provider.urn), r.name


def test_b7_the_template_is_replaced_create_before_delete(
    captured: dict[str, list[CapturedResource]],
) -> None:
    template = one(captured["us"], ":InstanceTemplate")
    assert "name" not in template.inputs
    assert template.inputs["namePrefix"] == "confidential-batch-us-"
    assert len(template.inputs["namePrefix"]) <= 37  # the provider's limit for a prefix
    assert template.delete_before_replace is False
