"""One streaming pass into CSV, Parquet and the warehouse: formats, atomicity, idempotence."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator import (
    find_profile,
    generate_batches,
    generate_node,
    load_profile,
    summarize_nodes,
)
from workloads.generator import outputs as outputs_module
from workloads.generator import run as run_module
from workloads.generator.run import CURRENT_KEY, FILES_PREFIX, committed, parse_formats
from workloads.local_node import LocalNode

SEED_COLUMNS = ["patient_id", "age", "variant_brca1", "variant_tp53", "variant_apoe4", "bmi",
                "diagnosis_cancer"]


def warehouse_rows(root: Path, node: str) -> pa.Table:
    with LocalNode(node, root).open_warehouse(create=False) as wh:
        return wh.query(
            f"SELECT * FROM {wh.table_ref(PATIENT_GENOMIC_DATA)} ORDER BY patient_id"
        )


def object_key(result: run_module.GenerateResult, fmt: str) -> str:
    return f"{FILES_PREFIX}{result.generation}/patient_genomic_data_{result.node}.{fmt}"


def stored_parquet(root: Path, result: run_module.GenerateResult) -> pa.Table:
    with LocalNode(result.node, root).store().open_read(object_key(result, "parquet")) as f:
        return pq.read_table(f)


def test_csv_parquet_and_warehouse_hold_the_same_rows(tmp_path: Path) -> None:
    us = find_profile("us")
    result = generate_node(us, rows=12_000, seed=5, root=tmp_path, chunk_rows=5_000,
                           progress=False)
    expected = pa.Table.from_batches(list(generate_batches(us, 12_000, 5)))
    store = LocalNode("us", tmp_path).store()
    assert result.files == {fmt: store.uri(object_key(result, fmt)) for fmt in ("csv", "parquet")}
    assert result.load is not None and result.load.inserted == 12_000

    parquet = stored_parquet(tmp_path, result)
    assert parquet.schema == PATIENT_GENOMIC_DATA.arrow_schema()
    assert parquet.equals(expected)

    # CSV: the seed's header and column order, values that round-trip exactly.
    text = store.read_bytes(object_key(result, "csv"))
    assert b"US-0001" not in Path(result.files["csv"]).read_bytes()  # encrypted at rest
    with io.StringIO(text.decode(), newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == SEED_COLUMNS
        rows = list(reader)
    assert len(rows) == 12_000
    assert rows[0][0] == "US-0001" and rows[-1][0] == "US-12000"
    assert [float(r[5]) for r in rows] == expected["bmi"].to_pylist()
    assert [int(r[1]) for r in rows] == expected["age"].to_pylist()
    assert all("." in r[5] for r in rows)  # 29.0, as pandas writes floats
    frame = pd.read_csv(io.BytesIO(text))
    assert list(frame.columns) == SEED_COLUMNS
    pd.testing.assert_frame_equal(frame, expected.to_pandas(), check_dtype=False)

    stored = warehouse_rows(tmp_path, "us")  # DuckDB reports columns as nullable
    assert stored.equals(expected.sort_by("patient_id").cast(stored.schema))


def test_loading_twice_leaves_one_copy_and_changed_rows_update(tmp_path: Path) -> None:
    eu = find_profile("eu")
    first = generate_node(eu, rows=3000, seed=1, root=tmp_path, formats=["warehouse"],
                          progress=False)
    again = generate_node(eu, rows=3000, seed=1, root=tmp_path, formats=["warehouse"],
                          progress=False)
    assert first.load is not None and again.load is not None
    assert (again.load.inserted, again.load.updated, again.load.unchanged) == (0, 0, 3000)
    assert warehouse_rows(tmp_path, "eu").num_rows == 3000

    # Another seed redraws every row: same ids, so rows are updated, never duplicated.
    other = generate_node(eu, rows=3000, seed=2, root=tmp_path, formats=["warehouse"],
                          progress=False)
    assert other.load is not None
    assert other.load.inserted == 0 and other.load.updated > 2000
    assert other.load.updated + other.load.unchanged == 3000
    assert warehouse_rows(tmp_path, "eu").num_rows == 3000


def test_replace_is_the_default_and_leaves_exactly_the_new_population(
    tmp_path: Path, write_profile: Callable[..., Path]
) -> None:
    us = find_profile("us")
    generate_node(us, rows=500, seed=1, root=tmp_path, progress=False)
    smaller = generate_node(us, rows=200, seed=2, root=tmp_path, progress=False)
    assert smaller.load is not None and smaller.load.deleted == 300
    rows = warehouse_rows(tmp_path, "us")
    expected = pa.Table.from_batches(list(generate_batches(us, 200, 2)))
    assert rows.equals(expected.sort_by("patient_id").cast(rows.schema))
    assert stored_parquet(tmp_path, smaller).equals(expected)  # files agree with the table
    store = LocalNode("us", tmp_path).store()
    assert sorted(store.list(FILES_PREFIX)) == sorted(
        [CURRENT_KEY, object_key(smaller, "csv"), object_key(smaller, "parquet")])
    # Another id prefix does not double the node: the old patients go.
    renamed = write_profile("us", {'id_prefix = "US"': 'id_prefix = "USA"'})
    generate_node(load_profile(renamed), rows=100, seed=2, root=tmp_path,
                  progress=False)
    ids = warehouse_rows(tmp_path, "us")["patient_id"].to_pylist()
    assert len(ids) == 100 and all(i.startswith("USA-") for i in ids)


def test_append_numbers_new_patients_after_the_existing_ones(tmp_path: Path) -> None:
    us = find_profile("us")
    first = generate_node(us, rows=50, seed=1, root=tmp_path, progress=False)
    second = generate_node(us, rows=30, seed=2, root=tmp_path, progress=False, mode="append")
    assert second.load is not None and (second.load.inserted, second.load.deleted) == (30, 0)
    rows = warehouse_rows(tmp_path, "us")
    assert rows.num_rows == 80 and rows["patient_id"][-1].as_py() == "US-0080"
    files = pa.concat_tables([stored_parquet(tmp_path, r) for r in (first, second)])
    assert files.sort_by("patient_id").cast(rows.schema).equals(rows)  # files = the table
    record = committed(LocalNode("us", tmp_path))
    assert record is not None and [g["generation"] for g in record["generations"]] == [
        first.generation, second.generation]


def test_a_crash_before_or_after_the_warehouse_commit_leaves_files_and_table_agreeing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    us = find_profile("us")
    node = LocalNode("us", tmp_path)
    old = generate_node(us, rows=40, seed=1, root=tmp_path, progress=False)

    def agree() -> None:
        record = committed(node)
        assert record is not None
        [gen] = record["generations"]
        with node.store().open_read(gen["files"]["parquet"]) as f:
            files = pq.read_table(f)
        rows = warehouse_rows(tmp_path, "us")
        assert files.sort_by("patient_id").cast(rows.schema).equals(rows)

    # Crash after the new objects are complete, before the warehouse commits.
    def crash(*args: object, **kwargs: object) -> None:
        for _ in args[2]:  # type: ignore[attr-defined]  # drain: objects get committed
            pass
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module.DuckDBWarehouse, "merge", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_node(us, rows=60, seed=2, root=tmp_path, progress=False)
    monkeypatch.undo()
    agree()
    assert committed(node)["generations"][0]["generation"] == old.generation  # type: ignore[index]

    # Crash after the warehouse committed, before CURRENT.json was rewritten.
    real_tidy = run_module.tidy
    calls = {"n": 0}

    def tidy_then_crash(*args: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_tidy(*args)

    monkeypatch.setattr(run_module, "tidy", tidy_then_crash)
    with pytest.raises(KeyboardInterrupt):
        generate_node(us, rows=70, seed=3, root=tmp_path, progress=False)
    monkeypatch.undo()
    agree()
    assert warehouse_rows(tmp_path, "us").num_rows == 70
    removed = run_module.tidy(node, node.store(), committed(node))  # what `node status` does
    assert removed and all(old.generation in k for k in removed)  # the old files go
    current = json.loads(node.store().read_bytes(CURRENT_KEY))
    assert current == committed(node)


def test_a_failure_midway_leaves_no_files_and_no_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    us = find_profile("us")
    generate_node(us, rows=100, seed=1, root=tmp_path, formats=["warehouse"], progress=False)
    before = warehouse_rows(tmp_path, "us")

    calls = {"n": 0}
    real_write = outputs_module.ParquetSink.write

    def failing_write(self: outputs_module.ParquetSink, batch: pa.RecordBatch) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_write(self, batch)

    monkeypatch.setattr(outputs_module.ParquetSink, "write", failing_write)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        generate_node(us, rows=5000, seed=9, root=tmp_path, out_dir=out, chunk_rows=1000,
                      progress=False)
    assert list(out.iterdir()) == []  # no CSV, no Parquet, no temporary files
    assert warehouse_rows(tmp_path, "us").equals(before)


def test_files_only_do_not_touch_the_warehouse(tmp_path: Path) -> None:
    result = generate_node(find_profile("us"), rows=10, seed=1, root=tmp_path,
                           out_dir=tmp_path / "files", formats=["csv"], progress=False)
    assert result.load is None and set(result.files) == {"csv"}
    assert not LocalNode("us", tmp_path).warehouse_path.exists()
    assert not LocalNode("us", tmp_path).key_path.exists()


def test_rerun_replaces_exported_files_atomically(tmp_path: Path) -> None:
    us = find_profile("us")
    out = tmp_path / "export"
    kw = {"root": tmp_path, "formats": ["parquet"], "progress": False, "out_dir": out}
    first = generate_node(us, rows=50, seed=1, **kw)  # type: ignore[arg-type]
    second = generate_node(us, rows=80, seed=1, **kw)  # type: ignore[arg-type]
    assert first.files == second.files
    assert pq.read_table(second.files["parquet"]).num_rows == 80
    assert [p.name for p in out.iterdir()] == ["patient_genomic_data_us.parquet"]


def test_unwritable_output_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"--out .*a-file/sub: cannot write there"):
        generate_node(find_profile("us"), rows=10, seed=1, root=tmp_path,
                      out_dir=blocker / "sub", progress=False)


def test_formats_are_checked() -> None:
    assert parse_formats("parquet, csv,parquet") == ("parquet", "csv")
    with pytest.raises(UserError, match="unknown format json"):
        parse_formats("csv,json")
    with pytest.raises(UserError, match="none given"):
        parse_formats(" , ")


def test_summary_is_computed_per_node(tmp_path: Path) -> None:
    for node, rows in (("us", 4000), ("eu", 3000)):
        generate_node(find_profile(node), rows=rows, seed=3, root=tmp_path,
                      formats=["warehouse"], progress=False)
    summaries = {s.node: s for s in summarize_nodes(tmp_path)}
    assert set(summaries) == {"eu", "us"}
    for node, rows in (("us", 4000), ("eu", 3000)):
        data = pa.Table.from_batches(list(generate_batches(find_profile(node), rows, 3)))
        s = summaries[node]
        assert s.n == rows
        assert s.cancer_rate == pytest.approx(pa.compute.mean(data["diagnosis_cancer"]).as_py())
        assert s.mean_age == pytest.approx(pa.compute.mean(data["age"]).as_py())
        assert s.mean_bmi == pytest.approx(pa.compute.mean(data["bmi"]).as_py())
        assert s.mean_brca1 == pytest.approx(pa.compute.mean(data["variant_brca1"]).as_py())
    with pytest.raises(UserError, match="no node warehouses found"):
        summarize_nodes(tmp_path / "empty")
