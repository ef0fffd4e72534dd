"""Validating split NDJSON objects: FHIR R4 models, conditional references, staged rows.

Each line is checked against fhir.resources' R4B models (R4-compatible; the package root
models R5, which rejects R4 data such as an Encounter's `class` Coding). Conditional
references (`Practitioner?identifier=system|value`) are resolved to `Type/id` through the
identifiers the load and the warehouse know; one that matches nothing is dangling and the
resource is quarantined. Whether a `Type/id` target exists is decided by the coordinator,
which sees every file of the load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import unquote

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from workloads.clinical.records import Quarantined, canonical, digest_of, walk_references
from workloads.contracts.tables.clinical import MAX_RESOURCE_BYTES
from workloads.objectstore.base import ObjectStore


@dataclass(frozen=True)
class StagedResource:
    resource_type: str
    id: str
    resource: str  # canonical JSON
    digest: str
    generated_ts: datetime | None
    source: str
    line: int
    origin: str  # the user's file and line, for messages
    references: tuple[str, ...]  # Type/id targets, checked by the coordinator
    # Rows of the built-in ViewDefinition for this type (computed in the parallel task for
    # new content only; None when the node already holds this exact content).
    view_rows: tuple[dict[str, Any], ...] | None = None
    # Conditional references left for the coordinator, which knows every file's identifiers
    # (a Batch task may run before the task of the practitioner bundle has published them).
    pending: tuple[str, ...] = ()


@dataclass
class ValidatedObject:
    key: str
    staged: list[StagedResource] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    incomplete: bool = False  # stopped at new content (only_known)


@cache
def _views_by_type() -> dict[str, Any]:
    from workloads.clinical.viewdef import ViewDefinition
    from workloads.contracts.tables.clinical import VIEW_DEFINITIONS

    views = [ViewDefinition(spec) for spec in VIEW_DEFINITIONS.values()]
    return {v.resource: v for v in views}


@cache
def _model(resource_type: str) -> Any:
    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError):
        return None


def parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _resolve(reference: str, identifiers: Mapping[str, str]) -> str | None:
    """`Type?identifier=system|value` -> `Type/id` through the identifier index."""
    rtype, _, query = reference.partition("?")
    name, _, value = query.partition("=")
    if name != "identifier" or "&" in value:
        return None
    system, bar, code = unquote(value).rpartition("|")
    if not bar:
        system, code = "", value
    found = identifiers.get(f"{rtype}|{system}|{code}")
    return f"{rtype}/{found}" if found else None


def resolve_pending(r: StagedResource, identifiers: Mapping[str, str]
                    ) -> StagedResource | str:
    """Resolve the conditional references a task left; the new content gets a new digest
    (and is flattened later). Returns the first reference that still matches nothing."""
    resource = json.loads(r.resource)
    targets = set(r.references)
    for ref in walk_references(resource):
        target = str(ref["reference"])
        if target in r.pending:
            resolved = _resolve(target, identifiers)
            if resolved is None:
                return target
            ref["reference"] = resolved
            targets.add(resolved)
    body = canonical(resource)
    return StagedResource(r.resource_type, r.id, body, digest_of(body), r.generated_ts,
                          r.source, r.line, r.origin, tuple(sorted(targets)), None, ())


def _first_error(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    where = ".".join(str(p) for p in errors[0]["loc"]) or "(resource)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {errors[0]['msg']}{more}"


def validate_object(
    store: ObjectStore,
    key: str,
    *,
    origin_file: str,
    origin_lines: Sequence[int],
    identifiers: Mapping[str, str],
    generated: str | None = None,
    known_digests: frozenset[str] = frozenset(),
    only_known: bool = False,
    defer_conditional: bool = False,
) -> ValidatedObject:
    """`known_digests`: contents the node already holds (validated when they were loaded);
    their lines are still parsed, resolved and digested but not validated or flattened
    again, so an unchanged re-run costs a fraction of a first load. With `only_known`,
    stop at the first new content and mark the result incomplete (the caller then
    validates the object in full)."""
    out = ValidatedObject(key)
    default_generated = parse_instant(generated)
    for number, line in enumerate(store.read_bytes(key).decode("utf-8").splitlines(), 1):
        origin_line = origin_lines[number - 1] if number <= len(origin_lines) else number
        origin = f"{origin_file}:{origin_line}"

        def reject(reason: str, text: str = line, ol: int = origin_line) -> None:
            out.quarantined.append(Quarantined(origin_file, ol, reason, text))

        if len(line.encode()) > MAX_RESOURCE_BYTES:
            reject(f"resource over {MAX_RESOURCE_BYTES} bytes", line[:200])
            continue
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            reject(f"invalid JSON ({exc.msg})")
            continue
        rtype = resource.get("resourceType")
        model = _model(rtype) if isinstance(rtype, str) else None
        if model is None:
            reject(f"unknown resourceType {rtype!r} (not a FHIR R4 resource)")
            continue
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            reject(f"{rtype} without an id; fix: give every resource a logical id")
            continue
        dangling: list[str] = []
        targets: list[str] = []
        pending: list[str] = []
        for ref in walk_references(resource):
            target = ref["reference"]
            if "?" in target and not target.startswith(("http://", "https://")):
                resolved = _resolve(target, identifiers)
                if resolved is None:
                    (pending if defer_conditional else dangling).append(target)
                    continue
                ref["reference"] = target = resolved
            if target.startswith("urn:uuid:"):
                dangling.append(target)  # a bundle-local id the bundle did not hold
            elif target.count("/") == 1 and not target.startswith(("#", "http")):
                targets.append(target)
        if dangling:
            reject(f"dangling reference {dangling[0]!r}"
                   + (f" (+{len(dangling) - 1} more)" if len(dangling) > 1 else "")
                   + "; fix: load the bundle that holds it (Synthea writes practitioners "
                     "and hospitals in their own files) in the same run or before")
            continue
        body = canonical(resource)
        digest = digest_of(body)
        rows = None
        if digest not in known_digests:
            if only_known:
                out.incomplete = True
                return out
            try:
                model.model_validate(resource)
            except pydantic.ValidationError as exc:
                reject(f"{rtype}/{rid} fails FHIR R4 validation: {_first_error(exc)}")
                continue
            view = _views_by_type().get(rtype)
            rows = tuple(view.rows_of(resource)) if view is not None and not pending else None
        generated_ts = parse_instant((resource.get("meta") or {}).get("lastUpdated"))
        out.staged.append(StagedResource(
            rtype, rid, body, digest, generated_ts or default_generated, key, number,
            origin, tuple(sorted(set(targets))), rows, tuple(sorted(set(pending)))))
    return out
