"""A hub the test controls step by step: it signs what it likes with the hub's real key
and hands it straight to node workers (the attacker's seat: a malicious coordinator)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from workloads.federation import roster as rosters
from workloads.federation.identity import local_signer
from workloads.federation.protocol import Message, decode
from workloads.federation.roster import HUB
from workloads.federation.transport import InProcessBus
from workloads.federation.worker import NodeWorker
from workloads.local_node import LocalNode


class Driver:
    def __init__(self, root: Path, nodes: list[str]) -> None:
        self.root = root
        self.bus = InProcessBus(nodes)
        self.signer = local_signer(root, HUB)
        self.roster = rosters.load(root)
        self.workers = {n: NodeWorker.local(LocalNode(n, root), self.bus.node(n)) for n in nodes}
        self.step = 0

    def send(
        self, run_id: str, kind: str, algorithm: str, to: tuple[str, ...], **payload: Any
    ) -> dict[str, Message]:
        """Sign and deliver one hub step to `to`; each addressed node's decoded reply."""
        self.step += 1
        message = Message(run_id, self.step, HUB, algorithm, kind, to=to, **payload)
        data = message.sign(self.signer).encode()
        for name in to:
            if name in self.workers:  # the hub may name nodes that do not exist
                self.workers[name].handle(data)
        replies: dict[str, Message] = {}
        while not self.bus.uploads.empty():
            reply = decode(self.bus.uploads.get_nowait())
            replies[reply.node] = reply
        return replies

    def set_up(self, members: tuple[str, ...], run_id: str | None = None, slots: int = 4
               ) -> tuple[str, dict[str, Message]]:
        """Run set-up and share distribution honestly; returns the run id and the shares."""
        run_id = run_id or uuid.uuid4().hex[:12]
        keys = self.send(run_id, "setup", "secagg", members, params={"slots": str(slots)})
        adverts = {n: f"{m.keys['c']}:{m.keys['s']}:{m.keys['sig']}" for n, m in keys.items()}
        shares = self.send(run_id, "share", "secagg", members, keys=adverts)
        return run_id, shares


def routed(shares: dict[str, Message], members: tuple[str, ...]) -> dict[str, str]:
    return {
        f"{sender}>{recipient}": blob
        for sender, message in shares.items()
        for recipient, blob in message.blobs.items()
        if recipient in members
    }
