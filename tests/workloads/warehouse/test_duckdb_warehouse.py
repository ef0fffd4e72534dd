"""The encrypted DuckDB warehouse: unreadable without its key, atomic and idempotent loads."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode, key_env_var
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

MARKER = "PLAINTEXT-PATIENT-7F3A9C"  # an id that must never appear in the file as text


def table(ids: list[str], *, bmi: float = 25.5, age: int = 40) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "patient_id": ids,
            "age": [age] * n,
            "variant_brca1": [0] * n,
            "variant_tp53": [1] * n,
            "variant_apoe4": [2] * n,
            "bmi": [bmi] * n,
            "diagnosis_cancer": [1] * n,
        }
    )


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(1, n + 1)]


def count(wh: DuckDBWarehouse) -> int:
    return int(wh.query(f"SELECT count(*) FROM {wh.table_ref(PATIENT_GENOMIC_DATA)}")[0][0].as_py())


def content(wh: DuckDBWarehouse) -> list[dict[str, object]]:
    ref = wh.table_ref(PATIENT_GENOMIC_DATA)
    return wh.query(f"SELECT * FROM {ref} ORDER BY patient_id").to_pylist()


@pytest.fixture
def node(tmp_path: Path) -> LocalNode:
    return LocalNode("us", tmp_path)


def test_tables_are_created_from_the_schema_definition(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.ensure_tables([PATIENT_GENOMIC_DATA])
        empty = wh.query(f"SELECT * FROM {wh.table_ref(PATIENT_GENOMIC_DATA)}")
    assert empty.num_rows == 0
    assert empty.schema.names == PATIENT_GENOMIC_DATA.column_names
    assert [f.type for f in empty.schema] == [
        f.type for f in PATIENT_GENOMIC_DATA.arrow_schema()
    ]


def test_database_file_holds_no_plaintext(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table([MARKER, *ids("US", 500)]))
    files = [p for p in node.folder.rglob("*") if p.is_file()]
    assert node.warehouse_path in files
    for path in files:
        data = path.read_bytes()
        assert MARKER.encode() not in data, path
        assert b"US-0001" not in data, path
        assert b"patient_genomic_data" not in data, path  # even the catalog is encrypted


def test_wrong_key_cannot_open(node: LocalNode, monkeypatch: pytest.MonkeyPatch) -> None:
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 3)))
    monkeypatch.setenv(key_env_var("us"), secrets.token_hex(32))
    with pytest.raises(UserError, match="cannot open node 'us' warehouse"):
        node.open_warehouse()


def test_missing_key_cannot_open(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 3)))
    node.key_path.unlink()
    with pytest.raises(UserError, match="has no key"):
        node.open_warehouse()
    assert not node.key_path.exists()  # no fresh key invented for existing data


def test_plain_duckdb_cannot_read_the_file(node: LocalNode) -> None:
    import duckdb

    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 3)))
    con = duckdb.connect(":memory:")
    try:
        with pytest.raises(duckdb.Error):
            con.execute(f"ATTACH '{node.warehouse_path}' AS x (READ_ONLY)")
            con.execute("SELECT count(*) FROM x.main.patient_genomic_data").fetchall()
    finally:
        con.close()


def test_loading_twice_leaves_one_copy(node: LocalNode) -> None:
    batch = table(ids("US", 50))
    with node.open_warehouse() as wh:
        first = wh.merge(PATIENT_GENOMIC_DATA, batch)
        second = wh.merge(PATIENT_GENOMIC_DATA, batch)
        assert (first.inserted, first.updated, first.unchanged) == (50, 0, 0)
        assert (second.inserted, second.updated, second.unchanged) == (0, 0, 50)
        assert count(wh) == 50
    with node.open_warehouse() as wh:  # and it persists across sessions
        assert wh.merge(PATIENT_GENOMIC_DATA, batch).unchanged == 50
        assert count(wh) == 50


def test_changed_rows_are_updated_in_place(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 10)))
        changed = pa.concat_tables([table(ids("US", 2), bmi=31.2), table(["US-0011"])])
        result = wh.merge(PATIENT_GENOMIC_DATA, changed)
        assert (result.inserted, result.updated, result.unchanged) == (1, 2, 0)
        rows = content(wh)
    assert len(rows) == 11
    assert [r["bmi"] for r in rows[:3]] == [31.2, 31.2, 25.5]


def test_duplicate_keys_in_a_later_chunk_leave_the_table_as_before(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 5)))
        before = content(wh)
        chunks = [
            *table(ids("US", 8), age=70).to_batches(),  # would update 5 and insert 3
            *table(["US-0100", "US-0100"]).to_batches(),  # duplicate key: fails
        ]
        with pytest.raises(UserError, match=r"US-0100.*appears 2 times"):
            wh.merge(PATIENT_GENOMIC_DATA, chunks)
        assert content(wh) == before
    with node.open_warehouse() as wh:  # nothing half-committed on disk either
        assert content(wh) == before


def test_a_key_repeated_across_chunks_of_one_load_is_refused(node: LocalNode) -> None:
    with node.open_warehouse() as wh:
        chunks = [*table(ids("US", 3)).to_batches(), *table(["US-0002"], age=60).to_batches()]
        with pytest.raises(UserError, match=r"US-0002.*appears 2 times in one load"):
            wh.merge(PATIENT_GENOMIC_DATA, chunks)
        assert count(wh) == 0


def test_a_stream_that_fails_midway_is_rolled_back(node: LocalNode) -> None:
    def stream() -> Iterator[pa.RecordBatch]:
        yield from table(ids("US", 20)).to_batches()
        raise RuntimeError("source broke")

    with node.open_warehouse() as wh:
        with pytest.raises(RuntimeError, match="source broke"):
            wh.merge(PATIENT_GENOMIC_DATA, stream())
        assert count(wh) == 0
        # The connection is usable afterwards.
        assert wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 2))).inserted == 2


def test_nodes_do_not_share_data_or_keys(tmp_path: Path) -> None:
    us, eu = LocalNode("us", tmp_path), LocalNode("eu", tmp_path)
    with us.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("US", 4)))
    with eu.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, table(ids("EU", 2)))
        assert count(wh) == 2
    assert us.warehouse_path != eu.warehouse_path
    assert us.key() != eu.key()
