"""One streaming pass into CSV, Parquet and the warehouse: formats, atomicity, idempotence."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator import find_profile, generate_batches, generate_node, summarize_nodes
from workloads.generator import outputs as outputs_module
from workloads.generator.run import default_out_dir, parse_formats
from workloads.local_node import LocalNode

SEED_COLUMNS = ["patient_id", "age", "variant_brca1", "variant_tp53", "variant_apoe4", "bmi",
                "diagnosis_cancer"]


def warehouse_rows(root: Path, node: str) -> pa.Table:
    with LocalNode(node, root).open_warehouse(create=False) as wh:
        return wh.query(
            f"SELECT * FROM {wh.table_ref(PATIENT_GENOMIC_DATA)} ORDER BY patient_id"
        )


def test_csv_parquet_and_warehouse_hold_the_same_rows(tmp_path: Path) -> None:
    us = find_profile("us")
    result = generate_node(us, rows=12_000, seed=5, root=tmp_path, chunk_rows=5_000,
                           progress=False)
    expected = pa.Table.from_batches(list(generate_batches(us, 12_000, 5)))
    folder = default_out_dir(tmp_path, "us")
    assert result.files == {
        "csv": folder / "patient_genomic_data_us.csv",
        "parquet": folder / "patient_genomic_data_us.parquet",
    }
    assert result.load is not None and result.load.inserted == 12_000

    parquet = pq.read_table(result.files["parquet"])
    assert parquet.schema == PATIENT_GENOMIC_DATA.arrow_schema()
    assert parquet.equals(expected)

    # CSV: the seed's header and column order, values that round-trip exactly.
    with result.files["csv"].open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == SEED_COLUMNS
        rows = list(reader)
    assert len(rows) == 12_000
    assert rows[0][0] == "US-0001" and rows[-1][0] == "US-12000"
    assert [float(r[5]) for r in rows] == expected["bmi"].to_pylist()
    assert [int(r[1]) for r in rows] == expected["age"].to_pylist()
    assert all("." in r[5] for r in rows)  # 29.0, as pandas writes floats
    frame = pd.read_csv(result.files["csv"])
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


def test_rerun_replaces_files_atomically(tmp_path: Path) -> None:
    us = find_profile("us")
    kw = {"root": tmp_path, "formats": ["parquet"], "progress": False}
    first = generate_node(us, rows=50, seed=1, **kw)  # type: ignore[arg-type]
    second = generate_node(us, rows=80, seed=1, **kw)  # type: ignore[arg-type]
    assert first.files == second.files
    assert pq.read_table(second.files["parquet"]).num_rows == 80
    assert [p.name for p in second.files["parquet"].parent.iterdir()] == [
        "patient_genomic_data_us.parquet"
    ]


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
