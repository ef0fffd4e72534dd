"""A node on this machine: a folder for its warehouse and bucket, and its own key.

The key is the local stand-in for the node's Cloud KMS key: 256 random bits, created on
first use in a key folder kept apart from the data (so copying a node's folder does not
copy its key), readable by the owner only; or given in SOVEREIGN_NODE_KEY_<NODE>.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from workloads.contracts.errors import UserError
from workloads.contracts.nodes import NODE_NAME, NODE_NAME_RULE
from workloads.objectstore.folder import FolderStore
from workloads.warehouse.base import Warehouse
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

DEFAULT_ROOT = Path("local")  # where the CLI keeps local nodes unless told otherwise

KEY_ENV_PREFIX = "SOVEREIGN_NODE_KEY_"
_KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def key_env_var(node: str) -> str:
    return KEY_ENV_PREFIX + node.upper()


@dataclass(frozen=True)
class LocalNode:
    name: str
    root: Path

    def __post_init__(self) -> None:
        if not NODE_NAME.match(self.name):
            raise UserError(
                f"node name {self.name!r} is not valid; fix: use {NODE_NAME_RULE} "
                "(e.g. us, eu, sg)"
            )

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def warehouse_path(self) -> Path:
        return self.folder / "warehouse.duckdb"

    @property
    def bucket(self) -> Path:
        """The node's object store (stand-in for its regional buckets)."""
        return self.folder / "bucket"

    @property
    def key_path(self) -> Path:
        return self.root / ".keys" / f"{self.name}.key"

    def key(self, *, create: bool = True) -> str:
        from_env = os.environ.get(key_env_var(self.name))
        if from_env is not None:
            return _checked_key(from_env.strip(), key_env_var(self.name))
        if self.key_path.exists():
            mode = stat.S_IMODE(self.key_path.stat().st_mode)
            if mode & 0o077:
                raise UserError(
                    f"key file {self.key_path} is readable by others (mode {mode:o}); "
                    f"fix: chmod 600 {self.key_path}"
                )
            return _checked_key(self.key_path.read_text().strip(), str(self.key_path))
        if not create:
            raise UserError(
                f"node {self.name!r} has no key at {self.key_path} and {key_env_var(self.name)} "
                f"is not set; fix: set it to the node's key"
            )
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_hex(32)
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key

    def store(self, *, create: bool = True) -> FolderStore:
        """The node's bucket, every object sealed with a key derived from the node's key."""
        key = self.key(create=create and not self.warehouse_path.exists())
        return FolderStore(self.bucket, bytes.fromhex(key))

    def open_warehouse(self, *, create: bool = True) -> DuckDBWarehouse:
        if not create and not self.warehouse_path.exists():
            raise UserError(
                f"node {self.name!r} has no warehouse at {self.warehouse_path}; "
                f"fix: load data into it first (python -m workloads generate --node {self.name})"
            )
        # A warehouse that exists without its key must not get a fresh (wrong) one.
        key = self.key(create=create and not self.warehouse_path.exists())
        return DuckDBWarehouse(self.name, self.warehouse_path, key)

    def open_ledger(self, data: Warehouse) -> Warehouse:
        """Where the federation guard keeps its odometer and release log: the node's own
        encrypted warehouse, the connection already open (one writer per database)."""
        return data


def _checked_key(key: str, source: str) -> str:
    if not _KEY_PATTERN.match(key):
        raise UserError(f"{source}: a node key is 64 lowercase hex characters (256 bits)")
    return key
