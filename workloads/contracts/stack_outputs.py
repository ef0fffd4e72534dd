"""A node stack's outputs: the names `pulumi stack output --json -s <node>` prints, and what
each means. infra/node.py exports exactly these (`NodeOutputs(...).exports()`); readers
(BatchTarget.from_stack_outputs, the CLI) read them with `NodeOutputs.from_json`. A test
feeds the captured stack's real outputs to the reader, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from workloads.contracts.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class NodeOutputs(Generic[T]):
    """`NodeOutputs[pulumi.Output[str]]` in the stack, `NodeOutputs[str]` when read back."""

    node: T  # the node's name (workloads.contracts.nodes rule)
    jurisdiction: T  # e.g. HIPAA, GDPR
    project: T  # the node's GCP project id
    region: T  # the one region every regional resource of the node lives in
    keys: Mapping[str, T]  # key purpose (bigquery, storage, ...) -> Cloud KMS key id
    datasets: Mapping[str, T]  # domain name (catalogue.DOMAINS) -> BigQuery dataset id
    tables: Mapping[str, T]  # table or view name -> its BigQuery id
    buckets: Mapping[str, T]  # bucket purpose (raw-input, staging, results) -> bucket name
    repository_url: T  # <region>-docker.pkg.dev/<project>/<repository>
    network: T  # the VPC's self link
    subnet: T  # the subnet's self link
    batch_template: T  # the Confidential VM instance template's self link
    batch_service_account: T  # e-mail of the identity Batch VMs run as
    federation_service_account: T  # e-mail of the node's federation worker
    perimeter: T  # the VPC-SC perimeter's resource name
    perimeter_mode: T  # "enforced" or "dryrun"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def exports(self) -> dict[str, Any]:
        """Output name -> value, for `pulumi.export`."""
        return {name: getattr(self, name) for name in self.names()}

    @classmethod
    def from_json(cls, outputs: Mapping[str, Any]) -> NodeOutputs[str]:
        """From `pulumi stack output --json -s <node>` (a UserError names what is missing)."""
        if not isinstance(outputs, Mapping):
            raise UserError("stack outputs are not a JSON object; fix: pass `pulumi stack "
                            "output --json -s <node>` of a node stack")
        missing = [name for name in cls.names() if name not in outputs]
        if missing:
            raise UserError(
                f"stack outputs lack {', '.join(missing)}; fix: pass `pulumi stack output "
                f"--json -s <node>` of a node stack (names: {', '.join(cls.names())})"
            )
        return NodeOutputs(**{name: outputs[name] for name in cls.names()})
