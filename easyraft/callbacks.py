"""Callbacks: the user's state machine (the seed's ``struct Context``).

Subclass :class:`Callbacks` and override what you need, or hand
``RAFT_SetContext`` a seed-style object whose methods are camelCase and take
the ``ctx`` given to ``RAFT_NewRaftServer`` first; :func:`adapt` wraps it.
"""
from __future__ import annotations

import enum
from typing import Any


class State(enum.IntEnum):
    """A server's raft role (the values of the original C header)."""

    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


class Callbacks:
    """Base class of a replicated state machine.

    Every method runs on the server's single applier thread, in log order;
    none runs on the engine's thread, so a slow callback never costs
    heartbeats or leadership.
    """

    def on_commit(self, data: bytes, term: int, index: int) -> int | None:
        """Apply one committed entry. Return 0/None on success; a non-zero
        return or an exception is logged and counted, and applying goes on."""
        raise NotImplementedError("Callbacks.on_commit must be overridden")

    def get_snapshot(self) -> bytes:
        """Return the whole state as bytes; called on the applier thread
        after every entry up to the snapshot index has been applied."""
        raise NotImplementedError("Callbacks.get_snapshot must be overridden to take snapshots")

    def free_snapshot(self, data: bytes) -> None:
        """Called once the bytes from get_snapshot are saved (optional)."""

    def recover_from_snapshot(self, data: bytes, term: int, index: int) -> int | None:
        """Replace the whole state with a snapshot. A non-zero return or an
        exception is fatal for the server (it stops applying)."""
        raise NotImplementedError(
            "Callbacks.recover_from_snapshot must be overridden to restore snapshots")

    def on_state_change(self, state: State) -> None:
        """Called on every role change (optional)."""


class SeedCallbacks(Callbacks):
    """Adapter for seed-style objects: ``onCommit(ctx, data, term, index)``..."""

    def __init__(self, obj: Any, ctx: Any = None) -> None:
        if not callable(getattr(obj, "onCommit", None)):
            raise TypeError("seed-style callbacks need an onCommit(ctx, data, term, index) method")
        self._obj = obj
        self.ctx = ctx

    def on_commit(self, data: bytes, term: int, index: int) -> int | None:
        return self._obj.onCommit(self.ctx, data, term, index)  # type: ignore[no-any-return]

    def get_snapshot(self) -> bytes:
        fn = getattr(self._obj, "getSnapshot", None)
        if fn is None:
            return super().get_snapshot()
        return fn(self.ctx)  # type: ignore[no-any-return]

    def free_snapshot(self, data: bytes) -> None:
        fn = getattr(self._obj, "freeSnapshot", None)
        if fn is not None:
            fn(self.ctx, data)

    def recover_from_snapshot(self, data: bytes, term: int, index: int) -> int | None:
        fn = getattr(self._obj, "recoverFromSnapshot", None)
        if fn is None:
            return super().recover_from_snapshot(data, term, index)
        return fn(self.ctx, data, term, index)  # type: ignore[no-any-return]

    def on_state_change(self, state: State) -> None:
        fn = getattr(self._obj, "onStateChange", None)
        if fn is not None:
            fn(self.ctx, state)


def adapt(obj: Any, ctx: Any = None) -> Callbacks:
    """Return obj as Callbacks: as is when it is one (or quacks like one),
    wrapped when it is seed-style (camelCase, ctx first)."""
    if isinstance(obj, Callbacks):
        return obj
    if callable(getattr(obj, "on_commit", None)):
        return _Duck(obj)
    if callable(getattr(obj, "onCommit", None)):
        return SeedCallbacks(obj, ctx)
    raise TypeError(f"{type(obj).__name__} has neither on_commit nor onCommit: "
                    f"not usable as raft callbacks")


class _Duck(Callbacks):
    """Snake_case object that does not subclass Callbacks: fill in defaults."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def on_commit(self, data: bytes, term: int, index: int) -> int | None:
        return self._obj.on_commit(data, term, index)  # type: ignore[no-any-return]

    def get_snapshot(self) -> bytes:
        fn = getattr(self._obj, "get_snapshot", None)
        return super().get_snapshot() if fn is None else fn()

    def free_snapshot(self, data: bytes) -> None:
        fn = getattr(self._obj, "free_snapshot", None)
        if fn is not None:
            fn(data)

    def recover_from_snapshot(self, data: bytes, term: int, index: int) -> int | None:
        fn = getattr(self._obj, "recover_from_snapshot", None)
        return super().recover_from_snapshot(data, term, index) if fn is None else fn(
            data, term, index)

    def on_state_change(self, state: State) -> None:
        fn = getattr(self._obj, "on_state_change", None)
        if fn is not None:
            fn(state)
