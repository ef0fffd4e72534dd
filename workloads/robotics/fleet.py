"""A node's robot fleet: robots, procedures, outcomes and maintenance, consistent by
construction, deterministic for (seed, node, settings).

Each robot is simulated on its own timeline (local business hours, stored in UTC): planned
maintenance days block the robot; procedures are placed one after another with gaps sized
so the robot's share fits its active window; an equipment fault (more likely the longer
since the last maintenance) triggers emergency maintenance right after the procedure and
the robot takes no case until it is back. So no procedure overlaps maintenance, a retired
robot takes no case after its retirement day, and the robot's counters are read back from
the rows. What telemetry needs to draw a procedure's signals is kept in `ProcedurePlan`.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from workloads.contracts.errors import UserError
from workloads.contracts.tables.robotics import (
    COMPLICATIONS,
    PROCEDURE_OUTCOMES,
    PROCEDURE_TYPES,
    ROBOT_MAINTENANCE_LOGS,
    ROBOT_MODELS,
    SURGICAL_PROCEDURES,
    SURGICAL_ROBOTS,
)
from workloads.robotics.profile import FleetConfig, FleetProfile, Rates

DAY = 86_400
DAY_OPEN = 7 * 3600 + 1800  # first case starts 07:30 local
LAST_START = 16 * 3600  # no case starts after 16:00 local
SNAPSHOT_TOD = DAY - 1  # the data is a snapshot at 23:59:59 local on the window's last day
MAX_PER_DAY = 3  # cases per robot and day the capacity check assumes
MAX_DURATION_MIN = 600.0

# Which categories (and, where narrower, which types) each model performs.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "da Vinci Xi": ("urological", "gynecological", "cardiac", "thoracic", "general"),
    "da Vinci X": ("urological", "gynecological", "thoracic", "general"),
    "da Vinci Si": ("urological", "gynecological", "cardiac", "thoracic", "general"),
    "Versius": ("urological", "gynecological", "thoracic", "general"),
    "ROSA Knee": ("orthopedic",),
    "ROSA Brain": ("orthopedic",),
    "Mako": ("orthopedic",),
    "Senhance": ("urological", "gynecological", "general"),
    "Hugo RAS": ("urological", "gynecological", "general"),
    "Monarch": ("thoracic", "urological"),
}
TYPE_LIMITS: dict[str, tuple[str, ...]] = {
    "ROSA Knee": ("Total Knee Arthroplasty", "Partial Knee Arthroplasty"),
    "ROSA Brain": ("Spinal Fusion",),
    "Mako": ("Total Knee Arthroplasty", "Partial Knee Arthroplasty", "Total Hip Arthroplasty"),
    "Monarch": ("Segmentectomy", "Lobectomy", "Partial Nephrectomy", "Pyeloplasty"),
}
# category -> (mean complexity, base minutes, base hospital days, base blood loss mL)
CATEGORY_TRAITS: dict[str, tuple[float, float, int, float]] = {
    "urological": (3.0, 120.0, 2, 150.0),
    "gynecological": (2.6, 90.0, 1, 100.0),
    "cardiac": (4.0, 200.0, 5, 300.0),
    "thoracic": (3.5, 150.0, 4, 200.0),
    "general": (2.4, 75.0, 1, 60.0),
    "orthopedic": (2.8, 70.0, 2, 250.0),
}
FEMALE_ONLY = set(PROCEDURE_TYPES["gynecological"])
MALE_ONLY = {"Radical Prostatectomy"}
SEVERE = {"organ injury", "nerve damage"}
FAULTS = ("joint encoder fault", "controller overheating", "power supply fault")
FAULT_PARTS = {
    "joint encoder fault": ["joint encoder", "arm cable harness"],
    "controller overheating": ["cooling fan", "thermal sensor"],
    "power supply fault": ["power supply unit"],
}
PLANNED_TYPES = ("routine", "calibration", "upgrade")
PLANNED_SHARE = (0.6, 0.3, 0.1)
PLANNED_HOURS = {"routine": (2.0, 5.0), "calibration": (1.0, 3.0), "upgrade": (4.0, 10.0)}
NEXT_DAYS = {"routine": 90, "calibration": 60, "upgrade": 180, "emergency": 30}
BASE_COST = {"routine": 2500.0, "calibration": 1500.0, "upgrade": 12000.0, "emergency": 18000.0}
EPOCH = dt.date(1970, 1, 1)


def stream_rng(seed: int, node: str, *key: int) -> np.random.Generator:
    """The generator of one named stream: depends only on (seed, node, key)."""
    entropy = (seed, zlib.crc32(node.encode()))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=key)))


ROBOTS_STREAM, SCHEDULE_STREAM, OUTCOMES_STREAM, PEOPLE_STREAM, TELEMETRY_STREAM = range(5)


@dataclass(frozen=True)
class Patients:
    """The node's own patients (from patient_genomic_data), in patient_id order."""

    ids: list[str]
    ages: np.ndarray  # int64


