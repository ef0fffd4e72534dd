"""A node's synthetic-population profile, read from a TOML file and checked before use.

Profiles are data: `profiles/<node>.toml` ships the US and EU nodes of the seed; a new
node (say `sg.toml`) is a new file, found through a profile folder or given by path.
Every problem is a UserError naming the file, the key and the fix.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.nodes import NODE_NAME, NODE_NAME_RULE
from workloads.contracts.schema import Column
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

BUILTIN_PROFILE_DIR = Path(__file__).parent / "profiles"
# What the generator writes is what the table says a patient is: its genes are the
# variant_<gene> columns, an allele count takes the columns' public levels, and a profile's
# ranges must sit inside the columns' public bounds (the federation's scaling and DP
# sensitivity assume no value outside them).
_GENE_COLUMNS = tuple(c for c in PATIENT_GENOMIC_DATA.columns if c.name.startswith("variant_"))
GENES = tuple(c.name.removeprefix("variant_") for c in _GENE_COLUMNS)
ALLELE_COUNTS = len(_GENE_COLUMNS[0].levels)  # 0, 1 or 2 alleles
_RANGE_COLUMNS = {"age": PATIENT_GENOMIC_DATA.column("age"),
                  "bmi": PATIENT_GENOMIC_DATA.column("bmi")}
PROBABILITY_TOLERANCE = 1e-9
ID_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")
_INTERCEPT_BRACKET = (-60.0, 60.0)  # logit range covering every prevalence in (1e-26, 1-1e-26)

_TOP_KEYS = {"description", "id_prefix", "age", "bmi", "alleles", "diagnosis"}
_RANGE_KEYS = {"mean", "sd", "min", "max"}
_DIAGNOSIS_KEYS = {"intercept", "target_prevalence", "age_center", "age", *GENES}


@dataclass(frozen=True)
class ClippedNormal:
    """Normal(mean, sd) clipped to [low, high] (values outside pile up on the bounds)."""

    mean: float
    sd: float
    low: float
    high: float


@dataclass(frozen=True)
class Profile:
    node: str
    source: Path
    description: str
    id_prefix: str
    age: ClippedNormal  # floored to whole years before clipping; integer bounds
    bmi: ClippedNormal  # rounded to 0.1 after clipping
    alleles: Mapping[str, tuple[float, ...]]  # gene -> P(0), P(1), P(2)
    age_center: float
    coefficients: Mapping[str, float]  # "age" and every gene: log-odds per unit
    intercept: float  # given, or solved from target_prevalence
    target_prevalence: float | None

    def expected_prevalence(self) -> float:
        """The cancer rate this profile generates in expectation (exact, no sampling)."""
        return expected_prevalence(self, self.intercept)

    def age_pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """Every age the generator can produce and its exact probability."""
        from scipy.special import ndtr  # here: scipy costs a whole process ~0.5 s to import

        low, high = int(self.age.low), int(self.age.high)
        ages = np.arange(low, high + 1, dtype=np.float64)
        # age = clip(floor(x), low, high): P(age = k) = P(k <= x < k + 1) inside the bounds.
        cdf = ndtr((ages[1:] - self.age.mean) / self.age.sd)  # P(x < k) for k = low+1..high
        upper = np.append(cdf, 1.0)
        lower = np.insert(cdf, 0, 0.0)
        return ages, upper - lower


def expected_prevalence(profile: Profile, intercept: float) -> float:
    """E[P(cancer)] over the exact age distribution and the independent allele counts."""
    from scipy.special import expit

    ages, age_p = profile.age_pmf()
    logit = intercept + profile.coefficients["age"] * (ages - profile.age_center)
    weight = age_p
    for gene in GENES:
        counts = np.arange(ALLELE_COUNTS, dtype=np.float64)
        # Outer sum/product: one axis per gene, so every combination is enumerated.
        logit = np.add.outer(logit, profile.coefficients[gene] * counts)
        weight = np.multiply.outer(weight, np.asarray(profile.alleles[gene]))
    return float(np.sum(weight * expit(logit)))


def solve_intercept(profile: Profile, target: float) -> float:
    """The intercept whose expected prevalence is `target` (monotone, so one root)."""
    from scipy.optimize import brentq

    low, high = _INTERCEPT_BRACKET
    root: float = brentq(
        lambda b: expected_prevalence(profile, b) - target, low, high, xtol=1e-12, rtol=1e-12
    )
    return root


# -- finding and loading ----------------------------------------------------------------


def profile_dirs(extra: Path | None = None) -> list[Path]:
    """Where `--node NAME` looks for NAME.toml: a given folder first, then the built-ins."""
    return [*([extra] if extra else []), BUILTIN_PROFILE_DIR]


def available_nodes(dirs: Iterable[Path]) -> list[str]:
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})


def find_profile(node: str, profile_dir: Path | None = None) -> Profile:
    if profile_dir is not None and not profile_dir.is_dir():
        raise UserError(
            f"profile folder {profile_dir} does not exist; fix: pass a folder of <node>.toml files"
        )
    dirs = profile_dirs(profile_dir)
    for folder in dirs:
        path = folder / f"{node}.toml"
        if path.is_file():
            return load_profile(path)
    known = ", ".join(available_nodes(dirs)) or "none"
    raise UserError(
        f"unknown node {node!r}: no {node}.toml in {', '.join(map(str, dirs))} (known: {known}); "
        f"fix: choose a known node or add a profile file (--profile-dir DIR or --profile PATH)"
    )


def load_profile(path: Path) -> Profile:
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"profile {path} does not exist; fix: check the path") from None
    except OSError as exc:
        raise UserError(f"profile {path}: cannot read it ({exc}); fix: check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"profile {path}: not valid TOML ({exc}); fix: correct the syntax"
        ) from None
    return _parse(path, raw)


def _parse(path: Path, raw: dict[str, Any]) -> Profile:
    check = _Checker(path)
    node = path.stem
    if not NODE_NAME.match(node):
        raise UserError(
            f"profile {path}: the file name {node!r} is the node name and is not valid; fix: name "
            f"it <node>.toml, the node name being {NODE_NAME_RULE} (sg.toml)"
        )
    check.known_keys("", raw, _TOP_KEYS)
    description = raw.get("description", "")
    if not isinstance(description, str):
        check.fail("description", "must be a string", 'write description = "..."')
    prefix = check.required(raw, "", "id_prefix")
    if not isinstance(prefix, str) or not ID_PREFIX.match(prefix):
        check.fail("id_prefix", f"{prefix!r} is not 1-8 capital letters/digits", 'e.g. "SG"')

    age = check.clipped_normal(raw, "age", integer_bounds=True)
    bmi = check.clipped_normal(raw, "bmi", integer_bounds=False)

    alleles_raw = check.table(raw, "alleles")
    check.known_keys("alleles", alleles_raw, set(GENES))
    alleles = {gene: check.probabilities(alleles_raw, gene) for gene in GENES}

    diag = check.table(raw, "diagnosis")
    check.known_keys("diagnosis", diag, _DIAGNOSIS_KEYS)
    has_intercept, has_target = "intercept" in diag, "target_prevalence" in diag
    if has_intercept == has_target:
        check.fail(
            "diagnosis",
            "needs exactly one of intercept and target_prevalence",
            "keep one (intercept = -3.0 is the seed's formula)",
        )
    coefficients = {name: check.number(diag, "diagnosis", name, 0.0) for name in ("age", *GENES)}
    age_center = check.number(diag, "diagnosis", "age_center", 50.0)
    target: float | None = None
    intercept = 0.0
    if has_intercept:
        intercept = check.number(diag, "diagnosis", "intercept", None)
    else:
        target = check.number(diag, "diagnosis", "target_prevalence", None)
        if not 1e-6 <= target <= 1 - 1e-6:
            check.fail("diagnosis.target_prevalence", f"{target} is not in (0, 1)", "e.g. 0.15")

    profile = Profile(
        node=node,
        source=path,
        description=description,
        id_prefix=prefix,
        age=age,
        bmi=bmi,
        alleles=alleles,
        age_center=age_center,
        coefficients=coefficients,
        intercept=intercept,
        target_prevalence=target,
    )
    if target is not None:
        profile = replace(profile, intercept=solve_intercept(profile, target))
    return profile


class _Checker:
    """Reads typed values out of the parsed TOML, failing with the file, key and fix."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, fix: str) -> Any:
        raise UserError(f"profile {self.path}: {key}: {problem}; fix: {fix}")

    def known_keys(self, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                name = f"{where}.{key}" if where else key
                self.fail(name, "unknown key", f"use only {', '.join(sorted(allowed))}")

    def required(self, table: Mapping[str, Any], where: str, key: str) -> Any:
        if key not in table:
            self.fail(f"{where}.{key}" if where else key, "missing", f"add {key} = ...")
        return table[key]

    def table(self, raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = self.required(raw, "", key)
        if not isinstance(value, dict):
            self.fail(key, "must be a table", f"write it as a [{key}] section")
        table: Mapping[str, Any] = value
        return table

    def number(
        self, table: Mapping[str, Any], where: str, key: str, default: float | None
    ) -> float:
        if key not in table and default is not None:
            return default
        value = self.required(table, where, key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            self.fail(f"{where}.{key}", f"{value!r} is not a finite number", "write a number")
        return float(value)

    def clipped_normal(
        self, raw: Mapping[str, Any], key: str, *, integer_bounds: bool
    ) -> ClippedNormal:
        table = self.table(raw, key)
        self.known_keys(key, table, _RANGE_KEYS)
        mean, sd, low, high = (
            self.number(table, key, k, None) for k in ("mean", "sd", "min", "max")
        )
        if sd <= 0:
            self.fail(f"{key}.sd", f"{sd} is not > 0", "use a positive standard deviation")
        if integer_bounds and not (low.is_integer() and high.is_integer()):
            self.fail(f"{key}.min/max", "must be whole numbers", "e.g. min = 25, max = 80")
        if not low < high:
            self.fail(f"{key}.min/max", f"min {low} is not below max {high}", "order the bounds")
        self.within_public_bounds(key, _RANGE_COLUMNS[key], low, high)
        return ClippedNormal(mean, sd, low, high)

    def within_public_bounds(self, key: str, column: Column, low: float, high: float) -> None:
        if column.bounds is None:  # age and bmi are releasable, so the contract has them
            raise ValueError(f"{PATIENT_GENOMIC_DATA.name}.{column.name} has no public bounds")
        public_low, public_high = column.bounds
        if low < public_low or high > public_high:
            self.fail(
                f"{key}.min/max",
                f"[{low:g}, {high:g}] leaves the public bounds [{public_low:g}, "
                f"{public_high:g}] of {PATIENT_GENOMIC_DATA.name}.{column.name}",
                "keep min and max inside them (the federation's DP sensitivity and scaling "
                "assume them; they are defined in workloads/contracts/tables/)",
            )

    def probabilities(self, table: Mapping[str, Any], gene: str) -> tuple[float, ...]:
        key = f"alleles.{gene}"
        value = self.required(table, "alleles", gene)
        fix = "give P(0), P(1), P(2) variant alleles, each in [0, 1], summing to 1"
        if not isinstance(value, list) or len(value) != ALLELE_COUNTS:
            self.fail(key, f"{value!r} is not a list of {ALLELE_COUNTS} probabilities", fix)
        probs = tuple(self.number({str(i): v for i, v in enumerate(value)}, key, str(i), None)
                      for i in range(ALLELE_COUNTS))
        if any(not 0.0 <= p <= 1.0 for p in probs):
            self.fail(key, f"{list(probs)} has a value outside [0, 1]", fix)
        total = math.fsum(probs)
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            self.fail(key, f"probabilities sum to {total!r}, not 1", fix)
        return probs
