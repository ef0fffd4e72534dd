"""One task: a raw VCF shard -> validated, split, annotated Parquet in the staging store.

The input is only read: a user's file in place, an object of a bucket through a private
temporary copy. The outputs of a file live under staging/<sha256 of the file>/ and
`manifest.json` is written last, so a retried task finds a finished shard and stops, and
a half-finished one is simply redone. The manifest carries the load key, the sha256 of
the normalised records (the same records bgzipped or plain are one load). A file the
pipeline refuses is copied to quarantine/<sha256 of the file>/ in the node's bucket
beside a JSON reason (file, line, reason, time); nothing of it reaches staging.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import threading
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from workloads.children import child_pool
from workloads.contracts.errors import UserError
from workloads.objectstore.base import ObjectStore
from workloads.objectstore.folder import FolderStore
from workloads.vcf.columnar import VariantConverter
from workloads.vcf.normalise import split_stream
from workloads.vcf.reference import GeneIndex
from workloads.vcf.validate import VcfInputError, validate_vcf

log = logging.getLogger(__name__)
QUARANTINE = "quarantine/"
STAGING = "staging/"


@dataclass(frozen=True)
class ShardResult:
    key: str
    status: str  # staged | already-staged | quarantined
    fingerprint: str = ""  # the load key: sha256 of the normalised records
    variant_rows: int = 0
    samples: int = 0
    reason: str = ""
    staged_id: str = ""  # sha256 of the file's bytes: where its outputs are staged

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def fingerprint(path: Path) -> str:
    """sha256 of a file's bytes (names its staging folder; the load key is the records')."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def staged_keys(staged_id: str) -> dict[str, str]:
    base = f"{STAGING}{staged_id}/"
    return {"variants": base + "variants.parquet", "apoe": base + "apoe.parquet",
            "manifest": base + "manifest.json"}


def convert_file(
    src: Path,
    staging: ObjectStore,
    *,
    staged_id: str,
    genes: GeneIndex,
    known_samples: Collection[str] | None = None,
    name: str | None = None,
    threads: int = 0,
) -> tuple[int, int, str]:
    """Validate, split and convert one local VCF into the staging store (encrypted there);
    returns (variant rows, samples, content digest).

    Three things run at once, as in `bcftools norm | bcftools query`: the validation pass
    in a second process (pure Python holds the GIL, so a thread would not overlap),
    `bcftools norm` in a third, streaming split BCF through a pipe, and the conversion
    here (reading and building batches on this thread, writing Parquet on another: a
    third thread reading records would fight this one for the GIL, since htslib calls
    hold it while numpy releases and retakes it at every call).
    Nothing is committed to the store unless validation passed and bcftools succeeded.
    Errors name the first cause: the validation's (it names the line), then bcftools',
    then the conversion's. No plaintext temporary is written.
    """
    keys = staged_keys(staged_id)
    with child_pool(1) as pool, split_stream(src, threads=threads) as split:
        checked = pool.submit(validate_vcf, src, known_samples=known_samples, name=name)
        converter: VariantConverter | None = None
        try:
            converter = VariantConverter(split.take_fd(), genes, staged_id)
            with staging.open_write(keys["variants"]) as out:
                write_parquet(converter.batches(), converter.schema, out)
                split.check()  # the stream ended because bcftools finished, not failed
                summary = checked.result()  # commits the object only if validation passed
        except Exception:
            checked.result()  # raises the validation error if there is one
            split.check(timeout=1.0)  # then bcftools' own, if it has failed (it exits)
            raise
        finally:
            if converter is not None:
                converter.close()
    with staging.open_write(keys["apoe"]) as out:
        pq.write_table(converter.apoe.table(staged_id), out)
    return converter.rows, len(summary.samples), converter.content_digest


# Statistics only for the site columns (readers prune on position with them); on the
# ~10 leaf columns of every call they would cost a sixth of the write and help no query.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "store_schema": False}


