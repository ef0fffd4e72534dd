"""A SQL on FHIR v2 ViewDefinition runner: FHIR resources in, flat rows out.

FHIRPath is evaluated by fhirpathpy with its R4 model (so choice elements such as
`value.ofType(Quantity)` resolve); the ViewDefinition structure (select, column, forEach,
forEachOrNull, repeat, unionAll, where, constant, %rowIndex, getResourceKey() and
getReferenceKey()) is implemented here, following the v2 specification's algorithm. It
passes every `shareable` case of the conformance suite (tests/workloads/clinical).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from workloads.contracts.errors import UserError

Row = dict[str, Any]
_MODEL = models["r4"]
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ROW_INDEX = "rowIndex"


class ViewError(UserError):
    """The ViewDefinition itself is wrong (not the data)."""


def _resource_key(ctx: list[Any]) -> list[Any]:
    out = []
    for item in ctx:
        data = getattr(item, "data", item)
        if isinstance(data, dict) and "id" in data:
            out.append(data["id"])
    return out


def _reference_key(ctx: list[Any], type_: Any = None) -> list[Any]:
    wanted = _type_name(type_)
    out = []
    for item in ctx:
        data = getattr(item, "data", item)
        ref = data.get("reference") if isinstance(data, dict) else None
        if not isinstance(ref, str) or "/" not in ref:
            continue
        parts = ref.split("/")
        # Type/id or .../Type/id/_history/v
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        ref_type, ref_id = parts[-2], parts[-1]
        if wanted is None or wanted == ref_type:
            out.append(ref_id)
    return out


def _type_name(type_: Any) -> str | None:
    """fhirpathpy passes a type specifier argument as its parsed node or a name."""
    if type_ is None:
        return None
    if isinstance(type_, list):
        type_ = type_[0] if type_ else None
        if type_ is None:
            return None
    name = getattr(type_, "name", None)
    if isinstance(name, str):
        return name.split(".")[-1]
    if isinstance(type_, dict):
        text = type_.get("text") or ""
        return str(text).split(".")[-1] or None
    return str(type_).split(".")[-1]


def _join(ctx: list[Any], separator: Any = "") -> list[Any]:
    """FHIRPath join(): an empty collection joins to '' (fhirpathpy returns empty)."""
    values = [getattr(item, "data", item) for item in ctx]
    if not all(isinstance(v, str) for v in values):
        raise ViewError("join() needs a collection of strings")
    sep = separator[0] if isinstance(separator, list) and separator else separator
    return ["" if not values else str(sep or "").join(values)]


_FUNCTIONS = {
    "join": {"fn": _join, "arity": {0: [], 1: ["String"]}},
    "getResourceKey": {"fn": _resource_key, "arity": {0: []}},
    "getReferenceKey": {"fn": _reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
}
_OPTIONS = {"userInvocationTable": _FUNCTIONS}
# Iteration keeps fhirpathpy's typed nodes, so that a nested path on a focus still knows
# the focus's FHIR type (value.ofType(string) inside item.answer needs it).
_RAW_OPTIONS = {**_OPTIONS, "returnRawData": True}


@dataclass(frozen=True)
class _Column:
    name: str
    path: Callable[..., list[Any]]
    collection: bool


def _compile(path: Any, where: str, *, raw: bool = False) -> Callable[..., list[Any]]:
    if not isinstance(path, str) or not path.strip():
        raise ViewError(f"{where}: a FHIRPath expression (a non-empty string) is required")
    # fhirpathpy binds $this only inside a function's argument; at the top of an expression
    # it is the focus, which select() binds to exactly that (a one-item input here).
    expression = f"select({path})" if "$this" in path else path
    try:
        return fhirpathpy.compile(expression, _MODEL, _RAW_OPTIONS if raw else _OPTIONS)
    except Exception as exc:  # fhirpathpy raises its parser's own exception types
        raise ViewError(f"{where}: cannot parse FHIRPath {path!r} ({exc})") from None


_CONSTANT_VALUE = re.compile(r"^value[A-Z][A-Za-z0-9]*$")


_NULL = object()  # the focus of forEachOrNull's row when the collection is empty


class _Node:
    """One `select` (or the view itself): iteration, columns, nested selects, unionAll."""

    def __init__(self, spec: Any, where: str) -> None:
        if not isinstance(spec, dict):
            raise ViewError(f"{where}: a select is a JSON object")
        modes = [k for k in ("forEach", "forEachOrNull", "repeat") if k in spec]
        if len(modes) > 1:
            raise ViewError(f"{where}: use one of forEach, forEachOrNull, repeat")
        self.mode = modes[0] if modes else ""
        self.iterate: list[Callable[..., list[Any]]] = []
        if self.mode == "repeat":
            paths = spec["repeat"]
            if not isinstance(paths, list) or not paths:
                raise ViewError(f"{where}.repeat: a non-empty list of FHIRPath expressions")
            self.iterate = [_compile(p, f"{where}.repeat", raw=True) for p in paths]
        elif self.mode:
            self.iterate = [_compile(spec[self.mode], f"{where}.{self.mode}", raw=True)]
        self.columns = []
        for i, col in enumerate(spec.get("column", [])):
            cwhere = f"{where}.column[{i}]"
            if not isinstance(col, dict) or not isinstance(col.get("name"), str):
                raise ViewError(f"{cwhere}: a column needs a name")
            if not _COLUMN_NAME.match(col["name"]):
                raise ViewError(f"{cwhere}: column name {col['name']!r} must match "
                                f"{_COLUMN_NAME.pattern}")
            self.columns.append(_Column(col["name"], _compile(col.get("path"), cwhere),
                                        bool(col.get("collection", False))))
        self.selects = [_Node(s, f"{where}.select[{i}]")
                        for i, s in enumerate(spec.get("select", []))]
        self.unions = [_Node(s, f"{where}.unionAll[{i}]")
                       for i, s in enumerate(spec.get("unionAll", []))]
        if self.unions:
            first = self.unions[0].names()
            for i, u in enumerate(self.unions[1:], 1):
                if u.names() != first:
                    raise ViewError(f"{where}.unionAll[{i}]: columns {u.names()} differ from "
                                    f"unionAll[0]'s {first} (names and order must match)")

    def names(self) -> list[str]:
        own = [c.name for c in self.columns]
        for s in self.selects:
            own += s.names()
        if self.unions:
            own += self.unions[0].names()
        return own

    def _foci(self, element: Any, env: dict[str, Any]) -> list[Any]:
        if not self.mode:
            return [element]
        if self.mode == "repeat":
            out: list[Any] = []

            def walk(node: Any) -> None:
                for fn in self.iterate:
                    for child in fn(node, env):
                        out.append(child)
                        walk(child)

            walk(element)
            return out
        return list(self.iterate[0](element, env))

    def rows(self, element: Any, env: dict[str, Any]) -> Iterator[Row]:
        foci = self._foci(element, env)
        if not foci and self.mode == "forEachOrNull":
            foci = [_NULL]
        for index, focus in enumerate(foci):
            local = {**env, _ROW_INDEX: index if self.mode else env.get(_ROW_INDEX, 0)}
            own: Row = {}
            for col in self.columns:
                values = col.path([] if focus is _NULL else focus, local)
                if col.collection:
                    own[col.name] = [_plain(v) for v in values]
                elif len(values) > 1:
                    raise ViewError(f"column {col.name!r} returned {len(values)} values; fix: "
                                    f"set collection: true or narrow the path (first())")
                else:
                    own[col.name] = _plain(values[0]) if values else None
            parts: list[list[Row]] = [[own]]
            if focus is _NULL:  # nested selects and unions add their columns, as nulls
                parts.append([dict.fromkeys(self.names()[len(self.columns):])])
                yield from _product(parts)
                continue
            for s in self.selects:
                parts.append(list(s.rows(focus, local)))
            if self.unions:
                parts.append([r for u in self.unions for r in u.rows(focus, local)])
            yield from _product(parts)


def _plain(value: Any) -> Any:
    """FHIRPath arithmetic gives Decimals; rows hold JSON values."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) \
            else float(value)
    return value


