"""Reading FHIR input as Synthea writes it, and splitting it into one NDJSON per patient.

Two input shapes: a Bundle (Synthea's default: a transaction bundle per patient with
`urn:uuid:` fullUrls, and separate hospital/practitioner bundles), or bulk NDJSON (one
resource a line, `<Type>.ndjson`). Splitting resolves `urn:uuid` references inside a
bundle to `Type/id`, assigns every resource to its patient (Patient compartment by
subject/patient/beneficiary) or to the shared file, and writes the per-patient NDJSON
objects to the node's bucket. Records that cannot be read are quarantined with their file,
line and reason; the input file itself is only read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workloads.contracts.tables.clinical import MAX_RESOURCE_BYTES
from workloads.objectstore.base import ObjectStore

SPLIT_PREFIX = "fhir/split/"
SHARED = "_shared"  # practitioners, organizations, locations, ... (no patient compartment)
_SAFE_KEY = re.compile(r"[^A-Za-z0-9.\-]")
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")


@dataclass(frozen=True)
class Quarantined:
    file: str
    line: int
    reason: str
    content: str = ""

    def to_json(self) -> str:
        return json.dumps({"file": self.file, "line": self.line, "reason": self.reason,
                           "content": self.content[:MAX_RESOURCE_BYTES]}, sort_keys=True)


@dataclass
class SplitResult:
    """What splitting one input file produced."""

    source: str
    sha256: str
    objects: dict[str, list[int]] = field(default_factory=dict)  # split key -> origin lines
    identifiers: dict[str, str] = field(default_factory=dict)  # "Type|system|value" -> id
    quarantined: list[Quarantined] = field(default_factory=list)
    resources: int = 0
    generated: str | None = None  # the bundle's timestamp, for resources without lastUpdated


def canonical(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def identifier_keys(resource: dict[str, Any]) -> Iterator[str]:
    """Keys a conditional reference `Type?identifier=system|value` can name."""
    rtype = resource.get("resourceType")
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            yield f"{rtype}|{ident.get('system', '')}|{ident['value']}"


def walk_references(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (a dict with a string `reference`) in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from walk_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_references(value)


def _patient_of(resource: dict[str, Any], bundle_patient: str | None) -> str:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for name in _PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            target = ref["reference"]
            if target.startswith("Patient/"):
                return str(target.split("/", 1)[1])
    return bundle_patient or SHARED


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def split_file(source: str, data: bytes, store: ObjectStore) -> SplitResult:
    """Split one input file into per-patient NDJSON objects under fhir/split/<sha256>/."""
    sha = hashlib.sha256(data).hexdigest()
    result = SplitResult(source, sha)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        result.quarantined.append(Quarantined(
            source, _line_of(data, exc.start),
            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); FHIR JSON is "
            f"UTF-8: re-export the file as UTF-8"))
        return result
    entries = list(_entries(source, text, result))
    groups: dict[str, list[tuple[int, str]]] = {}
    bundle_patient = next((str(r.get("id")) for _, r in entries
                           if r.get("resourceType") == "Patient"), None)
    if sum(1 for _, r in entries if r.get("resourceType") == "Patient") > 1:
        bundle_patient = None  # a bulk Patient.ndjson: each resource finds its own patient
    for line, resource in entries:
        for key in identifier_keys(resource):
            result.identifiers.setdefault(key, str(resource.get("id")))
        body = canonical(resource)
        if len(body.encode()) > MAX_RESOURCE_BYTES:
            result.quarantined.append(Quarantined(
                source, line, f"resource is {len(body.encode())} bytes, over the "
                f"{MAX_RESOURCE_BYTES}-byte limit; fix: split attachments out (Binary)"))
            continue
        patient = _patient_of(resource, bundle_patient)
        groups.setdefault(patient, []).append((line, body))
    prefix = f"{SPLIT_PREFIX}{sha[:32]}/"
    for patient, lines in sorted(groups.items()):
        key = f"{prefix}{_SAFE_KEY.sub('_', patient)}.ndjson"
        store.write_bytes(key, ("\n".join(body for _, body in lines) + "\n").encode())
        result.objects[key] = [line for line, _ in lines]
        result.resources += len(lines)
    return result


def _entries(source: str, text: str, result: SplitResult) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or entry number, resource) pairs of a Bundle file or an NDJSON file."""
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            result.quarantined.append(Quarantined(source, exc.lineno, f"invalid JSON ({exc.msg})"))
            return
        if isinstance(whole, dict) and whole.get("resourceType") == "Bundle":
            yield from _bundle_entries(source, whole, result)
            return
        if isinstance(whole, dict):
            yield 1, whole
            return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if len(line.encode()) > MAX_RESOURCE_BYTES:
            result.quarantined.append(Quarantined(
                source, number, f"line is {len(line.encode())} bytes, over the "
                f"{MAX_RESOURCE_BYTES}-byte limit of one resource", line[:200]))
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            result.quarantined.append(Quarantined(source, number,
                                                  f"invalid JSON ({exc.msg})", line))
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            result.quarantined.append(Quarantined(source, number,
                                                  "not a FHIR resource (no resourceType)", line))
            continue
        yield number, resource


def _bundle_entries(
    source: str, bundle: dict[str, Any], result: SplitResult
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Entries of a bundle (numbered from 1), urn:uuid references rewritten to Type/id."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    full_urls: dict[str, str] = {}
    for e in entries:
        res = e.get("resource")
        if isinstance(e.get("fullUrl"), str) and isinstance(res, dict) and res.get("id"):
            full_urls[e["fullUrl"]] = f"{res.get('resourceType')}/{res['id']}"
    # The bundle's own time is when its records were generated; it travels beside them.
    result.generated = (bundle.get("meta") or {}).get("lastUpdated") or bundle.get("timestamp")
    for number, e in enumerate(entries, 1):
        res = e.get("resource")
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            result.quarantined.append(Quarantined(source, number,
                                                  "bundle entry without a resource"))
            continue
        for ref in walk_references(res):
            target = full_urls.get(ref["reference"])
            if target is not None:
                ref["reference"] = target
        yield number, res
