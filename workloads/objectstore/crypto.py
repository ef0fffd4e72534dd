"""Objects encrypted at rest with the node's key: AES-256-GCM in chunks (STREAM).

The local stand-in for a bucket's CMEK. Each object starts with a header (magic, format
version and a random 16-byte salt); its own AES-256 key is derived from the node key
with HKDF-SHA256 over that salt, so no two objects share a key and nonces can simply
count. The plaintext is cut into 1 MiB chunks; chunk i is sealed with nonce = i (11
bytes) + a "last chunk" flag byte, and the header and the object's key (its name in the
store) as associated data - the construction of Hoang et al.'s STREAM (as in Tink's
streaming AEAD). Hence: a flipped bit, reordered or dropped chunks, a truncated object
(even at a chunk boundary) and an object copied under another name all fail to decrypt,
and readers can seek: chunk i sits at a fixed offset.
"""

from __future__ import annotations

import io
import os
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workloads.contracts.errors import UserError

MAGIC = b"SVO1"  # sovereign object, format 1
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + SALT_BYTES
CHUNK = 1 << 20
TAG = 16
_INFO = b"workloads.objectstore folder object key v1"


def object_key(node_key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(node_key)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class DecryptError(UserError):
    pass


class EncryptingWriter(io.RawIOBase):
    """A write-only file object: plaintext in, the sealed object out to `sink`."""

    def __init__(self, sink: IO[bytes], node_key: bytes, name: str) -> None:
        salt = os.urandom(SALT_BYTES)
        self._header = MAGIC + salt
        self._aad = self._header + name.encode()
        self._aead = object_key(node_key, salt)
        self._sink = sink
        self._sink.write(self._header)
        self._buffer = bytearray()
        self._index = 0
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._buffer += view
        # Keep up to one chunk back: the last chunk is sealed as such on close.
        if len(self._buffer) > CHUNK:
            whole = (len(self._buffer) - 1) // CHUNK * CHUNK
            buffered = memoryview(self._buffer)
            for start in range(0, whole, CHUNK):
                self._seal(bytes(buffered[start:start + CHUNK]), last=False)
            buffered.release()
            del self._buffer[:whole]
        self._written += len(view)
        return len(view)

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        self._sink.write(self._aead.encrypt(_nonce(self._index, last), chunk, self._aad))
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer = bytearray()
        super().close()


class DecryptingReader(io.RawIOBase):
    """A seekable read-only file object over a sealed object (Parquet readers seek)."""

    def __init__(self, source: IO[bytes], node_key: bytes, name: str, label: str) -> None:
        self._source = source
        self._label = label
        header = source.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
            raise DecryptError(
                f"{label}: not an encrypted object of this store; fix: write objects through "
                "the node's object store (python -m workloads ...), not by copying files in")
        self._aad = header + name.encode()
        self._aead = object_key(node_key, header[len(MAGIC):])
        sealed = source.seek(0, io.SEEK_END) - HEADER_BYTES
        self._chunks = max(1, -(-sealed // (CHUNK + TAG)))
        self._size = sealed - self._chunks * TAG
        if self._size < 0:
            raise self._damaged()
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def _damaged(self) -> DecryptError:
        return DecryptError(
            f"{self._label}: cannot decrypt (damaged, truncated, renamed or sealed with another "
            "node's key); fix: restore the object, or open it with the node it belongs to")

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._source.seek(HEADER_BYTES + index * (CHUNK + TAG))
        sealed = self._source.read(CHUNK + TAG)
        try:
            plain = self._aead.decrypt(
                _nonce(index, index == self._chunks - 1), sealed, self._aad)
        except InvalidTag:
            raise self._damaged() from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self._pos < self._size:
            index, skip = divmod(self._pos, CHUNK)
            piece = self._chunk(index)[skip:skip + len(out) - done]
            out[done:done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        buffer = bytearray(max(0, min(size, self._size - self._pos)))
        n = self.readinto(buffer)
        return bytes(buffer[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    def verify(self) -> None:
        """Authenticate every chunk (the last one proves the object is whole)."""
        for index in range(self._chunks):
            self._chunk(index)

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()