def _product(parts: list[list[Row]]) -> Iterator[Row]:
    if not parts:
        yield {}
        return
    head, rest = parts[0], parts[1:]
    for row in head:
        for tail in _product(rest):
            yield {**row, **tail}


def _constants(spec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, const in enumerate(spec or []):
        name = const.get("name") if isinstance(const, dict) else None
        values = [k for k in (const or {}) if _CONSTANT_VALUE.match(k)]
        if not isinstance(name, str) or len(values) != 1:
            raise ViewError(f"constant[{i}]: needs a name and exactly one value[x]")
        out[name] = const[values[0]]
    return out


class ViewDefinition:
    """A compiled ViewDefinition. `run(resources)` yields its rows; errors raise ViewError."""

    def __init__(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ViewError("a ViewDefinition is a JSON object")
        resource = spec.get("resource")
        if not isinstance(resource, str) or not resource:
            raise ViewError("the ViewDefinition names no resource; fix: add \"resource\"")
        self.resource = resource
        self.name = str(spec.get("name") or resource.lower())
        self.constants = _constants(spec.get("constant"))
        self.root = _Node({"select": spec.get("select", [])}, "select")
        names = self.root.names()
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ViewError(f"column names {dupes} appear more than once in the view")
        self.where = [_compile((w or {}).get("path"), f"where[{i}]")
                      for i, w in enumerate(spec.get("where", []))]
        self._compiled_vars = self._check_variables(spec)

    def _check_variables(self, spec: dict[str, Any]) -> set[str]:
        # Referencing an undefined %constant is an error of the view, not of the data.
        used = set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)", str(spec.get("select"))
                              + str(spec.get("where"))))
        known = {*self.constants, _ROW_INDEX, "resource", "rootResource", "context", "ucum",
                 "sct", "loinc"}
        missing = sorted(used - known)
        if missing:
            raise ViewError(f"the view uses undefined constants {missing}; fix: declare them "
                            f"in \"constant\"")
        return used

    @property
    def columns(self) -> list[str]:
        return self.root.names()

    def _selected(self, resource: Any, env: dict[str, Any]) -> bool:
        for i, fn in enumerate(self.where):
            result = fn(resource, env)
            if len(result) > 1 or (result and not isinstance(result[0], bool)):
                raise ViewError(f"where[{i}] must give a boolean, got {result!r}")
            if result != [True]:
                return False
        return True

    def rows_of(self, resource: dict[str, Any]) -> list[Row]:
        if resource.get("resourceType") != self.resource:
            return []
        env = {**self.constants, _ROW_INDEX: 0}
        if not self._selected(resource, env):
            return []
        names = self.columns
        return [{n: row.get(n) for n in names} for row in self.root.rows(resource, env)]

    def run(self, resources: Iterable[dict[str, Any]]) -> Iterator[Row]:
        for resource in resources:
            yield from self.rows_of(resource)
