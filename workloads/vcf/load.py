"""Load a staged shard into a DuckDB node warehouse, at most once per file.

The rows, the file's APOE genotypes and its ledger entry (vcf_loads, keyed by the
file's sha256) are written in one transaction, each guarded by "fingerprint not in the
ledger": a file loaded twice leaves one copy, and a failure leaves nothing. DuckDB lets
one process write a database file, so loads run in the coordinating process one after
another while the conversion runs in parallel tasks (see workloads/batch/local.py).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.objectstore.base import ObjectStore
from workloads.objectstore.folder import FolderStore
from workloads.vcf.pipeline import read_manifest, staged_keys
from workloads.warehouse.base import Warehouse


@dataclass(frozen=True)
class LoadOutcome:
    fingerprint: str
    loaded: bool  # False: the ledger already had the file
    variant_rows: int


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _local(store: ObjectStore, key: str, work: Path) -> Path:
    if isinstance(store, FolderStore):
        return Path(store.uri(key))
    return store.download(key, work / Path(key).name)


def is_loaded(warehouse: Warehouse, fp: str) -> bool:
    ledger = warehouse.table_ref(VCF_LOADS)
    found = warehouse.query(f"SELECT count(*) AS n FROM {ledger} WHERE fingerprint = ?", [fp])
    return bool(found.column("n")[0].as_py())


def load_staged(warehouse: Warehouse, staging: ObjectStore, fp: str) -> LoadOutcome:
    warehouse.ensure_tables([PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS])
    if is_loaded(warehouse, fp):
        return LoadOutcome(fp, False, 0)
    manifest = read_manifest(staging, fp)
    keys = staged_keys(fp)
    with tempfile.TemporaryDirectory(prefix="vcf-load-") as tmp:
        variants = _local(staging, keys["variants"], Path(tmp))
        apoe = _local(staging, keys["apoe"], Path(tmp))
        ledger = warehouse.table_ref(VCF_LOADS)
        fresh = f"NOT EXISTS (SELECT 1 FROM {ledger} WHERE fingerprint = {_sql_text(fp)})"
        rows = int(str(manifest["variant_rows"]))
        script = ";\n".join([
            "BEGIN TRANSACTION",
            f"INSERT INTO {warehouse.table_ref(PROCESSED_VARIANTS)} BY NAME "
            f"SELECT * FROM read_parquet({_sql_text(str(variants))}) WHERE {fresh}",
            f"INSERT INTO {warehouse.table_ref(SAMPLE_APOE)} BY NAME "
            f"SELECT * FROM read_parquet({_sql_text(str(apoe))}) WHERE {fresh}",
            f"INSERT INTO {ledger} (fingerprint, source, variant_rows, loaded_at) "
            f"SELECT {_sql_text(fp)}, {_sql_text(str(manifest['source']))}, {rows}, now() "
            f"WHERE {fresh}",
            "COMMIT",
        ])
        try:
            warehouse.query(script)
        except BaseException:
            with contextlib.suppress(Exception):  # no open transaction if BEGIN itself failed
                warehouse.query("ROLLBACK")
            raise
    return LoadOutcome(fp, True, rows)
