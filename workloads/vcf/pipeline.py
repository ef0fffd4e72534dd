"""One task: a raw VCF shard -> validated, split, annotated Parquet in the staging store.

The outputs of a file live under staging/<sha256 of the file>/ and `manifest.json` is
written last, so a retried task finds a finished shard and stops, and a half-finished
one is simply redone. A file the pipeline refuses is moved to quarantine/ beside a JSON
reason (file, line, reason, time) and nothing of it reaches staging.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import tempfile
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue

import pyarrow as pa
import pyarrow.parquet as pq

from workloads.contracts.errors import UserError
from workloads.objectstore.base import ObjectStore
from workloads.vcf.columnar import VariantConverter
from workloads.vcf.normalise import normalise
from workloads.vcf.reference import GeneIndex
from workloads.vcf.validate import VcfInputError, validate_vcf

log = logging.getLogger(__name__)
QUARANTINE = "quarantine/"
STAGING = "staging/"
INDEX_SUFFIXES = (".csi", ".tbi")


@dataclass(frozen=True)
class ShardResult:
    key: str
    status: str  # staged | already-staged | quarantined
    fingerprint: str = ""
    variant_rows: int = 0
    samples: int = 0
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def staged_keys(fp: str) -> dict[str, str]:
    base = f"{STAGING}{fp}/"
    return {"variants": base + "variants.parquet", "apoe": base + "apoe.parquet",
            "manifest": base + "manifest.json"}


def convert_file(
    src: Path,
    out_dir: Path,
    *,
    fp: str,
    genes: GeneIndex,
    known_samples: Collection[str] | None = None,
    name: str | None = None,
    threads: int = 0,
) -> tuple[Path, Path, int, int]:
    """Validate, split and convert one local VCF; returns (variants, apoe, rows, samples).

    The validation pass runs in a second process while this one splits and converts
    (pure Python holds the GIL, so a thread would not overlap); nothing is returned -
    so nothing can be staged - unless it passed. Its error wins over bcftools' own, as
    it names the line.
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        checked = pool.submit(validate_vcf, src, known_samples=known_samples, name=name)
        try:
            split = normalise(src, out_dir / "split.bcf", threads=threads)
            converter = VariantConverter(split, genes, fp)
            variants = out_dir / "variants.parquet"
            tmp = out_dir / "variants.parquet.tmp"
            write_parquet(converter.batches(), converter.schema, tmp)
        except Exception:
            checked.result()  # raises the validation error if there is one
            raise
        summary = checked.result()
    tmp.replace(variants)
    split.unlink()
    apoe = out_dir / "apoe.parquet"
    pq.write_table(converter.apoe.table(fp), apoe)
    return variants, apoe, converter.rows, len(summary.samples)


def write_parquet(batches: Iterator[pa.RecordBatch], schema: pa.Schema, path: Path) -> None:
    """Write batches while the next ones are built: Parquet encoding releases the GIL, so
    a writer thread overlaps it with conversion; at most two batches wait (flat memory)."""
    queue: Queue[pa.RecordBatch | None] = Queue(maxsize=2)
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            with pq.ParquetWriter(path, schema, compression="zstd", store_schema=False) as writer:
                while (batch := queue.get()) is not None:
                    writer.write_batch(batch)
        except BaseException as exc:
            failure.append(exc)
            while queue.get() is not None:  # keep the producer from blocking
                pass

    writer = threading.Thread(target=drain, name="parquet-writer", daemon=True)
    writer.start()
    try:
        for batch in batches:
            queue.put(batch)
    finally:
        queue.put(None)
        writer.join()
    if failure:
        raise failure[0]


def quarantine(store: ObjectStore, key: str, error: VcfInputError) -> None:
    """Move the file (and its index) aside with a JSON reason; the reason is written first."""
    reason = {"file": store.uri(key), "line": error.line, "reason": error.reason,
              "message": str(error), "time": datetime.now(UTC).isoformat()}
    store.write_bytes(f"{QUARANTINE}{key}.reason.json", json.dumps(reason, indent=2).encode())
    for suffix in INDEX_SUFFIXES:
        if store.exists(key + suffix):
            store.move(key + suffix, f"{QUARANTINE}{key}{suffix}")
    store.move(key, f"{QUARANTINE}{key}")


def process_shard(
    inputs: ObjectStore,
    key: str,
    staging: ObjectStore,
    *,
    genes: GeneIndex | None = None,
    known_samples: Collection[str] | None = None,
    threads: int = 0,
) -> ShardResult:
    """The Batch task body for one input object."""
    genes = genes or GeneIndex.from_bed()
    with tempfile.TemporaryDirectory(prefix="vcf-task-") as tmp:
        work = Path(tmp)
        local = inputs.download(key, work / Path(key).name)
        fp = fingerprint(local)
        keys = staged_keys(fp)
        if staging.exists(keys["manifest"]):
            done = json.loads(staging.read_bytes(keys["manifest"]))
            log.info("%s: already staged as %s", key, fp)
            return ShardResult(key, "already-staged", fp, done["variant_rows"], done["samples"])
        try:
            variants, apoe, rows, samples = convert_file(
                local, work, fp=fp, genes=genes, known_samples=known_samples,
                name=inputs.uri(key), threads=threads)
        except VcfInputError as exc:
            quarantine(inputs, key, exc)
            log.warning("quarantined %s: %s", key, exc)
            return ShardResult(key, "quarantined", fp, reason=str(exc))
        staging.upload(variants, keys["variants"])
        staging.upload(apoe, keys["apoe"])
        result = ShardResult(key, "staged", fp, rows, samples)
        manifest = {**asdict(result), "source": inputs.uri(key), "variants": keys["variants"],
                    "apoe": keys["apoe"]}
        staging.write_bytes(keys["manifest"], json.dumps(manifest, sort_keys=True).encode())
        return result


def read_manifest(staging: ObjectStore, fp: str) -> dict[str, object]:
    key = staged_keys(fp)["manifest"]
    if not staging.exists(key):
        raise UserError(f"{staging.uri(key)} does not exist; fix: process the file first")
    manifest: dict[str, object] = json.loads(staging.read_bytes(key))
    return manifest
