"""RaftServer: the synchronous facade over a Node.

Each RaftServer owns one event-loop thread (uvloop when installed) that runs
its Node, plus the Node's applier thread. Methods may be called from any
thread; they hand the work to the loop and wait for the answer.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from easyraft.callbacks import Callbacks, adapt
from easyraft.config import Config
from easyraft.errors import RaftTimeoutError, ServerStoppedError
from easyraft.node import Node

logger = logging.getLogger("easyraft.server")

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when available (and not disabled), else asyncio's."""
    if os.environ.get("EASYRAFT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
            pass
        else:
            return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


class RaftServer:
    """One member of a raft cluster, usable from plain threads.

    ``RaftServer(config, callbacks)`` opens storage, replays it (calling
    recover_from_snapshot and on_commit for what was committed before),
    starts the peer listener, then waits up to ``boostrap_timeout`` seconds
    for a leader (not finding one is not an error).
    """

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike[str],
                 callbacks: Any, *, ctx: Any = None) -> None:
        self.config = Config.load(config)
        self.callbacks: Callbacks = adapt(callbacks, ctx)
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"easyraft-loop-{self.config.cluster_id}-{self.config.id}",
            daemon=True)
        self.node = Node(self.config, self.callbacks)
        self._closed = False
        self._lock = threading.Lock()
        self._thread.start()
        try:
            self._call(self.node.start(), None)
        except BaseException:
            self._shutdown_loop()
            raise
        if self.config.boostrap_timeout > 0:
            self._call(self.node.wait_leader(self.config.boostrap_timeout), None)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self._closed and not self._thread.is_alive():
            coro.close()
            raise ServerStoppedError("server is deleted")
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:
            coro.close()
            raise ServerStoppedError("server is deleted") from None
        # The coroutine enforces `timeout` itself; the margin here only
        # guards against a wedged loop. (Wait first, then take the result:
        # RaftTimeoutError is a TimeoutError too and must pass through.)
        done, _ = concurrent.futures.wait([fut], None if timeout is None else timeout + 5.0)
        if not done:
            fut.cancel()
            raise RaftTimeoutError("the server's loop did not answer in time")
        return fut.result()

    def _shutdown_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    # --- lifecycle --------------------------------------------------------

    def close(self) -> None:
        """Stop the server and release its files and port. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self._thread.is_alive():
                self._call(self.node.stop(), 60.0)
        finally:
            self._shutdown_loop()

    stop = close

    def __enter__(self) -> RaftServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """close() was called (RAFT_DeleteRaftServer)."""
        return self._closed

    @property
    def stopped(self) -> bool:
        return self._closed or self.node.stopped.is_set()

    # --- operations -------------------------------------------------------

    def propose(self, data: bytes, timeout: float | None = None, *, size: int | None = None) -> None:
        """Hand data to raft for replication; raises if not accepted in time."""
        self._call(self.node.propose(data, size, timeout), timeout)

    def propose_and_wait(self, data: bytes, timeout: float | None = None) -> tuple[int, int]:
        """Propose and wait until committed and applied here: (term, index)."""
        return self._call(self.node.propose_and_wait(data, timeout), timeout)

    def read_barrier(self, timeout: float | None = None) -> int:
        """Wait for a linearizable read point (ReadIndex) to be applied here."""
        return self._call(self.node.read_barrier(timeout), timeout)

    def add_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        self._call(self.node.add_server(node_id, url, timeout), timeout)

    def add_learner(self, node_id: int, url: str, timeout: float | None = None) -> None:
        self._call(self.node.add_learner(node_id, url, timeout), timeout)

    def remove_server(self, node_id: int, timeout: float | None = None) -> None:
        self._call(self.node.remove_server(node_id, timeout), timeout)

    def change_server(self, node_id: int, url: str, timeout: float | None = None) -> None:
        self._call(self.node.change_server(node_id, url, timeout), timeout)

    def transfer_leadership(self, node_id: int, timeout: float | None = None) -> None:
        self._call(self.node.transfer_leadership(node_id, timeout), timeout)

    def snapshot(self, timeout: float | None = None) -> int:
        """Take and save a snapshot now; returns its index."""
        return self._call(self.node.snapshot(timeout), timeout)

    def wait_leader(self, timeout: float) -> int:
        """Wait until a leader is known; its id, or 0 on timeout."""
        return self._call(self.node.wait_leader(timeout), timeout)

    def status(self) -> dict[str, Any]:
        return self._call(_sync(self.node.status), 10.0)

    def peers_status(self) -> list[dict[str, Any]]:
        return self._call(_sync(self.node.peers_status), 10.0)

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def is_leader(self) -> bool:
        return self.status()["state"] == "LEADER"


async def _sync(fn: Any) -> Any:
    return fn()
