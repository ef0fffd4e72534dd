"""The local calls store: processed_variants kept long (rows + one row per call) gives the
same rows, features, overlap verdicts and ledger as the declared nested layout, loads
once, and a load killed while its calls stream in leaves the node as it was."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from vcf_helpers import FIXTURES

import workloads.warehouse.duckdb_warehouse as duckdb_warehouse
from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.local_node import LocalNode
from workloads.objectstore.folder import FolderStore
from workloads.vcf.features import derive_features, features_sql
from workloads.vcf.load import load_sql, load_staged
from workloads.vcf.pipeline import process_shard
from workloads.vcf.synth import PatientGenotypes, synth_into_store
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse
from workloads.warehouse.long_layout import LongLayout

LONG = LongLayout.of(PROCESSED_VARIANTS)
SITE_ORDER = ("source_fingerprint, reference_name, start_position, reference_bases, "
              "alternate_bases, end_position")


def _nested(node: LocalNode) -> DuckDBWarehouse:
    """The declared (nested) layout in a warehouse of its own: the reference."""
    return DuckDBWarehouse(node.name, node.folder / "nested.duckdb", node.key(), nested=True)


def _rows(wh: DuckDBWarehouse, table: str, order: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = wh.query(
        f"SELECT * FROM {wh.table_ref(table)} ORDER BY {order}").to_pylist()
    return rows


def _count(wh: DuckDBWarehouse, table: str) -> int:
    return int(wh.query(f"SELECT count(*) AS n FROM {wh.table_ref(table)}").column("n")[0]
               .as_py())


def _same(long: DuckDBWarehouse, nested: DuckDBWarehouse) -> None:
    assert _rows(long, PROCESSED_VARIANTS.name, SITE_ORDER) == \
        _rows(nested, PROCESSED_VARIANTS.name, SITE_ORDER)
    assert _rows(long, SAMPLE_APOE.name, "sample, source_fingerprint") == \
        _rows(nested, SAMPLE_APOE.name, "sample, source_fingerprint")
    ledger = "fingerprint, source, variant_rows"
    assert long.query(f"SELECT {ledger} FROM {long.table_ref(VCF_LOADS)} ORDER BY 1") \
        .to_pylist() == nested.query(f"SELECT {ledger} FROM {nested.table_ref(VCF_LOADS)} "
                                     "ORDER BY 1").to_pylist()
    # The features SQL, run on each layout (translated to joins on the long one).
    [on_long] = long.render(features_sql())
    [on_nested] = nested.render(features_sql())
    assert '"processed_variants__call"' in on_long and "__call" not in on_nested
    assert long.query(on_long).to_pylist() == nested.query(on_nested).to_pylist()
    assert _count(long, PROCESSED_VARIANTS.name) > 0


def _stage_synthetic(node: LocalNode, shards: int, seed: int, prefix: str) -> list[str]:
    store = node.store()
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    synth_into_store(patients, store, prefix, records=150, shards=shards, seed=seed,
                     progress=False)
    results = [process_shard(store, k, store, known_samples=set(patients.ids))
               for k in store.list(prefix) if k.endswith(".vcf.gz")]
    assert all(r.status == "staged" for r in results)
    return [r.staged_id for r in results]


def test_long_and_nested_layouts_give_the_same_rows_features_and_verdicts(
    node: LocalNode,
) -> None:
    staged = _stage_synthetic(node, shards=2, seed=3, prefix="vcf/")
    # Real files from bcftools' and hail's suites: multi-allelic splits, missing
    # calls, phased calls, other FORMAT fields, a file without samples' overlap.
    store = node.store()
    for name in ("bcftools_norm.split.vcf", "hail_split_test.vcf", "bcftools_ad-bias.2.vcf"):
        shard = process_shard(FolderStore(FIXTURES), name, store)
        assert shard.status == "staged", shard.reason
        staged.append(shard.staged_id)
    # The same records again, from another file: refused by both layouts alike.
    overlap = _stage_synthetic(node, shards=1, seed=3, prefix="again/")
    with node.open_warehouse() as long, _nested(node) as nested:
        for staged_id in staged:
            a, b = load_staged(long, store, staged_id), load_staged(nested, store, staged_id)
            assert a == b and a.loaded
        for staged_id in overlap:
            a, b = load_staged(long, store, staged_id), load_staged(nested, store, staged_id)
            assert a.status == b.status == "conflict" and a.reason == b.reason
        assert derive_features(long) == derive_features(nested)
        _same(long, nested)
        # No call is left behind by the refused load.
        calls = _count(long, LONG.child)
        assert calls == long.query(
            f"SELECT sum(len(\"call\")) AS n FROM {long.table_ref(PROCESSED_VARIANTS)}"
        ).column("n")[0].as_py()
        # Loading again loads nothing and says so, on either layout.
        for staged_id in staged:
            assert load_staged(long, store, staged_id).status == "already-loaded"
        assert _count(long, LONG.child) == calls


def _killed_load(root: str, staged_id: str) -> None:
    """Load with tiny commits and die (SIGKILL) right after the first calls committed."""
    duckdb_warehouse.ELEMENTS_PER_COMMIT = 500
    real = DuckDBWarehouse._insert

    def insert_then_die(self: DuckDBWarehouse, target: str, batches: Any) -> None:
        real(self, target, batches)
        os.kill(os.getpid(), signal.SIGKILL)

    DuckDBWarehouse._insert = insert_then_die  # type: ignore[method-assign]
    node = LocalNode("us", Path(root))
    with node.open_warehouse() as wh:
        load_staged(wh, node.store(), staged_id)


def test_a_load_killed_while_calls_stream_in_leaves_the_node_as_it_was(
    node: LocalNode,
) -> None:
    first, second = _stage_synthetic(node, shards=2, seed=5, prefix="vcf/")
    store = node.store()
    with node.open_warehouse() as wh:
        assert load_staged(wh, store, first).loaded
        before = {t: _count(wh, t) for t in (PROCESSED_VARIANTS.name, SAMPLE_APOE.name,
                                              VCF_LOADS.name, LONG.child)}
        derive_features(wh)
        features = _rows(wh, "variant_features", "patient_id")
    child = mp.get_context("spawn").Process(target=_killed_load,
                                            args=(str(node.root), second))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    with node.open_warehouse() as wh:
        # Calls of the killed load were committed, but nothing sees them.
        assert _count(wh, LONG.child) > before[LONG.child]
        assert {t: _count(wh, t) for t in before if t != LONG.child} == \
            {t: n for t, n in before.items() if t != LONG.child}
        derive_features(wh)
        assert _rows(wh, "variant_features", "patient_id") == features
        # The retry removes them and loads the file once.
        assert load_staged(wh, store, second).loaded
    with node.open_warehouse() as long, _nested(node) as nested:
        for staged_id in (first, second):
            assert load_staged(nested, store, staged_id).loaded
        derive_features(long)
        derive_features(nested)
        _same(long, nested)
        assert _count(long, LONG.child) == long.query(
            f"SELECT sum(len(\"call\")) AS n FROM {long.table_ref(PROCESSED_VARIANTS)}"
        ).column("n")[0].as_py()


def test_a_long_table_is_written_only_by_copying_a_staged_file(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.ensure_tables([PROCESSED_VARIANTS])
        with pytest.raises(ValueError, match="stored long"):
            wh.render("INSERT INTO processed_variants (reference_name) SELECT 'chr1'")
        # The ledger-guarded copy from a staged file is the one accepted form.
        wh._staged_long["_staged_variants"] = LONG.staged("_staged_variants")
        statements = wh.render(load_sql("f" * 64, "x.vcf", 1))
        assert '"processed_variants__rows"' in statements[0] and '"call"' not in statements[0]


def test_a_node_written_nested_is_refused_with_a_fix(node: LocalNode) -> None:
    with DuckDBWarehouse(node.name, node.warehouse_path, node.key(), nested=True) as wh:
        wh.ensure_tables([PROCESSED_VARIANTS])
    with node.open_warehouse() as wh, pytest.raises(Exception, match="node reset"):
        wh.ensure_tables([PROCESSED_VARIANTS])


def test_a_load_failing_while_calls_stream_in_leaves_no_call_behind(
    node: LocalNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    [staged] = _stage_synthetic(node, shards=1, seed=6, prefix="vcf/")
    monkeypatch.setattr(duckdb_warehouse, "ELEMENTS_PER_COMMIT", 500)
    real = DuckDBWarehouse._insert
    inserts: list[str] = []

    def fail_after_the_calls(self: DuckDBWarehouse, target: str, batches: Any) -> None:
        inserts.append(target)
        if len(inserts) == 2:  # the calls are in, their rows are not
            raise OSError("disk full")
        real(self, target, batches)

    monkeypatch.setattr(DuckDBWarehouse, "_insert", fail_after_the_calls)
    with node.open_warehouse() as wh:
        with pytest.raises(OSError, match="disk full"):
            load_staged(wh, node.store(), staged)
        assert {_count(wh, t) for t in (LONG.child, LONG.parent, VCF_LOADS.name)} == {0}
        monkeypatch.setattr(DuckDBWarehouse, "_insert", real)
        assert load_staged(wh, node.store(), staged).loaded
        assert _count(wh, LONG.child) > 0
