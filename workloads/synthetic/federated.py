"""Federated synthesis over the federation protocol: two algorithms and the hub's rounds.

A synthesis round is two secure sums of the federation engine (workloads/federation/:
signed steps, double masking with Shamir recovery, every release through the node's
Guard, Pub/Sub or in-process transport):

1. `synth_marginals`: each node's histogram of every requested column over the public
   bins (one vector, L2 sensitivity sqrt(d): one row moves one bin of each column by 1);
2. `synth_products`: given the public DP marginals of step 1 (the hub's model), the sums
   over the node's rows of products of clipped normal scores z_i z_j, i < j (L2
   sensitivity c^2 sqrt(d(d-1)/2)).

The node re-derives everything it answers from its own catalogue: the table must be
declared, every column releasable with public bounds or levels, and the bins the hub
states must be exactly the ones derived from those declarations (else it refuses). Both
releases are DP only: the guard takes max(requested, its policy's minimum) noise
multiplier, charges the node's lifetime odometer of the table (its policy's
lifetime_epsilon is the cap: one definition for every DP release of the node) and adds
discrete Gaussian noise before masking. The hub reads only the sums.

Budget split (DPCopula, Li, Xiong and Jiang 2014): a round's budget is one Gaussian of
multiplier m (calibrated by the guard's accountant); Gaussian RDP composes as
1/m^2 = 1/m_1^2 + 1/m_2^2, so the marginals get m_1 = m / sqrt(share) and the products
m_2 = m / sqrt(1 - share): the same total cost, split as stated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table
from workloads.federation import privacy
from workloads.federation.defaults import SYNTH_CLIP, SYNTH_DELTA, SYNTH_MARGINAL_SHARE
from workloads.federation.guard import NodePolicy, RefusedError, ReleaseClass
from workloads.synthetic.columns import SynthColumn, synth_columns
from workloads.synthetic.copula import (
    CopulaModel,
    correlation_from_products,
    latent_correlation,
    nearest_correlation,
    probabilities,
)

MAX_CLIP = 10.0
FLOOR_MULTIPLIER = 1e-3  # the guard's floor: "epsilon = inf" (benchmarks) asks for this
_UNIT = 2.0**53  # (63-bit hash) >> 10 -> 53 uniform bits


def column_spec(column: SynthColumn) -> str:
    """The public bins of one column as the hub states them on the wire."""
    return json.dumps({"name": column.name, "kind": column.kind, "type": column.type,
                       "levels": list(column.levels), "bounds": list(column.bounds),
                       "bins": column.bins}, sort_keys=True)


@dataclass(frozen=True)
class SynthParams:
    """A synthesis request on the wire: each field one JSON value, re-checked by the node."""

    table: str = ""
    columns: tuple[str, ...] = ()
    bins: tuple[str, ...] = ()  # column_spec(...) per column: must match the node's own
    clip: float = SYNTH_CLIP
    jitter_seed: int = 0  # keys each row's in-bin position (per row: sensitivity unchanged)
    epsilon: float = 0.0  # stated: the run's budget per node (0: noise at the node's floor)
    delta: float = SYNTH_DELTA
    marginal_share: float = SYNTH_MARGINAL_SHARE
    rounds: int = 1
    noise_multiplier: float = 0.0  # this release's (the node applies at least its minimum)

    @staticmethod
    def of(table: Table, columns: Sequence[SynthColumn], **values: Any) -> SynthParams:
        return SynthParams(table.name, tuple(c.name for c in columns),
                           tuple(column_spec(c) for c in columns), **values)


def multipliers(epsilon: float, delta: float, marginal_share: float, rounds: int
                ) -> tuple[float, float]:
    """(marginals, products) noise multipliers of one round of a run's budget."""
    if not 0 < marginal_share < 1:
        raise UserError(f"marginal share {marginal_share} is invalid; fix: strictly in (0, 1)")
    if math.isinf(epsilon):
        return FLOOR_MULTIPLIER, FLOOR_MULTIPLIER
    m = privacy.calibrate(epsilon, rounds, delta)
    return m / math.sqrt(marginal_share), m / math.sqrt(1.0 - marginal_share)


