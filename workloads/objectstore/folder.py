"""A local folder as an object store (the local node's bucket)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workloads.contracts.errors import UserError


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise UserError(f"object key {key!r} escapes the store {self.root}; fix: name an "
                            f"object inside it (a key relative to {self.root})")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and ".tmp-" not in k)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def download(self, key: str, dest: Path) -> Path:
        if not self.exists(key):
            raise UserError(f"no object {self.uri(key)}; fix: check the key or upload it first")
        shutil.copyfile(self._path(key), dest)
        return dest

    def upload(self, src: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def move(self, src: str, dst: str) -> None:
        target = self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(src), target)
