"""The command line: a spec file and flags give the same fit; results.json, the Markdown
report and the forest plot are written; a bad spec is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workloads.cli import main


def test_fit_writes_results_report_and_plot(
    cli_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "variant_brca1"], "categorical": {"variant_apoe4": "0"},
        "cohort": "age >= 30"}))
    before = spec.read_bytes()
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"age": 0.03, "variant_brca1": 0.8}))
    out, report = tmp_path / "results.json", tmp_path / "out" / "report.md"
    code = main(["analysis", "fit", "--spec", str(spec), "--root", str(cli_root),
                 "--nodes", "us,eu,sg", "--out", str(out), "--report", str(report),
                 "--pooled", "--per-node", "--truth", str(truth)])
    assert code == 0
    assert spec.read_bytes() == before  # the user's file is read, never changed
    results = json.loads(out.read_text())
    assert results["converged"] is True
    assert results["rows_per_node"] == {"masked sum of eu, sg, us": results["n"]}
    terms = {t["term"]: t for t in results["terms"]}
    assert "odds_ratio" in terms["age"] and "odds_ratio" not in terms["intercept"]
    pooled = results["comparisons"]["pooled (statsmodels)"]
    assert pooled["age"][0] == pytest.approx(terms["age"]["estimate"], abs=1e-6)
    text = report.read_text()
    assert "| variant_apoe4[1] |" in text and "report_forest.png" in text
    assert "sg alone" in text and "true value" in text
    assert (report.parent / "report_forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Flags alone give the same model (flags override file keys where both are given).
    code = main(["analysis", "fit", "--table", "patient_genomic_data", "--outcome",
                 "diagnosis_cancer", "--covariates", "age,variant_brca1", "--categorical",
                 "variant_apoe4:0", "--cohort", "age >= 30", "--root", str(cli_root),
                 "--nodes", "us,eu,sg", "--out", str(tmp_path / "flags.json")])
    assert code == 0
    flags = json.loads((tmp_path / "flags.json").read_text())
    # (DuckDB's parallel sums may differ in the last bit between runs.)
    assert [t["estimate"] for t in flags["terms"]] == pytest.approx(
        [t["estimate"] for t in results["terms"]], rel=1e-12)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--table", "patient_genomic_data", "--outcome", "diagnosis_cancer",
          "--covariates", "patient_id"], "patient_id of patient_genomic_data is not releasable"),
        (["--table", "patient_genomic_data", "--outcome", "diagnosis_cancer",
          "--cohort", "1=1; DROP TABLE patient_genomic_data"],
         "cohort: unexpected '; DROP TABLE' at character 4"),
        (["--table", "patient_genomic_data", "--outcome", "diagnosis_cancer",
          "--covariates", "age", "--max-iter", "1"], "no convergence after 1 rounds"),
        (["--outcome", "diagnosis_cancer"], "no analysis given; fix"),
    ],
)
def test_errors_are_one_line_with_exit_2(
    cli_root: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["analysis", "fit", *argv, "--root", str(cli_root), "--nodes", "us,eu,sg"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and message in err and "fix" in err
    assert len(err.splitlines()) == 1


def test_nodes_lists_tables_and_rows(
    cli_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analysis", "nodes", "--root", str(cli_root)]) == 0
    out = capsys.readouterr().out
    assert "us:" in out and "sg:" in out and "6,000 rows" in out


def test_unwritable_out_is_one_line(
    cli_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["analysis", "fit", "--table", "patient_genomic_data", "--outcome",
                 "diagnosis_cancer", "--root", str(cli_root), "--nodes", "us,eu,sg",
                 "--out", str(blocker / "results.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot write") and "fix" in err
