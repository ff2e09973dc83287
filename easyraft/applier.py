"""The applier: one thread per server that runs the user's callbacks.

Committed entries, snapshots to restore, snapshot requests and role changes
arrive on a queue from the node's loop, in log order, and are handed to the
user's Callbacks here, never on the loop: a slow on_commit must not delay
heartbeats. Progress is reported back to the loop with call_soon_threadsafe.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from easyraft.callbacks import Callbacks, State

logger = logging.getLogger("easyraft.applier")


class RecoverError(Exception):
    """recover_from_snapshot failed: the server cannot go on applying."""


class Applier:
    """Runs callbacks in order on its own thread.

    Work items (put by the loop, consumed here):
      ("apply", [(data, term, index), ...], last_index)
      ("restore", data, term, index)
      ("snapshot", index, token)     -> on_snapshot(token, data | exception)
      ("state", State)
      ("barrier", token)             -> on_barrier(token) once all before it ran
    """

    def __init__(self, callbacks: Callbacks, loop: asyncio.AbstractEventLoop, *,
                 on_applied: Callable[[int], None],
                 on_snapshot: Callable[[Any, Any], None],
                 on_fatal: Callable[[BaseException], None],
                 name: str = "easyraft-applier") -> None:
        self.callbacks = callbacks
        self.loop = loop
        self._on_applied = on_applied
        self._on_snapshot = on_snapshot
        self._on_fatal = on_fatal
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.applied = 0            # last index handed to on_commit (read on the loop: racy but monotonic)
        self.commit_errors = 0      # on_commit non-zero returns or exceptions
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        self._queue.put(item)

    def stop(self, timeout: float | None = None) -> None:
        """Finish queued work, then end the thread."""
        self._queue.put(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass    # loop closed during shutdown: nobody is waiting any more

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.failed is not None:
                continue    # a failed server applies nothing more
            try:
                self._handle(item)
            except RecoverError as e:
                self.failed = e
                logger.critical("%s; this server stops applying", e)
                self._post(self._on_fatal, e)
            except Exception:   # a bug of ours: never let the thread die silently
                logger.exception("applier: unexpected error handling %r", item[0])

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        cb = self.callbacks
        if kind == "apply":
            entries, last = item[1], item[2]
            for data, term, index in entries:
                try:
                    rc = cb.on_commit(data, term, index)
                except Exception:
                    self.commit_errors += 1
                    logger.exception("on_commit raised at index %d (term %d)", index, term)
                    continue
                if rc:
                    self.commit_errors += 1
                    logger.error("on_commit returned %r at index %d (term %d)", rc, index, term)
            self.applied = max(self.applied, last)
            self._post(self._on_applied, last)
        elif kind == "restore":
            data, term, index = item[1], item[2], item[3]
            try:
                rc = cb.recover_from_snapshot(data, term, index)
            except Exception as e:
                logger.exception("recover_from_snapshot raised at index %d", index)
                raise RecoverError(f"recover_from_snapshot failed at index {index}: {e!r}") from e
            if rc:
                raise RecoverError(f"recover_from_snapshot returned {rc!r} at index {index}")
            self.applied = max(self.applied, index)
            self._post(self._on_applied, index)
        elif kind == "snapshot":
            index, token = item[1], item[2]
            try:
                data = cb.get_snapshot()
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise TypeError(f"get_snapshot must return bytes, got {type(data).__name__}")
                result: Any = bytes(data)
                try:
                    cb.free_snapshot(data)  # type: ignore[arg-type]
                except Exception:
                    logger.exception("free_snapshot raised")
            except Exception as e:
                logger.exception("get_snapshot failed at index %d", index)
                result = e
            self._post(self._on_snapshot, token, result)
        elif kind == "state":
            state: State = item[1]
            try:
                cb.on_state_change(state)
            except Exception:
                logger.exception("on_state_change raised for %s", state.name)
        elif kind == "barrier":
            self._post(item[1])
        else:   # pragma: no cover - programming error
            raise ValueError(f"applier: unknown work item {kind!r}")
