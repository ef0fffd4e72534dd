"""What a node computes for synthesis, inside the node: DP histograms and DP normal-score
product sums over its own rows, masked for secure aggregation. Only noisy, masked vectors
whose length depends on the table's declared bins leave the node, never rows or counts
in the clear.

The histograms are computed by SQL in the node's warehouse (GROUP BY the public bin). The
normal scores need the inverse normal CDF, which DuckDB lacks: SQL returns each row's
bin and in-bin position, numpy maps them to scores, still inside the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from scipy import stats

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.federation import secure_agg
from workloads.synthetic.columns import SynthColumn
from workloads.synthetic.dp import DPEvent, NoisePlan, Odometer, noisy_counts, noisy_vector


class Source(Protocol):
    """Where a node's table lives: its Warehouse (DuckDB or BigQuery), or MemorySource."""

    def table_ref(self, table: Table | str) -> str: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table: ...


class MemorySource:
    """A table held in memory (the simulator's sites) behind the same SQL as a warehouse:
    an in-memory DuckDB (nothing written to disk), also usable as a ledger store."""

    def __init__(self, table: Table, data: pd.DataFrame) -> None:
        self._con = duckdb.connect(":memory:")
        missing = [c.name for c in table.columns if c.releasable and c.name not in data.columns]
        if missing:
            raise UserError(f"site data lacks columns {missing} of {table.name}; fix: add them")
        self._con.register("_frame", data)
        self._con.execute(f'CREATE TABLE "{table.name}" AS SELECT * FROM _frame')
        self._con.unregister("_frame")

    def ensure_tables(self, tables: Any) -> None:
        for table in tables:
            self._con.execute(table.duckdb_ddl(self.table_ref(table)))

    def table_ref(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f'"{name}"'

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self._con.execute(sql, params or []).to_arrow_table()

    def close(self) -> None:
        self._con.close()


@dataclass
class NodeRelease:
    """What a node has released so far (noisy, hence reusable by post-processing)."""

    histograms: list[np.ndarray] = field(default_factory=list)  # per column, summed over rounds
    products: np.ndarray | None = None
    rounds: int = 0

    def rows_estimate(self) -> float:
        return float(np.median([max(float(h.sum()), 0.0) for h in self.histograms]))


class SynthesisNode:
    """One node's party in the protocol."""

    def __init__(self, name: str, source: Source, table: Table,
                 columns: tuple[SynthColumn, ...], odometer: Odometer,
                 *, min_rows: int = 0, rng: np.random.Generator | None = None) -> None:
        self.name = name
        # the node's own randomness for the jitter of discrete scores (not the DP noise,
        # which is OpenDP's): never the hub's generator
        self.rng = rng if rng is not None else np.random.default_rng()
        self.source = source
        self.table = table
        self.columns = columns
        self.odometer = odometer
        self.min_rows = min_rows
        self.release = NodeRelease()
        self._key: X25519PrivateKey | None = None

    # -- budget --------------------------------------------------------------------------
    def charge(self, events: Sequence[DPEvent]) -> None:
        """Before any release: the node's own odometer must accept the events."""
        self.odometer.charge(events)

    def check_size(self) -> None:
        """The node's policy: take part only with at least min_rows rows (a local refusal;
        the refusal itself tells the hub one bit: n < min_rows)."""
        if self.min_rows <= 0:
            return
        ref = self.source.table_ref(self.table)
        n = int(self.source.query(f"SELECT count(*) FROM {ref}").column(0)[0].as_py())
        if n < self.min_rows:
            raise UserError(
                f"node {self.name}: fewer rows than its min_samples ({self.min_rows}); "
                f"it does not take part"
            )

    # -- statistics ------------------------------------------------------------------------
    def exact_histograms(self) -> list[np.ndarray]:
        ref = self.source.table_ref(self.table)
        out = []
        for column in self.columns:
            table = self.source.query(
                f"SELECT bin, count(*) AS n FROM (SELECT {column.bin_sql()} AS bin FROM {ref}) "
                f"WHERE bin IS NOT NULL GROUP BY bin"
            )
            counts = np.zeros(column.bins, dtype=np.int64)
            for b, n in zip(table.column("bin").to_pylist(), table.column("n").to_pylist(),
                            strict=True):
                counts[int(b)] += int(n)
            out.append(counts)
        return out

    def noisy_histograms(self, plan: NoisePlan) -> np.ndarray:
        """Phase 1: each column's histogram with OpenDP's discrete Gaussian noise."""
        noisy = [noisy_counts(h, plan.marginal_scale) for h in self.exact_histograms()]
        if not self.release.histograms:
            self.release.histograms = [np.zeros(c.bins, dtype=np.int64) for c in self.columns]
        for j, h in enumerate(noisy):
            self.release.histograms[j] = self.release.histograms[j] + h
        self.release.rounds += 1
        return np.concatenate(noisy).astype(np.float64)

    def normal_scores(self, probabilities: Sequence[np.ndarray], clip: float,
                      rng: np.random.Generator) -> np.ndarray:
        """Rows -> clipped normal scores under the public (DP) global marginals: a row in
        bin k sits at F(k-1) + f * p_k, f its position in the bin (continuous columns) or
        uniform (discrete ones: the same randomised transform the sampler inverts)."""
        check_marginals(probabilities, self.columns)
        ref = self.source.table_ref(self.table)
        exprs = []
        for j, column in enumerate(self.columns):
            exprs.append(f"{column.bin_sql()} AS b{j}")
            if column.kind == "continuous":
                exprs.append(f"{column.fraction_sql()} AS f{j}")
        table = self.source.query(f"SELECT {', '.join(exprs)} FROM {ref}")
        rows = table.num_rows
        keep = np.ones(rows, dtype=bool)
        for j in range(len(self.columns)):
            keep &= ~np.asarray(table.column(f"b{j}").is_null())
        scores = np.empty((int(keep.sum()), len(self.columns)))
        for j, (column, p) in enumerate(zip(self.columns, probabilities, strict=True)):
            bins = np.asarray(table.column(f"b{j}").fill_null(0).to_numpy())[keep].astype(int)
            if column.kind == "continuous":
                fractions = np.asarray(table.column(f"f{j}").to_numpy())[keep]
            else:
                fractions = rng.random(len(bins))
            lower = np.concatenate([[0.0], np.cumsum(p)[:-1]])
            u = np.clip(lower[bins] + fractions * p[bins], 0.0, 1.0)
            scores[:, j] = np.clip(stats.norm.ppf(u), -clip, clip)
        return scores

    def noisy_products(self, plan: NoisePlan, probabilities: Sequence[np.ndarray],
                       rng: np.random.Generator) -> np.ndarray:
        """Phase 2: sums of z_i z_j (i < j) with OpenDP's Gaussian noise."""
        z = self.normal_scores(probabilities, plan.clip, rng)
        products = (z.T @ z)[np.triu_indices(len(self.columns), k=1)]
        noisy = noisy_vector(products, plan.product_scale)
        self.release.products = (
            noisy if self.release.products is None else self.release.products + noisy
        )
        return noisy

    def mixture_terms(self, weight: float) -> np.ndarray:
        """weight * (histograms, product sums) / this node's noisy row count: post-processing
        of what it already released (no new privacy cost)."""
        if self.release.products is None or not self.release.histograms:
            raise UserError(f"node {self.name} has released nothing yet; fix: train first")
        n = self.release.rows_estimate()
        if not n > 0:
            raise UserError(f"node {self.name}: its noisy row count is <= 0; fix: raise epsilon")
        parts = [*self.release.histograms, self.release.products]
        return weight * np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) / n

    # -- secure aggregation ------------------------------------------------------------------
    def public_key(self) -> str:
        """A fresh X25519 key for this aggregation (keys are never reused across rounds)."""
        self._key = X25519PrivateKey.generate()
        return secure_agg.public_hex(self._key)

    def masked(self, vector: np.ndarray, peers: dict[str, str], context: str) -> np.ndarray:
        """Pairwise masks only (the in-process synthesis re-runs a round without a node that
        drops out; the signed, double-masked protocol with recovery is the federation's)."""
        if self._key is None:
            raise RuntimeError("public_key() must be called before masking")
        out = secure_agg.encode(vector)
        for peer, public in sorted(peers.items()):
            if peer != self.name:
                secret = secure_agg.agree(self._key, public)
                out = secure_agg.add(
                    out, secure_agg.pairwise(self.name, secret, peer, context, len(out))
                )
        return out


def check_marginals(probabilities: Sequence[np.ndarray],
                    columns: tuple[SynthColumn, ...]) -> None:
    """The hub's broadcast marginals must be probability vectors of the public bin counts
    (the clip bounds the sensitivity whatever they are; this refuses garbage early)."""
    ok = len(probabilities) == len(columns) and all(
        np.shape(p) == (c.bins,) and np.all(np.isfinite(p)) and np.all(np.asarray(p) >= 0)
        and abs(float(np.sum(p)) - 1.0) < 1e-6
        for p, c in zip(probabilities, columns, strict=False)
    )
    if not ok:
        raise UserError("the hub's marginals are not probability vectors over the public bins; "
                        "refused")


def bin_count(columns: tuple[SynthColumn, ...]) -> int:
    return sum(c.bins for c in columns)


def split_histograms(vector: np.ndarray, columns: tuple[SynthColumn, ...]) -> list[np.ndarray]:
    out, start = [], 0
    for column in columns:
        out.append(np.asarray(vector[start : start + column.bins]))
        start += column.bins
    return out


def product_count(d: int) -> int:
    return d * (d - 1) // 2


