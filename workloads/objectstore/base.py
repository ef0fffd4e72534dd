"""The small interface the pipeline needs from a bucket; keys are '/'-separated paths.

Objects are encrypted at rest by the store itself (CMEK on GCS, the node's key in a
folder), so callers read and write plaintext and never place node data beside it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Protocol


class ObjectStore(Protocol):
    def uri(self, key: str) -> str:
        """Where the object lives, for messages and ledgers (gs://... or a file path)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under prefix, sorted."""
        ...

    def exists(self, key: str) -> bool: ...

    def open_read(self, key: str) -> IO[bytes]:
        """The object's bytes as a seekable file (Parquet readers seek)."""
        ...

    def open_write(self, key: str) -> AbstractContextManager[IO[bytes]]:
        """Stream an object in; it appears whole when the block exits, or not at all."""
        ...

    def download(self, key: str, dest: Path) -> Path:
        """Copy the object's plaintext to a local file (keep it private, remove it after)."""
        ...

    def upload(self, src: Path, key: str) -> None:
        """Write a local file to key; readers see the old object or the whole new one."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def write_new(self, key: str, data: bytes) -> None:
        """Create an object that must not exist yet (an audit record): never replaces one;
        raises UserError if the key is taken, even by a concurrent writer."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def copy(self, src: str, dst: str) -> None:
        """Copy an object (quarantine copies: the input stays where it was)."""
        ...

    def delete(self, key: str) -> None: ...


def open_store(location: str, key: bytes | None = None) -> ObjectStore:
    """gs://bucket[/prefix] -> GCS (CMEK); anything else is a local folder, encrypted with
    `key` when given (a node's bucket) or plain (a folder outside any node)."""
    if location.startswith("gs://"):
        from workloads.objectstore.gcs import GcsStore

        return GcsStore.from_uri(location)
    from workloads.objectstore.folder import FolderStore

    return FolderStore(Path(location), key)