@dataclass
class ProcedurePlan:
    """What the telemetry of one performed procedure is drawn from."""

    ordinal: int  # 1-based, in start-time order: the procedure id's number
    procedure_id: str
    start_us: int  # UTC microseconds since the epoch
    duration_s: float
    category: str
    model: str
    complexity: float
    uses_since_maintenance: int
    fault: str | None  # the fault kind, if the robot failed during this procedure
    fault_at_s: float | None
    complication_at_s: list[float] = field(default_factory=list)


@dataclass
class _Case:
    """A scheduled procedure while the fleet is simulated (local seconds)."""

    robot: int
    type: str
    category: str
    start: float
    surgeon: int
    patient: int
    complexity: float
    booked: float
    model: str
    status: str = "completed"
    end: float | None = None
    fault: str | None = None
    fault_at: float | None = None
    comps: list[str] = field(default_factory=list)
    comp_at: list[float] = field(default_factory=list)
    uses: int = 0
    ordinal: int = 0
    id: str = ""


@dataclass
class _Log:
    robot: int
    start: float  # local seconds
    kind: str
    hours: float
    fault: str | None = None
    trigger: _Case | None = None


@dataclass(frozen=True)
class Fleet:
    robots: pa.Table
    procedures: pa.Table
    outcomes: pa.Table
    maintenance: pa.Table
    plans: list[ProcedurePlan]  # performed procedures, in ordinal order
    snapshot_us: int

    def tables(self) -> list[tuple[str, pa.Table]]:
        return [(SURGICAL_ROBOTS.name, self.robots), (SURGICAL_PROCEDURES.name, self.procedures),
                (PROCEDURE_OUTCOMES.name, self.outcomes),
                (ROBOT_MAINTENANCE_LOGS.name, self.maintenance)]


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...],
          weights: list[float] | None = None) -> str:
    p = None
    if weights is not None and sum(weights) > 0:  # all-zero weights: uniform
        w = np.asarray(weights, dtype=float)
        p = w / w.sum()
    return options[int(rng.choice(len(options), p=p))]


def _people(rng: np.random.Generator, profile: FleetProfile, count: int) -> list[str]:
    """`count` distinct fictional names from the profile's parts (initials when needed)."""
    pairs = [(g, f) for g in profile.given for f in profile.family]
    order = rng.permutation(len(pairs))
    names = []
    for i in range(count):
        given, family = pairs[order[i % len(pairs)]]
        suffix = f" {chr(ord('A') + i // len(pairs) - 1)}." if i >= len(pairs) else ""
        names.append(f"{given}{suffix} {family}")
    return names


def _facility_names(rng: np.random.Generator, profile: FleetProfile, count: int) -> list[str]:
    combos = [f"{p} {k}" for p in profile.places for k in profile.facility_kinds]
    order = rng.permutation(len(combos))
    return [combos[order[i]] if i < len(combos) else f"{combos[order[i % len(combos)]]} "
            f"{i // len(combos) + 1}" for i in range(count)]


class _Ids:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, kind: str, number: int, width: int) -> str:
        return f"{self.prefix}-{kind}{number:0{width}d}"


def _utc_us(local_seconds: float, window_start: dt.date, offset_h: float) -> int:
    """Local seconds since the window's first midnight -> UTC microseconds since the epoch."""
    base = (window_start - EPOCH).days * DAY
    return round((base + local_seconds - offset_h * 3600) * 1_000_000)


