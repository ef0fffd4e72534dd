"""A local node's key: created owner-only, refused when others can read it, or from the env."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode, key_env_var


def rows(ids: list[str]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "patient_id": ids,
            "age": [40] * n,
            "variant_brca1": [0] * n,
            "variant_tp53": [1] * n,
            "variant_apoe4": [2] * n,
            "bmi": [25.5] * n,
            "diagnosis_cancer": [0] * n,
        }
    )


def test_key_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    node = LocalNode("us", tmp_path)
    key = node.key()
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(node.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(node.key_path.parent.stat().st_mode) == 0o700
    assert node.key() == key  # read back, not regenerated
    assert LocalNode("eu", tmp_path).key() != key  # every node has its own key


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    node = LocalNode("us", tmp_path)
    node.key()
    os.chmod(node.key_path, 0o640)
    with pytest.raises(UserError, match=r"readable by others.*chmod 600"):
        node.key()
    with pytest.raises(UserError, match="readable by others"):
        node.open_warehouse()


def test_env_var_key_is_used_and_no_key_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_hex(32)
    monkeypatch.setenv(key_env_var("us"), key)
    node = LocalNode("us", tmp_path)
    with node.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, rows(["US-0001"]))
    assert not node.key_path.exists()
    with node.open_warehouse(create=False) as wh:
        ref = wh.table_ref(PATIENT_GENOMIC_DATA)
        assert wh.query(f"SELECT count(*) FROM {ref}")[0][0].as_py() == 1

    # Without the variable (and no key file) the data cannot be opened, and no new
    # key is invented for an existing warehouse.
    monkeypatch.delenv(key_env_var("us"))
    with pytest.raises(UserError, match="has no key"):
        node.open_warehouse()
    assert not node.key_path.exists()


def test_malformed_env_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(key_env_var("us"), "not-a-key")
    with pytest.raises(UserError, match="64 lowercase hex"):
        LocalNode("us", tmp_path).key()


def test_invalid_node_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="node name 'US!' is not valid"):
        LocalNode("US!", tmp_path)


def test_missing_warehouse_without_create_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="generate --node eu"):
        LocalNode("eu", tmp_path).open_warehouse(create=False)
