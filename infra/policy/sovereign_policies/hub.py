"""The federation hub's Pub/Sub: dead-lettered, pull only, each node on its own subscription."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import PUBSUB_SUBSCRIPTION, get, is_set, known

SUBSCRIBER_ROLES = frozenset(
    {"roles/pubsub.subscriber", "roles/pubsub.viewer", "roles/pubsub.editor"}
)


def _subscriptions(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    from .identity import grants

    subs = {
        str(known(r.props.get("name"), "name")): r
        for r in resources
        if r.type == PUBSUB_SUBSCRIPTION
    }
    dead_letter_topics = {
        str(known(get(s.props, "deadLetterPolicy.deadLetterTopic"), "deadLetterPolicy"))
        for s in subs.values()
        if get(s.props, "deadLetterPolicy.deadLetterTopic")
    }
    for _name, sub in subs.items():
        if is_set(get(sub.props, "pushConfig")):
            yield Finding(
                f"pushes messages to {get(sub.props, 'pushConfig.pushEndpoint')}, an endpoint "
                "outside the federation; fix: remove push_config (workers pull)",
                sub,
            )
        for key in ("bigqueryConfig", "cloudStorageConfig"):
            if is_set(sub.props.get(key)):
                yield Finding(f"exports messages with {key}; fix: remove it (workers pull)", sub)
        topic = str(known(sub.props.get("topic"), "topic"))
        if topic in dead_letter_topics:
            continue  # the dead-letter review subscription itself
        if not is_set(get(sub.props, "deadLetterPolicy.deadLetterTopic")):
            yield Finding(
                "has no dead-letter policy, so a poison message is redelivered forever or "
                "silently dropped at expiry; fix: set dead_letter_policy with the hub's "
                "dead-letter topic",
                sub,
            )
    nodes = config.node_identities or {}
    for grant in (r for r in resources if r.type.startswith("gcp:pubsub/subscriptionIAM")):
        sub_name = str(known(grant.props.get("subscription"), "subscription")).rsplit("/", 1)[-1]
        for role, member in grants(grant):
            email = member.removeprefix("serviceAccount:")
            owner = [n for n, e in nodes.items() if e == email]
            if owner and role in SUBSCRIBER_ROLES and not sub_name.endswith(f"-{owner[0]}"):
                yield Finding(
                    f"lets node {owner[0]}'s worker ({email}) pull {sub_name}, which is not its "
                    "own subscription; fix: grant each node only on its own subscription",
                    grant,
                )


POLICIES = [
    Policy(
        name="hub-subscriptions",
        pillar="Sovereignty",
        description=(
            "Every hub subscription is pulled (no push endpoint, no BigQuery/Storage export), "
            "every subscription but the dead-letter review dead-letters its poison messages, "
            "and each node's worker may pull only its own subscription."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("nodeIdentities",),
        stack_check=_subscriptions,
    ),
]
