"""asyncio-native API over the same engine as RaftServer.

    async with easyraft.aio.RaftNode(config, callbacks) as n:
        term, index = await n.propose(b"...")

The node runs on the caller's running loop; callbacks still run on the
node's applier thread.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from easyraft.callbacks import adapt
from easyraft.config import Config
from easyraft.node import Node


class RaftNode:
    """A raft member on the current asyncio loop."""

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike[str],
                 callbacks: Any, *, ctx: Any = None) -> None:
        self.config = Config.load(config)
        self.node = Node(self.config, adapt(callbacks, ctx))

    async def start(self) -> None:
        await self.node.start()
        if self.config.boostrap_timeout > 0:
            await self.node.wait_leader(self.config.boostrap_timeout)

    async def stop(self) -> None:
        await self.node.stop()

    async def __aenter__(self) -> RaftNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def propose(self, data: bytes, timeout: float | None = None) -> tuple[int, int]:
        """Propose and wait until committed and applied here: (term, index)."""
        return await self.node.propose_and_wait(data, timeout)

    async def propose_nowait(self, data: bytes, timeout: float | None = None) -> None:
        """Hand data to raft; return once accepted for replication."""
        await self.node.propose(data, None, timeout)

    async def read_barrier(self, timeout: float | None = None) -> int:
        return await self.node.read_barrier(timeout)

    async def add_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        await self.node.add_server(node_id, url, timeout)

    async def remove_server(self, node_id: int, timeout: float | None = None) -> None:
        await self.node.remove_server(node_id, timeout)

    async def change_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        await self.node.change_server(node_id, url, timeout)

    async def transfer_leadership(self, node_id: int, timeout: float | None = None) -> None:
        await self.node.transfer_leadership(node_id, timeout)

    async def snapshot(self, timeout: float | None = None) -> int:
        return await self.node.snapshot(timeout)

    async def wait_leader(self, timeout: float) -> int:
        return await self.node.wait_leader(timeout)

    def status(self) -> dict[str, Any]:
        return self.node.status()

    def peers_status(self) -> list[dict[str, Any]]:
        return self.node.peers_status()