class _Synthesis:
    """What both releases share: the node's checks of the request against its catalogue."""

    name: ClassVar[str]
    params_type: ClassVar[type[Any]] = SynthParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"

    def __init__(self, tables: Sequence[Table] = ALL_TABLES) -> None:
        self.tables = tuple(tables)

    def for_catalogue(self, tables: Sequence[Table]) -> _Synthesis:
        return type(self)(tables)

    def resolve(self, params: SynthParams) -> tuple[Table, tuple[SynthColumn, ...]]:
        """The declared table and columns; RefusedError unless the request matches them."""
        table = next((t for t in self.tables if t.name == params.table), None)
        if table is None:
            raise RefusedError(f"table {params.table!r} is not declared in this node's catalogue")
        try:
            declared = {c.name: c for c in synth_columns(table)}
        except UserError as exc:
            raise RefusedError(str(exc)) from None
        if len(params.columns) < 2 or len(set(params.columns)) != len(params.columns):
            raise RefusedError("synthesis needs two or more distinct columns")
        unknown = [n for n in params.columns if n not in declared]
        if unknown:
            raise RefusedError(
                f"{table.name}.{', '.join(unknown)}: not releasable columns with public bounds "
                f"or levels (this node releases only {', '.join(sorted(declared))})"
            )
        columns = tuple(declared[n] for n in params.columns)
        if params.bins != tuple(column_spec(c) for c in columns):
            raise RefusedError(
                "the requested bins are not the ones derived from the declared bounds and "
                "levels of these columns"
            )
        if not params.noise_multiplier > 0:
            raise RefusedError("synthesis releases are differentially private only (ask for DP)")
        if not 0 < params.clip <= MAX_CLIP:
            raise RefusedError(f"normal-score clip {params.clip}: must be in (0, {MAX_CLIP:g}]")
        return table, columns

    def columns(self, params: SynthParams) -> tuple[str, ...]:
        return params.columns

    def compute(self, data: Any, params: SynthParams, model: np.ndarray, policy: NodePolicy
                ) -> np.ndarray:
        raise RefusedError(f"{self.name} runs inside the node's warehouse (compute_in)")

    def _d(self, params: SynthParams) -> int:
        return len(params.columns)

    def _bins(self, params: SynthParams) -> int:
        try:
            return sum(int(json.loads(spec)["bins"]) for spec in params.bins)
        except (ValueError, KeyError, TypeError):
            raise RefusedError("the requested bins are not column specifications") from None

    def _rows(self, warehouse: Any, table: Table, policy: NodePolicy) -> None:
        """A node with fewer than its policy's min_rows rows does not take part (one bit)."""
        n = int(_query(warehouse, f"SELECT count(*) FROM {table.name}").column(0)[0].as_py())
        if n < policy.min_rows:
            raise RefusedError(f"fewer rows than this node's policy minimum ({policy.min_rows})")


# A node keeps its own DP releases (encrypted in its warehouse) for post-processing.
KEPT = Table(
    name="synthesis_releases",
    description="This node's own DP synthesis releases (noised), kept for post-processing.",
    columns=(
        Column("dataset", "STRING", "REQUIRED", "The table released from"),
        Column("run_id", "STRING", "REQUIRED", "Run of the release"),
        Column("node", "STRING", "REQUIRED", "This node's name"),
        Column("algorithm", "STRING", "REQUIRED", "synth_marginals | synth_products"),
        Column("request", "STRING", "REQUIRED", "The columns and bins (JSON)"),
        Column("vector", "STRING", "REQUIRED", "The noisy released vector (JSON)"),
        Column("released_at", "TIMESTAMP", "REQUIRED", "When"),
    ),
)


def _request(params: SynthParams) -> str:
    return json.dumps([params.table, list(params.columns), list(params.bins)])


