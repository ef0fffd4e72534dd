"""A local folder as an object store (the local node's bucket), encrypted at rest.

With the node's key every object is sealed with AES-256-GCM in chunks (see crypto.py),
as CMEK seals a cloud bucket's objects: the folder holds no plaintext. Without a key it
is a plain folder - only for folders outside any node (a user's own files, exports the
user asked for, a task run against a scratch folder).

Writes go to a hidden `.tmp-*` name beside the target and are renamed into place when
complete, so readers see the old object or the whole new one; leftovers of killed
processes are removed by `clean_temporaries`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from workloads.contracts.errors import UserError
from workloads.objectstore.crypto import DecryptingReader, EncryptingWriter

TMP_MARK = ".tmp-"
_COPY_BLOCK = 1 << 20


class FolderStore:
    def __init__(self, root: Path, key: bytes | None = None) -> None:
        self.root = Path(root)
        self._key = key

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    @property
    def key_bytes(self) -> bytes | None:
        """The key to open this store in another process of the same node."""
        return self._key

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or path == self.root.resolve():
            raise UserError(f"object key {key!r} escapes the store {self.root}; fix: name an "
                            f"object inside it (a key relative to {self.root})")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and TMP_MARK not in k)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _missing(self, key: str) -> UserError:
        return UserError(f"no object {key!r} in {self.root}; fix: check the key or upload it "
                         "first")

    # -- streaming ----------------------------------------------------------------
    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """A file to write the object into; it appears (whole) only if the block completes."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}{TMP_MARK}{os.getpid()}-")
        raw = os.fdopen(fd, "wb")
        out: IO[bytes] = raw
        if self._key is not None:
            out = EncryptingWriter(raw, self._key, key)  # type: ignore[assignment]
        try:
            yield out
            out.close()
            raw.close()
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                out.close()
            raw.close()
            Path(tmp).unlink(missing_ok=True)
            raise

    def open_read(self, key: str) -> IO[bytes]:
        """The object's plaintext as a seekable file (decrypted chunk by chunk on read)."""
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        raw = open(path, "rb")  # noqa: SIM115 - the returned reader closes it
        if self._key is None:
            return raw
        try:
            return DecryptingReader(raw, self._key, key, str(path))  # type: ignore[return-value]
        except BaseException:
            raw.close()
            raise

    # -- whole objects --------------------------------------------------------------
    def download(self, key: str, dest: Path) -> Path:
        """Plaintext copy at dest (the caller keeps dest private and removes it)."""
        with self.open_read(key) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _COPY_BLOCK)
        return dest

    def upload(self, src: Path, key: str) -> None:
        with open(src, "rb") as f, self.open_write(key) as out:
            shutil.copyfileobj(f, out, _COPY_BLOCK)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as out:
            out.write(data)

    def write_new(self, key: str, data: bytes) -> None:
        # Sealed under the final name in a temporary file, then hard-linked into place:
        # link() fails if the name exists, so a record is never replaced (not even in a race).
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}{TMP_MARK}{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as raw:
                if self._key is None:
                    raw.write(data)
                else:
                    with EncryptingWriter(raw, self._key, key) as sealed:
                        sealed.write(data)
                raw.flush()
                os.fsync(raw.fileno())
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise UserError(f"{target} exists already and is never replaced; fix: write "
                                f"the record under a new key") from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            if isinstance(f, DecryptingReader):
                f.verify()
            return f.read()

    def copy(self, src: str, dst: str) -> None:
        """Copy an object (quarantine keeps the original where it is)."""
        with self.open_read(src) as f, self.open_write(dst) as out:
            shutil.copyfileobj(f, out, _COPY_BLOCK)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def clean_temporaries(self) -> builtins.list[Path]:
        """Remove `.tmp-<pid>-*` leftovers of writers that are gone; returns what was removed."""
        return clean_temporaries(self.root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove `.tmp-<pid>-*` files under folder whose writing process no longer runs."""
    removed: list[Path] = []
    if not folder.exists():
        return removed
    for path in folder.rglob(f"*{TMP_MARK}*"):
        pid_text = path.name.rpartition(TMP_MARK)[2].split("-", 1)[0]
        if not path.is_file() or (pid_text.isdigit() and _alive(int(pid_text))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
