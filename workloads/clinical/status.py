"""What a node's clinical data looks like: counts per type, the last load, quarantine."""

from __future__ import annotations

import json
from typing import Any

from workloads.clinical.load import QUARANTINE_PREFIX, node_store
from workloads.contracts.tables.clinical import CLINICAL, FHIR_LOADS, FHIR_RESOURCES
from workloads.local_node import LocalNode


def status(node: LocalNode) -> dict[str, Any]:
    store = node_store(node)
    quarantine = {key: store.read_bytes(key).count(b"\n") for key in store.list(QUARANTINE_PREFIX)}
    with node.open_warehouse(create=False) as warehouse:
        warehouse.ensure_tables(CLINICAL.tables)
        counts = warehouse.query(
            f"SELECT resource_type, count(*) AS n FROM {warehouse.table_ref(FHIR_RESOURCES)} "
            f"GROUP BY resource_type ORDER BY resource_type").to_pylist()
        last = warehouse.query(
            f"SELECT load_id, resources, inserted, updated, unchanged, stale, quarantined, "
            f"CAST(loaded_at AS VARCHAR) AS loaded_at FROM {warehouse.table_ref(FHIR_LOADS)} "
            f"ORDER BY loaded_at DESC LIMIT 1").to_pylist()
        loads = warehouse.query(f"SELECT count(*) AS n FROM {warehouse.table_ref(FHIR_LOADS)}")
    return {
        "node": node.name,
        "resources": {row["resource_type"]: row["n"] for row in counts},
        "loads": loads.column("n")[0].as_py(),
        "last_load": last[0] if last else None,
        "quarantined": {"records": sum(quarantine.values()), "objects": sorted(quarantine)},
    }


def format_status(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str)
