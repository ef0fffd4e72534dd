"""The federated generator API the seed documents (genesis.federated), done for real.

Names and meanings follow the seed's documentation so its readers feel at home; what
each one really does here:

- `SiteConfig(name, weight, privacy_budget, min_samples)`: `privacy_budget` is the site's
  lifetime epsilon cap (at the aggregator's delta), enforced by its own ledger; `weight`
  is its weight in the "weighted" strategy; `min_samples`: the site refuses to take part
  with fewer rows.
- `DataSite(name, data, config)`: a site's rows stay in an in-memory DuckDB inside the
  site object; `initialize(method)` checks them against the table contract and opens the
  site's ledger; `train_local()` fits the site's OWN copula, released under DP and charged
  to its ledger (the only per-site model there is; federated training does not use it).
- `SecureAggregator(noise_scale, min_sites, clip_threshold, epsilon, delta)`: the privacy
  settings of each `train` call: (epsilon, delta) is the budget of one call, split over its
  rounds; `noise_scale`, when given, fixes the noise multiplier instead of calibrating it
  (refused if it would spend more than epsilon); `clip_threshold` bounds the normal scores
  (the dependence release's sensitivity is clip^2 per pair); `min_sites` is the fewest
  sites a secure sum may have.
- `ModelAggregator(secure)`: the hub: runs the rounds, reads only masked sums, repairs the
  correlation, builds the copula.
- `FederatedGenerator(aggregator, method)`: `add_site`, `train(rounds)` (every call is a
  new DP release, charged to every site; results accumulate), `generate(n, strategy)`,
  `set_site_weights`, `save_metadata`.

Strategies (one global DP copula; what changes is whose population it describes):
- "proportional": the pooled population, each site counting by its size (the plain secure
  sums of the sites' DP histograms and product sums).
- "uniform": every site's population weighs the same, whatever its size: a mixture of the
  sites' normalised DP releases with equal weights (one more secure sum).
- "weighted": the same mixture with the given weights (or `set_site_weights`, or the
  sites' `SiteConfig.weight`).
The mixtures are post-processing of what the sites already released under DP: no new
privacy cost. The copula's correlation is mixed the same way (the mixture of the sites'
second moments of normal scores), an approximation when sites differ a lot.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation.defaults import SYNTH_CLIP, SYNTH_DELTA
from workloads.synthetic.columns import SynthColumn, synth_columns
from workloads.synthetic.copula import CopulaModel
from workloads.synthetic.federated import (
    Request,
    Training,
    build_model,
    finish,
    mixture,
    new_training,
    run_round,
)

METHODS = ("gaussian_copula",)
Strategy = Literal["proportional", "uniform", "weighted"]
STRATEGIES = ("proportional", "uniform", "weighted")
DEFAULT_DELTA = SYNTH_DELTA
DEFAULT_CLIP = SYNTH_CLIP
ROUND_TIMEOUT = 10.0  # seconds a step waits for the sites' answers (in-process)
_REFUSED = re.compile(r"node (\S+) refused: (.*)", re.S)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"method {method!r} is not available; fix: use one of {METHODS}")
    return method


@dataclass
class SiteConfig:
    name: str
    weight: float = 1.0
    privacy_budget: float = 1.0  # the site's lifetime epsilon cap (its policy)
    min_samples: int = 100


@dataclass(frozen=True)
class Spent:
    """A site's lifetime spend on this table, read from its guard's odometer."""

    epsilon: float
    releases: int


class DataSite:
    """One site: a local node holding its rows, with its policy, guard and worker."""

    def __init__(self, name: str, data: pd.DataFrame, config: SiteConfig | None = None,
                 *, table: Table = PATIENT_GENOMIC_DATA, delta: float = DEFAULT_DELTA) -> None:
        self.name = name
        self.config = config or SiteConfig(name)
        if self.config.name != name:
            raise UserError(f"site {name!r} has a config named {self.config.name!r}; fix: match")
        if not self.config.weight >= 0 or not self.config.privacy_budget > 0:
            raise UserError(f"site {name}: weight >= 0 and privacy_budget > 0 are required")
        self.table = table
        self.delta = delta
        self._data = data
        self.method: str | None = None
        self.root: Path | None = None
        self._own_root: tempfile.TemporaryDirectory[str] | None = None

    def initialize(self, method: str = "gaussian_copula") -> DataSite:
        self.method = _check_method(method)
        return self

    def attach(self, root: Path) -> None:
        """Become a local node under `root`: rows into its encrypted warehouse, its policy."""
        from workloads.federation.guard import NodePolicy, write_policy
        from workloads.local_node import LocalNode

        if self.root is not None:
            if self.root != root:
                raise UserError(f"site {self.name} already belongs to another federation")
            return
        node = LocalNode(self.name, root)
        rows = _rows(self.table, self._data, self.name)
        with node.open_warehouse() as warehouse:
            warehouse.ensure_tables([self.table])
            warehouse.merge(self.table, rows)
        write_policy(node, NodePolicy(
            lifetime_epsilon=self.config.privacy_budget, lifetime_delta=self.delta,
            min_noise_multiplier=0.0, min_rows=max(self.config.min_samples, 1),
            min_dp_participants=1,
        ))
        self.root = root

    def _ensure_root(self) -> Path:
        if self.root is None:
            self._own_root = tempfile.TemporaryDirectory(prefix=f"site-{self.name}-")
            self.attach(Path(self._own_root.name))
        assert self.root is not None
        return self.root

    def spent(self) -> Spent:
        from workloads.federation.guard import ODOMETER, Guard, load_policy
        from workloads.local_node import LocalNode

        if self.root is None:
            return Spent(0.0, 0)
        node = LocalNode(self.name, self.root)
        with node.open_warehouse(create=False) as warehouse:
            guard = Guard(node, load_policy(node), warehouse)
            epsilon = guard.lifetime_epsilon(self.table.name)
            n = warehouse.query(f"SELECT count(*) FROM {warehouse.table_ref(ODOMETER)} "
                                f"WHERE dataset = ?", [self.table.name]).column(0)[0].as_py()
        return Spent(epsilon, int(n))

    def train_local(self, epsilon: float | None = None, *, seed: int | None = None,
                    clip: float = DEFAULT_CLIP) -> CopulaModel:
        """The site's own Gaussian copula: a one-node federation, DP, charged to it."""
        root = self._ensure_root()
        request = Request(self.table, synth_columns(self.table),
                          epsilon if epsilon is not None else self.config.privacy_budget,
                          self.delta, clip=clip,
                          jitter_seed=int(np.random.default_rng(seed).integers(1 << 62)))
        training = new_training(request)
        run_federation(root, [self.name], min_sites=1,
                       work=lambda c: run_round(c, request, training))
        model = finish(training).model
        assert model is not None
        return model


