"""Splitting is bcftools' own `norm -m -any`: the golden answer from bcftools' test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from vcf_helpers import FIXTURES

from workloads.contracts.errors import UserError
from workloads.vcf.normalise import normalise


def _records(path: Path) -> list[str]:
    # bcftools stamps its own command line into the header: everything else must match.
    return [line for line in path.read_text().splitlines() if not line.startswith("##bcftools_")]


def test_split_reproduces_bcftools_golden_output(tmp_path: Path) -> None:
    out = normalise(FIXTURES / "bcftools_norm.split.vcf", tmp_path / "out.vcf", output_type="v")
    expected = _records(FIXTURES / "bcftools_norm.split.expected_m-.vcf")
    got = _records(out)
    assert got == expected
    assert sum(1 for line in got if not line.startswith("#")) == 30


def test_spanning_deletion_star_allele_is_its_own_record(tmp_path: Path) -> None:
    out = normalise(FIXTURES / "hail_split_test.vcf", tmp_path / "out.vcf", output_type="v")
    rows = [line.split("\t") for line in out.read_text().splitlines() if not line.startswith("#")]
    assert all("," not in row[4] for row in rows)  # biallelic everywhere
    star = [row for row in rows if row[4] == "*"]
    assert len(star) == 1 and star[0][1] == "1183"
    # Number=R AD keeps [ref, alt_i]; GT allele 2 (the *) became 1 in the * record.
    assert star[0][12].startswith("1/1:0,6:")


def test_unreadable_input_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vcf.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError, match="bcftools norm -m -any failed"):
        normalise(bad, tmp_path / "out.bcf")
