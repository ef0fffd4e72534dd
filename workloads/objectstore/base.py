"""The small interface the pipeline needs from a bucket; keys are '/'-separated paths."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    def uri(self, key: str) -> str:
        """Where the object lives, for messages and ledgers (gs://... or a file path)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under prefix, sorted."""
        ...

    def exists(self, key: str) -> bool: ...

    def download(self, key: str, dest: Path) -> Path:
        """Copy the object to a local file."""
        ...

    def upload(self, src: Path, key: str) -> None:
        """Write a local file to key; readers see the old object or the whole new one."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def move(self, src: str, dst: str) -> None:
        """Rename an object (quarantine)."""
        ...


def open_store(location: str) -> ObjectStore:
    """gs://bucket[/prefix] -> GCS; anything else is a local folder."""
    if location.startswith("gs://"):
        from workloads.objectstore.gcs import GcsStore

        return GcsStore.from_uri(location)
    from workloads.objectstore.folder import FolderStore

    return FolderStore(Path(location))