def _rows(table: Table, data: pd.DataFrame, site: str) -> pa.Table:
    """The site's frame in the declared schema (fresh identifiers where it has none)."""
    frame = data.reset_index(drop=True)
    columns: dict[str, Any] = {}
    for column in table.columns:
        if column.name in frame.columns:
            columns[column.name] = frame[column.name]
        elif column.name in table.primary_key and column.type == "STRING":
            columns[column.name] = [f"{site.upper()}-{i:08d}" for i in range(len(frame))]
        elif column.mode == "NULLABLE":
            columns[column.name] = [None] * len(frame)
        else:
            raise UserError(f"site {site}'s data lacks column {column.name} of {table.name}; "
                            f"fix: add it")
    return pa.Table.from_pandas(pd.DataFrame(columns), schema=table.arrow_schema(),
                                preserve_index=False)


def run_federation(root: Path, sites: Sequence[str], *, min_sites: int,
                   work: Callable[[Any], Any],
                   wrap: Callable[[str, Any], Any] | None = None,
                   round_timeout: float = ROUND_TIMEOUT) -> Any:
    """One in-process federation run over `sites` (the same workers, guard and coordinator
    as `federate synth`); `work(coordinator)` does the hub's side."""
    from workloads.federation.coordinator import FederationStoppedError, RunConfig
    from workloads.federation.local import local_federation

    config = RunConfig(tuple(sites), min_nodes=min_sites, max_rounds=4,
                       round_timeout=round_timeout)
    with local_federation(root, list(sites), wrap=wrap) as hub:
        coordinator = hub.coordinator(config)
        try:
            result = work(coordinator)
        except FederationStoppedError:
            raise
        except UserError as exc:
            coordinator.stop(str(exc))
        coordinator.finish()
    return result


def refusal(exc: UserError) -> tuple[str, str] | None:
    """(node, reason) when a run stopped because one node refused."""
    found = _REFUSED.search(str(exc))
    return (found.group(1), found.group(2)) if found else None


@dataclass
class SecureAggregator:
    noise_scale: float | None = None
    min_sites: int = 2
    clip_threshold: float = DEFAULT_CLIP
    epsilon: float = 1.0
    delta: float = DEFAULT_DELTA

    def request(self, table: Table, columns: tuple[SynthColumn, ...], rounds: int,
                jitter_seed: int) -> Request:
        return Request(table, columns, self.epsilon, self.delta, clip=self.clip_threshold,
                       rounds=rounds, jitter_seed=jitter_seed,
                       noise_multiplier=self.noise_scale)


# (round, invited sites) -> endpoint wrapper for the round's run (e.g. stragglers), or None
Faults = Callable[[int, list[str]], Callable[[str, Any], Any] | None]


