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
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.synthetic.columns import SynthColumn, synth_columns
from workloads.synthetic.copula import CopulaModel
from workloads.synthetic.dp import DEFAULT_CLIP, DEFAULT_DELTA, Spent
from workloads.synthetic.ledger import NodeBudget, WarehouseLedger
from workloads.synthetic.node import MemorySource, SynthesisNode
from workloads.synthetic.protocol import (
    Participation,
    Settings,
    Training,
    build_model,
    everyone,
    mixture,
    train,
)

METHODS = ("gaussian_copula",)
Strategy = Literal["proportional", "uniform", "weighted"]
STRATEGIES = ("proportional", "uniform", "weighted")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"method {method!r} is not available; fix: use one of {METHODS}")
    return method


@dataclass
class SiteConfig:
    name: str
    weight: float = 1.0
    privacy_budget: float = 1.0  # the site's lifetime epsilon cap
    min_samples: int = 100


class DataSite:
    """One site: its rows (kept inside), its ledger and its party in the protocol."""

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
        self.node: SynthesisNode | None = None
        self.method: str | None = None

    def initialize(self, method: str = "gaussian_copula") -> DataSite:
        self.method = _check_method(method)
        if self.node is None:
            source = MemorySource(self.table, self._data)
            budget = NodeBudget(self.config.privacy_budget, self.delta)
            self.node = SynthesisNode(
                self.name, source, self.table, synth_columns(self.table),
                WarehouseLedger(self.name, source, budget), min_rows=self.config.min_samples,
            )
        return self

    @property
    def party(self) -> SynthesisNode:
        if self.node is None:
            self.initialize()
        assert self.node is not None
        return self.node

    @property
    def ledger(self) -> WarehouseLedger:
        odometer = self.party.odometer
        assert isinstance(odometer, WarehouseLedger)
        return odometer

    def spent(self) -> Spent:
        return self.ledger.spent()

    def train_local(self, epsilon: float | None = None, *, seed: int | None = None,
                    clip: float = DEFAULT_CLIP) -> CopulaModel:
        """The site's own Gaussian copula, released under DP (charged to its ledger)."""
        local = SynthesisNode(self.name, self.party.source, self.table, self.party.columns,
                              self.party.odometer, min_rows=self.config.min_samples,
                              rng=np.random.default_rng(seed))
        settings = Settings(epsilon=epsilon if epsilon is not None else self.config.privacy_budget,
                            delta=self.delta, clip=clip, min_sites=1)
        training = train([local], local.columns, settings)
        assert training.model is not None
        return training.model


@dataclass
class SecureAggregator:
    noise_scale: float | None = None
    min_sites: int = 2
    clip_threshold: float = DEFAULT_CLIP
    epsilon: float = 1.0
    delta: float = DEFAULT_DELTA

    def settings(self, rounds: int) -> Settings:
        return Settings(epsilon=self.epsilon, delta=self.delta, clip=self.clip_threshold,
                        noise_scale=self.noise_scale, min_sites=self.min_sites, rounds=rounds)


@dataclass
class ModelAggregator:
    """The hub: secure sums only, then the copula."""

    secure: SecureAggregator = field(default_factory=SecureAggregator)
    trainings: list[Training] = field(default_factory=list)

    def train(self, nodes: list[SynthesisNode], columns: tuple[SynthColumn, ...], rounds: int,
              *, participation: Participation = everyone,
              available: Any = None) -> Training:
        training = train(nodes, columns, self.secure.settings(rounds),
                         participation=participation, available=available)
        self.trainings.append(training)
        return training

    def model(self, columns: tuple[SynthColumn, ...]) -> CopulaModel:
        if not self.trainings:
            raise UserError("the generator has not been trained; fix: call train() first")
        histograms = [sum((t.histogram_total[j] for t in self.trainings), np.zeros(c.bins))
                      for j, c in enumerate(columns)]
        released = [t.product_total for t in self.trainings if t.product_total is not None]
        if not released:
            raise UserError("no round completed (too few sites each time); fix: retry")
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

    def add_site(self, site: DataSite) -> None:
        if site.name in self.sites:
            raise UserError(f"site {site.name!r} was already added; fix: give sites unique names")
        if site.table.name != self.table.name:
            raise UserError(f"site {site.name} holds {site.table.name}, not {self.table.name}")
        site.initialize(self.method)
        self.sites[site.name] = site

    def train(self, rounds: int = 1, *, participation: Participation = everyone,
              available: Any = None) -> TrainResult:
        if not self.sites:
            raise UserError("no sites; fix: add_site() first")
        nodes = [s.party for s in self.sites.values()]
        training = self.aggregator.train(nodes, self.columns, rounds,
                                         participation=participation, available=available)
        self._model = self.aggregator.model(self.columns)
        return TrainResult(
            n_sites=len(training.participants()),
            total_samples=max(round(self._model.rows_estimate), 0),
            rounds=rounds,
            sites=training.participants(),
            refused=dict(training.refused),
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
        return mixture([s.party for s in self.sites.values()], self.columns, chosen,
                       min_sites=self.aggregator.secure.min_sites,
                       context=f"synth|mixture|{strategy}|{self._rng.integers(1 << 62)}",
                       clip=self.aggregator.secure.clip_threshold)

    def generate(self, n_samples: int, strategy: Strategy = "proportional",
                 weights: dict[str, float] | None = None) -> pd.DataFrame:
        if weights is not None and strategy != "weighted":
            raise UserError("weights are only used by strategy='weighted'; fix: set it")
        return self.model(strategy, weights).sample(n_samples, self._rng)

    def metadata(self) -> dict[str, Any]:
        secure = self.aggregator.secure
        plans = [t.plan for t in self.aggregator.trainings]
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
                "rounds_plans": [
                    {"marginal_scale": p.marginal_scale, "product_scale": p.product_scale,
                     "product_sensitivity": p.product_sensitivity,
                     "marginal_share": p.marginal_share} for p in plans
                ],
            },
            "sites": {
                name: {
                    "epsilon_spent": s.spent().epsilon,
                    "delta": s.delta,
                    "rho_spent": s.spent().rho,
                    "events": s.spent().events,
                    "privacy_budget": s.config.privacy_budget,
                    "weight": self.site_weights.get(name, s.config.weight),
                    "rounds_taken_part": sum(
                        name in t.summed(r) for t in self.aggregator.trainings
                        for r in range(t.settings.rounds)
                    ),
                }
                for name, s in self.sites.items()
            },
            "train_calls": len(self.aggregator.trainings),
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
