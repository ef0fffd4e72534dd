"""FederatedTrainingSimulator: many sites in one process, running the same protocol code.

- `setup_from_data(data)`: IID: rows shuffled (seeded) and dealt into n_sites parts.
- `setup_non_iid(data, partition_column, alpha)`: label skew by a Dirichlet(alpha) split
  (Hsu, Qi, Brown 2019): for every value of the column, the shares of its rows going to
  each site are drawn from Dirichlet(alpha, ..., alpha); lower alpha, more heterogeneous.
- `simulate_training(n_rounds, site_failure_rate, straggler_rate, straggler_delay)`: per
  round, each site fails (is down: not invited, not charged) with probability
  site_failure_rate; each invited site straggles with probability straggler_rate, taking
  straggler_delay times the normal time; one whose time exceeds `round_timeout` (default
  1.5 normal round times; a normal round time is `time_unit` seconds) misses the
  deadline: its masked upload of the marginals arrives late, the coordinator treats it as
  a dropout and recovers its pairwise masks (SecAgg+), so the sums go on without it (it
  has released and been charged; the sums do not hold it); if too few sites survive for
  the Shamir threshold, the round is void. The result lists, per round, who was invited,
  who failed, who straggled and who is in the sums.
- Every round is one run of the federation protocol over real local nodes (temporary
  folder, encrypted warehouses, signed workers, guards) on the in-process transport.
- `generate_synthetic(n, strategy)`: from the trained global DP copula.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation.protocol import decode
from workloads.synthetic.api import (
    DEFAULT_DELTA,
    DataSite,
    FederatedGenerator,
    SecureAggregator,
    SiteConfig,
    Strategy,
)
from workloads.synthetic.federated import SynthMarginals
from workloads.synthetic.quality import QualityEvaluator


@dataclass
class _RoundPlan:
    failed: set[str]
    stragglers: set[str]


class FederatedTrainingSimulator:
    def __init__(self, n_sites: int, *, table: Table = PATIENT_GENOMIC_DATA,
                 epsilon: float = 1.0, delta: float = DEFAULT_DELTA,
                 site_budget: float = 100.0, min_sites: int = 2, min_samples: int = 0,
                 seed: int = 0, time_unit: float = 2.0) -> None:
        if n_sites < 1:
            raise UserError(f"n_sites {n_sites} is invalid; fix: at least 1")
        self.n_sites = n_sites
        self.table = table
        self.epsilon = epsilon
        self.delta = delta
        self.site_budget = site_budget
        self.min_sites = min_sites
        self.min_samples = min_samples
        self.seed = seed
        self.time_unit = time_unit
        self._rng = np.random.default_rng(seed)
        self.partitions: list[pd.DataFrame] = []
        self.data: pd.DataFrame | None = None
        self.generator: FederatedGenerator | None = None

    @property
    def site_names(self) -> list[str]:
        return [f"site{i}" for i in range(self.n_sites)]

    def setup_from_data(self, data: pd.DataFrame) -> list[pd.DataFrame]:
        order = self._rng.permutation(len(data))
        self.data = data
        self.partitions = [data.iloc[part].reset_index(drop=True)
                           for part in np.array_split(order, self.n_sites)]
        return self.partitions

    def setup_non_iid(self, data: pd.DataFrame, partition_column: str,
                      alpha: float = 0.5) -> list[pd.DataFrame]:
        if partition_column not in data.columns:
            raise UserError(f"no column {partition_column!r}; fix: one of {list(data.columns)}")
        if not alpha > 0:
            raise UserError(f"alpha {alpha} is invalid; fix: a Dirichlet concentration > 0")
        assignment = np.empty(len(data), dtype=np.int64)
        values = data[partition_column].to_numpy()
        for value in pd.unique(values):
            rows = np.flatnonzero(values == value)
            rows = rows[self._rng.permutation(len(rows))]
            shares = self._rng.dirichlet(np.full(self.n_sites, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
            for site, part in enumerate(np.split(rows, cuts)):
                assignment[part] = site
        self.data = data
        self.partitions = [data.iloc[np.flatnonzero(assignment == s)].reset_index(drop=True)
                           for s in range(self.n_sites)]
        return self.partitions

    def _new_generator(self) -> FederatedGenerator:
        if not self.partitions:
            raise UserError("no data; fix: setup_from_data() or setup_non_iid() first")
        generator = FederatedGenerator(
            SecureAggregator(min_sites=self.min_sites, epsilon=self.epsilon, delta=self.delta),
            table=self.table, seed=self.seed,
        )
        for name, part in zip(self.site_names, self.partitions, strict=True):
            if len(part) == 0:
                continue  # a Dirichlet split can leave a site empty: it has nothing to add
            config = SiteConfig(name, privacy_budget=self.site_budget,
                                min_samples=self.min_samples)
            generator.add_site(DataSite(name, part, config, table=self.table, delta=self.delta))
        return generator

    def simulate_training(self, n_rounds: int = 5, site_failure_rate: float = 0.0,
                          straggler_rate: float = 0.0, straggler_delay: float = 2.0,
                          *, round_timeout: float = 1.5) -> dict[str, Any]:
        for name, rate in (("site_failure_rate", site_failure_rate),
                           ("straggler_rate", straggler_rate)):
            if not 0 <= rate <= 1:
                raise UserError(f"{name} {rate} is invalid; fix: a probability in [0, 1]")
        self.generator = generator = self._new_generator()
        names = list(generator.sites)
        plans = [
            _RoundPlan(
                failed={n for n in names if self._rng.random() < site_failure_rate},
                stragglers={n for n in names if self._rng.random() < straggler_rate
                            and straggler_delay > round_timeout},
            )
            for _ in range(n_rounds)
        ]

        def available(r: int) -> set[str]:
            return set(names) - plans[r].failed

        delay = straggler_delay * self.time_unit

        def faults(r: int, invited: list[str]) -> Any:
            late = plans[r].stragglers & set(invited)
            if not late:
                return None
            return lambda name, endpoint: Late(endpoint, delay) if name in late else endpoint

        result = generator.train(n_rounds, available=available, faults=faults,
                                 round_timeout=round_timeout * self.time_unit)
        training = generator.aggregator.trainings[-1]
        summed = {i: r for i, r in enumerate(training.rounds)}
        rounds = []
        done = 0
        for r in range(n_rounds):
            entry = generator.last_log[r]
            took_part = summed.get(done) if entry["void"] is None else None
            done += entry["void"] is None
            rounds.append({
                "round": r,
                "failed": sorted(plans[r].failed),
                "stragglers": sorted(plans[r].stragglers & set(entry["invited"])),
                "invited": entry["invited"],
                "participants": took_part["products"] if took_part else [],
                "samples_aggregated": took_part["rows"] if took_part else 0,
                "void": entry["void"],
            })
        return {
            "n_sites": result.n_sites,
            "total_samples": result.total_samples,
            "rounds": rounds,
            "epsilon_spent": result.epsilon_spent,
            "refused": result.refused,
        }

    def generate_synthetic(self, n_samples: int, strategy: Strategy = "proportional",
                           weights: dict[str, float] | None = None) -> pd.DataFrame:
        if self.generator is None:
            raise UserError("not trained; fix: simulate_training() first")
        return self.generator.generate(n_samples, strategy, weights)

    def evaluate(self, synthetic: pd.DataFrame) -> QualityEvaluator:
        if self.data is None:
            raise UserError("no data; fix: setup first")
        return QualityEvaluator(self.data, synthetic, self.table)


class Late:
    """A straggler's endpoint: its masked marginals arrive `delay` seconds late."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def receive(self, timeout: float) -> list[bytes]:
        got: list[bytes] = self.inner.receive(timeout)
        return got

    def upload(self, data: bytes) -> None:
        message = decode(data)
        if message.kind == "masked" and message.algorithm == SynthMarginals.name:
            timer = threading.Timer(self.delay, self.inner.upload, [data])
            timer.daemon = True
            timer.start()
            return
        self.inner.upload(data)