@dataclass
class ModelAggregator:
    """The hub: runs the rounds over the sites' nodes, reads only secure sums."""

    secure: SecureAggregator = field(default_factory=SecureAggregator)
    trainings: list[Training] = field(default_factory=list)

    def train(self, root: Path, table: Table, columns: tuple[SynthColumn, ...],
              sites: Sequence[str], rounds: int, *, rng: np.random.Generator,
              available: Callable[[int], set[str]] | None = None,
              faults: Faults | None = None, round_timeout: float = ROUND_TIMEOUT
              ) -> tuple[Training, dict[str, str], dict[int, dict[str, Any]]]:
        """Each round is one federation run over the sites that are up; a site that refuses
        (its cap, its min_samples) is left out and the round is run again without it."""
        request = self.secure.request(table, columns, rounds, int(rng.integers(1 << 62)))
        training = new_training(request)
        refused: dict[str, str] = {}
        log: dict[int, dict[str, Any]] = {}
        for r in range(rounds):
            up = [s for s in sites if s not in refused
                  and (available is None or s in available(r))]
            log[r] = {"invited": list(up), "void": None}
            while True:
                if len(up) < self.secure.min_sites:
                    log[r]["void"] = (f"{len(up)} site(s) up, at least "
                                      f"{self.secure.min_sites} must take part")
                    break
                wrap = faults(r, up) if faults else None
                try:
                    run_federation(root, up, min_sites=self.secure.min_sites,
                                   work=lambda c: run_round(c, request, training), wrap=wrap,
                                   round_timeout=round_timeout)
                    break
                except UserError as exc:
                    who = refusal(exc)
                    if who is None or who[0] not in up:
                        log[r]["void"] = str(exc)
                        break
                    refused[who[0]] = who[1]
                    up = [s for s in up if s != who[0]]
                    log[r]["invited"] = list(up)
        if training.product_total is None:
            why = "; ".join(f"round {r}: {e['void']}" for r, e in log.items() if e["void"])
            raise UserError(f"no round completed ({why}); fix: retry when enough sites are up")
        finish(training)
        self.trainings.append(training)
        return training, refused, log

    def model(self, columns: tuple[SynthColumn, ...]) -> CopulaModel:
        if not self.trainings:
            raise UserError("the generator has not been trained; fix: call train() first")
        histograms = [sum((t.histogram_total[j] for t in self.trainings), np.zeros(c.bins))
                      for j, c in enumerate(columns)]
        released = [t.product_total for t in self.trainings if t.product_total is not None]
        return build_model(columns, histograms, np.sum(released, axis=0),
                           self.secure.clip_threshold)


@dataclass
class TrainResult:
    n_sites: int  # sites that took part in at least one secure sum
    total_samples: int  # the pooled row count as released (a DP estimate, not the truth)
    rounds: int
    sites: list[str]
    refused: dict[str, str]
    epsilon_spent: dict[str, float]


