"""The easyraft exception tree.

Everything raised on purpose derives from RaftError. The core's exceptions
are defined in the compiled module (the core imports nothing from above it)
and re-exported here with the errors of the layers above it.
"""
from __future__ import annotations

from easyraft._core.types import (
    CodecError,
    CompactedError,
    ConfChangeError,
    FrameTooLargeError,
    ProposalDroppedError,
    RaftError,
    SnapOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StepLocalMsgError,
    StepPeerNotFoundError,
    UnavailableError,
)


class ConfigError(RaftError, ValueError):
    """The configuration is invalid; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"config: {field}: {reason}")


class RaftTimeoutError(RaftError, TimeoutError):
    """The operation did not complete in time; its outcome is unknown."""


class ServerStoppedError(RaftError):
    """The server is stopped or has failed."""


class TooLargeError(RaftError, ValueError):
    """The payload exceeds the configured size limit."""


class BusyError(RaftError):
    """A membership change is already in progress."""


class CorruptWALError(RaftError):
    """The write-ahead log is damaged before its tail; the node will not start."""

    def __init__(self, file: str, offset: int, reason: str) -> None:
        self.file = file
        self.offset = offset
        self.reason = reason
        super().__init__(f"wal: corrupt at {file} offset {offset}: {reason}")


class WALLockedError(RaftError):
    """Another process or server holds the WAL directory's lock."""


class WALFailedError(RaftError):
    """An earlier write or sync of the WAL failed; it must be reopened (its tail is unknown)."""


class CorruptSnapshotError(RaftError):
    """A snapshot file failed its CRC or format check."""


__all__ = [
    "BusyError",
    "CodecError",
    "CompactedError",
    "ConfChangeError",
    "ConfigError",
    "CorruptSnapshotError",
    "CorruptWALError",
    "FrameTooLargeError",
    "ProposalDroppedError",
    "RaftError",
    "RaftTimeoutError",
    "ServerStoppedError",
    "SnapOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "StepLocalMsgError",
    "StepPeerNotFoundError",
    "TooLargeError",
    "UnavailableError",
    "WALFailedError",
    "WALLockedError",
]