def write_parquet(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, path: Path | IO[bytes]
) -> None:
    """Write batches while the next ones are built: Parquet encoding releases the GIL, so
    a writer thread overlaps it with conversion; one batch waits while one is written (flat
    memory: more would only hold memory, the writer is never starved for long)."""
    queue: Queue[pa.RecordBatch | None] = Queue(maxsize=1)
    failure: list[BaseException] = []
    stats = [f.name for f in schema if f.name != "call"]

    def drain() -> None:
        try:
            with pq.ParquetWriter(path, schema, write_statistics=stats,
                                  **PARQUET_OPTIONS) as writer:
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
            if failure:
                break
            queue.put(batch)
    finally:
        queue.put(None)
        writer.join()
    if failure:
        raise failure[0]


def quarantine_key(staged_id: str, name: str) -> str:
    return f"{QUARANTINE}{staged_id}/{Path(name).name}"


def quarantine(
    staging: ObjectStore, local: Path, source: str, staged_id: str, error: VcfInputError
) -> str:
    """Copy the refused file into the node's quarantine beside a JSON reason (written
    first); the input itself is never moved or changed. Returns the copy's key."""
    key = quarantine_key(staged_id, source)
    reason = {"file": source, "line": error.line, "reason": error.reason,
              "message": str(error), "time": datetime.now(UTC).isoformat(),
              "copy": staging.uri(key)}
    staging.write_bytes(f"{key}.reason.json", json.dumps(reason, indent=2).encode())
    staging.upload(local, key)
    return key


@contextlib.contextmanager
def readable_path(store: ObjectStore, key: str, work: Path) -> Iterator[Path]:
    """A local path htslib can read: a plain folder's file in place (read only), anything
    else (encrypted or remote) as a plaintext copy in the private `work` folder."""
    if isinstance(store, FolderStore) and not store.encrypted:
        path = Path(store.uri(key))
        if not path.is_file():
            raise UserError(f"{path}: no such VCF file; fix: pass an existing file")
        yield path
        return
    yield store.download(key, work / Path(key).name)


def process_shard(
    inputs: ObjectStore,
    key: str,
    staging: ObjectStore,
    *,
    genes: GeneIndex | None = None,
    known_samples: Collection[str] | None = None,
    threads: int = 0,
) -> ShardResult:
    """The Batch task body for one input: read it (never change it), stage its records."""
    genes = genes or GeneIndex.from_bed()
    source = inputs.uri(key)
    # mkdtemp makes the folder private (0700); it and any plaintext in it go at the end.
    with tempfile.TemporaryDirectory(prefix="vcf-task-") as tmp, \
            readable_path(inputs, key, Path(tmp)) as local:
        staged_id = fingerprint(local)
        keys = staged_keys(staged_id)
        if staging.exists(keys["manifest"]):
            done = json.loads(staging.read_bytes(keys["manifest"]))
            log.info("%s: already staged as %s", key, staged_id)
            return ShardResult(key, "already-staged", done["fingerprint"], done["variant_rows"],
                               done["samples"], staged_id=staged_id)
        try:
            rows, samples, digest = convert_file(
                local, staging, staged_id=staged_id, genes=genes,
                known_samples=known_samples, name=source, threads=threads)
        except VcfInputError as exc:
            copy = quarantine(staging, local, source, staged_id, exc)
            log.warning("quarantined %s (copy at %s): %s", source, staging.uri(copy), exc)
            return ShardResult(key, "quarantined", "", reason=str(exc), staged_id=staged_id)
        result = ShardResult(key, "staged", digest, rows, samples, staged_id=staged_id)
        manifest = {**asdict(result), "source": source, "variants": keys["variants"],
                    "apoe": keys["apoe"]}
        staging.write_bytes(keys["manifest"], json.dumps(manifest, sort_keys=True).encode())
        return result


def read_manifest(staging: ObjectStore, staged_id: str) -> dict[str, object]:
    key = staged_keys(staged_id)["manifest"]
    if not staging.exists(key):
        raise UserError(f"{staging.uri(key)} does not exist; fix: process the file first")
    manifest: dict[str, object] = json.loads(staging.read_bytes(key))
    return manifest
