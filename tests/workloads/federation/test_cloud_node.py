"""The worker over a cloud node (node_handle.CloudNode): BigQuery for the node's tables,
read-only, and LEDGER_DATASET for the guard's odometer and release log.

The BigQuery service is not reachable here. The stand-in client below takes every statement
the worker sends, parses it as BigQuery SQL (sqlglot, errors raise), then runs it in DuckDB
after translation, so the statements are real and the results come from a real engine. It
has NOT met the real service: BigQuery's own validation, IAM (read-only roles), quotas,
DML concurrency and CMEK enforcement are not exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from tests.workloads.federation.conftest import Federation
from workloads.analysis.spec import from_dict
from workloads.contracts.federation_service import LEDGER_DATASET, LEDGER_TABLES
from workloads.contracts.tables.genomics import GENOMICS, PATIENT_GENOMIC_DATA
from workloads.federation import roster
from workloads.federation.analysis_hub import fit_spec
from workloads.federation.coordinator import Coordinator, DPRequest, RunConfig
from workloads.federation.guard import Guard, NodePolicy
from workloads.federation.identity import local_signer
from workloads.federation.local import _threads
from workloads.federation.node_handle import CloudNode
from workloads.federation.report import pooled_fit
from workloads.federation.transport import InProcessBus
from workloads.federation.worker import NodeWorker
from workloads.local_node import LocalNode

PROJECT = "nodeproj"
KEY = "projects/nodeproj/locations/us-central1/keyRings/sovereign-us/cryptoKeys/bigquery"
_TYPES = {"STRING": "VARCHAR", "INTEGER": "BIGINT", "INT64": "BIGINT", "FLOAT": "DOUBLE",
          "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMPTZ", "BOOLEAN": "BOOLEAN"}


class _Job:
    def __init__(self, table: pa.Table | None) -> None:
        self._table = table
        self.dml_stats = None

    def to_arrow(self) -> pa.Table:
        assert self._table is not None
        return self._table

    def result(self) -> _Job:
        return self


class BigQueryStandIn:
    """The slice of google.cloud.bigquery.Client the worker uses, over DuckDB."""

    def __init__(self) -> None:
        self.db = duckdb.connect()
        self.db.execute(f"ATTACH ':memory:' AS {PROJECT}")
        for dataset in (GENOMICS.dataset, LEDGER_DATASET):
            self.db.execute(f"CREATE SCHEMA {PROJECT}.{dataset}")
        self.lock = __import__("threading").Lock()
        self.sent: list[tuple[exp.Expression, Any]] = []
        self.created: list[Any] = []

    def load(self, table_id: str, rows: pa.Table) -> None:
        self.db.register("_rows", rows)
        self.db.execute(f"CREATE TABLE {table_id} AS SELECT * FROM _rows")
        self.db.unregister("_rows")

    def query(self, sql: str, job_config: Any = None, job_id: str | None = None) -> _Job:
        trees = sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        params = [p.value for p in job_config.query_parameters] if job_config else []
        table = None
        with self.lock:  # one DuckDB connection; BigQuery runs jobs independently
            for tree in trees:
                assert tree is not None
                self.sent.append((tree, job_config))
                table = self.db.execute(_in_duckdb(tree), params).to_arrow_table()
        return _Job(table)

    def create_table(self, table: Any, exists_ok: bool = False) -> None:
        self.created.append(table)
        columns = ", ".join(f'"{f.name}" {_TYPES[f.field_type]}' for f in table.schema)
        with self.lock:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table.project}.{table.dataset_id}."
                            f"{table.table_id} ({columns})")

    def close(self) -> None:
        pass


def _in_duckdb(tree: exp.Expression) -> str:
    """The BigQuery statement in DuckDB; FARM_FINGERPRINT (no DuckDB twin) runs as DuckDB's
    64-bit `hash`, which is all its callers need (a deterministic keyed hash)."""
    def swap(node: exp.Expression) -> exp.Expression:
        if type(node).__name__ == "FarmFingerprint":  # sqlglot's node for it
            return exp.Anonymous(this="hash", expressions=node.expressions)
        return node

    return tree.transform(swap).sql(dialect="duckdb")


def _rows(node: LocalNode) -> pa.Table:
    with node.open_warehouse(create=False) as warehouse:
        return warehouse.query(f"SELECT * FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}")


def test_a_cloud_node_reads_bigquery_only_and_keeps_its_ledger_in_the_ledger_dataset(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 900, "eu": 700, "sg": 600})
    standin = BigQueryStandIn()
    standin.load(f"{PROJECT}.{GENOMICS.dataset}.{PATIENT_GENOMIC_DATA.name}", _rows(nodes[0]))
    cloud = CloudNode("us", PROJECT, "us-central1", {"genomics": GENOMICS.dataset},
                      f"{PROJECT}.{LEDGER_DATASET}", KEY, client=standin)
    pinned = roster.load(root)
    bus = InProcessBus(["us", "eu", "sg"])
    workers = [NodeWorker(cloud, bus.node("us"), local_signer(root, "us", create=False),
                          pinned, NodePolicy())]
    workers += [NodeWorker.local(n, bus.node(n.name)) for n in nodes[1:]]
    hub_key = local_signer(root, "hub")

    def coordinator(**options: Any) -> Coordinator:
        return Coordinator(bus.hub(), RunConfig(nodes=("us", "eu", "sg"), round_timeout=30,
                                                **options), hub_key, pinned)

    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "covariates": ["age", "bmi", "variant_brca1"]})
    with _threads(workers):
        exact = coordinator()
        fit = exact.fit()  # rows read by a SELECT, then numpy inside the node
        exact.finish()
        pushed = coordinator()
        spec_fit = fit_spec(pushed, spec)  # the analysis SQL pushed down to BigQuery
        pushed.finish()
        noisy = coordinator(dp=DPRequest(epsilon=2.0, releases=1))
        noisy.statistics()
        noisy.finish()

    reference, _ = pooled_fit(nodes)  # the cloud node holds the same rows as local "us"
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    assert spec_fit.converged and [t.name for t in spec_fit.terms][:2] == ["intercept", "age"]

    # The guard's state is in the ledger dataset, none in the local "us" warehouse.
    ledger = f"{PROJECT}.{LEDGER_DATASET}"
    logged = standin.db.execute(f"SELECT count(*), count(DISTINCT run_id) FROM "
                                f"{ledger}.federation_releases").fetchone()
    assert logged is not None and logged[0] > 0 and logged[1] == 2  # the two exact runs
    charged = standin.db.execute(f"SELECT DISTINCT run_id FROM {ledger}.federation_odometer"
                                 ).fetchall()  # the fit's DP AUC and the DP statistics
    assert sorted(charged) == sorted([(exact.config.run_id,), (noisy.config.run_id,)])
    assert Guard(cloud).lifetime_epsilon("patient_genomic_data") > 0  # reopens the ledger
    assert Guard(nodes[0]).lifetime_epsilon("patient_genomic_data") == 0.0

    # Read-only on the domain datasets: every write names a ledger table; every job and
    # every created table names the node's key.
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop)
    reads = 0
    for tree, job_config in standin.sent:
        tables = {(t.catalog, t.db, t.name) for t in tree.find_all(exp.Table)
                  if t.name not in {c.alias for c in tree.find_all(exp.CTE)}}
        assert tables and all(t[0] == PROJECT for t in tables), tree.sql("bigquery")
        if isinstance(tree, writes):
            assert {t[1] for t in tables} == {LEDGER_DATASET}, tree.sql("bigquery")
        elif (PROJECT, GENOMICS.dataset, PATIENT_GENOMIC_DATA.name) in tables:
            reads += 1
        assert job_config.destination_encryption_configuration.kms_key_name == KEY
    assert reads >= 2
    assert {t.table_id for t in standin.created} == {t.name for t in LEDGER_TABLES}
    assert {(t.dataset_id, t.encryption_configuration.kms_key_name)
            for t in standin.created} == {(LEDGER_DATASET, KEY)}


def test_dataset_ids_in_every_form_the_stacks_may_give() -> None:
    import pytest

    from workloads.contracts.errors import UserError
    from workloads.federation.node_handle import dataset_ref

    for text in ("federation_ledger", "p1.federation_ledger", "p1:federation_ledger",
                 "projects/p1/datasets/federation_ledger"):
        expected = ("p0" if text == "federation_ledger" else "p1", "federation_ledger")
        assert dataset_ref(text, "p0", "ledger") == expected
    for bad in ("", "a.b.c", "projects/p1/tables/x", "p1."):
        with pytest.raises(UserError, match="not a BigQuery dataset id"):
            dataset_ref(bad, "p0", "ledger")
    node = CloudNode("us", "p0", "us-central1", {"genomics": "hospital_data",
                                                "robotics": "p2.robotics"}, "l", KEY)
    assert node.table_datasets()["patient_genomic_data"] == "p0.hospital_data"
    assert node.table_datasets()["surgical_procedures"] == "p2.robotics"
    with pytest.raises(UserError, match="unknown domains"):
        CloudNode("us", "p0", "r", {"genome": "x"}, "l", KEY)


def test_synthesis_runs_on_a_cloud_node_with_bigquery_sql_and_charges_its_ledger(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    """Federated synthesis with one node in "BigQuery": its histograms, normal scores and
    keyed jitter go as BigQuery SQL (FARM_FINGERPRINT), its DP charges and kept releases
    land in the ledger dataset, and the hub's totals match the rows (up to the DP noise)."""
    from workloads.synthetic.columns import synth_columns
    from workloads.synthetic.federated import Request, histograms, train

    root, nodes = make_federation({"us": 900, "eu": 700, "sg": 600})
    standin = BigQueryStandIn()
    standin.load(f"{PROJECT}.{GENOMICS.dataset}.{PATIENT_GENOMIC_DATA.name}", _rows(nodes[0]))
    cloud = CloudNode("us", PROJECT, "us-central1", {"genomics": GENOMICS.dataset},
                      f"{PROJECT}.{LEDGER_DATASET}", KEY, client=standin)
    pinned = roster.load(root)
    bus = InProcessBus(["us", "eu", "sg"])
    workers = [NodeWorker(cloud, bus.node("us"), local_signer(root, "us", create=False),
                          pinned, NodePolicy())]
    workers += [NodeWorker.local(n, bus.node(n.name)) for n in nodes[1:]]
    columns = synth_columns(PATIENT_GENOMIC_DATA)
    with _threads(workers):
        coordinator = Coordinator(bus.hub(), RunConfig(nodes=("us", "eu", "sg"),
                                                       round_timeout=30, max_rounds=2),
                                  local_signer(root, "hub"), pinned)
        training = train(coordinator, Request(PATIENT_GENOMIC_DATA, columns, 3.0,
                                              jitter_seed=7))
        coordinator.finish()

    exact = 0
    for node in nodes:
        with node.open_warehouse(create=False) as warehouse:
            exact += np.concatenate(histograms(warehouse, PATIENT_GENOMIC_DATA, columns))
    total = np.concatenate(training.histogram_total)
    assert np.abs(total - exact).max() < 80  # DP noise at epsilon 3, not a missing node
    assert training.model is not None and training.product_total is not None

    sent = [tree.sql("bigquery") for tree, _ in standin.sent]
    assert any("FARM_FINGERPRINT" in q for q in sent)  # the keyed jitter, BigQuery's hash
    ledger = f"{PROJECT}.{LEDGER_DATASET}"
    charged = standin.db.execute(f"SELECT DISTINCT algorithm FROM {ledger}.federation_odometer"
                                 ).fetchall()
    assert sorted(charged) == [("synth_marginals",), ("synth_products",)]
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop)
    for tree, job_config in standin.sent:
        if isinstance(tree, writes):
            assert {t.db for t in tree.find_all(exp.Table)} == {LEDGER_DATASET}, tree.sql()
        assert job_config.destination_encryption_configuration.kms_key_name == KEY
