"""Long-term signing identities: every federation message is signed by its sender.

Locally a party's identity is an Ed25519 key in a file kept like a node's data key (in
`<root>/.keys/`, apart from the node folders, mode 0600, created on first use). In the
cloud it is a Cloud KMS asymmetric key of algorithm `SIGNING_ALGORITHM` (pure Ed25519,
declared by the node stack, usable only by the node's federation identity): `KmsSigner`
signs through `asymmetric_sign`. Both produce plain Ed25519 signatures, so one verifier
(`verify`, against the public keys pinned in the roster) serves both.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from workloads.contracts.errors import UserError
from workloads.contracts.federation import SIGNING_ALGORITHM


class Signer(Protocol):
    """Something that signs with a party's long-term key."""

    def public_hex(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def verify(public_hex: str, data: bytes, signature: bytes) -> bool:
    """True if `signature` is the Ed25519 signature of `data` by the key `public_hex`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        key.verify(signature, data)
    except (ValueError, InvalidSignature):
        return False
    return True


def _raw_public(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


@dataclass
class LocalSigner:
    """An Ed25519 key in a file (the local stand-in for the node's KMS signing key)."""

    key: Ed25519PrivateKey

    def public_hex(self) -> str:
        return _raw_public(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def signing_key_path(root: Path, party: str) -> Path:
    """Where a party's local signing key lives: beside the data keys, not in a node folder."""
    return root / ".keys" / f"{party}.signing.key"


def local_signer(root: Path, party: str, *, create: bool = True) -> LocalSigner:
    """The party's signing key, created (0600) on first use when `create`."""
    path = signing_key_path(root, party)
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise UserError(
                f"signing key {path} is readable by others (mode {mode:o}); fix: chmod 600 {path}"
            )
        try:
            raw = bytes.fromhex(path.read_text().strip())
            return LocalSigner(Ed25519PrivateKey.from_private_bytes(raw))
        except ValueError:
            raise UserError(
                f"signing key {path} is not 64 hex characters; fix: restore it from backup "
                f"(a new key needs a new roster entry)"
            ) from None
    if not create:
        raise UserError(
            f"{party!r} has no signing key at {path}; fix: create the local federation first "
            f"(python -m workloads federate roster --root {root})"
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(raw.hex() + "\n")
    return LocalSigner(key)


class KmsSigner:
    """Signs with a Cloud KMS key version (algorithm EC_SIGN_ED25519) via asymmetric_sign.

    `client` is a google.cloud.kms.KeyManagementServiceClient (created when not given).
    The private key never leaves KMS (HSM protection level); KMS signs the raw message
    (Ed25519 takes data, not a digest). Checked: the key's algorithm, and the CRC32C of the
    request and response (Google's recommended integrity checks).
    """

    def __init__(self, key_version: str, client: Any | None = None) -> None:
        if client is None:
            from google.cloud import kms

            client = kms.KeyManagementServiceClient()
        self.key_version = key_version
        self.client = client
        public = client.get_public_key(request={"name": key_version})
        algorithm = getattr(public.algorithm, "name", str(public.algorithm))
        if algorithm != SIGNING_ALGORITHM:
            raise UserError(
                f"KMS key {key_version} has algorithm {algorithm}, not {SIGNING_ALGORITHM}; "
                f"fix: point at the node stack's federation signing key"
            )
        loaded = serialization.load_pem_public_key(public.pem.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise UserError(f"KMS key {key_version} is not an Ed25519 key")
        self._public = _raw_public(loaded)

    def public_hex(self) -> str:
        return self._public

    def sign(self, data: bytes) -> bytes:
        response = self.client.asymmetric_sign(
            request={"name": self.key_version, "data": data, "data_crc32c": _crc32c(data)}
        )
        if not response.verified_data_crc32c or response.name != self.key_version:
            raise UserError(f"KMS signing with {self.key_version} was corrupted in transit")
        signature = bytes(response.signature)
        if int(response.signature_crc32c) != _crc32c(signature):
            raise UserError(f"KMS signature of {self.key_version} failed its CRC32C check")
        return signature


def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as KMS expects; google-crc32c comes with the Google clients."""
    import google_crc32c

    return int(google_crc32c.value(data))
