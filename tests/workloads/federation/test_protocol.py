"""Messages: signed against the pinned roster, replays refused, hostile bytes rejected."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from workloads.federation import roster as rosters
from workloads.federation.identity import local_signer, signing_key_path, verify
from workloads.federation.protocol import (
    MAX_MESSAGE_BYTES,
    Message,
    MessageRejectedError,
    ReplayGuard,
    accept,
    decode,
)


@pytest.fixture
def pinned(tmp_path: Path) -> tuple[Path, rosters.Roster]:
    return tmp_path, rosters.write_local(tmp_path, ["us", "eu", "sg"])


def _signed(root: Path, sender: str, **fields: object) -> bytes:
    message = Message("run1", 3, sender, "glm", "masked", masked=(1, -2, 3), **fields)  # type: ignore[arg-type]
    return message.sign(local_signer(root, sender)).encode()


def test_a_signed_message_is_accepted_once(pinned: tuple[Path, rosters.Roster]) -> None:
    root, roster = pinned
    data = _signed(root, "eu")
    guard = ReplayGuard()
    message = accept(data, roster, guard)
    assert message.node == "eu" and message.masked == (1, -2, 3)
    with pytest.raises(MessageRejectedError, match="replay"):
        accept(data, roster, guard)


def test_forged_tampered_and_unknown_senders_are_refused(
    pinned: tuple[Path, rosters.Roster], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root, roster = pinned
    # An attacker's own key claiming to be eu (the old protocol took the name on trust).
    elsewhere = tmp_path_factory.mktemp("attacker")
    forged = Message("run1", 3, "eu", "glm", "masked", masked=(9,)).sign(
        local_signer(elsewhere, "eu")
    )
    with pytest.raises(MessageRejectedError, match="does not verify"):
        accept(forged.encode(), roster, ReplayGuard())
    # A genuine message with one value changed in transit.
    record = json.loads(_signed(root, "eu"))
    record["payload"]["masked"][0] = 2
    with pytest.raises(MessageRejectedError, match="does not verify"):
        accept(json.dumps(record).encode(), roster, ReplayGuard())
    # A node not in the roster, with a perfectly good key of its own.
    stranger = Message("run1", 3, "jp", "glm", "masked").sign(local_signer(root, "jp"))
    with pytest.raises(MessageRejectedError, match="does not verify"):
        accept(stranger.encode(), roster, ReplayGuard())


def test_expired_and_overlong_messages_are_refused(pinned: tuple[Path, rosters.Roster]) -> None:
    root, _ = pinned
    message = decode(_signed(root, "us"))
    later = int(time.time() * 1000) + 3_600_000
    with pytest.raises(MessageRejectedError, match="expired"):
        ReplayGuard().check(message, now_ms=later)
    with pytest.raises(MessageRejectedError, match="lifetime"):
        ReplayGuard().check(
            Message("r", 1, "us", "glm", "masked", nonce="a" * 32, sent_at=0,
                    expires_at=10**13), now_ms=1
        )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"schema_version":' + b"9" * 400 + b"}", "digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"a":{"b":{"c":{"d":{"e":1}}}}}', "nested"),
        (b'{"schema_version": NaN}', "not a number"),
        (b'{"schema_version": Infinity}', "not a number"),
        (b'{"schema_version": 1e999}', "not finite"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_hostile_bytes_are_rejected_not_crashing(data: bytes, reason: str) -> None:
    with pytest.raises(MessageRejectedError, match=reason):
        decode(data)


def test_non_finite_and_huge_values_are_rejected(pinned: tuple[Path, rosters.Roster]) -> None:
    root, _ = pinned
    record = json.loads(_signed(root, "us"))
    record["payload"]["values"] = [1e300]
    with pytest.raises(MessageRejectedError, match="values"):
        decode(json.dumps(record).encode())
    with pytest.raises(MessageRejectedError, match="non-finite"):
        Message("r", 1, "us", "glm", "release", values=(float("nan"),)).encode()
    record["payload"]["values"] = []
    record["payload"]["masked"] = [2**64]
    with pytest.raises(MessageRejectedError, match="64-bit"):
        decode(json.dumps(record).encode())


def test_local_signing_keys_are_private_and_pinned(pinned: tuple[Path, rosters.Roster]) -> None:
    root, roster = pinned
    path = signing_key_path(root, "us")
    assert path.stat().st_mode & 0o777 == 0o600
    assert root / "us" not in path.parents  # not inside the node folder
    signer = local_signer(root, "us")
    assert roster.key_of("us") == signer.public_hex()
    assert verify(signer.public_hex(), b"x", signer.sign(b"x"))
    assert rosters.write_local(root, ["us", "eu", "sg"]) == roster  # re-run changes nothing
    path.unlink()
    local_signer(root, "us")  # a new key for us ...
    with pytest.raises(Exception, match="no longer matches the roster"):
        rosters.write_local(root, ["us"])  # ... is never silently re-pinned


class _StandInKms:
    """The KMS client's interface (get_public_key, asymmetric_sign) over a local Ed25519
    key: checks KmsSigner's calls and checks, not Cloud KMS itself (untested here: IAM,
    the HSM, the real service's responses)."""

    def __init__(self, root: Path) -> None:
        import google_crc32c
        from cryptography.hazmat.primitives import serialization

        self.key = local_signer(root, "kms").key
        self.crc = google_crc32c.value
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        self.requests: list[dict[str, object]] = []

    def get_public_key(self, request: dict[str, str]) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(pem=self.pem, algorithm=SimpleNamespace(name="EC_SIGN_ED25519"))

    def asymmetric_sign(self, request: dict[str, object]) -> object:
        from types import SimpleNamespace

        self.requests.append(request)
        data = request["data"]
        assert isinstance(data, bytes) and request["data_crc32c"] == self.crc(data)
        signature = self.key.sign(data)
        return SimpleNamespace(signature=signature, signature_crc32c=self.crc(signature),
                               verified_data_crc32c=True, name=request["name"])


def test_kms_signer_signs_raw_data_with_integrity_checks(tmp_path: Path) -> None:
    from workloads.federation.identity import KmsSigner

    kms = _StandInKms(tmp_path)
    version = "projects/p/locations/l/keyRings/r/cryptoKeys/federation-signing/cryptoKeyVersions/1"
    signer = KmsSigner(version, client=kms)
    message = Message("r", 1, "us", "glm", "masked").sign(signer)
    assert verify(signer.public_hex(), message.signed_payload(), bytes.fromhex(message.signature))
    assert kms.requests[0]["name"] == version
