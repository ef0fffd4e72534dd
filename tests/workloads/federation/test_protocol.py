"""Federation messages: the wire format follows the Avro schema; bad messages are refused."""

from __future__ import annotations

import json

import pytest

from workloads.contracts.federation import SCHEMA_PATH
from workloads.federation.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_VALUES,
    Message,
    MessageRejectedError,
    decode,
)


def sample() -> Message:
    return Message(
        run_id="run1",
        round=3,
        node="us",
        algorithm="logreg",
        kind="result",
        masked=(-(2**63), 2**63 - 1, 0),
        params={"phase": "newton"},
    )


def test_round_trip_keeps_every_field() -> None:
    message = sample()
    decoded = decode(message.encode())
    assert decoded.masked == message.masked
    assert (decoded.run_id, decoded.round) == ("run1", 3)
    assert (decoded.node, decoded.kind) == ("us", "result")
    assert decoded.params == {"phase": "newton"}
    assert decoded.sent_at > 0


def test_encoding_has_exactly_the_schema_fields() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    record = json.loads(sample().encode())
    assert set(record) == {f["name"] for f in schema["fields"]}
    payload_schema = next(f for f in schema["fields"] if f["name"] == "payload")["type"]
    assert set(record["payload"]) == {f["name"] for f in payload_schema["fields"]}
    kinds = next(f for f in schema["fields"] if f["name"] == "kind")["type"]["symbols"]
    from workloads.federation.protocol import KINDS

    assert tuple(kinds) == KINDS


def _mutated(**changes: object) -> bytes:
    record = json.loads(sample().encode())
    for key, value in changes.items():
        if key in record["payload"]:
            record["payload"][key] = value
        else:
            record[key] = value
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_mutated(schema_version=2), "schema_version"),
        (_mutated(kind="gossip"), "kind"),
        (_mutated(round="3"), "round"),
        (_mutated(round=True), "round"),
        (_mutated(node="US; DROP"), "sender"),
        (_mutated(masked=[2**64]), "64-bit"),
        (_mutated(values=["1.0"]), "numbers"),
        (_mutated(values=[0.5] * (MAX_VALUES + 1)), "more than"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MessageRejectedError, match=reason):
        decode(data)


def test_missing_field_is_named() -> None:
    record = json.loads(sample().encode())
    del record["run_id"]
    with pytest.raises(MessageRejectedError, match="run_id"):
        decode(json.dumps(record).encode())
