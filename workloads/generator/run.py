"""Generate one node's patients in a single streaming pass into files and its warehouse.

Every batch goes to each file sink (in worker threads) and into the warehouse's MERGE as
it is produced; the files are renamed into place only after the warehouse transaction
commits, and nothing is kept if any step fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator.outputs import FILE_FORMATS, Sink, open_sink, writable_dir
from workloads.generator.profile import Profile
from workloads.generator.sampling import DEFAULT_CHUNK_ROWS, check_counts, generate_batches
from workloads.local_node import LocalNode
from workloads.warehouse.base import LoadResult

WAREHOUSE = "warehouse"
FORMATS = (*FILE_FORMATS, WAREHOUSE)
DEFAULT_FORMATS = FORMATS


@dataclass(frozen=True)
class GenerateResult:
    node: str
    rows: int
    files: dict[str, Path]  # format -> written file
    load: LoadResult | None  # what the warehouse MERGE did, if loaded


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise UserError(
            f"--formats {text!r}: unknown format {', '.join(unknown) or '(none given)'}; "
            f"fix: a comma-separated subset of {','.join(FORMATS)}"
        )
    return wanted


def default_out_dir(root: Path, node: str) -> Path:
    """The node's own bucket folder: its data stays inside the node."""
    return LocalNode(node, root).bucket / PATIENT_GENOMIC_DATA.name


def output_path(out_dir: Path, node: str, fmt: str) -> Path:
    return out_dir / f"{PATIENT_GENOMIC_DATA.name}_{node}.{fmt}"


def generate_node(
    profile: Profile,
    *,
    rows: int,
    seed: int,
    root: Path,
    out_dir: Path | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> GenerateResult:
    check_counts(rows=rows, seed=seed, chunk_rows=chunk_rows)
    node = LocalNode(profile.node, root)
    file_formats = [f for f in formats if f in FILE_FORMATS]
    folder = out_dir if out_dir is not None else default_out_dir(root, profile.node)
    if file_formats:
        writable_dir(folder)
    schema = PATIENT_GENOMIC_DATA.arrow_schema()
    batches = generate_batches(profile, rows, seed, chunk_rows=chunk_rows)
    sinks: list[Sink] = []
    load: LoadResult | None = None
    with tqdm(
        total=rows, unit="row", unit_scale=True, desc=f"generate {profile.node}",
        file=sys.stderr, disable=not progress,
    ) as bar, ThreadPoolExecutor(max_workers=max(1, len(file_formats))) as pool:
        writer = _BackgroundWriter(pool, sinks)
        try:
            for fmt in file_formats:
                sinks.append(open_sink(fmt, output_path(folder, profile.node, fmt), schema))
            stream = _fan_out(batches, writer, bar)
            if WAREHOUSE in formats:
                with node.open_warehouse() as warehouse:
                    load = warehouse.merge(PATIENT_GENOMIC_DATA, stream, label=str(profile.source))
            else:
                for _ in stream:
                    pass
            writer.wait()
        except BaseException:
            writer.wait(raise_errors=False)  # never close a file another thread writes
            for sink in sinks:
                sink.abort()
            raise
        for sink in sinks:
            sink.commit()
    files = {fmt: sink.path for fmt, sink in zip(file_formats, sinks, strict=True)}
    return GenerateResult(profile.node, rows, files, load)


class _BackgroundWriter:
    """Writes each batch to every sink in worker threads while the next batch is drawn.

    Arrow's CSV and Parquet writers release the GIL, so file output overlaps generation
    (and the warehouse load). Batches reach each sink in order: a batch is handed over
    only after every sink finished the previous one.
    """

    def __init__(self, pool: ThreadPoolExecutor, sinks: Sequence[Sink]) -> None:
        self._pool = pool
        self._sinks = sinks
        self._pending: list[Future[None]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        self.wait()
        self._pending = [self._pool.submit(sink.write, batch) for sink in self._sinks]

    def wait(self, *, raise_errors: bool = True) -> None:
        pending, self._pending = self._pending, []
        futures_wait(pending)
        if raise_errors:
            for future in pending:
                future.result()


def _fan_out(
    batches: Iterable[pa.RecordBatch], writer: _BackgroundWriter, bar: tqdm[Any]
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        writer.write(batch)
        bar.update(batch.num_rows)
        yield batch
    bar.set_postfix_str("finishing: warehouse MERGE / file commit")  # can take a while at 10M
