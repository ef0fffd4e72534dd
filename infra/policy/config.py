"""The pack's config for a stack, derived from Pulumi.<stack>.yaml (the one place it is written).

    python -m infra.policy.config us > policy-config.json
    pulumi preview -s us --policy-pack infra/policy --policy-pack-config policy-config.json

The pack also falls back to the stack's own config, which the engine passes to policy
packs; the file makes the review explicit and works the same with any backend.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra.capture import REPO_ROOT, StackFileError, stack_config
from infra.policy.sovereign_policies import POLICIES, PolicyConfig
from workloads.contracts.errors import UserError


def config_for_stack(
    stack: str, *, stack_dir: Path = REPO_ROOT, overrides: dict[str, Any] | None = None
) -> PolicyConfig:
    """The PolicyConfig of Pulumi.<stack>.yaml (role, allowedLocations, hubProjectNumber),
    with config overrides applied as infra.capture applies them."""
    try:
        project, values = stack_config(stack, overrides, stack_dir=stack_dir)
    except StackFileError as err:
        raise UserError(f"{err}; fix: pass an existing stack name (us, eu, hub, ...)") from err
    config = PolicyConfig.from_mapping(
        derived(project, {k.removeprefix(f"{project}:"): v for k, v in values.items()})
    )
    if not config.allowed_locations:
        raise UserError(
            f"Pulumi.{stack}.yaml has no {project}:allowedLocations; fix: list the "
            "jurisdiction's locations there, e.g. [in:us-central1-locations]"
        )
    return config


def derived(project: str, values: dict[str, Any]) -> dict[str, Any]:
    """The stack file's keys plus the facts the pack needs from the contracts (the pack
    imports nothing of the project): identities, signing key name and algorithm."""
    from workloads.contracts.federation import (
        COORDINATOR_ACCOUNT_ID,
        FEDERATION_WORKER_ACCOUNT_ID,
        SIGNING_ALGORITHM,
        SIGNING_KEY_NAME,
    )
    from workloads.contracts.federation_service import (
        RESULTS_BUCKET_PURPOSE,
        SPECS_BUCKET_PURPOSE,
        attested_principal_set,
    )

    def worker(of_project: str) -> str:
        return f"{FEDERATION_WORKER_ACCOUNT_ID}@{of_project}.iam.gserviceaccount.com"

    out = dict(values)
    if out.get("role") == "hub":
        out["nodeIdentities"] = {
            str(n["name"]): worker(str(n["project"])) for n in out.get("nodes") or []
        }
        if out.get("project"):
            project = str(out["project"])
            out["coordinatorIdentity"] = (
                f"{COORDINATOR_ACCOUNT_ID}@{project}.iam.gserviceaccount.com"
            )
            out["resultsBucket"] = f"{project}-{RESULTS_BUCKET_PURPOSE}"
            out["specsBucket"] = f"{project}-{SPECS_BUCKET_PURPOSE}"
            out["signingKeyName"] = SIGNING_KEY_NAME
            out["signingAlgorithm"] = SIGNING_ALGORITHM
    elif out.get("project"):
        out["federationIdentity"] = worker(str(out["project"]))
        out["signingKeyName"] = SIGNING_KEY_NAME
        out["signingAlgorithm"] = SIGNING_ALGORITHM
        digest = out.get("workerImageDigest")
        if digest and out.get("projectNumber"):
            out["attestedWorker"] = attested_principal_set(str(out["projectNumber"]), str(digest))
    return out


def pack_config(config: PolicyConfig) -> dict[str, Any]:
    """--policy-pack-config JSON: each policy gets the config keys it declares."""
    values = config.to_mapping()
    out: dict[str, Any] = {}
    for policy in POLICIES:
        props = {k: values[k] for k in policy.config_keys if k in values}
        if props:
            out[policy.name] = props
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.policy.config",
        description="Print the policy pack config (JSON) for a stack, from Pulumi.<stack>.yaml.",
    )
    parser.add_argument("stack", help="stack name: us, eu, hub, ...")
    args = parser.parse_args(argv)
    try:
        config = config_for_stack(args.stack)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    json.dump(pack_config(config), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
