"""A node's robot-fleet profile, read from TOML and checked, plus the run's settings.

Profiles are data (`profiles/<node>.toml`; a US and an EU fleet differ in model mix, case
mix, rates and names). `FleetConfig` is what one run generates: the profile's counts and
window, overridden from the command line. Every problem is a UserError with its fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from workloads.contracts.errors import UserError
from workloads.contracts.nodes import NODE_NAME
from workloads.contracts.tables.robotics import COMPLICATIONS, PROCEDURE_CATEGORIES, ROBOT_MODELS

BUILTIN_PROFILE_DIR = Path(__file__).parent / "profiles"
ID_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")
MIN_HZ, MAX_HZ = 1.0, 30.0
DEFAULT_HZ = 1.0

_TOP = {"description", "id_prefix", "currency", "utc_offset_hours", "fleet", "models",
        "categories", "rates", "complications", "names"}
_FLEET = {"robots", "facilities", "surgeons", "technicians", "procedures", "maintenance",
          "start", "end", "retired_fraction", "in_maintenance_fraction"}
_RATES = {"cancel", "complication_intercept", "complication_slope", "fault_base",
          "fault_per_use", "abort_given_fault", "abort_base", "maintenance_cost_scale"}
_NAMES = {"places", "facility_kinds", "given", "family"}


@dataclass(frozen=True)
class FleetConfig:
    """What one run generates (the profile's defaults, overridable from the CLI)."""

    robots: int
    facilities: int
    surgeons: int
    technicians: int
    procedures: int
    maintenance: int  # planned logs; emergencies (after faults) come on top
    start: dt.date
    end: dt.date
    hz: float = DEFAULT_HZ
    models: tuple[str, ...] = ()  # restrict the fleet to these models (empty: the profile's)

    def checked(self) -> FleetConfig:
        for name in ("robots", "facilities", "surgeons", "technicians", "procedures",
                     "maintenance"):
            value = getattr(self, name)
            if value <= 0:
                flag = name.replace("_", "-")
                raise UserError(f"--{flag} {value}: must be a positive count; fix: e.g. "
                                f"--{flag} {10 if name != 'procedures' else 5000}")
        if self.facilities > self.robots:
            raise UserError(f"--facilities {self.facilities} is more than --robots {self.robots}"
                            "; fix: at least one robot per facility")
        if self.end <= self.start:
            raise UserError(f"--end {self.end} is not after --start {self.start}; fix: give an "
                            "end date later than the start date")
        if not MIN_HZ <= self.hz <= MAX_HZ:
            raise UserError(f"--hz {self.hz}: telemetry rate must be {MIN_HZ:g}-{MAX_HZ:g} Hz; "
                            "fix: e.g. --hz 10")
        unknown = [m for m in self.models if m not in ROBOT_MODELS]
        if unknown:
            raise UserError(f"--models: unknown robot model {', '.join(map(repr, unknown))}; "
                            f"fix: choose among {', '.join(ROBOT_MODELS)}")
        return self


@dataclass(frozen=True)
class Rates:
    cancel: float
    complication_intercept: float
    complication_slope: float
    fault_base: float
    fault_per_use: float
    abort_given_fault: float
    abort_base: float
    maintenance_cost_scale: float


@dataclass(frozen=True)
class FleetProfile:
    node: str
    source: Path
    description: str
    id_prefix: str
    currency: str
    utc_offset_hours: float
    defaults: FleetConfig
    retired_fraction: float
    in_maintenance_fraction: float
    models: dict[str, float]  # normalised weights
    categories: dict[str, float]
    complications: dict[str, float]
    rates: Rates
    places: tuple[str, ...]
    facility_kinds: tuple[str, ...]
    given: tuple[str, ...]
    family: tuple[str, ...]

    def config(self, **overrides: Any) -> FleetConfig:
        """The profile's defaults with the given (non-None) settings replaced, checked."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self.defaults, **given).checked()

    def fingerprint(self, config: FleetConfig, seed: int, patients: str) -> str:
        """Identifies a generation: same profile file, settings, seed and patients."""
        settings = json.dumps({**asdict(config), "seed": seed}, default=str, sort_keys=True)
        digest = hashlib.sha256(self.source.read_bytes())
        for part in (settings, patients):
            digest.update(b"\0" + part.encode())
        return digest.hexdigest()


def find_profile(node: str, profile_dir: Path | None = None) -> FleetProfile:
    dirs = [*([profile_dir] if profile_dir else []), BUILTIN_PROFILE_DIR]
    for folder in dirs:
        if (folder / f"{node}.toml").is_file():
            return load_profile(folder / f"{node}.toml")
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
    raise UserError(f"no robotics profile for node {node!r} in {', '.join(map(str, dirs))} "
                    f"(known: {', '.join(known)}); fix: choose a known node or add "
                    f"{node}.toml with --profile-dir DIR")


def load_profile(path: Path) -> FleetProfile:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"robotics profile {path}: cannot read it ({exc}); fix: check the path"
                        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"robotics profile {path}: not valid TOML ({exc}); fix: correct the "
                        "syntax") from None
    return _Parser(Path(path)).parse(raw)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, fix: str) -> None:
        raise UserError(f"robotics profile {self.path}, {key}: {problem}; fix: {fix}")

    def table(self, raw: dict[str, Any], key: str, allowed: set[str] | None) -> dict[str, Any]:
        value = raw.get(key)
        if not isinstance(value, dict):
            self.fail(key, "missing or not a table", f"add a [{key}] section")
        assert isinstance(value, dict)
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                self.fail(f"{key}.{unknown[0]}", "unknown key", f"use one of {sorted(allowed)}")
        return value

    def number(self, raw: dict[str, Any], section: str, key: str, low: float | None = None,
               high: float | None = None) -> float:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{section}.{key}", f"{value!r} is not a number", "give a number")
        assert isinstance(value, int | float)
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{section}.{key}", f"{value} is outside {low}-{high}",
                      f"give a value in {low}-{high}")
        return float(value)

    def count(self, raw: dict[str, Any], key: str) -> int:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(f"fleet.{key}", f"{value!r} is not a positive whole number", "e.g. 10")
        assert isinstance(value, int)
        return value

    def date(self, raw: dict[str, Any], key: str) -> dt.date:
        value = raw.get(key)
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            self.fail(f"fleet.{key}", f"{value!r} is not a date", "write e.g. 2023-01-01")
        assert isinstance(value, dt.date)
        return value

    def weights(self, raw: dict[str, Any], key: str, levels: tuple[str, ...]) -> dict[str, float]:
        section = self.table(raw, key, None)
        unknown = sorted(set(section) - set(levels))
        if unknown:
            self.fail(f"{key}.{unknown[0]}", "unknown name", f"use names among {list(levels)}")
        weights = {name: self.number(section, key, name, 0.0) for name in section}
        total = sum(weights.values())
        if total <= 0:
            self.fail(key, "the weights sum to 0", "give at least one positive weight")
        return {name: weights.get(name, 0.0) / total for name in levels}

    def names(self, raw: dict[str, Any], key: str, minimum: int) -> tuple[str, ...]:
        value = raw.get(key)
        if (not isinstance(value, list) or len(value) < minimum
                or not all(isinstance(v, str) and v.strip() for v in value)
                or len(set(value)) != len(value)):
            self.fail(f"names.{key}", f"needs at least {minimum} distinct non-empty strings",
                      "list more names")
        assert isinstance(value, list)
        return tuple(value)

    def parse(self, raw: dict[str, Any]) -> FleetProfile:
        node = self.path.stem
        if not NODE_NAME.match(node):
            self.fail("file name", f"{node!r} is not a node name", "name it <node>.toml (sg.toml)")
        unknown = sorted(set(raw) - _TOP)
        if unknown:
            self.fail(unknown[0], "unknown key", f"use one of {sorted(_TOP)}")
        prefix = raw.get("id_prefix")
        if not isinstance(prefix, str) or not ID_PREFIX.match(prefix):
            self.fail("id_prefix", f"{prefix!r} is not 1-8 capital letters/digits", 'e.g. "SG"')
        assert isinstance(prefix, str)
        fleet = self.table(raw, "fleet", _FLEET)
        defaults = FleetConfig(
            robots=self.count(fleet, "robots"), facilities=self.count(fleet, "facilities"),
            surgeons=self.count(fleet, "surgeons"), technicians=self.count(fleet, "technicians"),
            procedures=self.count(fleet, "procedures"),
            maintenance=self.count(fleet, "maintenance"),
            start=self.date(fleet, "start"), end=self.date(fleet, "end"))
        try:
            defaults.checked()
        except UserError as exc:
            self.fail("fleet", str(exc).split("; fix")[0], "correct the [fleet] defaults")
        rates_raw = self.table(raw, "rates", _RATES)
        missing = sorted(_RATES - set(rates_raw))
        if missing:
            self.fail(f"rates.{missing[0]}", "missing", "add it (see profiles/us.toml)")
        probability = {"cancel", "fault_base", "fault_per_use", "abort_given_fault", "abort_base"}
        rates = Rates(**{k: self.number(rates_raw, "rates", k, *((0.0, 1.0) if k in probability
                                                                  else (None, None)))
                         for k in sorted(_RATES)})
        names = self.table(raw, "names", _NAMES)
        currency = raw.get("currency", "USD")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            self.fail("currency", f"{currency!r} is not an ISO 4217 code", 'e.g. "EUR"')
        description = raw.get("description", "")
        return FleetProfile(
            node=node, source=self.path, description=str(description), id_prefix=prefix,
            currency=str(currency),
            utc_offset_hours=self.number(raw, "profile", "utc_offset_hours", -12, 14),
            defaults=defaults,
            retired_fraction=self.number(fleet, "fleet", "retired_fraction", 0.0, 0.5),
            in_maintenance_fraction=self.number(fleet, "fleet", "in_maintenance_fraction", 0.0,
                                                0.5),
            models=self.weights(raw, "models", tuple(ROBOT_MODELS)),
            categories=self.weights(raw, "categories", PROCEDURE_CATEGORIES),
            complications=self.weights(raw, "complications", COMPLICATIONS),
            rates=rates,
            places=self.names(names, "places", 2),
            facility_kinds=self.names(names, "facility_kinds", 1),
            given=self.names(names, "given", 2),
            family=self.names(names, "family", 2),
        )