def build_fleet(profile: FleetProfile, config: FleetConfig, patients: Patients, seed: int
                ) -> Fleet:
    config = config.checked()
    if not patients.ids:
        raise UserError(f"node {profile.node!r} has no patients; fix: generate them first")
    node = profile.node
    ids = _Ids(profile.id_prefix)
    offset = profile.utc_offset_hours
    n_days = (config.end - config.start).days + 1
    first_weekday = config.start.weekday()

    def business(day: int) -> bool:
        return (first_weekday + day) % 7 < 5

    snapshot_local = (n_days - 1) * DAY + SNAPSHOT_TOD
    snapshot_us = _utc_us(snapshot_local, config.start, offset)

    # -- people and robots ---------------------------------------------------------------
    people_rng = stream_rng(seed, node, PEOPLE_STREAM)
    facility_names = _facility_names(people_rng, profile, config.facilities)
    surgeon_names = _people(people_rng, profile, config.surgeons)
    technician_names = _people(people_rng, profile, config.technicians)
    genders = np.where(people_rng.random(len(patients.ids)) < 0.5, "female", "male")
    female = np.flatnonzero(genders == "female")
    male = np.flatnonzero(genders == "male")
    surgeon_facility = np.arange(config.surgeons) % config.facilities

    rrng = stream_rng(seed, node, ROBOTS_STREAM)
    models = list(config.models) or [m for m in ROBOT_MODELS if profile.models[m] > 0]
    weights = [profile.models[m] if not config.models else 1.0 for m in models]
    robot_models = [_pick(rrng, models, weights) for _ in range(config.robots)]
    facility_of = rrng.permutation(np.arange(config.robots) % config.facilities)
    # Installed up to three years before the window or in its first 40%.
    install_day = rrng.integers(-3 * 365, max(1, int(0.4 * n_days)), config.robots)
    n_retired = round(profile.retired_fraction * config.robots)
    n_down = round(profile.in_maintenance_fraction * config.robots)
    roles = rrng.permutation(config.robots)
    retired = set(roles[:n_retired].tolist())
    down_at_snapshot = set(roles[n_retired:n_retired + n_down].tolist())
    serials = rrng.choice(900_000, config.robots, replace=False) + 100_000
    active_from = np.maximum(install_day, 0)
    active_to = np.full(config.robots, n_days)  # exclusive day
    for r in retired:
        low = max(int(active_from[r]) + 60, n_days // 2)
        active_to[r] = int(rrng.integers(min(low, n_days - 2), n_days - 1))
    for r in down_at_snapshot:
        active_to[r] = n_days - 1  # its last planned maintenance starts on the last day

    # -- planned maintenance days --------------------------------------------------------
    srng = stream_rng(seed, node, SCHEDULE_STREAM)
    span = (active_to - active_from).astype(float)
    planned_counts = srng.multinomial(config.maintenance, span / span.sum())
    planned: list[list[tuple[int, str]]] = []  # per robot: (day, type), sorted
    for r in range(config.robots):
        days: list[tuple[int, str]] = []
        count = int(planned_counts[r]) - (1 if r in down_at_snapshot else 0)
        if r in down_at_snapshot and planned_counts[r] == 0:
            count = 0
        lo, hi = int(active_from[r]), int(active_to[r])
        for k in range(max(count, 0)):
            day = lo + int((k + srng.uniform(0.2, 0.8)) * (hi - lo) / max(count, 1))
            while not business(day) and day + 1 < hi:
                day += 1
            kind = PLANNED_TYPES[int(srng.choice(3, p=PLANNED_SHARE))]
            days.append((min(day, hi - 1), kind))
        planned.append(sorted(set(days)))

    # -- procedures, robot by robot ----------------------------------------------------------
    utilisation = srng.lognormal(0.0, 0.25, config.robots) * np.maximum(span, 0)
    proc_counts = srng.multinomial(config.procedures, utilisation / utilisation.sum())
    raw_procs: list[_Case] = []
    emergencies: list[_Log] = []
    rates = profile.rates
    complication_p = np.asarray([profile.complications[c] for c in COMPLICATIONS])
    for r in range(config.robots):
        model = robot_models[r]
        blocked = {d for d, _ in planned[r]}
        lo, hi = int(active_from[r]), int(active_to[r])
        n_r = int(proc_counts[r])
        open_days = [d for d in range(lo, hi) if business(d) and d not in blocked]
        if n_r > MAX_PER_DAY * len(open_days) * 0.5:
            raise UserError(
                f"{config.procedures} procedures on {config.robots} robots over {n_days} days is "
                f"more than the fleet can perform (robot {ids('R', r + 1, 4)}: {n_r} cases in "
                f"{len(open_days)} working days); fix: more --robots, fewer --procedures or a "
                "longer window (--start/--end)")
        per_day = _spread(srng, n_r, len(open_days))
        categories = CAPABILITIES[model]
        cat_w = [profile.categories[c] for c in categories]
        if sum(cat_w) <= 0:
            cat_w = [1.0] * len(categories)
        surgeons = np.flatnonzero(surgeon_facility == facility_of[r])
        if len(surgeons) == 0:
            surgeons = np.arange(config.surgeons)
        planned_days = sorted(blocked)
        down_until = -1.0  # end of the current emergency maintenance (local seconds)
        uses = 0  # performed cases since the last maintenance
        last_reset_day = -10**9
        moved: list[int] = []  # cases that did not fit their day, moved to the next free day
        for slot, day in enumerate(open_days):
            cases = int(per_day[slot]) + (1 if moved and per_day[slot] == 0 else 0)
            if cases > int(per_day[slot]):
                moved.pop()
            t = float(day * DAY + DAY_OPEN)
            for _ in range(cases):
                if t % DAY > LAST_START:  # the day is full: the case goes to a later free day
                    moved.append(day)
                    continue
                if any(last_reset_day < d <= day for d in planned_days):
                    uses, last_reset_day = 0, day  # planned maintenance resets the wear
                proc = _draw_case(srng, r, model, t, categories, cat_w, surgeons, female, male,
                                  len(patients.ids))
                raw_procs.append(proc)
                if t < down_until:  # booked while the robot is down after a fault
                    proc.status = "cancelled"
                    t += 1800.0
                    continue
                if srng.random() < rates.cancel:
                    proc.status = "cancelled"
                    t += 1800.0
                    continue
                fault = _perform(srng, proc, rates, uses, complication_p)
                uses += 1
                assert proc.end is not None
                if fault:
                    start_em = proc.end + 1800.0
                    hours = float(np.round(srng.uniform(4, 48), 1))
                    emergencies.append(_Log(r, start_em, "emergency", hours, proc.fault, proc))
                    down_until = start_em + hours * 3600
                    uses, last_reset_day = 0, int(down_until // DAY)
                # The next booking of the day follows after turnover (cancelled if the robot
                # is still down then).
                t = proc.end + round(float(srng.uniform(30, 60))) * 60.0
        if moved:
            raise UserError(
                f"robot {ids('R', r + 1, 4)} cannot fit its {n_r} procedures in business hours "
                "before its window ends; fix: more --robots, fewer --procedures or a longer "
                "window (--start/--end)")

    # -- ids in start order --------------------------------------------------------------------
    raw_procs.sort(key=lambda p: (p.start, p.robot))
    for i, p in enumerate(raw_procs, start=1):
        p.ordinal = i
        p.id = ids("P", i, 6)

    # -- maintenance logs ----------------------------------------------------------------------
    logs: list[_Log] = []
    for r in range(config.robots):
        for day, kind in planned[r]:
            hours = float(np.round(srng.uniform(*PLANNED_HOURS[kind]), 1))
            logs.append(_Log(r, float(day * DAY + 6 * 3600), kind, hours))
        if r in down_at_snapshot:
            hours = float(np.round(srng.uniform(14, 72), 1))
            logs.append(_Log(r, float((n_days - 1) * DAY + 12 * 3600), "routine", hours))
    logs.extend(emergencies)
    logs.sort(key=lambda m: (m.start, m.robot))
    maintenance = _maintenance_table(logs, profile, config, ids, srng, technician_names)

    # -- robots (counters read back from the rows) -------------------------------------------
    performed = np.zeros(config.robots, dtype=np.int64)
    for p in raw_procs:
        if p.status != "cancelled":
            performed[p.robot] += 1
    last_maint: dict[int, int] = {}
    upgrades = np.zeros(config.robots, dtype=np.int64)
    for m in logs:
        last_maint[m.robot] = max(last_maint.get(m.robot, -10**9), int(m.start // DAY))
        upgrades[m.robot] += m.kind == "upgrade"
    start_ord = (config.start - EPOCH).days
    robots = pa.table({
        "robot_id": [ids("R", r + 1, 4) for r in range(config.robots)],
        "robot_serial_number": [
            f"{''.join(w[0] for w in ROBOT_MODELS[robot_models[r]].split())[:3].upper()}-"
            f"{serials[r]}" for r in range(config.robots)],
        "robot_model": robot_models,
        "manufacturer": [ROBOT_MODELS[m] for m in robot_models],
        "installation_date": pa.array((start_ord + install_day).astype("int32"), pa.date32()),
        "facility_id": [ids("F", int(facility_of[r]) + 1, 2) for r in range(config.robots)],
        "facility_name": [facility_names[int(facility_of[r])] for r in range(config.robots)],
        "status": ["retired" if r in retired else "maintenance" if r in down_at_snapshot
                   else "operational" for r in range(config.robots)],
        "retired_date": pa.array([start_ord + int(active_to[r]) if r in retired else None
                                  for r in range(config.robots)], pa.date32()),
        "last_maintenance_date": pa.array([start_ord + last_maint[r] if r in last_maint else None
                                           for r in range(config.robots)], pa.date32()),
        "total_procedures": performed,
        "firmware_version": [f"{4 + (r % 3)}.{int(upgrades[r])}.{int(serials[r]) % 10}"
                             for r in range(config.robots)],
        "created_at": pa.array([_utc_us(float(install_day[r]) * DAY + 9 * 3600, config.start,
                                        offset) for r in range(config.robots)],
                               pa.timestamp("us", tz="UTC")),
        "updated_at": pa.array([snapshot_us] * config.robots, pa.timestamp("us", tz="UTC")),
    }).cast(SURGICAL_ROBOTS.arrow_schema())

    procedures, outcomes, plans = _procedure_tables(raw_procs, profile, config, ids, patients,
                                                    genders, surgeon_names, seed)
    return Fleet(robots, procedures, outcomes, maintenance, plans, snapshot_us)


def _spread(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """n cases over `days` days, at most MAX_PER_DAY a day, uniformly at random."""
    counts = rng.multinomial(n, np.full(days, 1.0 / days)) if days else np.zeros(0, np.int64)
    excess = int(np.maximum(counts - MAX_PER_DAY, 0).sum())
    counts = np.minimum(counts, MAX_PER_DAY)
    while excess:
        free = np.flatnonzero(counts < MAX_PER_DAY)
        take = rng.choice(free, min(excess, len(free)), replace=False)
        counts[take] += 1
        excess -= len(take)
    return counts


def _draw_case(rng: np.random.Generator, robot: int, model: str, start: float,
               categories: tuple[str, ...], cat_w: list[float], surgeons: np.ndarray,
               female: np.ndarray, male: np.ndarray, n_patients: int) -> _Case:
    def eligible(category: str) -> list[str]:
        """The model's types in the category that some patient of the node can undergo."""
        return [x for x in PROCEDURE_TYPES[category] if x in TYPE_LIMITS.get(model, (x,))
                and not (x in FEMALE_ONLY and len(female) == 0)
                and not (x in MALE_ONLY and len(male) == 0)]

    usable = [(c, w) for c, w in zip(categories, cat_w, strict=True) if eligible(c)]
    category = _pick(rng, [c for c, _ in usable], [w for _, w in usable])
    ptype = _pick(rng, eligible(category))
    mean_c = CATEGORY_TRAITS[category][0]
    complexity = float(np.clip(np.round(rng.normal(mean_c, 0.8), 1), 1.0, 5.0))
    pool = female if ptype in FEMALE_ONLY else male if ptype in MALE_ONLY else None
    patient = int(rng.choice(pool)) if pool is not None else int(rng.integers(n_patients))
    surgeon = int(rng.choice(surgeons))
    booked = start - round(float(rng.uniform(2, 60)) * DAY / 60) * 60.0
    return _Case(robot=robot, type=ptype, category=category, start=start, surgeon=surgeon,
                 patient=patient, complexity=complexity, booked=booked, model=model)


def _perform(rng: np.random.Generator, proc: _Case, rates: Rates, uses: int,
             complication_p: np.ndarray) -> bool:
    """Run the case: its duration, equipment fault, abort and complications. True if the
    robot failed (emergency maintenance follows)."""
    complexity = proc.complexity
    base_min = CATEGORY_TRAITS[proc.category][1]
    duration = float(np.clip(base_min * (0.6 + 0.2 * complexity) * rng.lognormal(0.0, 0.2),
                             20.0, MAX_DURATION_MIN))
    u = rng.random(5)
    fault_p = rates.fault_base + rates.fault_per_use * uses
    fault = FAULTS[int(u[1] * len(FAULTS))] if u[0] < fault_p else None
    aborted = (fault is not None and u[2] < rates.abort_given_fault) or (
        u[3] < rates.abort_base * complexity / 3.0)
    fault_at = float(rng.uniform(0.2, 0.9)) * duration * 60 if fault else None
    if aborted:
        stop = fault_at if fault_at is not None else float(rng.uniform(0.1, 0.6)) * duration * 60
        duration = max(5.0, (stop + float(rng.uniform(5, 20)) * 60) / 60)
    # Complications: more likely with complexity, after a fault and when aborted.
    logit = rates.complication_intercept + rates.complication_slope * (complexity - 3.0)
    logit += 0.8 * (fault is not None) + 1.0 * aborted
    comps: list[str] = []
    if u[4] < 1.0 / (1.0 + np.exp(-logit)):
        n_c = 1 + int(rng.binomial(2, 0.15))
        picked = rng.choice(len(COMPLICATIONS), n_c, replace=False, p=complication_p)
        comps = sorted(COMPLICATIONS[int(i)] for i in picked)
    proc.comp_at = sorted(float(x) for x in rng.uniform(0.1, 0.95, len(comps)) * duration * 60)
    proc.status = "aborted" if aborted else "completed"
    proc.end = proc.start + round(duration * 60)
    proc.fault, proc.fault_at, proc.comps, proc.uses = fault, fault_at, comps, uses
    return fault is not None


def _maintenance_table(logs: list[_Log], profile: FleetProfile, config: FleetConfig,
                       ids: _Ids, rng: np.random.Generator, technicians: list[str]) -> pa.Table:
    offset = profile.utc_offset_hours
    start_ord = (config.start - EPOCH).days
    rows: dict[str, list[object]] = {c: [] for c in ROBOT_MAINTENANCE_LOGS.column_names}
    for i, m in enumerate(logs, start=1):
        kind, start, fault, hours = m.kind, m.start, m.fault, m.hours
        day = int(start // DAY)
        tech = int(rng.integers(len(technicians)))
        issues: str | None
        if fault is not None:
            issues = f"{fault} during procedure"
            parts = list(FAULT_PARTS[fault])
            actions = f"replaced {', '.join(parts)}; system test passed"
        elif kind == "upgrade":
            issues, parts, actions = None, [], "firmware upgrade; system test passed"
        elif kind == "calibration":
            issues, parts, actions = None, [], "arm and camera calibration"
        else:
            worn = rng.random() < 0.3
            issues = "worn instrument drive seals" if worn else None
            parts = ["instrument drive seals"] if worn else []
            actions = "routine inspection" + ("; replaced seals" if worn else "")
        cost = (BASE_COST[kind] * profile.rates.maintenance_cost_scale
                * float(rng.lognormal(0, 0.25)) + 800.0 * len(parts))
        rows["maintenance_id"].append(ids("M", i, 5))
        rows["robot_id"].append(ids("R", m.robot + 1, 4))
        rows["maintenance_date"].append(start_ord + day)
        rows["started_at"].append(_utc_us(start, config.start, offset))
        rows["maintenance_type"].append(kind)
        rows["technician_id"].append(ids("T", tech + 1, 2))
        rows["technician_name"].append(technicians[tech])
        rows["issues_found"].append(issues)
        rows["actions_taken"].append(actions)
        rows["parts_replaced"].append(parts)
        rows["downtime_hours"].append(hours)
        rows["next_maintenance_date"].append(start_ord + day + NEXT_DAYS[kind])
        rows["cost"].append(round(cost, 2))
        rows["trigger_procedure_id"].append(m.trigger.id if m.trigger is not None else None)
        rows["created_at"].append(_utc_us(start + hours * 3600, config.start, offset))
    return _table(ROBOT_MAINTENANCE_LOGS.arrow_schema(), rows)


def _table(schema: pa.Schema, rows: dict[str, list[object]]) -> pa.Table:
    arrays = []
    for f in schema:
        values = rows[f.name]
        if pa.types.is_date32(f.type):
            arrays.append(pa.array(values, pa.int32()).cast(pa.date32()))
        elif pa.types.is_timestamp(f.type):
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _procedure_tables(raw: list[_Case], profile: FleetProfile, config: FleetConfig,
                      ids: _Ids, patients: Patients, genders: np.ndarray,
                      surgeon_names: list[str], seed: int
                      ) -> tuple[pa.Table, pa.Table, list[ProcedurePlan]]:
    offset = profile.utc_offset_hours
    orng = stream_rng(seed, profile.node, OUTCOMES_STREAM)
    procs: dict[str, list[object]] = {c: [] for c in SURGICAL_PROCEDURES.column_names}
    outs: dict[str, list[object]] = {c: [] for c in PROCEDURE_OUTCOMES.column_names}
    plans: list[ProcedurePlan] = []
    n_out = 0
    for p in raw:
        start, patient, status, category = p.start, p.patient, p.status, p.category
        complexity, end = p.complexity, p.end
        start_us = _utc_us(start, config.start, offset)
        procs["procedure_id"].append(p.id)
        procs["robot_id"].append(ids("R", p.robot + 1, 4))
        procs["procedure_type"].append(p.type)
        procs["procedure_category"].append(category)
        procs["start_time"].append(start_us)
        procs["end_time"].append(None if end is None else _utc_us(end, config.start, offset))
        procs["duration_minutes"].append(None if end is None else round((end - start) / 60, 3))
        procs["surgeon_id"].append(ids("S", p.surgeon + 1, 3))
        procs["surgeon_name"].append(surgeon_names[p.surgeon])
        procs["patient_id"].append(patients.ids[patient])
        procs["patient_age"].append(int(patients.ages[patient]))
        procs["patient_gender"].append(str(genders[patient]))
        procs["complexity_score"].append(complexity)
        procs["status"].append(status)
        procs["created_at"].append(_utc_us(p.booked, config.start, offset))
        if end is None:
            continue
        comps = p.comps
        plans.append(ProcedurePlan(
            ordinal=p.ordinal, procedure_id=p.id, start_us=start_us, duration_s=end - start,
            category=category, model=p.model, complexity=complexity,
            uses_since_maintenance=p.uses, fault=p.fault, fault_at_s=p.fault_at,
            complication_at_s=p.comp_at))
        # The outcome follows complexity, the complications (seen as force spikes in the
        # telemetry) and whether the robot failed or the case was aborted.
        n_out += 1
        aborted = status == "aborted"
        n_c = len(comps)
        severe = any(c in SEVERE for c in comps)
        if aborted or (severe and orng.random() < 0.5):
            success = "failed"
        elif n_c:
            success = "complicated"
        else:
            success = "successful"
        failed = success == "failed"
        _, _, stay0, blood0 = CATEGORY_TRAITS[category]
        bleeding = sum(c in ("minor bleeding", "organ injury") for c in comps)
        blood = blood0 * (0.5 + 0.25 * complexity) * orng.lognormal(0, 0.45) + 250 * bleeding
        stay = stay0 + round(0.5 * (complexity - 1)) + 2 * n_c + int(orng.poisson(0.5)) + 2 * failed
        readmit = orng.random() < 0.03 + 0.08 * n_c + 0.10 * failed
        satisfaction = int(np.clip(np.round(orng.normal(9 - 1.2 * n_c - 2 * failed, 1)), 1, 10))
        recovery = int(np.clip(np.round(orng.normal(
            88 - 6 * (complexity - 1) - 12 * n_c - 20 * failed, 6)), 1, 100))
        note = {"successful": "Uneventful procedure.",
                "complicated": f"Complicated by {', '.join(comps)}.",
                "failed": "Procedure aborted." if aborted else f"Failed: {', '.join(comps)}."}
        created = _utc_us(end + 3600, config.start, offset)
        outs["outcome_id"].append(ids("O", p.ordinal, 6))
        outs["procedure_id"].append(p.id)
        outs["success_status"].append(success)
        outs["blood_loss_ml"].append(round(float(np.clip(blood, 0, 5000)), 1))
        outs["complications"].append(comps)
        outs["hospital_stay_days"].append(int(np.clip(stay, 0, 60)))
        outs["readmission_30day"].append(bool(readmit))
        outs["patient_satisfaction_score"].append(satisfaction)
        outs["surgeon_notes"].append(note[success])
        outs["recovery_score"].append(recovery)
        outs["follow_up_required"].append(bool(n_c or complexity >= 4.0 or failed))
        outs["created_at"].append(created)
        outs["updated_at"].append(created)
    return (_table(SURGICAL_PROCEDURES.arrow_schema(), procs),
            _table(PROCEDURE_OUTCOMES.arrow_schema(), outs), plans)

