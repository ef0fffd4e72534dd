"""Google Cloud Storage as the object store (google-cloud-storage)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from google.cloud import storage  # type: ignore[attr-defined]

from workloads.contracts.errors import UserError


class GcsStore:
    """Objects under gs://bucket/prefix; the bucket's CMEK default key encrypts writes."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._bucket: Any = None

    @classmethod
    def from_uri(cls, uri: str, client: Any = None) -> GcsStore:
        rest = uri.removeprefix("gs://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UserError(f"{uri!r} names no bucket; fix: gs://<bucket>[/prefix]")
        return cls(bucket, prefix, client)

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            client = self._client or storage.Client()
            self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def list(self, prefix: str = "") -> list[str]:
        skip = len(self.prefix) + 1 if self.prefix else 0
        blobs = self.bucket.client.list_blobs(self.bucket_name, prefix=self._name(prefix))
        return sorted(b.name[skip:] for b in blobs)

    def exists(self, key: str) -> bool:
        return bool(self.bucket.blob(self._name(key)).exists())

    def download(self, key: str, dest: Path) -> Path:
        self.bucket.blob(self._name(key)).download_to_filename(str(dest))
        return dest

    def upload(self, src: Path, key: str) -> None:
        # A GCS object appears whole or not at all: the upload is atomic.
        self.bucket.blob(self._name(key)).upload_from_filename(str(src))

    def write_bytes(self, key: str, data: bytes) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(data)

    def write_new(self, key: str, data: bytes) -> None:
        # ifGenerationMatch=0: GCS creates the object only if no live object has the name.
        from google.api_core.exceptions import PreconditionFailed

        try:
            self.bucket.blob(self._name(key)).upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            raise UserError(f"{self.uri(key)} exists already and is never replaced; fix: "
                            f"write the record under a new key") from None

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.bucket.blob(self._name(key)).download_as_bytes())

    def open_read(self, key: str) -> IO[bytes]:
        reader: IO[bytes] = self.bucket.blob(self._name(key)).open("rb")
        return reader

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        # A resumable upload: the object is created only when the writer is closed, so on
        # failure it is left unfinished (an unfinished upload never becomes an object).
        writer: IO[bytes] = self.bucket.blob(self._name(key)).open("wb", ignore_flush=True)
        yield writer
        writer.close()

    def copy(self, src: str, dst: str) -> None:
        self.bucket.copy_blob(self.bucket.blob(self._name(src)), self.bucket, self._name(dst))

    def delete(self, key: str) -> None:
        self.bucket.blob(self._name(key)).delete()
