"""federated_synthesis over real local nodes (encrypted warehouses) and its command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.workloads.federation.federation_data import make_node
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation import secure_agg
from workloads.local_node import LocalNode
from workloads.synthetic.__main__ import main
from workloads.synthetic.run import federated_synthesis


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("synth-nodes")
    make_node(base, "us", 1200, 1)
    make_node(base, "eu", 800, 2)
    return base


def test_writes_the_export_metadata_and_quality(root: Path) -> None:
    out = root / "export"
    result = federated_synthesis(["us", "eu"], "patient_genomic_data", 3000, 3.0, root=root,
                                 out_dir=out, seed=7)
    table = pq.read_table(result.parquet)
    assert table.schema == PATIENT_GENOMIC_DATA.arrow_schema()
    frame = table.to_pandas()
    assert len(frame) == 3000 and frame["patient_id"].is_unique
    assert frame["patient_id"].str.startswith("SYN-").all()  # no real id is reused
    assert frame["age"].between(25, 80).all() and frame["bmi"].between(18.5, 40).all()
    for column in ("variant_brca1", "variant_tp53", "variant_apoe4"):
        assert set(frame[column]) <= {0, 1, 2}
    assert set(frame["diagnosis_cancer"]) <= {0, 1}
    csv = pd.read_csv(result.csv)
    assert list(csv.columns) == PATIENT_GENOMIC_DATA.column_names
    pd.testing.assert_frame_equal(csv, frame, check_dtype=False)
    meta = json.loads(result.metadata.read_text())
    assert meta["privacy"]["run_budget"] == {"epsilon": 3.0, "delta": 1e-6}
    assert meta["privacy"]["node_lifetime_epsilon"] == {"us": pytest.approx(3.0, rel=1e-4),
                                                        "eu": pytest.approx(3.0, rel=1e-4)}
    assert meta["rounds"][0]["products"] == ["eu", "us"]
    assert meta["rows_estimate"] == pytest.approx(2000, rel=0.05)
    assert result.quality is not None
    quality = json.loads(result.quality.read_text())
    assert set(quality["per_node"]) == {"us", "eu"}
    assert quality["per_node"]["us"]["column_shapes"] > 0.85
    assert meta["privacy"]["quality_scores_are_dp"] is False
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_the_hub_reads_only_masked_fixed_size_vectors(root: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []
    real_aggregate = secure_agg.aggregate

    def spy(uploads: list[np.ndarray]) -> np.ndarray:
        seen.extend(uploads)
        return real_aggregate(uploads)

    monkeypatch.setattr(secure_agg, "aggregate", spy)
    federated_synthesis(["us", "eu"], "patient_genomic_data", 100, 3.0, root=root,
                        out_dir=root / "spy", quality=False)
    bins = 56 + 3 + 3 + 3 + 40 + 2
    assert sorted(len(u) for u in seen) == [15, 15, bins, bins]  # never a row count
    for upload in seen:  # masked: uniform 64-bit words, not small counts
        assert np.median(upload.astype(np.float64)) > 2.0**50


def test_command_line_and_its_errors(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = root / "cli"
    assert main(["--root", str(root), "--nodes", "us,eu", "--table", "patient_genomic_data",
                 "--rows", "500", "--epsilon", "1", "--out", str(out), "--no-quality"]) == 0
    printed = capsys.readouterr().out
    assert "charged again" in printed and (out / "patient_genomic_data.synthetic.csv").exists()
    assert main(["--root", str(root), "--nodes", "us,eu", "--table", "nope", "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "fix:" in err and "\n" not in err
    assert main(["--root", str(root), "--nodes", "us,zz", "--out", str(out)]) == 2
    assert "zz" in capsys.readouterr().err
    assert main(["--root", str(root), "--nodes", "us,eu", "--rows", "0", "--out",
                 str(out)]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the node's cap is its policy, not a hub option
        main(["--root", str(root), "--nodes", "us,eu", "--node-max-epsilon", "100"])
    capsys.readouterr()

    def releases() -> int:
        with LocalNode("us", root).open_warehouse(create=False) as warehouse:
            return int(warehouse.query("SELECT count(*) FROM federation_odometer")
                       .column(0)[0].as_py())

    before = releases()
    assert main(["--root", str(root), "--nodes", "us", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs at least 2 nodes" in err
    assert releases() == before


def test_federate_synth_runs_the_command(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workloads.cli import main

    assert main(["federate", "synth", "--root", str(root), "--nodes", "us,eu", "--rows", "50",
                 "--epsilon", "2", "--out", str(root / "reg"), "--no-quality"]) == 0
    assert "wrote 50 synthetic rows" in capsys.readouterr().out
    assert LocalNode("us", root).warehouse_path.exists()
