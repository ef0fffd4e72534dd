"""The audit record of a federated run: one object per run in the hub's results store.

Every run the coordinator service (or `federate coordinator`) finishes - or that stops
after the hub has read something - is written as one JSON object `runs/<run_id>.json`,
created once and never replaced (`ObjectStore.write_new`: GCS `ifGenerationMatch=0`, a
hard link locally). In the cloud the store is the hub's CMEK results bucket
(RESULTS_BUCKET_PURPOSE); locally a folder (`<root>/hub/results`).

The record holds what was asked (product, analysis spec, the hub's request), who took
part, what each node reported it charged to its own odometer for this run (epsilon at its
policy's delta, per dataset), what was published, and every signed node message the
published values were computed from, verbatim: an auditor holding the pinned roster can
re-verify each one (`verify_record`). The hub signs the record itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from workloads.contracts.errors import UserError
from workloads.federation.coordinator import Coordinator
from workloads.federation.identity import Signer, verify
from workloads.federation.protocol import MessageRejectedError, decode
from workloads.federation.roster import Roster
from workloads.objectstore.base import ObjectStore

FORMAT = "sovereign-federation-run/1"
PREFIX = "runs/"
_SIGNING_CONTEXT = b"sovereign-federation-run-record|v1|"


def key_of(run_id: str) -> str:
    return f"{PREFIX}{run_id}.json"


def _clean(value: Any) -> Any:
    """JSON without NaN/inf (null instead): every reader can parse the record."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def charges(coordinator: Coordinator) -> dict[str, dict[str, dict[str, float]]]:
    """node -> dataset -> {epsilon, delta}: the largest (latest) charge each node reported
    for this run. A node that released only exact (non-DP) sums reports none: {}."""
    result: dict[str, dict[str, dict[str, float]]] = {
        n: {} for n in sorted(set(coordinator.config.nodes))}
    for message in coordinator.released_from:
        params = message.params
        if "dp_epsilon" not in params:
            continue
        try:
            epsilon, delta = float(params["dp_epsilon"]), float(params["dp_delta"])
        except (KeyError, ValueError):
            continue  # a malformed report is kept verbatim in released_from
        entry = result.setdefault(message.node, {}).setdefault(
            params.get("dp_dataset", "?"), {"epsilon": 0.0, "delta": delta})
        entry["epsilon"] = max(entry["epsilon"], epsilon)
        entry["delta"] = max(entry["delta"], delta)
    return result


def build(
    coordinator: Coordinator,
    *,
    product: str,
    analysis: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    started_at: str,
    finished_at: str,
    status: str = "released",
    reason: str = "",
    hub_project: str = "",
) -> dict[str, Any]:
    config = coordinator.config
    asked = sorted(set(config.nodes))
    record: dict[str, Any] = _clean({
        "format": FORMAT,
        "run_id": config.run_id,
        "status": status,  # released | stopped (values read before the stop are kept)
        "reason": reason,
        "product": product,
        "started_at": started_at,
        "finished_at": finished_at,
        "hub_project": hub_project,
        "analysis": dict(analysis),
        "request": {
            "k": config.k,
            "round_timeout_s": config.round_timeout,
            "max_rounds": config.max_rounds,
            "dp": None if config.dp is None else {
                "epsilon": config.dp.epsilon, "delta": config.dp.delta,
                "releases": config.dp.releases,
                "noise_multiplier": config.dp.noise_multiplier},
        },
        "participants": {
            "asked": asked,
            "answered": sorted(coordinator.alive),
            "dropped": sorted(set(coordinator.dropped)),
        },
        "charged": charges(coordinator),
        "result": None if result is None else dict(result),
        "released_from": [
            {"node": m.node, "kind": m.kind, "round": m.round, "algorithm": m.algorithm,
             "signature": m.signature, "message": m.encode().decode()}
            for m in coordinator.released_from
        ],
        "rejected": list(coordinator.rejected),
        "hub_signing_key": coordinator.signer.public_hex(),
    })
    return record


def _signed_bytes(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return _SIGNING_CONTEXT + hashlib.sha256(canonical.encode()).digest()


def seal(record: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """The record with the hub's signature (KMS in the cloud) over its canonical JSON."""
    return {**record, "signature": signer.sign(_signed_bytes(record)).hex()}


def write(store: ObjectStore, record: Mapping[str, Any]) -> str:
    """Create `runs/<run_id>.json`; refuses to replace an existing record. Its URI."""
    key = key_of(str(record["run_id"]))
    store.write_new(key, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return store.uri(key)


def verify_record(record: Mapping[str, Any], roster: Roster) -> list[str]:
    """What does not check out in a record against the pinned roster (empty: all good):
    the hub's signature over the record, and each node message's own signature."""
    problems = []
    if record.get("format") != FORMAT:
        problems.append(f"format is not {FORMAT}")
    try:
        signature = bytes.fromhex(str(record.get("signature", "")))
    except ValueError:
        signature = b""
    if not verify(roster.hub_key, _signed_bytes(record), signature):
        problems.append("the hub's signature does not verify against the roster")
    for i, entry in enumerate(record.get("released_from", [])):
        try:
            message = decode(str(entry["message"]).encode())
        except (KeyError, MessageRejectedError) as exc:
            problems.append(f"released_from[{i}]: {exc}")
            continue
        if message.run_id != record.get("run_id") or not message.verified_by(roster):
            problems.append(f"released_from[{i}] ({message.node} {message.kind}): not a "
                            f"message of this run signed by {message.node}")
    return problems


def read(store: ObjectStore, run_id: str) -> dict[str, Any]:
    try:
        record: dict[str, Any] = json.loads(store.read_bytes(key_of(run_id)))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"run record {run_id}: {exc}; fix: name a run in the store") from None
    return record