class _Kept(_Synthesis):
    def keep(self, warehouse: Any, params: SynthParams, run_id: str, node: str,
             noisy: np.ndarray) -> None:
        """Called by the worker with what the guard released (noised): kept in the node."""
        warehouse.ensure_tables([KEPT])
        warehouse.query(
            f"INSERT INTO {warehouse.table_ref(KEPT)} VALUES (?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
            [params.table, run_id, node, self.name, _request(params),
             json.dumps([float(v) for v in noisy])])


class SynthMarginals(_Kept):
    """Per column, the histogram over its public bins (SQL GROUP BY in the warehouse)."""

    name: ClassVar[str] = "synth_marginals"

    def dimension(self, params: SynthParams) -> int:
        return self._bins(params)

    def model_size(self, params: SynthParams) -> int:
        return 0

    def sensitivity(self, params: SynthParams) -> float:
        return math.sqrt(self._d(params))

    def compute_in(self, warehouse: Any, params: SynthParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        table, columns = self.resolve(params)
        self._rows(warehouse, table, policy)
        return np.concatenate(histograms(warehouse, table, columns)).astype(np.float64)


class SynthProducts(_Kept):
    """Sums of z_i z_j (i < j) of the rows' clipped normal scores under the public marginals."""

    name: ClassVar[str] = "synth_products"

    def dimension(self, params: SynthParams) -> int:
        return self._d(params) * (self._d(params) - 1) // 2

    def model_size(self, params: SynthParams) -> int:
        return self._bins(params)

    def sensitivity(self, params: SynthParams) -> float:
        return params.clip**2 * math.sqrt(self.dimension(params))

    def compute_in(self, warehouse: Any, params: SynthParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        table, columns = self.resolve(params)
        self._rows(warehouse, table, policy)
        marginals = split_histograms(model, columns)
        check_marginals(marginals, columns)
        z = normal_scores(warehouse, table, columns, marginals, params.clip, params.jitter_seed)
        products: np.ndarray = (z.T @ z)[np.triu_indices(len(columns), k=1)]
        return products


@dataclass(frozen=True)
class MixtureParams:
    """weight x (this node's kept DP histograms and product sums of `runs`) / its DP rows."""

    table: str = ""
    columns: tuple[str, ...] = ()
    bins: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()  # "node=weight", weights summing to 1


class SynthMixture:
    """Post-processing of each node's own kept DP releases: no new privacy cost. The model
    is the node's weight; the hub reads only the weighted sum (a mixture of populations)."""

    name: ClassVar[str] = "synth_mixture"
    params_type: ClassVar[type[Any]] = MixtureParams
    release_class: ClassVar[ReleaseClass] = "post_processing"
    reads_ledger: ClassVar[bool] = True  # the kept releases live with the guard's state

    def __init__(self, tables: Sequence[Table] = ALL_TABLES) -> None:
        self.tables = tuple(tables)

    def for_catalogue(self, tables: Sequence[Table]) -> SynthMixture:
        return SynthMixture(tables)

    def columns(self, params: MixtureParams) -> tuple[str, ...]:
        return params.columns

    def _specs(self, params: MixtureParams) -> tuple[SynthColumn, ...]:
        try:
            specs = [json.loads(s) for s in params.bins]
            return tuple(SynthColumn(s["name"], s["kind"], s["type"], tuple(s["levels"]),
                                     (float(s["bounds"][0]), float(s["bounds"][1])),
                                     int(s["bins"])) for s in specs)
        except (ValueError, KeyError, TypeError, IndexError):
            raise RefusedError("the requested bins are not column specifications") from None

    def dimension(self, params: MixtureParams) -> int:
        d = len(params.columns)
        return sum(c.bins for c in self._specs(params)) + d * (d - 1) // 2

    def model_size(self, params: MixtureParams) -> int:
        return 0

    def sensitivity(self, params: MixtureParams) -> float:
        return 0.0  # not a release of rows: post-processing of DP releases

    def compute(self, data: Any, params: MixtureParams, model: np.ndarray, policy: NodePolicy
                ) -> np.ndarray:
        raise RefusedError(f"{self.name} runs inside the node's warehouse (compute_in)")

    def compute_in(self, warehouse: Any, params: MixtureParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        if not params.runs:
            raise RefusedError("no runs named to mix")
        request = json.dumps([params.table, list(params.columns), list(params.bins)])
        warehouse.ensure_tables([KEPT])
        marks = ", ".join("?" for _ in params.runs)
        rows = warehouse.query(
            f"SELECT node, algorithm, vector FROM {warehouse.table_ref(KEPT)} "
            f"WHERE dataset = ? AND request = ? AND run_id IN ({marks})",
            [params.table, request, *params.runs],
        ).to_pylist()
        kept = {a: [np.asarray(json.loads(r["vector"])) for r in rows if r["algorithm"] == a]
                for a in (SynthMarginals.name, SynthProducts.name)}
        if not kept[SynthMarginals.name] or not kept[SynthProducts.name]:
            raise RefusedError("this node kept no synthesis release of those runs")
        weights = dict(w.partition("=")[::2] for w in params.weights)
        try:
            weight = float(weights[rows[0]["node"]])
        except (KeyError, ValueError):
            raise RefusedError("the request gives this node no weight") from None
        if not (math.isfinite(weight) and 0 <= weight <= 1):
            raise RefusedError(f"mixture weight {weight}: must be in [0, 1]")
        columns = self._specs(params)
        histogram = np.sum(kept[SynthMarginals.name], axis=0)
        products = np.sum(kept[SynthProducts.name], axis=0)
        if histogram.shape != (sum(c.bins for c in columns),):
            raise RefusedError("the kept releases do not have the requested bins")
        rows_estimate = float(np.median([h.sum() for h in split_histograms(histogram, columns)]))
        if not rows_estimate > 0:
            raise RefusedError("this node's noisy row count is <= 0 (raise epsilon)")
        result: np.ndarray = weight * np.concatenate([histogram, products]) / rows_estimate
        return result


# --- the node's statistics (SQL in its warehouse, numpy inside the node) --------------------


def _query(warehouse: Any, sql: str) -> Any:
    """One statement written in DuckDB's dialect naming tables plainly, rendered for the
    node's backend (workloads.warehouse.dialect: BigQuery in the cloud) and run there."""
    [statement] = warehouse.render(sql)
    return warehouse.query(statement)


def histograms(source: Any, table: Table, columns: Sequence[SynthColumn]) -> list[np.ndarray]:
    ref = table.name
    out = []
    for column in columns:
        result = _query(
            source,
            f"SELECT bin, count(*) AS n FROM (SELECT {column.bin_sql()} AS bin FROM {ref}) "
            f"WHERE bin IS NOT NULL GROUP BY bin"
        )
        counts = np.zeros(column.bins, dtype=np.int64)
        for b, n in zip(result.column("bin").to_pylist(), result.column("n").to_pylist(),
                        strict=True):
            counts[int(b)] += int(n)
        out.append(counts)
    return out


def normal_scores(source: Any, table: Table, columns: Sequence[SynthColumn],
                  marginals: Sequence[np.ndarray], clip: float, jitter_seed: int) -> np.ndarray:
    """Rows -> clipped normal scores under the public (DP) marginals: a row in bin k sits at
    F(k-1) + f p_k, f its position in the bin (continuous columns) or, for discrete ones,
    a uniform keyed by (seed, column, the row's primary key): each row's own, so adding or
    removing a row changes no other row's score (the sensitivity analysis holds), and the
    same request gives the same scores whatever the transport."""
    ref = table.name
    # the row's key as one string (DuckDB's multi-argument hash combines the arguments'
    # hashes so that two columns' jitters come out strongly correlated); `hash` is
    # FARM_FINGERPRINT in BigQuery (dialect.translate), the top bit dropped (signed there)
    key = ", '|', ".join(f'CAST("{k}" AS VARCHAR)' for k in table.primary_key)
    exprs = []
    for j, column in enumerate(columns):
        exprs.append(f"{column.bin_sql()} AS b{j}")
        if column.kind == "continuous":
            exprs.append(f"{column.fraction_sql()} AS f{j}")
        elif key:
            exprs.append(f"CAST((hash(concat('{int(jitter_seed)}|{j}|', {key})) "
                         f"& 9223372036854775807) >> 10 AS DOUBLE) / {_UNIT!r} AS f{j}")
    result = _query(source, f"SELECT {', '.join(exprs)} FROM {ref}")
    keep = np.ones(result.num_rows, dtype=bool)
    for j in range(len(columns)):
        keep &= ~np.asarray(result.column(f"b{j}").is_null())
    rng = np.random.default_rng()  # only for tables without a primary key
    scores = np.empty((int(keep.sum()), len(columns)))
    for j, p in enumerate(marginals):
        bins = np.asarray(result.column(f"b{j}").fill_null(0).to_numpy())[keep].astype(int)
        if f"f{j}" in result.column_names:
            fractions = np.asarray(result.column(f"f{j}").to_numpy())[keep]
        else:
            fractions = rng.random(len(bins))
        lower = np.concatenate([[0.0], np.cumsum(p)[:-1]])
        u = np.clip(lower[bins] + fractions * p[bins], 0.0, 1.0)
        scores[:, j] = np.clip(stats.norm.ppf(u), -clip, clip)
    return scores


def check_marginals(marginals: Sequence[np.ndarray], columns: Sequence[SynthColumn]) -> None:
    """The hub's broadcast marginals must be probability vectors over the public bins (the
    clip bounds the sensitivity whatever they are; this refuses garbage early)."""
    ok = len(marginals) == len(columns) and all(
        np.shape(p) == (c.bins,) and np.all(np.isfinite(p)) and np.all(np.asarray(p) >= 0)
        and abs(float(np.sum(p)) - 1.0) < 1e-6
        for p, c in zip(marginals, columns, strict=False)
    )
    if not ok:
        raise RefusedError("the hub's marginals are not probability vectors over the public "
                           "bins")


def split_histograms(vector: np.ndarray, columns: Sequence[SynthColumn]) -> list[np.ndarray]:
    out, start = [], 0
    for column in columns:
        out.append(np.asarray(vector[start : start + column.bins], dtype=np.float64))
        start += column.bins
    return out


# --- the hub -----------------------------------------------------------------------------------


@dataclass
class Training:
    """What the hub holds after training: sums only, never a node's own vector."""

    run_id: str
    columns: tuple[SynthColumn, ...]
    clip: float
    multipliers: tuple[float, float]  # requested (marginals, products) per round
    histogram_total: list[np.ndarray]
    product_total: np.ndarray | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)  # who is in each sum
    model: CopulaModel | None = None

    def participants(self) -> list[str]:
        return sorted({n for r in self.rounds for n in r["products"]})


@dataclass(frozen=True)
class Request:
    """A run's synthesis request, the same for every round of it."""

    table: Table
    columns: tuple[SynthColumn, ...]
    epsilon: float
    delta: float = SYNTH_DELTA
    marginal_share: float = SYNTH_MARGINAL_SHARE
    clip: float = SYNTH_CLIP
    rounds: int = 1
    jitter_seed: int = 0
    noise_multiplier: float | None = None  # fixed (both releases) instead of calibrated

    def multipliers(self) -> tuple[float, float]:
        if self.rounds < 1:
            raise UserError(f"rounds {self.rounds} is invalid; fix: >= 1")
        if self.noise_multiplier is None:
            return multipliers(self.epsilon, self.delta, self.marginal_share, self.rounds)
        m = self.noise_multiplier
        spent = privacy.epsilon([m, m] * self.rounds, self.delta)
        if spent > self.epsilon:
            raise UserError(f"noise multiplier {m} spends epsilon {spent:.3f} over "
                            f"{self.rounds} round(s), more than {self.epsilon}; fix: more noise")
        return m, m

    def params(self, noise_multiplier: float) -> SynthParams:
        return SynthParams.of(
            self.table, self.columns, clip=self.clip, jitter_seed=self.jitter_seed,
            epsilon=0.0 if math.isinf(self.epsilon) else self.epsilon, delta=self.delta,
            marginal_share=self.marginal_share, rounds=self.rounds,
            noise_multiplier=noise_multiplier)


def new_training(request: Request, run_id: str = "") -> Training:
    return Training(run_id, request.columns, request.clip, request.multipliers(),
                    [np.zeros(c.bins) for c in request.columns])


def run_round(coordinator: Any, request: Request, training: Training) -> None:
    """One round: the marginals' secure sum, then the products' under the new marginals."""
    m_hist, m_prod = training.multipliers
    columns = request.columns
    total, summed = coordinator.aggregate(SynthMarginals(), request.params(m_hist))
    histograms = split_histograms(total, columns)
    marginals = [probabilities(training.histogram_total[j] + h, c.name)
                 for j, (h, c) in enumerate(zip(histograms, columns, strict=True))]
    model = tuple(float(v) for v in np.concatenate(marginals))
    products, summed_products = coordinator.aggregate(SynthProducts(), request.params(m_prod),
                                                      model)
    for j, h in enumerate(histograms):
        training.histogram_total[j] = training.histogram_total[j] + h
    training.product_total = (products if training.product_total is None
                              else training.product_total + products)
    training.rounds.append({
        "run_id": coordinator.config.run_id, "marginals": list(summed),
        "products": list(summed_products),
        "rows": float(np.median([max(float(h.sum()), 0.0) for h in histograms])),
    })


def finish(training: Training) -> Training:
    training.model = build_model(training.columns, training.histogram_total,
                                 training.product_total, training.clip)
    return training


def train(coordinator: Any, request: Request) -> Training:
    """The hub's side of a run over one Coordinator: `rounds` x (marginals, products)."""
    training = new_training(request, coordinator.config.run_id)
    for _ in range(request.rounds):
        run_round(coordinator, request, training)
    return finish(training)


def build_model(columns: tuple[SynthColumn, ...], histograms: Sequence[np.ndarray],
                products: np.ndarray | None, clip: float) -> CopulaModel:
    if products is None:
        raise UserError("no dependence statistics were released; fix: train first")
    marginals = tuple(probabilities(h, c.name) for h, c in zip(histograms, columns, strict=True))
    # the DP row count: the median of the columns' noisy totals (each is n + noise)
    rows = float(np.median([float(np.sum(h)) for h in histograms]))
    raw = correlation_from_products(products, len(columns), rows, clip)
    latent = latent_correlation(raw, columns, marginals)
    return CopulaModel(columns, marginals, nearest_correlation(latent), raw, rows)


def mixture(coordinator: Any, table: Table, columns: tuple[SynthColumn, ...],
            runs: Sequence[str], weights: dict[str, float], clip: float) -> CopulaModel:
    """The copula of a weighted mixture of the nodes' populations (post-processing of what
    they released in `runs`): one secure sum of weight_i x (kept DP statistics) / n_i."""
    total_weight = sum(weights.values())
    if not total_weight > 0:
        raise UserError("no site has a positive weight; fix: give weights > 0")
    params = MixtureParams(table.name, tuple(c.name for c in columns),
                           tuple(column_spec(c) for c in columns), tuple(runs),
                           tuple(f"{n}={w / total_weight!r}" for n, w in sorted(weights.items())))
    total, _ = coordinator.aggregate(SynthMixture(), params)
    cut = sum(c.bins for c in columns)
    return build_model(columns, split_histograms(total[:cut], columns), total[cut:], clip)