class FederatedGenerator:
    def __init__(self, aggregator: ModelAggregator | SecureAggregator | None = None,
                 method: str = "gaussian_copula", *, table: Table = PATIENT_GENOMIC_DATA,
                 seed: int | None = None) -> None:
        if isinstance(aggregator, SecureAggregator):
            aggregator = ModelAggregator(aggregator)
        self.aggregator = aggregator or ModelAggregator()
        self.method = _check_method(method)
        self.table = table
        self.columns = synth_columns(table)
        self.sites: dict[str, DataSite] = {}
        self.site_weights: dict[str, float] = {}
        self._rng = np.random.default_rng(seed)
        self._model: CopulaModel | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="federated-sites-")
        self.root = Path(self._folder.name)
        self._lock = threading.Lock()

    def add_site(self, site: DataSite) -> None:
        if site.name in self.sites:
            raise UserError(f"site {site.name!r} was already added; fix: give sites unique names")
        if site.table.name != self.table.name:
            raise UserError(f"site {site.name} holds {site.table.name}, not {self.table.name}")
        site.initialize(self.method)
        site.attach(self.root)
        self.sites[site.name] = site

    def train(self, rounds: int = 1, *, available: Callable[[int], set[str]] | None = None,
              faults: Faults | None = None, round_timeout: float = ROUND_TIMEOUT
              ) -> TrainResult:
        if not self.sites:
            raise UserError("no sites; fix: add_site() first")
        training, refused, self.last_log = self.aggregator.train(
            self.root, self.table, self.columns, list(self.sites), rounds, rng=self._rng,
            available=available, faults=faults, round_timeout=round_timeout)
        self._model = self.aggregator.model(self.columns)
        return TrainResult(
            n_sites=len(training.participants()),
            total_samples=max(round(self._model.rows_estimate), 0),
            rounds=rounds,
            sites=training.participants(),
            refused=refused,
            epsilon_spent={name: s.spent().epsilon for name, s in self.sites.items()},
        )

    def set_site_weights(self, weights: dict[str, float]) -> None:
        unknown = sorted(set(weights) - set(self.sites))
        if unknown:
            raise UserError(f"unknown sites {unknown}; fix: use {sorted(self.sites)}")
        if any(not (w >= 0 and math.isfinite(w)) for w in weights.values()):
            raise UserError("site weights must be finite and >= 0")
        self.site_weights = dict(weights)

    def model(self, strategy: Strategy = "proportional",
              weights: dict[str, float] | None = None) -> CopulaModel:
        if self._model is None:
            raise UserError("the generator has not been trained; fix: call train() first")
        if strategy not in STRATEGIES:
            raise UserError(f"strategy {strategy!r} is unknown; fix: one of {STRATEGIES}")
        if strategy == "proportional":
            return self._model
        if strategy == "uniform":
            chosen = {name: 1.0 for name in self.sites}
        else:
            chosen = weights or self.site_weights or {
                name: s.config.weight for name, s in self.sites.items()
            }
            unknown = sorted(set(chosen) - set(self.sites))
            if unknown:
                raise UserError(f"weights name unknown sites {unknown}; fix: {sorted(self.sites)}")
        runs = sorted({r["run_id"] for t in self.aggregator.trainings for r in t.rounds})
        taking_part = sorted({n for t in self.aggregator.trainings for n in t.participants()
                              if chosen.get(n, 0) > 0})
        if len(taking_part) < self.aggregator.secure.min_sites:
            raise UserError(f"{len(taking_part)} trained site(s) with a positive weight; "
                            f"fix: at least {self.aggregator.secure.min_sites}")
        result: CopulaModel = run_federation(
            self.root, taking_part, min_sites=self.aggregator.secure.min_sites,
            work=lambda c: mixture(c, self.table, self.columns, runs,
                                   {n: chosen[n] for n in taking_part},
                                   self.aggregator.secure.clip_threshold))
        return result

    def generate(self, n_samples: int, strategy: Strategy = "proportional",
                 weights: dict[str, float] | None = None) -> pd.DataFrame:
        if weights is not None and strategy != "weighted":
            raise UserError("weights are only used by strategy='weighted'; fix: set it")
        return self.model(strategy, weights).sample(n_samples, self._rng)

    def metadata(self) -> dict[str, Any]:
        secure = self.aggregator.secure
        trainings = self.aggregator.trainings
        spent = {name: s.spent() for name, s in self.sites.items()}
        return {
            "created": datetime.now(UTC).isoformat(),
            "method": self.method,
            "table": self.table.name,
            "schema": [
                {"name": c.name, "kind": c.kind, "type": c.type, "levels": list(c.levels),
                 "bounds": list(c.bounds) if c.kind != "categorical" else None, "bins": c.bins}
                for c in self.columns
            ],
            "privacy": {
                "neighbours": "add or remove one row at one site",
                "per_train_call": {"epsilon": secure.epsilon, "delta": secure.delta},
                "clip": secure.clip_threshold,
                "noise_scale": secure.noise_scale,
                "min_sites": secure.min_sites,
                "noise_multipliers_per_round": [
                    {"marginals": t.multipliers[0], "products": t.multipliers[1]}
                    for t in trainings
                ],
            },
            "sites": {
                name: {
                    "epsilon_spent": spent[name].epsilon,
                    "delta": s.delta,
                    "releases": spent[name].releases,
                    "privacy_budget": s.config.privacy_budget,
                    "weight": self.site_weights.get(name, s.config.weight),
                    "rounds_taken_part": sum(name in r["products"] for t in trainings
                                             for r in t.rounds),
                }
                for name, s in self.sites.items()
            },
            "train_calls": len(trainings),
            "rows_estimate": self._model.rows_estimate if self._model else None,
        }

    def save_metadata(self, path: str | Path) -> Path:
        return write_json_atomic(Path(path), self.metadata())


def write_json_atomic(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_finite(payload), f, indent=2, sort_keys=True, default=_json_default,
                      allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite(value: Any) -> Any:
    """Strict JSON: infinite epsilons (runs without noise) are written as "inf"."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return str(float(value))
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def create_federated_generator(site_datasets: dict[str, pd.DataFrame],
                               method: str = "gaussian_copula", *,
                               aggregator: ModelAggregator | SecureAggregator | None = None,
                               table: Table = PATIENT_GENOMIC_DATA,
                               privacy_budget: float = 10.0,
                               seed: int | None = None) -> FederatedGenerator:
    """One site per dataset (each with the given lifetime budget), ready to train."""
    generator = FederatedGenerator(aggregator, method, table=table, seed=seed)
    delta = generator.aggregator.secure.delta
    for name, data in site_datasets.items():
        generator.add_site(DataSite(name, data, SiteConfig(name, privacy_budget=privacy_budget),
                                    table=table, delta=delta))
    return generator
